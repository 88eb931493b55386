"""generations pricing ledger

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 13:01:34.218191
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The ledger and the attribution that explains it are append-only: corrections are new,
# reversing entries. The database refuses UPDATE and DELETE whoever connects.
_APPEND_ONLY = ("ledger_entry", "attribution_line")


def _create_append_only_triggers() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _APPEND_ONLY:
        if postgres:  # foundry_refuse_change() comes with revision 0002
            op.execute(f"""CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table}
                           FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()""")
            continue
        for action in ("UPDATE", "DELETE"):
            op.execute(f"""CREATE TRIGGER {table}_append_only_{action.lower()} BEFORE {action} ON {table}
                           BEGIN SELECT RAISE(ABORT, '{table} rows are append-only'); END""")


def _drop_append_only_triggers() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in _APPEND_ONLY:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}")
            continue
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_append_only_{action}")


def upgrade() -> None:
    op.create_table('price_rule',
    sa.Column('model_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('unit_price', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('pool_share_bps', sa.Integer(), nullable=False),
    sa.Column('finetune_share_bps', sa.Integer(), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('finetune_share_bps BETWEEN 0 AND 10000', name=op.f('ck_price_rule_finetune_share_range')),
    sa.CheckConstraint('pool_share_bps BETWEEN 0 AND 10000', name=op.f('ck_price_rule_pool_share_range')),
    sa.CheckConstraint('unit_price >= 0', name=op.f('ck_price_rule_unit_price_non_negative')),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_price_rule_model_id_model')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_price_rule_tenant_id_tenant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_price_rule'))
    )
    with op.batch_alter_table('price_rule', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_price_rule_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_price_rule_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('generation',
    sa.Column('tenant_id', sa.Uuid(), nullable=False),
    sa.Column('api_key_id', sa.Uuid(), nullable=True),
    sa.Column('model_id', sa.Uuid(), nullable=False),
    sa.Column('idempotency_key', sa.String(length=200), nullable=True),
    sa.Column('request_sha256', sa.String(length=64), nullable=False),
    sa.Column('request', sa.JSON(), nullable=False),
    sa.Column('prompt', sa.Text(), nullable=False),
    sa.Column('seed', sa.BigInteger(), nullable=False),
    sa.Column('num_images', sa.Integer(), nullable=False),
    sa.Column('mode', sa.String(length=8), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('error_code', sa.String(length=64), nullable=True),
    sa.Column('error_message', sa.Text(), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('price_rule_id', sa.Uuid(), nullable=False),
    sa.Column('unit_price', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('charge_amount', sa.Integer(), nullable=True),
    sa.Column('pool_amount', sa.Integer(), nullable=True),
    sa.Column('attribution', sa.JSON(), nullable=False),
    sa.Column('timings', sa.JSON(), nullable=False),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['api_key_id'], ['api_key.id'], name=op.f('fk_generation_api_key_id_api_key')),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_generation_model_id_model')),
    sa.ForeignKeyConstraint(['price_rule_id'], ['price_rule.id'], name=op.f('fk_generation_price_rule_id_price_rule')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_generation_tenant_id_tenant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_generation')),
    sa.UniqueConstraint('tenant_id', 'idempotency_key', name=op.f('uq_generation_tenant_id_idempotency_key'))
    )
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generation_model_id'), ['model_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_generation_status'), ['status'], unique=False)
        batch_op.create_index(batch_op.f('ix_generation_tenant_id'), ['tenant_id'], unique=False)

    op.create_table('attribution_line',
    sa.Column('generation_id', sa.Uuid(), nullable=False),
    sa.Column('contributor_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=False),
    sa.Column('weight', sa.String(length=200), nullable=False),
    sa.Column('share_ppm', sa.Integer(), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('asset_count', sa.Integer(), nullable=False),
    sa.Column('top_assets', sa.JSON(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'], name=op.f('fk_attribution_line_contributor_id_contributor')),
    sa.ForeignKeyConstraint(['generation_id'], ['generation.id'], name=op.f('fk_attribution_line_generation_id_generation')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attribution_line'))
    )
    with op.batch_alter_table('attribution_line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_attribution_line_contributor_id'), ['contributor_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_attribution_line_generation_id'), ['generation_id'], unique=False)

    op.create_table('generated_image',
    sa.Column('generation_id', sa.Uuid(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('raw_sha256', sa.String(length=64), nullable=False),
    sa.Column('delivery_sha256', sa.String(length=64), nullable=False),
    sa.Column('width', sa.Integer(), nullable=False),
    sa.Column('height', sa.Integer(), nullable=False),
    sa.Column('delivery_width', sa.Integer(), nullable=False),
    sa.Column('delivery_height', sa.Integer(), nullable=False),
    sa.Column('perceptual_hash', sa.String(length=16), nullable=False),
    sa.Column('watermark_id', sa.String(length=40), nullable=False),
    sa.Column('nearest_asset_id', sa.Uuid(), nullable=True),
    sa.Column('nearest_distance', sa.Integer(), nullable=True),
    sa.Column('near_duplicate', sa.Boolean(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.ForeignKeyConstraint(['generation_id'], ['generation.id'], name=op.f('fk_generated_image_generation_id_generation')),
    sa.ForeignKeyConstraint(['nearest_asset_id'], ['asset.id'], name=op.f('fk_generated_image_nearest_asset_id_asset')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_generated_image')),
    sa.UniqueConstraint('generation_id', 'index', name=op.f('uq_generated_image_generation_id_index')),
    sa.UniqueConstraint('watermark_id', name=op.f('uq_generated_image_watermark_id'))
    )
    with op.batch_alter_table('generated_image', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_generated_image_delivery_sha256'), ['delivery_sha256'], unique=False)
        batch_op.create_index(batch_op.f('ix_generated_image_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_generated_image_perceptual_hash'), ['perceptual_hash'], unique=False)

    op.create_table('ledger_entry',
    sa.Column('transaction_id', sa.Uuid(), nullable=False),
    sa.Column('posted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('period', sa.String(length=7), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('method', sa.String(length=32), nullable=True),
    sa.Column('debit_account', sa.String(length=80), nullable=False),
    sa.Column('credit_account', sa.String(length=80), nullable=False),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('generation_id', sa.Uuid(), nullable=True),
    sa.Column('tenant_id', sa.Uuid(), nullable=True),
    sa.Column('model_id', sa.Uuid(), nullable=True),
    sa.Column('contributor_id', sa.Uuid(), nullable=True),
    sa.Column('asset_id', sa.Uuid(), nullable=True),
    sa.Column('reverses_entry_id', sa.Uuid(), nullable=True),
    sa.Column('memo', sa.String(length=500), nullable=True),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.CheckConstraint('amount > 0', name=op.f('ck_ledger_entry_amount_positive')),
    sa.CheckConstraint('debit_account <> credit_account', name=op.f('ck_ledger_entry_distinct_accounts')),
    sa.ForeignKeyConstraint(['asset_id'], ['asset.id'], name=op.f('fk_ledger_entry_asset_id_asset')),
    sa.ForeignKeyConstraint(['contributor_id'], ['contributor.id'], name=op.f('fk_ledger_entry_contributor_id_contributor')),
    sa.ForeignKeyConstraint(['generation_id'], ['generation.id'], name=op.f('fk_ledger_entry_generation_id_generation')),
    sa.ForeignKeyConstraint(['model_id'], ['model.id'], name=op.f('fk_ledger_entry_model_id_model')),
    sa.ForeignKeyConstraint(['reverses_entry_id'], ['ledger_entry.id'], name=op.f('fk_ledger_entry_reverses_entry_id_ledger_entry')),
    sa.ForeignKeyConstraint(['tenant_id'], ['tenant.id'], name=op.f('fk_ledger_entry_tenant_id_tenant')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_ledger_entry')),
    sa.UniqueConstraint('reverses_entry_id', name=op.f('uq_ledger_entry_reverses_entry_id'))
    )
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ledger_entry_contributor_id'), ['contributor_id'], unique=False)
        batch_op.create_index('ix_ledger_entry_contributor_period', ['contributor_id', 'period'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_period'), ['period'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_credit_account'), ['credit_account'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_debit_account'), ['debit_account'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_generation_id'), ['generation_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_posted_at'), ['posted_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_tenant_id'), ['tenant_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_ledger_entry_transaction_id'), ['transaction_id'], unique=False)
    _create_append_only_triggers()


def downgrade() -> None:
    _drop_append_only_triggers()
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ledger_entry_transaction_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_posted_at'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_generation_id'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_debit_account'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_credit_account'))
        batch_op.drop_index(batch_op.f('ix_ledger_entry_period'))
        batch_op.drop_index('ix_ledger_entry_contributor_period')
        batch_op.drop_index(batch_op.f('ix_ledger_entry_contributor_id'))

    op.drop_table('ledger_entry')
    with op.batch_alter_table('generated_image', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generated_image_perceptual_hash'))
        batch_op.drop_index(batch_op.f('ix_generated_image_generation_id'))
        batch_op.drop_index(batch_op.f('ix_generated_image_delivery_sha256'))

    op.drop_table('generated_image')
    with op.batch_alter_table('attribution_line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_attribution_line_generation_id'))
        batch_op.drop_index(batch_op.f('ix_attribution_line_contributor_id'))

    op.drop_table('attribution_line')
    with op.batch_alter_table('generation', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_generation_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_generation_status'))
        batch_op.drop_index(batch_op.f('ix_generation_model_id'))

    op.drop_table('generation')
    with op.batch_alter_table('price_rule', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_price_rule_tenant_id'))
        batch_op.drop_index(batch_op.f('ix_price_rule_model_id'))

    op.drop_table('price_rule')
