"""Price rules. A rule is never edited: setting a new price retires the old rule, so every
generation can name the exact rule it was charged under."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class PriceRule(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "price_rule"
    __table_args__ = (
        CheckConstraint("unit_price >= 0", name="unit_price_non_negative"),
        CheckConstraint("pool_share_bps BETWEEN 0 AND 10000", name="pool_share_range"),
        CheckConstraint("finetune_share_bps BETWEEN 0 AND 10000", name="finetune_share_range"),
    )

    model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model.id"), index=True)
    """None: the rule applies to every model without a more specific rule."""
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    """None: the rule applies to every tenant without a more specific rule."""
    unit_price: Mapped[int] = mapped_column(BigInteger)
    """Price of one image in minor units of ``currency``."""
    currency: Mapped[str] = mapped_column(String(3))
    pool_share_bps: Mapped[int] = mapped_column(Integer)
    """Share of each charge that goes to the contributor pool, in basis points."""
    finetune_share_bps: Mapped[int] = mapped_column(Integer, default=5000)
    training_step_price: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    """Price of one training step of a tenant's custom model on this base, in minor units of ``currency``."""
    """For layered models: the fine-tune snapshot's licensors' part of the pool, in basis points."""
    created_by: Mapped[str] = mapped_column(String(200))
    retired_at: Mapped[datetime | None]
