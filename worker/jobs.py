"""Runs one training job end to end: claim, license gate, train, register, report.

The database decides (is the job still wanted, is every image still licensed); ``training``'s
engine trains; this module connects the two. Every training batch passes the license gate before it
is loaded, and the ids of what entered each batch are written to the job's audit log.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path

from PIL import Image

from foundry.blobs import BlobStore, open_blob_store
from foundry.config import Settings
from foundry.datasets import service as dataset_service
from foundry.datasets.models import SnapshotEntry
from foundry.db import session_factory
from foundry.errors import FoundryError
from foundry.models_registry import service as registry_service
from foundry.quality.policy import summary_line
from foundry.training_jobs import service as job_service
from foundry.training_jobs.models import TrainingJob
from foundry.training_jobs.policy import builds_attribution_index, measures_quality
from foundry.usecases.training import wait_for_job
from provenance.influence import InfluenceConfig
from recipes import Recipe
from training.engine import TrainingCancelled, train
from worker.attribution import build_index
from worker.quality import measure_model

BATCH_AUDIT_FILE = "batches.jsonl"
INDEX_STAGE = "attribution_index"
QUALITY_STAGE = "quality"
logger = logging.getLogger(__name__)


class SnapshotExample:
    """A training example backed by a snapshot entry: its bytes are verified against the manifest."""

    def __init__(self, entry: SnapshotEntry, blob_store: BlobStore, *, is_brand: bool = False):
        self.example_id = str(entry.asset_id)
        self.caption = entry.caption
        self.tags = tuple(entry.tags or ())
        self.is_brand = is_brand
        self._entry = entry
        self._blob_store = blob_store

    def load_image(self) -> Image.Image:
        data = dataset_service.load_rendition(blob_store=self._blob_store, entry=self._entry)
        return Image.open(io.BytesIO(data)).convert("RGB")


class _Throttle:
    def __init__(self, seconds: float):
        self.seconds = seconds
        self._last = 0.0

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if force or now - self._last >= self.seconds:
            self._last = now
            return True
        return False


class _Heartbeat(threading.Thread):
    """Proves the job is alive while a long step runs, so no other worker takes it over."""

    def __init__(self, sessions, job_id: uuid.UUID, worker: str, interval: float):
        super().__init__(daemon=True, name=f"heartbeat-{job_id}")
        self._sessions, self._job_id, self._worker, self._interval = sessions, job_id, worker, interval
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.wait(self._interval):
            with self._sessions() as session, session.begin():
                job_service.heartbeat(session=session, job_id=self._job_id, worker=self._worker)

    def stop(self) -> None:
        self._stop_event.set()


def orphaned_jobs(settings: Settings) -> list[uuid.UUID]:
    with session_factory(settings.resolved_database_url)() as session:
        return job_service.stale_jobs(session=session, stale_after=timedelta(seconds=settings.job_stale_after_s))


def job_dir(settings: Settings, job_id: uuid.UUID) -> Path:
    return settings.var_dir / "jobs" / str(job_id)


def finish_job(settings: Settings, sessions, blob_store: BlobStore, job_id: uuid.UUID, *, worker: str) -> str:
    """The post-training stages: the model's attribution index, its quality measurement, then success.

    Neither stage can fail the job: the model is registered and serves (with pro-rata attribution
    when it has no index); the log says why, and ``foundry models build-index`` / ``foundry models
    measure`` can retry. A job re-claimed during its quality stage does not build its index again.
    """
    with sessions() as session:
        job = job_service.get_job(session=session, job_id=job_id)
        model_id, artifacts, step, stage = job.result_model_id, list(job.artifacts), job.step, job.stage
        kind = job.recipe_kind
    built_by = f"training job {job_id} on {worker}"
    if stage == INDEX_STAGE and settings.attribution_index_after_training and builds_attribution_index(kind):
        line = _run_stage(sessions, job_id, "attribution index", "images", lambda progress: build_index(
            sessions=sessions, blob_store=blob_store, model_id=model_id, cache_dir=settings.var_dir / "models",
            config=InfluenceConfig(calibration_outputs=settings.influence_calibration_outputs),
            built_by=built_by, training_job_id=job_id, progress=progress),
            lambda built: f"attribution index {built.id}: {built.entry_count} images in {built.build_seconds:.1f} s")
        with sessions() as session, session.begin():
            job_service.append_log(session=session, job_id=job_id, line=line)
    if settings.quality_after_training and measures_quality(kind):
        with sessions() as session, session.begin():
            job_service.enter_stage(session=session, job_id=job_id, stage=QUALITY_STAGE)
        line = _run_stage(sessions, job_id, "quality", "generated images", lambda progress: measure_model(
            sessions=sessions, blob_store=blob_store, model_id=model_id, cache_dir=settings.var_dir,
            measured_by=built_by, per_group=settings.quality_per_group, progress=progress),
            lambda measured: "quality: " + summary_line(measured.metrics))
        with sessions() as session, session.begin():
            job_service.append_log(session=session, job_id=job_id, line=line)
    with sessions() as session, session.begin():
        job_service.complete_job(session=session, job_id=job_id, model_id=model_id, artifacts=artifacts, step=step)
    return "succeeded"


def _run_stage(sessions, job_id: uuid.UUID, name: str, unit: str, work: Callable, summary: Callable) -> str:
    """Run one post-training stage with throttled progress; its log line, also when it failed."""
    throttle = _Throttle(1.0)

    def progress(done: int, total: int) -> None:
        if throttle.due(force=done in (0, total)):
            with sessions() as s, s.begin():
                job_service.record_stage_progress(session=s, job_id=job_id, done=done, total=total,
                                                  log_line=f"{name} {done}/{total} {unit}")

    try:
        return summary(work(progress))
    except Exception as exc:
        logger.exception("%s stage of training job %s failed", name, job_id)
        return f"{name} not done: {type(exc).__name__}: {exc}"


def run_in_thread(settings: Settings, job_id: uuid.UUID, *, worker: str,
                  on_progress: Callable[[TrainingJob], None] | None = None) -> TrainingJob:
    """Run a submitted job in this process (``train start --inline``, the demo) while following it."""
    runner = threading.Thread(target=run_job, args=(settings, job_id), kwargs={"worker": worker}, daemon=True)
    runner.start()
    job = wait_for_job(settings, job_id, on_progress=on_progress)
    runner.join()
    return job


def run_job(settings: Settings, job_id: uuid.UUID, *, worker: str) -> str:
    """Run the job if this worker may claim it; returns the job's status afterwards ("skipped" if not claimed)."""
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        claimed = job_service.claim_job(session=session, job_id=job_id, worker=worker,
                                        stale_after=timedelta(seconds=settings.job_stale_after_s))
    return run_claimed(settings, job_id, worker=worker) if claimed else "skipped"


