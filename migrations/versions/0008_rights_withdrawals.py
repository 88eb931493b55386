"""rights withdrawals

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 13:46:21.997319
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Withdrawals of rights are the audit trail of an artist's decisions: append-only.
_SQLITE = [
    """CREATE TRIGGER rights_withdrawal_append_only_update BEFORE UPDATE ON rights_withdrawal
       BEGIN SELECT RAISE(ABORT, 'rights withdrawals are append-only'); END""",
    """CREATE TRIGGER rights_withdrawal_append_only_delete BEFORE DELETE ON rights_withdrawal
       BEGIN SELECT RAISE(ABORT, 'rights withdrawals are append-only'); END""",
]
_POSTGRES = [  # foundry_refuse_change() comes with revision 0002
    """CREATE TRIGGER rights_withdrawal_append_only BEFORE UPDATE OR DELETE ON rights_withdrawal
       FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()""",
]


def upgrade() -> None:
    op.create_table('rights_withdrawal',
    sa.Column('contributor_id', sa.Uuid(), nullable=False),
    sa.Column('asset_id', sa.Uuid(), nullable=True),
    sa.Column('use', sa.String(length=32), nullable=True),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('requested_by', sa.String(length=200), nullable=False),
    sa.Column('revoked_grants', sa.Integer(), nullable=False),
    sa.Column('affected_models', sa.JSON(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_rights_withdrawal_asset_id_asset')),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'], name=op.f('fk_rights_withdrawal_contributor_id_contributor')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rights_withdrawal'))
    )
    with op.batch_alter_table('rights_withdrawal', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_rights_withdrawal_asset_id'), ['asset_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_rights_withdrawal_contributor_id'), ['contributor_id'], unique=False)

    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.add_column(sa.Column('revocation_policy', sa.String(length=24), server_default='keep_serving', nullable=False))
        batch_op.add_column(sa.Column('grace_days', sa.Integer(), server_default='30', nullable=False))
        batch_op.add_column(sa.Column('rights_affected_at', sa.DateTime(timezone=True), nullable=True))
    for statement in _POSTGRES if op.get_bind().dialect.name == "postgresql" else _SQLITE:
        op.execute(statement)



def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS rights_withdrawal_append_only ON rights_withdrawal")
    else:
        op.execute("DROP TRIGGER IF EXISTS rights_withdrawal_append_only_update")
        op.execute("DROP TRIGGER IF EXISTS rights_withdrawal_append_only_delete")
    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_column('rights_affected_at')
        batch_op.drop_column('grace_days')
        batch_op.drop_column('revocation_policy')

    with op.batch_alter_table('rights_withdrawal', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_rights_withdrawal_contributor_id'))
        batch_op.drop_index(batch_op.f('ix_rights_withdrawal_asset_id'))

    op.drop_table('rights_withdrawal')
