"""payout periods

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-26 13:42:27.194457
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A closed period and its payout lines are frozen: the database refuses to change them.
_SQLITE = [
    """CREATE TRIGGER payout_line_frozen_update BEFORE UPDATE ON payout_line
       BEGIN SELECT RAISE(ABORT, 'payout lines are immutable'); END""",
    """CREATE TRIGGER payout_line_frozen_delete BEFORE DELETE ON payout_line
       BEGIN SELECT RAISE(ABORT, 'payout lines are immutable'); END""",
    """CREATE TRIGGER payout_period_closed_update BEFORE UPDATE ON payout_period WHEN OLD.status = 'closed'
       BEGIN SELECT RAISE(ABORT, 'closed payout periods are immutable'); END""",
    """CREATE TRIGGER payout_period_closed_delete BEFORE DELETE ON payout_period WHEN OLD.status = 'closed'
       BEGIN SELECT RAISE(ABORT, 'closed payout periods are immutable'); END""",
]
_POSTGRES = [  # foundry_refuse_change() comes with revision 0002
    """CREATE TRIGGER payout_line_frozen BEFORE UPDATE OR DELETE ON payout_line
       FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()""",
    """CREATE TRIGGER payout_period_closed BEFORE UPDATE OR DELETE ON payout_period
       FOR EACH ROW WHEN (OLD.status = 'closed') EXECUTE FUNCTION foundry_refuse_change()""",
]


def upgrade() -> None:
    op.create_table('payout_period',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('status', sa.String(length=8), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=200), nullable=True),
    sa.Column('threshold', sa.Integer(), nullable=True),
    sa.Column('contributors', sa.Integer(), nullable=True),
    sa.Column('total_payable', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('period', name=op.f('pk_payout_period'))
    )
    op.create_table('payout_line',
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('contributor_id', sa.Uuid(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('carried_in', sa.Integer(), nullable=False),
    sa.Column('earned', sa.Integer(), nullable=False),
    sa.Column('payable', sa.Integer(), nullable=False),
    sa.Column('carried_out', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'], name=op.f('fk_payout_line_contributor_id_contributor')),
    sa.ForeignKeyConstraint(['period'], ['payout_period.period'], name=op.f('fk_payout_line_period_payout_period')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payout_line')),
    sa.UniqueConstraint('period', 'contributor_id', 'currency', name=op.f('uq_payout_line_period_contributor_id_currency'))
    )
    with op.batch_alter_table('payout_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payout_line_contributor_id'), ['contributor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_payout_line_period'), ['period'], unique=False)
    for statement in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS payout_line_frozen ON payout_line")
        op.execute("DROP TRIGGER IF EXISTS payout_period_closed ON payout_period")
    else:
        for name in ("payout_line_frozen_update", "payout_line_frozen_delete", "payout_period_closed_update",
                     "payout_period_closed_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table('payout_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payout_line_period'))
        batch_op.drop_index(batch_op.f('ix_payout_line_contributor_id'))

    op.drop_table('payout_line')
    op.drop_table('payout_period')
