"""Shapes of training job requests and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from recipes import RecipeKind

JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
"""A training job's state (``foundry.training_jobs.models.STATUSES``)."""


class TrainingJobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200, description="Name of the model the job registers.")
    recipe: RecipeKind
    preset: str | None = Field(default=None, description="A named base-recipe preset (demo, quality, gpu, ...) "
                                                         "whose settings ``settings`` then adjust.")
    snapshot_id: uuid.UUID
    base_model_id: uuid.UUID | None = None
    tenant_id: uuid.UUID | None = Field(
        default=None, description="Train a private fine-tune owned by this tenant (finetune or lora on a "
                                  "customer_finetune snapshot); only that tenant sees and generates with it.")
    settings: dict[str, Any] = Field(default={}, description="Recipe fields to override, e.g. max_train_steps.")


class TrainingJobRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    recipe_kind: str
    recipe: dict
    snapshot_id: uuid.UUID
    base_model_id: uuid.UUID | None
    owner_tenant_id: uuid.UUID | None
    status: str
    stage: str
    """training, then attribution_index once the model is registered."""
    stage_progress: dict
    step: int
    total_steps: int
    loss: float | None
    images_per_s: float | None
    eta_s: float | None
    log_tail: str
    artifacts: list[dict]
    error_code: str | None
    error: str | None
    details: dict
    result_model_id: uuid.UUID | None
    attempts: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    cancel_requested_at: datetime | None
    queue_position: int | None = Field(default=None, description=(
        "While queued: 1 for the next job a worker starts, by the fair rotation across tenants."))
