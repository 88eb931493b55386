"""Shapes of quality answers."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict

from foundry.models_registry.schemas import ModelRead


class EvaluatorRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    split: str
    training_snapshot_id: uuid.UUID
    heldout_snapshot_id: uuid.UUID
    sha256: str
    config: dict
    groups: list[str]
    real_balanced_accuracy: float
    real_subgroup_balanced_accuracy: float
    created_at: datetime


class ModelQualityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    model_id: uuid.UUID
    evaluator_id: uuid.UUID
    evaluator_sha256: str
    metrics: dict
    relative: dict
    sampling: dict
    sheet_sha256: str | None
    created_at: datetime


class ModelWithQuality(ModelRead):
    """A model as ``GET /v1/models/{id}`` shows it: the registry record and its newest measurement."""

    quality: ModelQualityRead | None = None
