"""Shapes of attribution index and policy answers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class AttributionIndexRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID
    method: str
    version: str
    config: dict
    fingerprint: dict
    blob_sha256: str
    entry_count: int
    build_seconds: float
    training_job_id: uuid.UUID | None
    built_by: str
    created_at: datetime


class AttributionPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    influence_alpha_bps: int = Field(ge=0, le=10_000, strict=True,
                                     description="Share of each pool split by per-output influence, in basis points.")


class AttributionPolicyRead(BaseModel):
    model_id: uuid.UUID
    influence_alpha_bps: int
    index: AttributionIndexRead | None
    """The index generations use now; None when the model has no valid one (pro rata only)."""
