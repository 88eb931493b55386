"""Quality work that needs torch: training the split's frozen evaluator, measuring a model.

Both read licensed renditions from snapshots (never from outside the catalog), run outside any
transaction, and write one record at the end. The evaluator learns from a snapshot that excludes
the held-out split and is judged on one that takes only it; a model is measured on the held-out
captions of its evaluator's split, so no measured model has seen the images it is compared with.
"""

from __future__ import annotations

import io
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

from foundry.blobs import BlobStore
from foundry.datasets import service as dataset_service
from foundry.datasets.policy import HELDOUT_SPLIT
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import Conflict, InvalidInput
from foundry.models_registry import service as registry_service
from foundry.quality import service as quality_service
from foundry.quality.models import ModelQuality, QualityEvaluator
from training.quality import (
    FROZEN_EVALUATORS,
    Evaluator,
    EvaluatorConfig,
    LabelledImages,
    SamplingSettings,
    balanced_accuracy,
    evaluator_sha256,
    frozen_evaluator,
    group_ids,
    labelled_renditions,
    measure_pipeline,
    reference_sample,
    round_floats,
    split_content_sha256,
    train_evaluator,
)
from worker.attribution import load_attribution_pipeline

Progress = Callable[[int, int], None]
EVALUATED_RESOLUTION = 32


def snapshot_renditions(*, session, blob_store: BlobStore, snapshot_id: uuid.UUID) -> LabelledImages:
    """A snapshot's renditions labelled by the group and subgroup tags its entries were taken with."""
    entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot_id)
    records = ((dataset_service.load_rendition(blob_store=blob_store, entry=e), e.caption, tuple(e.tags or ()))
               for e in entries)
    return labelled_renditions(records, resolution=EVALUATED_RESOLUTION)


def snapshot_content_sha256(*, session, snapshot_id: uuid.UUID) -> str:
    """What a snapshot holds, by content (``training.quality.split_content_sha256``): the same on every machine
    that onboards the same catalog, where its Merkle root is not."""
    entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot_id)
    return split_content_sha256((entry.asset_sha256, entry.caption, tuple(entry.tags or ())) for entry in entries)


def train_split_evaluator(*, sessions, blob_store: BlobStore, created_by: str,
                          config: EvaluatorConfig | None = None, split: str = HELDOUT_SPLIT,
                          progress: Progress | None = None, frozen: Path | None = FROZEN_EVALUATORS) -> QualityEvaluator:
    """Freeze the two snapshots of the split, train the evaluator on one, judge it on the other, record it.

    Where ``frozen`` holds the committed evaluator of the same training content and config (the one every
    benchmark measures with), it is taken instead of training another: trained on another CPU the same
    recipe comes out as other weights, and the figures it gives would move by a few hundredths."""
    config = config or EvaluatorConfig()
    with sessions() as session, session.begin():
        snapshot_ids = {}
        for role, heldout in (("training", "exclude"), ("heldout", "only")):
            snapshot = dataset_service.create_snapshot(
                session=session, name=f"{split} evaluator {role}", use="base_training", created_by=created_by,
                filters=SnapshotFilters(heldout=heldout),
                description=f"real renditions for the {split} quality evaluator ({role})")
            dataset_service.enforce_license_gate(session=session, snapshot_id=snapshot.id)
            snapshot_ids[role] = snapshot.id
    with sessions() as session:
        training = snapshot_renditions(session=session, blob_store=blob_store, snapshot_id=snapshot_ids["training"])
        heldout = snapshot_renditions(session=session, blob_store=blob_store, snapshot_id=snapshot_ids["heldout"])
        content = snapshot_content_sha256(session=session, snapshot_id=snapshot_ids["training"])
    if len(set(training.groups)) < 2 or not len(heldout):
        raise InvalidInput("the catalog has too few group-tagged renditions to train a quality evaluator",
                           code="evaluator_invalid")
    committed = frozen_evaluator(content, config, frozen) if frozen is not None else None
    if committed is not None:
        evaluator = Evaluator.load(committed)
        if progress is not None:
            progress(1, 1)  # nothing left to train
    else:
        evaluator = train_evaluator(training.images, training.groups, training.subgroups, config, progress=progress)
    predicted = evaluator.predict(heldout.images)
    truth, sub_truth = group_ids(evaluator, heldout.groups), group_ids(evaluator, heldout.subgroups, "subgroup")
    with tempfile.TemporaryDirectory() as scratch:
        folder = committed or Path(scratch)
        digest = evaluator_sha256(folder) if committed else evaluator.save(folder)
        files = registry_service.store_folder(blob_store=blob_store, folder=folder)
    with sessions() as session, session.begin():
        record = quality_service.register_evaluator(
            session=session, split=split, training_snapshot_id=snapshot_ids["training"],
            heldout_snapshot_id=snapshot_ids["heldout"], sha256=digest, files=files, config=asdict(config),
            groups=list(evaluator.groups), subgroups=list(evaluator.subgroups),
            real_balanced_accuracy=round(balanced_accuracy(predicted.groups[truth >= 0], truth[truth >= 0]), 4),
            real_subgroup_balanced_accuracy=round(balanced_accuracy(predicted.subgroups[sub_truth >= 0],
                                                                    sub_truth[sub_truth >= 0]), 4),
            created_by=created_by)
        session.expunge(record)
    return record


