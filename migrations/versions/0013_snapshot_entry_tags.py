"""snapshot entries keep the asset's catalog tags, so a recipe can caption with them

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-01 22:20:00.000000

Entries are write-once (triggers refuse updates), so the column is added in place with a
constant default rather than by rebuilding the table; existing entries read as untagged,
which is also how their Merkle leaves were hashed.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('snapshot_entry', sa.Column('tags', sa.JSON(), server_default='[]', nullable=False))


def downgrade() -> None:
    op.drop_column('snapshot_entry', 'tags')
