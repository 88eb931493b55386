"""license terms as data

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-27 10:00:00.000000
"""

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The terms the foundry accepted before they became data (foundry/licensing/terms.py up to 0009).
# (code, name, url, requires_attribution, share_alike, base_training, customer_finetune, generation)
_SEED = [
    ("CC0-1.0", "Creative Commons Zero v1.0 Universal",
     "https://creativecommons.org/publicdomain/zero/1.0/", False, False, True, True, True),
    ("CC-BY-4.0", "Creative Commons Attribution 4.0 International",
     "https://creativecommons.org/licenses/by/4.0/", True, False, True, True, True),
    ("CC-BY-SA-4.0", "Creative Commons Attribution Share Alike 4.0 International",
     "https://creativecommons.org/licenses/by-sa/4.0/", True, True, True, True, True),
    ("FOUNDRY-CONTRIBUTOR-1.0", "Foundry Contributor AI Licence 1.0",
     "https://foundry.invalid/licenses/contributor-1.0", True, False, True, True, True),
    ("TENANT-BRAND-1.0", "Tenant brand material, for the tenant's own fine-tunes only",
     "https://foundry.invalid/licenses/tenant-brand-1.0", False, False, True, True, True),
]


def upgrade() -> None:
    table = op.create_table('license_terms',
    sa.Column('code', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=300), nullable=False),
    sa.Column('url', sa.String(length=1000), nullable=False),
    sa.Column('requires_attribution', sa.Boolean(), nullable=False),
    sa.Column('share_alike', sa.Boolean(), nullable=False),
    sa.Column('grants_base_training', sa.Boolean(), nullable=False),
    sa.Column('grants_customer_finetune', sa.Boolean(), nullable=False),
    sa.Column('grants_generation', sa.Boolean(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_license_terms')),
    sa.UniqueConstraint('code', name=op.f('uq_license_terms_code'))
    )
    now = datetime.now(UTC)
    op.bulk_insert(table, [
        {"id": uuid.uuid4(), "created_at": now, "created_by": "migration 0010", "code": code, "name": name,
         "url": url, "requires_attribution": attribution, "share_alike": share_alike,
         "grants_base_training": base, "grants_customer_finetune": finetune, "grants_generation": generation}
        for code, name, url, attribution, share_alike, base, finetune, generation in _SEED
    ])


def downgrade() -> None:
    op.drop_table('license_terms')