def load_evaluator(*, record: QualityEvaluator, blob_store: BlobStore, cache_dir: Path) -> Evaluator:
    """The recorded evaluator, rebuilt from its blobs and checked against its digest."""
    folder = cache_dir / "evaluators" / str(record.id)
    if not (folder / ".complete").is_file():
        for relative, digest in record.files.items():
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(blob_store.get(digest))
        (folder / ".complete").write_text(record.sha256)
    if evaluator_sha256(folder) != record.sha256:
        raise Conflict(f"stored evaluator {record.id} does not match its digest", code="evaluator_corrupt")
    return Evaluator.load(folder)


def measure_model(*, sessions, blob_store: BlobStore, model_id: uuid.UUID, cache_dir: Path, measured_by: str,
                  sampling: SamplingSettings | None = None, per_group: int | None = None,
                  progress: Progress | None = None) -> ModelQuality:
    """Generate from the held-out captions, score with the split's current evaluator, record metrics and sheet."""
    sampling = sampling or SamplingSettings()
    with sessions() as session:
        record = quality_service.current_evaluator(session=session, split=HELDOUT_SPLIT)
        if record is None:
            raise InvalidInput("no quality evaluator has been trained yet: run `foundry quality train-evaluator`",
                               code="evaluator_not_found")
        model = registry_service.get_model(session=session, model_id=model_id)
        quality_service.require_unseen_heldout(session=session, model_id=model_id,
                                               heldout_snapshot_id=record.heldout_snapshot_id)
        heldout = snapshot_renditions(session=session, blob_store=blob_store,
                                      snapshot_id=record.heldout_snapshot_id)
        training = snapshot_renditions(session=session, blob_store=blob_store,
                                       snapshot_id=record.training_snapshot_id)
        pipeline = load_attribution_pipeline(session=session, model=model, blob_store=blob_store,
                                             cache_dir=cache_dir / "models")
        resolution = int(model.recipe.get("resolution") or EVALUATED_RESOLUTION)
        if sampling.guidance_scale is None:
            sampling = replace(sampling, guidance_scale=registry_service.served_guidance(session=session, model=model))
        session.expunge(record)
    evaluator = load_evaluator(record=record, blob_store=blob_store, cache_dir=cache_dir)
    if per_group is not None:
        heldout = heldout.per_group(per_group)
    pipeline.set_progress_bar_config(disable=True)
    metrics, sheet = measure_pipeline(pipeline, evaluator, heldout, reference_sample(training, heldout),
                                      resolution=resolution, sampling=sampling, progress=progress)
    buffer = io.BytesIO()
    sheet.save(buffer, format="PNG")
    sheet_sha256 = blob_store.put(buffer.getvalue())
    with sessions() as session, session.begin():
        measurement = quality_service.record_measurement(
            session=session, model_id=model_id, evaluator_id=record.id, metrics=round_floats(metrics),
            sampling=asdict(sampling) | {"per_group": per_group}, sheet_sha256=sheet_sha256,
            measured_by=measured_by)
        session.expunge(measurement)
    return measurement
