"""Shapes of registry answers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict


class ModelRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    kind: str
    model_format: str
    parent_id: uuid.UUID | None
    snapshot_id: uuid.UUID | None
    snapshot_merkle_root: str | None
    recipe: dict
    code_version: str
    weights_sha256: str
    text_encoder_origin: dict
    licensed_only: bool
    lineage_note: str | None
    owner_tenant_id: uuid.UUID | None
    training_job_id: uuid.UUID | None
    metrics: dict
    created_at: datetime


class LineageStep(BaseModel):
    model_id: uuid.UUID
    name: str
    kind: str
    snapshot_id: uuid.UUID | None
    snapshot_merkle_root: str | None
    weights_sha256: str
    licensed_only: bool
