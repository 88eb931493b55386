"""The ledger on its own: 64-bit amounts, one entry per posted event, and the migration that brought both."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from foundry import migrate
from foundry.db import sql_engine, utcnow
from foundry.ledger import service as ledger_service
from foundry.ledger.accounts import PLATFORM_PAYOUTS, PLATFORM_REVENUE, contributor_account, customer_account
from foundry.ledger.models import LedgerEntry
from foundry.ledger.periods import period_of

BIG = 5_000_000_000_123  # far above 2**31 - 1


def entry(key: str, amount: int, currency: str = "IDR", **extra) -> LedgerEntry:
    return LedgerEntry(transaction_id=uuid.uuid4(), posting_key=key, period=period_of(utcnow()), kind="charge",
                       debit_account=customer_account(uuid.UUID(int=1)), credit_account=PLATFORM_REVENUE,
                       amount=amount, currency=currency, **extra)


def test_amounts_above_32_bits_post_and_balance(sessions):
    with sessions() as session, session.begin():
        assert ledger_service.post(session=session, entries=[entry("big:1", BIG), entry("big:2", 2**31, "USD")])
    with sessions() as session:
        assert ledger_service.account_balance(session=session, account=PLATFORM_REVENUE, currency="IDR") == BIG
        assert ledger_service.trial_balance(session=session) == {
            "IDR": {PLATFORM_REVENUE: BIG, customer_account(uuid.UUID(int=1)): -BIG},
            "USD": {PLATFORM_REVENUE: 2**31, customer_account(uuid.UUID(int=1)): -(2**31)}}


def test_the_database_refuses_a_second_posting_of_one_event(sessions):
    with sessions() as session, session.begin():
        assert ledger_service.post(session=session, entries=[entry("event:1", 10)])
    with sessions() as session, session.begin():
        # idempotent: the same event again writes nothing, and the caller's transaction goes on
        assert ledger_service.post(session=session, entries=[entry("event:2", 5), entry("event:1", 10)]) is False
        assert ledger_service.post(session=session, entries=[entry("event:3", 7)])
    with sessions() as session:
        assert sorted(session.scalars(sa.select(LedgerEntry.posting_key))) == ["event:1", "event:3"]
    with pytest.raises(IntegrityError), sessions() as session, session.begin():
        session.add(entry("event:1", 10))  # even bypassing the service


def test_migration_0012_keys_existing_entries_and_goes_both_ways(settings):
    url = settings.resolved_database_url
    migrate.upgrade(url, "0011")
    contributor = uuid.uuid4()
    entries = sa.table("ledger_entry", *(sa.column(name, sa.Uuid()) for name in (
        "id", "transaction_id", "contributor_id", "reverses_entry_id")),
        *(sa.column(name, sa.String()) for name in ("period", "kind", "debit_account", "credit_account",
                                                    "currency", "memo")),
        sa.column("amount", sa.Integer()), sa.column("posted_at", sa.DateTime(timezone=True)))
    payout, legacy = uuid.uuid4(), uuid.uuid4()
    with sql_engine(url).begin() as connection:
        connection.execute(sa.table("contributor", sa.column("id", sa.Uuid()), sa.column("display_name", sa.String()),
                                    sa.column("external_ref", sa.String()),
                                    sa.column("created_at", sa.DateTime(timezone=True))).insert(),
                           {"id": contributor, "display_name": "Ada", "external_ref": "ada",
                            "created_at": datetime(2026, 10, 3, tzinfo=UTC)})
        common = {"transaction_id": uuid.uuid4(), "period": "2026-11", "currency": "USD", "amount": 700,
                  "posted_at": datetime(2026, 11, 2, tzinfo=UTC), "contributor_id": contributor}
        connection.execute(entries.insert(), [
            {**common, "id": payout, "kind": "payout", "memo": "payout for 2026-10",
             "debit_account": contributor_account(contributor), "credit_account": PLATFORM_PAYOUTS},
            {**common, "id": legacy, "kind": "adjustment", "memo": None,
             "debit_account": PLATFORM_REVENUE, "credit_account": contributor_account(contributor)}])

    migrate.upgrade(url)
    with sql_engine(url).connect() as connection:
        keys = dict(connection.execute(sa.select(entries.c.id, sa.column("posting_key")).select_from(entries)).all())
        assert keys == {payout: f"payout:2026-10:{contributor}:USD", legacy: f"legacy:{legacy}"}
        if connection.dialect.name == "sqlite":
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
    with pytest.raises(Exception, match="(?i)append-only|immutable"), sql_engine(url).begin() as connection:
        connection.execute(sa.text("UPDATE ledger_entry SET amount = 1"))  # the triggers came back

    migrate.downgrade(url, "0011")
    with sql_engine(url).connect() as connection:
        assert sorted(connection.execute(sa.select(entries.c.amount)).scalars()) == [700, 700]
        assert "posting_key" not in {c["name"] for c in sa.inspect(connection).get_columns("ledger_entry")}
    migrate.upgrade(url)
