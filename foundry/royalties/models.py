"""Per-generation attribution: who gets which part of a generation's pool, and why.

The ledger entries that pay it are in ``foundry.ledger``; attribution lines are append-only too.
"""

from __future__ import annotations

import uuid

from sqlalchemy import BigInteger, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, IdMixin


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
    amount: Mapped[int] = mapped_column(BigInteger)
    asset_count: Mapped[int] = mapped_column(Integer)
    """How many of the contributor's assets are in the model's training snapshots."""
    top_assets: Mapped[list] = mapped_column(default=list)
    """Per-asset detail when the method scores assets ({asset_id, share_ppm}); empty for pro rata."""
