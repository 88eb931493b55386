"""Payout periods and the frozen batches their close produces.

A period is a UTC calendar month. Closing it writes one ``PayoutLine`` per contributor and
currency -- carried in, earned, payable now, carried out -- and from then on the period and its
lines are immutable (database triggers); entries posted later count in the next open period.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, IdMixin


class PayoutPeriod(Base):
    __tablename__ = "payout_period"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    status: Mapped[str] = mapped_column(String(8), default="open")
    """open or closed."""
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    threshold: Mapped[int | None] = mapped_column(Integer)
    """Minimum payout (minor units, any currency) applied at close; below it the balance carries over."""
    contributors: Mapped[int | None] = mapped_column(Integer)
    total_payable: Mapped[dict | None]
    """Currency -> amount paid out by this period's batch."""


class PayoutLine(IdMixin, Base):
    __tablename__ = "payout_line"
    __table_args__ = (UniqueConstraint("period", "contributor_id", "currency"),)

    period: Mapped[str] = mapped_column(ForeignKey("payout_period.period"), index=True)
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"), index=True)
    currency: Mapped[str] = mapped_column(String(3))
    carried_in: Mapped[int] = mapped_column(Integer)
    earned: Mapped[int] = mapped_column(Integer)
    payable: Mapped[int] = mapped_column(Integer)
    carried_out: Mapped[int] = mapped_column(Integer)