def run_next_job(settings: Settings, *, worker: str, preferred: uuid.UUID | None = None) -> tuple[uuid.UUID | None, str]:
    """Claim and run the job the fair rotation across tenants says is next (``preferred`` first when its
    worker died): (the job run or None, its status afterwards, or "waiting" when nothing may start now)."""
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        job_id = job_service.claim_next(session=session, worker=worker, preferred=preferred,
                                        stale_after=timedelta(seconds=settings.job_stale_after_s),
                                        concurrency=settings.training_tenant_concurrency)
    if job_id is None:
        return None, "waiting"
    return job_id, run_claimed(settings, job_id, worker=worker)


def run_claimed(settings: Settings, job_id: uuid.UUID, *, worker: str) -> str:
    """Run a job this worker has claimed; its status afterwards."""
    sessions = session_factory(settings.resolved_database_url)
    blob_store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    output_dir = job_dir(settings, job_id)
    output_dir.mkdir(parents=True, exist_ok=True)
    heartbeat = _Heartbeat(sessions, job_id, worker, settings.job_heartbeat_s)
    heartbeat.start()
    try:
        with sessions() as session, session.begin():
            job = job_service.get_job(session=session, job_id=job_id)
            job_service.append_log(session=session, job_id=job_id, line=f"attempt {job.attempts} on {worker}")
            already_trained = job.result_model_id is not None
        if already_trained:  # a worker died after registering the model: only the last stage is left
            return finish_job(settings, sessions, blob_store, job_id, worker=worker)
        with sessions() as session, session.begin():
            job = job_service.get_job(session=session, job_id=job_id)
            try:
                gate = dataset_service.enforce_license_gate(session=session, snapshot_id=job.snapshot_id)
            except FoundryError as exc:
                job_service.fail_job(session=session, job_id=job_id, code=exc.code, message=exc.message,
                                     details=exc.details)
                return "failed"
            entries = dataset_service.snapshot_entries(session=session, snapshot_id=job.snapshot_id)
            brand = dataset_service.brand_asset_ids(session=session, snapshot_id=job.snapshot_id)
            recipe = Recipe.from_dict(job.recipe)
            parent = None
            if job.base_model_id is not None:
                parent = registry_service.get_model(session=session, model_id=job.base_model_id)
                base_path = registry_service.materialize(model=parent, blob_store=blob_store,
                                                         cache_dir=settings.var_dir / "models")
                recipe = recipe.replace(base_model=str(base_path))
            snapshot_id, merkle_root, name, kind = job.snapshot_id, gate.merkle_root, job.name, job.recipe_kind
            tenant = job.owner_tenant_id

        examples = [SnapshotExample(entry, blob_store, is_brand=entry.asset_id in brand) for entry in entries]
        audit = (output_dir / BATCH_AUDIT_FILE).open("a", encoding="utf-8")
        progress_throttle, cancel_throttle = _Throttle(1.0), _Throttle(1.0)

        def before_batch(example_ids: list[str]) -> None:
            with sessions() as gate_session:
                dataset_service.enforce_license_gate(session=gate_session, snapshot_id=snapshot_id,
                                                     asset_ids=[uuid.UUID(i) for i in example_ids])
            audit.write(json.dumps(example_ids) + "\n")
            audit.flush()

        def progress(step: int, total: int, loss: float, images_per_s: float, eta_s: float) -> None:
            if progress_throttle.due(force=step == total):
                with sessions() as s, s.begin():
                    job_service.record_progress(
                        session=s, job_id=job_id, step=step, total=total, loss=loss, images_per_s=images_per_s,
                        eta_s=eta_s, log_line=f"step {step}/{total} loss {loss:.4f} {images_per_s:.1f} img/s")

        def should_cancel() -> bool:
            if not cancel_throttle.due():
                return False
            with sessions() as s:
                return job_service.cancel_requested(session=s, job_id=job_id)

        try:
            result = train(output_dir / "run", recipe, examples, before_batch=before_batch, progress=progress,
                           should_cancel=should_cancel, resume_from="latest")
        except TrainingCancelled as cancelled:
            with sessions() as s, s.begin():
                job_service.finish_cancelled(session=s, job_id=job_id, step=cancelled.step)
            return "cancelled"
        except FoundryError as exc:
            with sessions() as s, s.begin():
                job_service.fail_job(session=s, job_id=job_id, code=exc.code, message=exc.message,
                                     details=exc.details)
            return "failed"
        except Exception as exc:  # noqa: BLE001 -- the job fails; the worker lives on for the next one
            with sessions() as s, s.begin():
                job_service.fail_job(session=s, job_id=job_id, code="training_error",
                                     message=f"{type(exc).__name__}: {exc}")
            return "failed"
        finally:
            audit.close()

        artifacts = [{"kind": "sample_grid", "name": grid.name, "sha256": blob_store.put(grid.read_bytes())}
                     for grid in result.sample_grids]
        artifacts.append({"kind": "batch_audit", "name": BATCH_AUDIT_FILE,
                          "sha256": blob_store.put((output_dir / BATCH_AUDIT_FILE).read_bytes())})
        with sessions() as session, session.begin():
            parent = registry_service.get_model(session=session, model_id=parent.id) if parent else None
            model = registry_service.register_trained(
                session=session, blob_store=blob_store, folder=result.model_path, name=name, kind=kind,
                model_format=result.model_format, snapshot_id=snapshot_id, snapshot_merkle_root=merkle_root,
                recipe=result.recipe, text_encoder_origin=result.text_encoder_origin, parent=parent,
                training_job_id=job_id, owner_tenant_id=tenant,
                metrics={"final_loss": result.final_loss, "steps": result.steps_done,
                         "engine_weights_sha256": result.weights_sha256,
                         "resumed_from_step": result.resumed_from_step,
                         **({"budget": result.budget} if result.budget else {})},
            )
            job_service.record_trained_model(session=session, job_id=job_id, model_id=model.id, artifacts=artifacts,
                                             step=result.steps_done, next_stage=INDEX_STAGE)
        return finish_job(settings, sessions, blob_store, job_id, worker=worker)
    finally:
        heartbeat.stop()
