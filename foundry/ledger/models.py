"""The ledger's tables: immutable entries and the periods they count in.

Each ``LedgerEntry`` is one transfer: it debits one account and credits another by a positive
amount, so every posting balances by construction. Entries are append-only (database triggers
refuse UPDATE and DELETE); a correction is a new entry that reverses an old one. Every entry
carries a ``posting_key`` that names the business event it records (the charge of generation G,
the royalty of contributor C for asset A of generation G, the reversal of entry E, ...); the key
is unique, so posting the same event twice is impossible at the database. Account names are in
``foundry.ledger.accounts``; amounts are integer minor units (64-bit).

A ``PayoutPeriod`` is a UTC calendar month. Closing it freezes it (database triggers); entries
posted later count in the next open period.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, IdMixin, utcnow


class LedgerEntry(IdMixin, Base):
    __tablename__ = "ledger_entry"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account <> credit_account", name="distinct_accounts"),
        Index("ix_ledger_entry_contributor_period", "contributor_id", "period"),
    )

    transaction_id: Mapped[uuid.UUID] = mapped_column(Uuid, index=True)
    """Entries posted together (one generation's charge and royalties) share a transaction id."""
    posting_key: Mapped[str] = mapped_column(String(200), unique=True)
    """The idempotency key: which business event this entry records; one entry per event."""
    posted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    """The payout period (UTC calendar month, YYYY-MM) the entry counts in: the month it was posted,
    or the next open one when that month is already closed."""
    kind: Mapped[str] = mapped_column(String(16))
    """charge, royalty, reversal or payout (a training charge is a charge with a ``training_job_id``)."""
    method: Mapped[str | None] = mapped_column(String(32))
    """For royalties (and their reversals): the attribution method that decided the amount."""
    debit_account: Mapped[str] = mapped_column(String(80), index=True)
    credit_account: Mapped[str] = mapped_column(String(80), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    generation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generation.id"), index=True)
    training_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    """For a custom model's training charge (and its refund): the job (no foreign key, so adding the column
    left the append-only table untouched)."""
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model.id"))
    contributor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contributor.id"), index=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("asset.id"))
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_entry.id"), unique=True)
    memo: Mapped[str | None] = mapped_column(String(500))


class PayoutPeriod(Base):
    __tablename__ = "payout_period"

    period: Mapped[str] = mapped_column(String(7), primary_key=True)
    status: Mapped[str] = mapped_column(String(8), default="open")
    """open or closed."""
    closed_at: Mapped[datetime | None]
    closed_by: Mapped[str | None] = mapped_column(String(200))
    threshold: Mapped[int | None] = mapped_column(BigInteger)
    """Minimum payout (minor units, any currency) applied at close; below it the balance carries over."""
    contributors: Mapped[int | None] = mapped_column(Integer)
    total_payable: Mapped[dict | None]
    """Currency -> amount paid out by this period's batch."""
