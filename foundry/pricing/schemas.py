from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PriceRuleCreate(BaseModel):
    """A price; numbers are strict integers (``true`` or ``"5"`` is refused, not read as 1 or 5)."""

    model_config = ConfigDict(strict=True)

    model_id: uuid.UUID | None = Field(default=None, strict=False)
    tenant_id: uuid.UUID | None = Field(default=None, strict=False)
    unit_price: int = Field(ge=0, le=10**9, description="Price of one image in minor units.")
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    pool_share_bps: int = Field(ge=0, le=10_000, description="Contributor pool share of each charge (basis points).")
    finetune_share_bps: int = Field(default=5000, ge=0, le=10_000,
                                    description="Layered models: the fine-tune licensors' part of the pool.")
    training_step_price: int = Field(default=0, ge=0, le=10**9, description=(
        "Price of one training step of a custom model built on this model, in minor units."))


class PriceRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    unit_price: int
    currency: str
    pool_share_bps: int
    finetune_share_bps: int
    training_step_price: int
    created_at: datetime
    created_by: str
    retired_at: datetime | None
