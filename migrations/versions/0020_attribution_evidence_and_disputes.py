"""attribution evidence and disputes: each output's most influential training images (what contributors are
shown), and disputes over a contributor's share with the check that answered them

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-05 12:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('generated_image', schema=None) as batch_op:
        batch_op.add_column(sa.Column('influence', sa.JSON(), nullable=True))
    op.create_table(
        'attribution_dispute',
        sa.Column('generation_id', sa.Uuid(), nullable=False),
        sa.Column('contributor_id', sa.Uuid(), nullable=False),
        sa.Column('reason', sa.String(length=2000), nullable=False),
        sa.Column('opened_by', sa.String(length=200), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('verdict', sa.String(length=16), nullable=True),
        sa.Column('result', sa.JSON(), nullable=True),
        sa.Column('checked_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('id', sa.Uuid(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'],
                                name=op.f('fk_attribution_dispute_contributor_id_contributor')),
        sa.ForeignKeyConstraint(['generation_id'], ['generation.id'],
                                name=op.f('fk_attribution_dispute_generation_id_generation')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_attribution_dispute')),
    )
    with op.batch_alter_table('attribution_dispute', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attribution_dispute_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_dispute_contributor_id'), ['contributor_id'], unique=False)


def downgrade() -> None:
    op.drop_table('attribution_dispute')
    with op.batch_alter_table('generated_image', schema=None) as batch_op:
        batch_op.drop_column('influence')
