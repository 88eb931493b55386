"""money in 64-bit integers; one ledger entry per posted event

Every money column becomes BIGINT (amounts above 2,147,483,647 minor units: large charges, IDR and
other small-unit currencies). ``ledger_entry.posting_key`` names the event an entry records and is
unique, so the database refuses a second posting of the same charge, royalty, reversal or payout.
Existing entries get the key the code would give them.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-01 22:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012'
down_revision: str | None = '0011'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column, nullable): every column holding an amount of money.
_MONEY = [
    ("price_rule", "unit_price", False),
    ("generation", "unit_price", False),
    ("generation", "charge_amount", True),
    ("generation", "pool_amount", True),
    ("attribution_line", "amount", False),
    ("ledger_entry", "amount", False),
    ("payout_period", "threshold", True),
    ("payout_line", "carried_in", False),
    ("payout_line", "earned", False),
    ("payout_line", "payable", False),
    ("payout_line", "carried_out", False),
]

# The immutability triggers of revisions 0006 and 0007. SQLite drops a table's triggers with the
# table, which a batch migration copies, so they are dropped first and created again at the end.
_SQLITE_TRIGGERS = {
    "ledger_entry_append_only_update": """CREATE TRIGGER ledger_entry_append_only_update BEFORE UPDATE ON ledger_entry
        BEGIN SELECT RAISE(ABORT, 'ledger_entry rows are append-only'); END""",
    "ledger_entry_append_only_delete": """CREATE TRIGGER ledger_entry_append_only_delete BEFORE DELETE ON ledger_entry
        BEGIN SELECT RAISE(ABORT, 'ledger_entry rows are append-only'); END""",
    "attribution_line_append_only_update": """CREATE TRIGGER attribution_line_append_only_update
        BEFORE UPDATE ON attribution_line
        BEGIN SELECT RAISE(ABORT, 'attribution_line rows are append-only'); END""",
    "attribution_line_append_only_delete": """CREATE TRIGGER attribution_line_append_only_delete
        BEFORE DELETE ON attribution_line
        BEGIN SELECT RAISE(ABORT, 'attribution_line rows are append-only'); END""",
    "payout_line_frozen_update": """CREATE TRIGGER payout_line_frozen_update BEFORE UPDATE ON payout_line
        BEGIN SELECT RAISE(ABORT, 'payout lines are immutable'); END""",
    "payout_line_frozen_delete": """CREATE TRIGGER payout_line_frozen_delete BEFORE DELETE ON payout_line
        BEGIN SELECT RAISE(ABORT, 'payout lines are immutable'); END""",
    "payout_period_closed_update": """CREATE TRIGGER payout_period_closed_update BEFORE UPDATE ON payout_period
        WHEN OLD.status = 'closed' BEGIN SELECT RAISE(ABORT, 'closed payout periods are immutable'); END""",
    "payout_period_closed_delete": """CREATE TRIGGER payout_period_closed_delete BEFORE DELETE ON payout_period
        WHEN OLD.status = 'closed' BEGIN SELECT RAISE(ABORT, 'closed payout periods are immutable'); END""",
}
_POSTGRES_TRIGGERS = {  # name -> (table, CREATE statement); foundry_refuse_change() comes with revision 0002
    "ledger_entry_append_only": ("ledger_entry", """CREATE TRIGGER ledger_entry_append_only
        BEFORE UPDATE OR DELETE ON ledger_entry FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()"""),
    "attribution_line_append_only": ("attribution_line", """CREATE TRIGGER attribution_line_append_only
        BEFORE UPDATE OR DELETE ON attribution_line FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()"""),
    "payout_line_frozen": ("payout_line", """CREATE TRIGGER payout_line_frozen
        BEFORE UPDATE OR DELETE ON payout_line FOR EACH ROW EXECUTE FUNCTION foundry_refuse_change()"""),
    "payout_period_closed": ("payout_period", """CREATE TRIGGER payout_period_closed
        BEFORE UPDATE OR DELETE ON payout_period
        FOR EACH ROW WHEN (OLD.status = 'closed') EXECUTE FUNCTION foundry_refuse_change()"""),
}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _drop_triggers() -> None:
    if _postgres():
        for name, (table, _create) in _POSTGRES_TRIGGERS.items():
            op.execute(f"DROP TRIGGER IF EXISTS {name} ON {table}")
        return
    for name in _SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {name}")


def _create_triggers() -> None:
    statements = [create for _table, create in _POSTGRES_TRIGGERS.values()] if _postgres() else _SQLITE_TRIGGERS.values()
    for statement in statements:
        op.execute(statement)


def _retype(old: sa.types.TypeEngine, new: sa.types.TypeEngine) -> None:
    tables = dict.fromkeys(table for table, _column, _nullable in _MONEY)
    for table in tables:
        with op.batch_alter_table(table, schema=None) as batch_op:
            for _table, column, nullable in (m for m in _MONEY if m[0] == table):
                batch_op.alter_column(column, existing_type=old, type_=new, existing_nullable=nullable)


def _posting_key(row) -> str:
    """The key ``foundry.ledger.service`` gives the entry (``legacy:<id>`` when it cannot be told)."""
    if row.kind == "charge" and row.generation_id:
        return f"generation:{row.generation_id}:charge"
    if row.kind == "royalty" and row.generation_id and row.contributor_id and row.method:
        return f"generation:{row.generation_id}:royalty:{row.method}:{row.contributor_id}:{row.asset_id or 'pool'}"
    if row.kind == "reversal" and row.reverses_entry_id:
        return f"reversal:{row.reverses_entry_id}"
    memo = row.memo or ""
    if row.kind == "payout" and row.contributor_id and memo.startswith("payout for "):
        return f"payout:{memo.removeprefix('payout for ')}:{row.contributor_id}:{row.currency}"
    return f"legacy:{row.id}"


def _backfill_posting_keys() -> None:
    entry = sa.table("ledger_entry", sa.column("id", sa.Uuid()), sa.column("kind", sa.String()),
                     sa.column("method", sa.String()), sa.column("currency", sa.String()),
                     sa.column("generation_id", sa.Uuid()), sa.column("contributor_id", sa.Uuid()),
                     sa.column("asset_id", sa.Uuid()), sa.column("reverses_entry_id", sa.Uuid()),
                     sa.column("memo", sa.String()), sa.column("posting_key", sa.String()))
    bind = op.get_bind()
    seen: set[str] = set()
    keys = []
    for row in bind.execute(sa.select(entry).order_by(entry.c.id)):
        key = _posting_key(row)
        key = key if key not in seen else f"legacy:{row.id}"
        seen.add(key)
        keys.append({"entry_id": row.id, "key": key})
    if keys:
        bind.execute(entry.update().where(entry.c.id == sa.bindparam("entry_id"))
                     .values(posting_key=sa.bindparam("key")), keys)


def upgrade() -> None:
    _drop_triggers()
    _retype(sa.Integer(), sa.BigInteger())
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.add_column(sa.Column('posting_key', sa.String(length=200), nullable=True))
    _backfill_posting_keys()
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.alter_column('posting_key', existing_type=sa.String(length=200), nullable=False)
        batch_op.create_unique_constraint(batch_op.f('uq_ledger_entry_posting_key'), ['posting_key'])
    _create_triggers()


def downgrade() -> None:
    _drop_triggers()
    with op.batch_alter_table('ledger_entry', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_ledger_entry_posting_key'), type_='unique')
        batch_op.drop_column('posting_key')
    _retype(sa.BigInteger(), sa.Integer())
    _create_triggers()
