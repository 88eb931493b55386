"""Which payout period a ledger entry counts in.

Posting takes a shared lock on its period's row and closing takes an exclusive one, so an entry
is either in the period before its close is computed or in the next open period -- never in a
closed period after the fact.
"""

from __future__ import annotations

import re
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundry.errors import InvalidInput
from foundry.ledger.models import PayoutPeriod

_PERIOD = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def period_of(moment: datetime) -> str:
    return f"{moment.year:04d}-{moment.month:02d}"


def parse_period(text: str) -> tuple[int, int]:
    match = _PERIOD.match(text or "")
    if not match:
        raise InvalidInput(f"{text!r} is not a period; use YYYY-MM (a UTC calendar month)", code="invalid_period")
    return int(match.group(1)), int(match.group(2))


def next_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year + month // 12:04d}-{month % 12 + 1:02d}"


def previous_period(period: str) -> str:
    year, month = parse_period(period)
    return f"{year - (month == 1):04d}-{(month - 2) % 12 + 1:02d}"


def posting_period(*, session: Session, at: datetime) -> str:
    """The open period an entry posted at ``at`` counts in (its month, or the next open one)."""
    period = period_of(at)
    for _ in range(1200):
        ensure_period(session, period)
        row = session.scalars(select(PayoutPeriod).where(PayoutPeriod.period == period)
                              .with_for_update(read=True).execution_options(populate_existing=True)).one()
        if row.status == "open":
            return period
        period = next_period(period)
    raise RuntimeError("no open payout period within a century")


def ensure_period(session: Session, period: str) -> None:
    """The period's row exists afterwards (created open when missing, whoever wins a race)."""
    if session.get(PayoutPeriod, period) is not None:
        return
    try:
        with session.begin_nested():
            session.add(PayoutPeriod(period=period, status="open"))
    except IntegrityError:
        pass  # created concurrently
