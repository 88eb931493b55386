"""Shapes of snapshot requests and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

HeldoutChoice = Literal["exclude", "only"]


class CatalogMix(BaseModel):
    """Shared catalog images mixed into a customer's brand snapshot, so its fine-tune keeps rehearsing
    what the base learnt (prior preservation) and the catalog's licensors are paid in its layer."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tags: list[str] = Field(default=[], max_length=100, description="Keep catalog assets carrying any of these tags.")
    caption_contains: str | None = Field(default=None, max_length=200)
    contributor_ids: list[uuid.UUID] = Field(default=[], max_length=1000)
    heldout: Literal["exclude"] | None = Field(
        default=None, description="'exclude' leaves out the catalog's held-out split (to measure the model on it).")
    limit: int = Field(default=400, ge=1, le=100_000, strict=True,
                       description="At most this many catalog images, the first in canonical order.")


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
    catalog: CatalogMix | None = Field(
        default=None, description="With tenant_id and brand_assets_only: also take these shared catalog images.")
    heldout: HeldoutChoice | None = Field(
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
