"""tenants and brand assets

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 12:01:42.885655
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tenant',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tenant')),
    sa.UniqueConstraint('name', name=op.f('uq_tenant_name'))
    )
    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.add_column(sa.Column('owner_tenant_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_asset_owner_tenant_id'), ['owner_tenant_id'], unique=False)

    # Plain ALTERs, never a table rebuild: rebuilding would drop the immutability triggers.
    op.add_column('dataset_snapshot', sa.Column('owner_tenant_id', sa.Uuid(), nullable=True))
    op.create_index(op.f('ix_dataset_snapshot_owner_tenant_id'), 'dataset_snapshot', ['owner_tenant_id'], unique=False)




def downgrade() -> None:
    op.drop_index(op.f('ix_dataset_snapshot_owner_tenant_id'), table_name='dataset_snapshot')
    op.execute("ALTER TABLE dataset_snapshot DROP COLUMN owner_tenant_id")

    with op.batch_alter_table('asset', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_asset_owner_tenant_id'))
        batch_op.drop_column('owner_tenant_id')

    op.drop_table('tenant')

