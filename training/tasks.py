"""Celery tasks: thin wrappers that take ids and hand them to the job runner."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid

from celery.signals import worker_ready

from foundry.config import Settings, get_settings
from training.celery_app import GENERATION_QUEUE, TRAINING_QUEUE, celery_app, celery_for

log = logging.getLogger(__name__)


@celery_app.task(name="foundry.training.run_job")
def run_training_job(job_id: str) -> str:
    from training.jobs import run_job

    return run_job(get_settings(), uuid.UUID(job_id), worker=f"{socket.gethostname()}:{os.getpid()}")


def enqueue_training_job(job_id: uuid.UUID, settings: Settings | None = None) -> None:
    """Hand a committed job to the training queue (call only after the job row is committed)."""
    celery_for(settings or get_settings()).send_task(run_training_job.name, args=[str(job_id)], queue=TRAINING_QUEUE)


@celery_app.task(name="foundry.attribution.build_index")
def build_attribution_index(model_id: str) -> str:
    """Rebuild a model's attribution index; a model whose current index is valid is left alone."""
    from foundry.attribution.indexing import build_index_unless_current
    from foundry.blobs import open_blob_store

    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    row = build_index_unless_current(settings, blob_store=store, model_id=uuid.UUID(model_id),
                                     built_by=f"worker {socket.gethostname()}:{os.getpid()}")
    return str(row.id)


def enqueue_index_build(model_id: uuid.UUID, settings: Settings | None = None) -> None:
    celery_for(settings or get_settings()).send_task(build_attribution_index.name, args=[str(model_id)],
                                                     queue=TRAINING_QUEUE)


_runner = None


def generation_runner():
    """One runner per worker process: its pipeline cache outlives each task."""
    global _runner
    if _runner is None:
        from foundry.blobs import open_blob_store
        from foundry.generation.runner import GenerationRunner

        settings = get_settings()
        _runner = GenerationRunner(settings, blob_store=open_blob_store(settings.resolved_blob_url,
                                                                        s3_endpoint_url=settings.s3_endpoint_url))
    return _runner


@celery_app.task(name="foundry.generation.run")
def run_generation(generation_id: str) -> str:
    """Serve one queued generation; a generation already claimed or finished is left alone."""
    return generation_runner()(uuid.UUID(generation_id)).status


def enqueue_generation(generation_id: uuid.UUID, settings: Settings | None = None) -> None:
    """Hand a committed generation to the generation queue (only after its row is committed)."""
    celery_for(settings or get_settings()).send_task(run_generation.name, args=[str(generation_id)],
                                                     queue=GENERATION_QUEUE)


def requeue_orphaned_jobs() -> int:
    """Queue again every running job whose worker stopped beating (killed, lost its machine)."""
    from training.jobs import orphaned_jobs

    orphans = orphaned_jobs(get_settings())
    for job_id in orphans:
        log.warning("re-queueing training job %s: its worker stopped", job_id)
        enqueue_training_job(job_id)
    return len(orphans)


def requeue_stale_generations() -> int:
    """Queue again every generation left running longer than ``generation_stale_after_s`` (its
    worker died: nothing of its outcome was written, so serving it again is safe)."""
    from datetime import timedelta

    from foundry.db import session_factory, utcnow
    from foundry.generation import service as generation_service

    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        released = generation_service.release_stale(
            session=session, older_than=utcnow() - timedelta(seconds=settings.generation_stale_after_s))
    for generation_id in released:
        log.warning("re-queueing generation %s: its worker stopped", generation_id)
        enqueue_generation(generation_id, settings)
    return len(released)


class _OrphanSweeper(threading.Thread):
    """Looks for orphaned jobs for as long as a training worker lives.

    Brokers redeliver an unacknowledged task only after a long visibility timeout (or never,
    for the embedded transport), so the workers themselves make sure a killed job resumes.
    A duplicate delivery is harmless: a job is claimed by one worker at a time.
    """

    def __init__(self, interval: float, sweep):
        super().__init__(daemon=True, name=f"orphan-sweeper-{sweep.__name__}")
        self.interval = interval
        self.sweep = sweep

    def run(self) -> None:
        while True:
            try:
                self.sweep()
            except Exception:  # a database hiccup must not kill the sweeper
                log.exception("orphan sweep %s failed", self.sweep.__name__)
            time.sleep(self.interval)


@worker_ready.connect
def _start_orphan_sweeper(sender=None, **_kwargs) -> None:
    consumer = getattr(sender, "task_consumer", None)
    queues = {queue.name for queue in consumer.queues} if consumer is not None else set()
    settings = get_settings()
    if TRAINING_QUEUE in queues:
        _OrphanSweeper(max(0.5, settings.job_stale_after_s / 2), requeue_orphaned_jobs).start()
    if GENERATION_QUEUE in queues:
        _OrphanSweeper(max(0.5, settings.generation_stale_after_s / 2), requeue_stale_generations).start()
