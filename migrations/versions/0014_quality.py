"""quality evaluators and per-model quality measurements

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-01 22:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('quality_evaluator',
    sa.Column('split', sa.String(length=64), nullable=False),
    sa.Column('training_snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('heldout_snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('sha256', sa.String(length=64), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('config', sa.JSON(), nullable=False),
    sa.Column('groups', sa.JSON(), nullable=False),
    sa.Column('subgroups', sa.JSON(), nullable=False),
    sa.Column('real_balanced_accuracy', sa.Float(), nullable=False),
    sa.Column('real_subgroup_balanced_accuracy', sa.Float(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['heldout_snapshot_id'], ['dataset_snapshot.id'],
                            name=op.f('fk_quality_evaluator_heldout_snapshot_id_dataset_snapshot')),
    sa.ForeignKeyConstraint(['training_snapshot_id'], ['dataset_snapshot.id'],
                            name=op.f('fk_quality_evaluator_training_snapshot_id_dataset_snapshot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quality_evaluator'))
    )
    with op.batch_alter_table('quality_evaluator', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quality_evaluator_split'), ['split'], unique=False)

    op.create_table('model_quality',
    sa.Column('model_id', sa.Uuid(), nullable=False),
    sa.Column('evaluator_id', sa.Uuid(), nullable=False),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('sampling', sa.JSON(), nullable=False),
    sa.Column('sheet_sha256', sa.String(length=64), nullable=True),
    sa.Column('measured_by', sa.String(length=200), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['evaluator_id'], ['quality_evaluator.id'],
                            name=op.f('fk_model_quality_evaluator_id_quality_evaluator')),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_model_quality_model_id_model')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model_quality'))
    )
    with op.batch_alter_table('model_quality', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_quality_model_id'), ['model_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('model_quality', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_quality_model_id'))
    op.drop_table('model_quality')
    with op.batch_alter_table('quality_evaluator', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quality_evaluator_split'))
    op.drop_table('quality_evaluator')
