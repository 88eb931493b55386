"""model registry and training jobs

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-26 10:50:50.285327
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:

    op.create_table('model',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('model_format', sa.String(length=32), nullable=False),
    sa.Column('parent_id', sa.Uuid(), nullable=True),
    sa.Column('snapshot_id', sa.Uuid(), nullable=True),
    sa.Column('snapshot_merkle_root', sa.String(length=64), nullable=True),
    sa.Column('recipe', sa.JSON(), nullable=False),
    sa.Column('code_version', sa.String(length=100), nullable=False),
    sa.Column('weights_sha256', sa.String(length=64), nullable=False),
    sa.Column('files', sa.JSON(), nullable=False),
    sa.Column('text_encoder_origin', sa.JSON(), nullable=False),
    sa.Column('licensed_only', sa.Boolean(), nullable=False),
    sa.Column('lineage_note', sa.Text(), nullable=True),
    sa.Column('owner_tenant_id', sa.Uuid(), nullable=True),
    sa.Column('training_job_id', sa.Uuid(), nullable=True),
    sa.Column('metrics', sa.JSON(), nullable=False),
    sa.Column('source_path', sa.String(length=2000), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['parent_id'], ['model.id'], name=op.f('fk_model_parent_id_model')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['dataset_snapshot.id'], name=op.f('fk_model_snapshot_id_dataset_snapshot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_model'))
    )
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_model_parent_id'), ['parent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_snapshot_id'), ['snapshot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_model_training_job_id'), ['training_job_id'], unique=False)

    op.create_table('training_job',
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('recipe_kind', sa.String(length=16), nullable=False),
    sa.Column('recipe', sa.JSON(), nullable=False),
    sa.Column('snapshot_id', sa.Uuid(), nullable=False),
    sa.Column('base_model_id', sa.Uuid(), nullable=True),
    sa.Column('owner_tenant_id', sa.Uuid(), nullable=True),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('step', sa.Integer(), nullable=False),
    sa.Column('total_steps', sa.Integer(), nullable=False),
    sa.Column('loss', sa.Float(), nullable=True),
    sa.Column('images_per_s', sa.Float(), nullable=True),
    sa.Column('eta_s', sa.Float(), nullable=True),
    sa.Column('log_tail', sa.Text(), nullable=False),
    sa.Column('artifacts', sa.JSON(), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('result_model_id', sa.Uuid(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('worker', sa.String(length=200), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('heartbeat_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('cancel_requested_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['base_model_id'], ['model.id'], name=op.f('fk_training_job_base_model_id_model')),
    sa.ForeignKeyConstraint(['result_model_id'], ['model.id'], name=op.f('fk_training_job_result_model_id_model')),
    sa.ForeignKeyConstraint(['snapshot_id'], ['dataset_snapshot.id'], name=op.f('fk_training_job_snapshot_id_dataset_snapshot')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_training_job'))
    )
    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_training_job_snapshot_id'), ['snapshot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_training_job_status'), ['status'], unique=False)




def downgrade() -> None:

    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_training_job_status'))
        batch_op.drop_index(batch_op.f('ix_training_job_snapshot_id'))

    op.drop_table('training_job')
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_model_training_job_id'))
        batch_op.drop_index(batch_op.f('ix_model_snapshot_id'))
        batch_op.drop_index(batch_op.f('ix_model_parent_id'))

    op.drop_table('model')

