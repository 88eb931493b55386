"""custom models: retired models, training step prices, training charges, idempotent requests

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-05 04:14:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('training_job_id', sa.Uuid(), nullable=True))
        batch_op.create_index(batch_op.f('ix_ledger_entry_training_job_id'), ['training_job_id'], unique=False)

    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))

    with op.batch_alter_table('price_rule', schema=None) as batch_op:
        batch_op.add_column(sa.Column('training_step_price', sa.BigInteger(), server_default='0', nullable=False))

    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.add_column(sa.Column('idempotency_key', sa.String(length=200), nullable=True))
        batch_op.create_index('uq_training_job_idempotency', ['owner_tenant_id', 'idempotency_key'], unique=True)


def downgrade() -> None:
    with op.batch_alter_table('training_job', schema=None) as batch_op:
        batch_op.drop_index('uq_training_job_idempotency')
        batch_op.drop_column('idempotency_key')

    with op.batch_alter_table('price_rule', schema=None) as batch_op:
        batch_op.drop_column('training_step_price')

    with op.batch_alter_table('model', schema=None) as batch_op:
        batch_op.drop_column('retired_at')

    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entry_training_job_id'))
        batch_op.drop_column('training_job_id')
