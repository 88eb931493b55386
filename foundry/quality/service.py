"""Recording evaluators and measurements. Computing them needs torch and lives in ``training.quality``;
this layer only keeps what was computed, checked and append-only."""

from __future__ import annotations

import uuid

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
from foundry.db import flushed, get_or_raise
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.quality.models import ModelQuality, QualityEvaluator
from foundry.quality.policy import missing_metrics, relative_figures
from foundry.quality.schemas import ModelQualityRead


def register_evaluator(*, session: Session, split: str, training_snapshot_id: uuid.UUID,
                       heldout_snapshot_id: uuid.UUID, sha256: str, files: dict[str, str], config: dict,
                       groups: list[str], subgroups: list[str], real_balanced_accuracy: float,
                       real_subgroup_balanced_accuracy: float, created_by: str) -> QualityEvaluator:
    training = get_or_raise(session, DatasetSnapshot, training_snapshot_id, code="snapshot_not_found",
                            what="snapshot")
    heldout = get_or_raise(session, DatasetSnapshot, heldout_snapshot_id, code="snapshot_not_found",
                           what="snapshot")
    if (training.filters or {}).get("heldout") != "exclude" or (heldout.filters or {}).get("heldout") != "only":
        raise InvalidInput("an evaluator learns from a snapshot that excludes the held-out split and is judged "
                           "on one that takes only it", code="evaluator_snapshots_invalid")
    if len(groups) < 2:
        raise InvalidInput("an evaluator needs at least two groups to tell apart", code="evaluator_invalid")
    evaluator = QualityEvaluator(
        split=split, training_snapshot_id=training.id, heldout_snapshot_id=heldout.id, sha256=sha256,
        files=files, config=config, groups=list(groups), subgroups=list(subgroups),
        real_balanced_accuracy=real_balanced_accuracy,
        real_subgroup_balanced_accuracy=real_subgroup_balanced_accuracy, created_by=created_by)
    return flushed(session, evaluator)


def current_evaluator(*, session: Session, split: str) -> QualityEvaluator | None:
    """The newest evaluator of the split, or None when none was trained yet."""
    return session.scalars(select(QualityEvaluator).where(QualityEvaluator.split == split)
                           .order_by(QualityEvaluator.created_at.desc(), QualityEvaluator.id).limit(1)).first()


def get_evaluator(*, session: Session, evaluator_id: uuid.UUID) -> QualityEvaluator:
    return get_or_raise(session, QualityEvaluator, evaluator_id, code="evaluator_not_found", what="evaluator")


def require_unseen_heldout(*, session: Session, model_id: uuid.UUID, heldout_snapshot_id: uuid.UUID) -> None:
    """Refuse to measure a model on held-out captions whose images any stage of it trained on:
    the scores would measure memory, not prompt-following."""
    stages = registry_service.lineage(session=session, model_id=model_id)
    seen = select(SnapshotEntry.asset_id).where(
        SnapshotEntry.snapshot_id.in_([m.snapshot_id for m in stages if m.snapshot_id is not None]))
    overlap = session.scalar(select(func.count()).select_from(SnapshotEntry).where(
        SnapshotEntry.snapshot_id == heldout_snapshot_id, SnapshotEntry.asset_id.in_(seen)))
    if overlap:
        raise Conflict(f"model {model_id} was trained on {overlap} of the held-out images it would be measured "
                       "on; train it on a snapshot with heldout='exclude'", code="heldout_contaminated")


def record_measurement(*, session: Session, model_id: uuid.UUID, evaluator_id: uuid.UUID, metrics: dict,
                       sampling: dict, sheet_sha256: str | None, measured_by: str) -> ModelQuality:
    get_or_raise(session, RegisteredModel, model_id, code="model_not_found", what="model")
    evaluator = get_evaluator(session=session, evaluator_id=evaluator_id)
    require_unseen_heldout(session=session, model_id=model_id, heldout_snapshot_id=evaluator.heldout_snapshot_id)
    missing = missing_metrics(metrics)
    if missing:
        raise InvalidInput(f"a quality measurement lacks {', '.join(missing)}", code="quality_metrics_incomplete")
    measurement = ModelQuality(model_id=model_id, evaluator_id=evaluator_id, metrics=metrics, sampling=sampling,
                               sheet_sha256=sheet_sha256, measured_by=measured_by)
    return flushed(session, measurement)


def latest_measurement(*, session: Session, model_id: uuid.UUID) -> ModelQualityRead | None:
    """The model's newest measurement with its evaluator's digest, or None when never measured."""
    row = session.execute(
        select(ModelQuality, QualityEvaluator.sha256).join(QualityEvaluator)
        .where(ModelQuality.model_id == model_id)
        .order_by(ModelQuality.created_at.desc(), ModelQuality.id).limit(1)).first()
    if row is None:
        return None
    measurement, evaluator_sha256 = row
    return ModelQualityRead(
        id=measurement.id, model_id=measurement.model_id, evaluator_id=measurement.evaluator_id,
        evaluator_sha256=evaluator_sha256, metrics=measurement.metrics,
        relative=relative_figures(measurement.metrics), sampling=measurement.sampling,
        sheet_sha256=measurement.sheet_sha256, created_at=measurement.created_at)


def require_measurement(*, session: Session, model_id: uuid.UUID) -> ModelQualityRead:
    measurement = latest_measurement(session=session, model_id=model_id)
    if measurement is None:
        raise NotFound(f"model {model_id} has not been measured", code="model_quality_not_found")
    return measurement
