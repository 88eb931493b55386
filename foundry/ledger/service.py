"""Posting to the ledger and reading balances back.

The edge owns the transaction: these functions only ``flush``. A posting is idempotent: every
entry's ``posting_key`` is unique in the database, so a second posting of the same event (a
retried task, a concurrent worker) writes nothing and reports that it was already posted.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundry.db import utcnow
from foundry.ledger.models import LedgerEntry
from foundry.ledger.periods import posting_period


def charge_key(generation_id: uuid.UUID) -> str:
    return f"generation:{generation_id}:charge"


def royalty_key(generation_id: uuid.UUID, method: str, contributor_id: uuid.UUID, asset_id: uuid.UUID | None) -> str:
    return f"generation:{generation_id}:royalty:{method}:{contributor_id}:{asset_id or 'pool'}"


def training_charge_key(job_id: uuid.UUID) -> str:
    return f"training:{job_id}:charge"


def reversal_key(entry_id: uuid.UUID) -> str:
    return f"reversal:{entry_id}"


def payout_key(period: str, contributor_id: uuid.UUID, currency: str) -> str:
    return f"payout:{period}:{contributor_id}:{currency}"


def _is_duplicate_posting(error: IntegrityError) -> bool:
    """The event was posted already: its posting key, or (for a reversal) its original's reversal, exists."""
    return "posting_key" in str(error.orig) or "reverses_entry_id" in str(error.orig)


def post(*, session: Session, entries: list[LedgerEntry], with_rows: Iterable = ()) -> bool:
    """Write ``entries`` (and ``with_rows``, rows that explain them) as one unit, or nothing at all.

    False when an entry's event was already posted: the database's unique posting key refused it,
    and nothing of this posting was written (the caller's transaction goes on)."""
    try:
        with session.begin_nested():
            session.add_all([*with_rows, *entries])
            session.flush()
    except IntegrityError as error:
        if not _is_duplicate_posting(error):
            raise
        return False
    return True


def reverse(*, session: Session, originals: list[LedgerEntry], reason: str) -> list[LedgerEntry]:
    """Reverse each of ``originals`` not reversed yet (a refund): a mirror entry in one new transaction."""
    if not originals:
        return []
    reversed_ids = set(session.scalars(select(LedgerEntry.reverses_entry_id).where(
        LedgerEntry.reverses_entry_id.in_([entry.id for entry in originals]))))
    transaction_id = uuid.uuid4()
    posted_at = utcnow()
    period = posting_period(session=session, at=posted_at)
    reversals = [
        LedgerEntry(transaction_id=transaction_id, posting_key=reversal_key(entry.id), posted_at=posted_at,
                    period=period, kind="reversal", method=entry.method,
                    debit_account=entry.credit_account, credit_account=entry.debit_account, amount=entry.amount,
                    currency=entry.currency, generation_id=entry.generation_id, tenant_id=entry.tenant_id,
                    model_id=entry.model_id, contributor_id=entry.contributor_id, asset_id=entry.asset_id,
                    reverses_entry_id=entry.id, memo=f"reversal: {reason}"[:500])
        for entry in originals if entry.id not in reversed_ids
    ]
    if reversals and not post(session=session, entries=reversals):
        return []  # reversed concurrently
    return reversals


def account_balance(*, session: Session, account: str, currency: str) -> int:
    """Credits minus debits of ``account`` in ``currency``."""
    credits = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.credit_account == account, LedgerEntry.currency == currency))
    debits = session.scalar(select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
        LedgerEntry.debit_account == account, LedgerEntry.currency == currency))
    return int(credits) - int(debits)


def trial_balance(*, session: Session) -> dict[str, dict[str, int]]:
    """Every account's balance per currency; they sum to zero in each currency."""
    balances: dict[str, dict[str, int]] = {}
    for account, currency, amount in session.execute(
            select(LedgerEntry.credit_account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.credit_account, LedgerEntry.currency)):
        balances.setdefault(currency, {})[account] = balances.get(currency, {}).get(account, 0) + int(amount)
    for account, currency, amount in session.execute(
            select(LedgerEntry.debit_account, LedgerEntry.currency, func.sum(LedgerEntry.amount))
            .group_by(LedgerEntry.debit_account, LedgerEntry.currency)):
        balances.setdefault(currency, {})[account] = balances.get(currency, {}).get(account, 0) - int(amount)
    return balances


def entries_for(*, session: Session, generation_id: uuid.UUID | None = None, tenant_id: uuid.UUID | None = None,
                contributor_id: uuid.UUID | None = None, limit: int = 100, offset: int = 0) -> list[LedgerEntry]:
    query = select(LedgerEntry)
    if generation_id is not None:
        query = query.where(LedgerEntry.generation_id == generation_id)
    if tenant_id is not None:
        query = query.where(LedgerEntry.tenant_id == tenant_id)
    if contributor_id is not None:
        query = query.where(LedgerEntry.contributor_id == contributor_id)
    return list(session.scalars(query.order_by(LedgerEntry.posted_at, LedgerEntry.id).limit(limit).offset(offset)))
