"""Training job rows: what to train, from what, and how far it has got."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin

QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED = "queued", "running", "succeeded", "failed", "cancelled"
TERMINAL = frozenset({SUCCEEDED, FAILED, CANCELLED})
STATUSES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED)


class TrainingJob(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "training_job"
    __table_args__ = (Index("uq_training_job_idempotency", "owner_tenant_id", "idempotency_key", unique=True),)

    name: Mapped[str] = mapped_column(String(200))
    recipe_kind: Mapped[str] = mapped_column(String(16))
    recipe: Mapped[dict] = mapped_column(default=dict)
    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset_snapshot.id"), index=True)
    base_model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model.id"))
    owner_tenant_id: Mapped[uuid.UUID | None]
    requested_by: Mapped[str] = mapped_column(String(200))
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    """A tenant's Idempotency-Key for the request that created it (a custom model): a retry returns this job."""

    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    stage: Mapped[str] = mapped_column(String(24), default="training", server_default="training")
    """training, then attribution_index (features of every training image) once the model is registered."""
    stage_progress: Mapped[dict] = mapped_column(default=dict, server_default=text("'{}'"))
    """{"done": n, "total": m} for the current non-training stage."""
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int] = mapped_column(Integer, default=0)
    loss: Mapped[float | None] = mapped_column(Float)
    images_per_s: Mapped[float | None] = mapped_column(Float)
    eta_s: Mapped[float | None] = mapped_column(Float)
    log_tail: Mapped[str] = mapped_column(Text, default="")
    artifacts: Mapped[list] = mapped_column(default=list)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict] = mapped_column(default=dict)
    result_model_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model.id"))

    attempts: Mapped[int] = mapped_column(Integer, default=0)
    worker: Mapped[str | None] = mapped_column(String(200))
    started_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    cancel_requested_at: Mapped[datetime | None]
