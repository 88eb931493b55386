"""The ledger and per-generation attribution.

Each ``LedgerEntry`` is one transfer: it debits one account and credits another by a positive
amount, so every posting balances by construction. Entries are append-only (database triggers
refuse UPDATE and DELETE); a correction is a new entry that reverses an old one.

Accounts are named strings:
* ``customer:<tenant id>``      -- what a brand customer owes (debited by charges);
* ``platform:revenue``          -- the foundry's revenue (credited by charges, debited by royalties);
* ``contributor:<id>``          -- what the foundry owes a contributor (credited by royalties).
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Uuid
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
    posted_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    period: Mapped[str] = mapped_column(String(7), index=True)
    """The payout period (UTC calendar month, YYYY-MM) the entry counts in: the month it was posted,
    or the next open one when that month is already closed."""
    kind: Mapped[str] = mapped_column(String(16))
    """charge, royalty or reversal."""
    method: Mapped[str | None] = mapped_column(String(32))
    """For royalties (and their reversals): the attribution method that decided the amount."""
    debit_account: Mapped[str] = mapped_column(String(80), index=True)
    credit_account: Mapped[str] = mapped_column(String(80), index=True)
    amount: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    generation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generation.id"), index=True)
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model.id"))
    contributor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contributor.id"), index=True)
    asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("asset.id"))
    reverses_entry_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ledger_entry.id"), unique=True)
    memo: Mapped[str | None] = mapped_column(String(500))


class AttributionLine(IdMixin, Base):
    """One contributor's part of one generation's pool, and why (method, layer, weight)."""

    __tablename__ = "attribution_line"

    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generation.id"), index=True)
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"), index=True)
    method: Mapped[str] = mapped_column(String(32))
    """pro_rata (per-output influence methods plug in here)."""
    weight: Mapped[str] = mapped_column(String(200))
    """The exact share of the pool as a fraction "n/d", so a statement can be recomputed."""
    share_ppm: Mapped[int] = mapped_column(Integer)
    amount: Mapped[int] = mapped_column(Integer)
    asset_count: Mapped[int] = mapped_column(Integer)
    """How many of the contributor's assets are in the model's training snapshots."""
    top_assets: Mapped[list] = mapped_column(default=list)
    """Per-asset detail when the method scores assets ({asset_id, share_ppm}); empty for pro rata."""
