"""Quality evaluators and measurements. Both are append-only records: a new evaluator or a new
measurement is a new row, so every reported number names the exact evaluator that produced it."""

from __future__ import annotations

import uuid

from sqlalchemy import Float, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class QualityEvaluator(IdMixin, CreatedAtMixin, Base):
    """A small classifier of OpenMoji groups, trained once per catalog split on licensed renditions.

    It is an auxiliary that only *measures*: it never trains or selects a generator. Its own
    training data is a licensed snapshot that excludes the held-out split; it is judged on a
    snapshot of the held-out split only (its ``real_balanced_accuracy`` is the ceiling a
    generator is compared with).
    """

    __tablename__ = "quality_evaluator"

    split: Mapped[str] = mapped_column(String(64), index=True)
    training_snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset_snapshot.id"))
    heldout_snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset_snapshot.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    """Digest of the evaluator's files (weights and labels), quoted in every report."""
    files: Mapped[dict] = mapped_column(default=dict)
    """Relative path -> blob sha256 of every file of the evaluator folder."""
    config: Mapped[dict] = mapped_column(default=dict)
    groups: Mapped[list] = mapped_column(default=list)
    subgroups: Mapped[list] = mapped_column(default=list)
    real_balanced_accuracy: Mapped[float] = mapped_column(Float)
    real_subgroup_balanced_accuracy: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(200))


class ModelQuality(IdMixin, CreatedAtMixin, Base):
    """One measurement of one model by one evaluator; the newest is the model's current figure."""

    __tablename__ = "model_quality"

    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    evaluator_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("quality_evaluator.id"))
    metrics: Mapped[dict] = mapped_column(default=dict)
    sampling: Mapped[dict] = mapped_column(default=dict)
    sheet_sha256: Mapped[str | None] = mapped_column(String(64))
    """The contact sheet PNG (held-out prompts x seeds, native and delivered size), as a blob."""
    measured_by: Mapped[str] = mapped_column(String(200))
