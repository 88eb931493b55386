"""Registered models. A row records exactly which data and code made the weights it names."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class RegisteredModel(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "model"

    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    """base, finetune, lora (trained here) or external (registered from a folder)."""
    model_format: Mapped[str] = mapped_column(String(32))
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model.id"), index=True)
    snapshot_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("dataset_snapshot.id"), index=True)
    snapshot_merkle_root: Mapped[str | None] = mapped_column(String(64))
    recipe: Mapped[dict] = mapped_column(default=dict)
    code_version: Mapped[str] = mapped_column(String(100))
    weights_sha256: Mapped[str] = mapped_column(String(64))
    files: Mapped[dict] = mapped_column(default=dict)
    """Relative path -> sha256 of every file of the model folder, each stored as a blob."""
    text_encoder_origin: Mapped[dict] = mapped_column(default=dict)
    licensed_only: Mapped[bool] = mapped_column(Boolean)
    lineage_note: Mapped[str | None] = mapped_column(Text)
    owner_tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    training_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    metrics: Mapped[dict] = mapped_column(default=dict)
    source_path: Mapped[str | None] = mapped_column(String(2000))
    revocation_policy: Mapped[str] = mapped_column(String(24), default="keep_serving", server_default="keep_serving")
    """What happens when rights to training images are withdrawn: keep_serving (and keep paying
    their contributors), or stop_after_grace (stop serving ``grace_days`` after the first withdrawal)."""
    grace_days: Mapped[int] = mapped_column(default=30, server_default="30")
    rights_affected_at: Mapped[datetime | None]
    """When a withdrawal first touched this model's training data; None while untouched."""
    influence_alpha_bps: Mapped[int] = mapped_column(default=5000, server_default="5000")
    retired_at: Mapped[datetime | None]
    """Its owner deleted it: it no longer serves; its weights and records stay for the audit period."""
    """Share of each generation's pool split by per-output influence (the rest pro rata), in basis points."""
