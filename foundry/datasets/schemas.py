"""Shapes of snapshot requests and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class SnapshotFilters(BaseModel):
    """Which licensed assets a snapshot may draw from; empty lists mean no restriction."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    contributor_ids: list[uuid.UUID] = []
    import_ids: list[uuid.UUID] = []
    asset_ids: list[uuid.UUID] = Field(default=[], max_length=100_000, description="Keep only these assets.")
    tags: list[str] = Field(default=[], description="Keep assets carrying any of these tags.")
    caption_contains: str | None = Field(default=None, max_length=200)
    limit: int | None = Field(default=None, ge=1, le=2**31 - 1, strict=True,
                              description="Keep only the first N entries in canonical order.")
    tenant_id: uuid.UUID | None = Field(
        default=None, description="A customer fine-tune snapshot for this tenant: may include its own brand assets.")
    brand_assets_only: bool = Field(default=False, description="With tenant_id: only the tenant's brand assets.")
    heldout: Literal["exclude", "only"] | None = Field(
        default=None,
        description="The catalog's fixed held-out split (quality-v1: 10 % of each group, near-duplicates and "
                    "skin-tone variants kept together): 'exclude' leaves it out so models trained on the snapshot "
                    "can be measured on it; 'only' takes just the split (an evaluation snapshot).")


class SnapshotCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    use: Literal["base_training", "customer_finetune"]
    filters: SnapshotFilters = SnapshotFilters()
    description: str | None = Field(default=None, max_length=2000)


class SnapshotRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    use: str
    filters: dict
    merkle_root: str
    entry_count: int
    contributor_count: int
    created_by: str
    created_at: datetime
    description: str | None
    owner_tenant_id: uuid.UUID | None


class GateViolation(BaseModel):
    asset_id: uuid.UUID
    reason: str
