"""attribution indexes

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 15:39:14.894156
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('attribution_index',
    sa.Column('model_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.String(length=64), nullable=False),
    sa.Column('version', sa.String(length=16), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('fingerprint', sa.JSON(), nullable=False),
    sa.Column('blob_sha256', sa.String(length=64), nullable=False),
    sa.Column('entry_count', sa.Integer(), nullable=False),
    sa.Column('build_seconds', sa.Float(), nullable=False),
    sa.Column('training_job_id', sa.Uuid(), nullable=True),
    sa.Column('built_by', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_attribution_index_model_id_model')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attribution_index'))
    )
    with op.batch_alter_table('attribution_index', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attribution_index_model_id'), ['model_id'], unique=False)

    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.add_column(sa.Column('influence_alpha_bps', sa.Integer(), server_default='5000', nullable=False))

    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stage', sa.String(length=24), server_default='training', nullable=False))
        batch_op.add_column(sa.Column('stage_progress', sa.JSON(), server_default=sa.text("'{}'"), nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.drop_column('stage_progress')
        batch_op.drop_column('stage')

    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_column('influence_alpha_bps')

    with op.batch_alter_table('attribution_index', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attribution_index_model_id'))

    op.drop_table('attribution_index')
