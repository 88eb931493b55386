"""image edits: the inputs an edit started from (uploads purged after their retention)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-05 07:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'edit_input',
        sa.Column('generation_id', sa.Uuid(), nullable=False),
        sa.Column('role', sa.String(length=8), nullable=False),
        sa.Column('relationship', sa.String(length=16), nullable=False),
        sa.Column('sha256', sa.String(length=64), nullable=False),
        sa.Column('format', sa.String(length=8), nullable=False),
        sa.Column('width', sa.Integer(), nullable=False),
        sa.Column('height', sa.Integer(), nullable=False),
        sa.Column('perceptual_hash', sa.String(length=16), nullable=False),
        sa.Column('source_generation_id', sa.Uuid(), nullable=True),
        sa.Column('source_image_index', sa.Integer(), nullable=True),
        sa.Column('catalog_asset_id', sa.Uuid(), nullable=True),
        sa.Column('catalog_distance', sa.Integer(), nullable=True),
        sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('purged_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(['catalog_asset_id'], ['asset.id'], name=op.f('fk_edit_input_catalog_asset_id_asset')),
        sa.ForeignKeyConstraint(['generation_id'], ['generation.id'], name=op.f('fk_edit_input_generation_id_generation')),
        sa.ForeignKeyConstraint(['source_generation_id'], ['generation.id'],
                                name=op.f('fk_edit_input_source_generation_id_generation')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_edit_input')),
        sa.UniqueConstraint('generation_id', 'role', name=op.f('uq_edit_input_generation_id_role')),
    )
    with op.batch_alter_table('edit_input', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_edit_input_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_edit_input_sha256'), ['sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_edit_input_expires_at'), ['expires_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('edit_input', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_edit_input_expires_at'))
        batch_op.drop_index(batch_op.f('ix_edit_input_sha256'))
        batch_op.drop_index(batch_op.f('ix_edit_input_generation_id'))
    op.drop_table('edit_input')
