"""artist sessions: signing out ends a web session on the server

Revision ID: 0011
Revises: 0009
Create Date: 2026-12-08 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('artist_session',
    sa.Column('api_key_id', sa.Uuid(), nullable=False),
    sa.Column('contributor_id', sa.Uuid(), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'], name=op.f('fk_artist_session_api_key_id_api_key')),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'],
                            name=op.f('fk_artist_session_contributor_id_contributor')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artist_session'))
    )
    with op.batch_alter_table('artist_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_artist_session_api_key_id'), ['api_key_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('artist_session', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_artist_session_api_key_id'))

    op.drop_table('artist_session')
