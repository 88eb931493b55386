"""Celery tasks: thin wrappers that take ids and hand them to the runners.

Tasks are ``shared_task``s: they bind to the app ``worker.app.create_app`` builds when a worker
starts, so importing this module reads no settings and connects to no broker.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from datetime import timedelta

from celery import shared_task
from celery.signals import worker_ready

from foundry.blobs import open_blob_store
from foundry.config import Settings, get_settings
from foundry.db import session_factory, utcnow
from foundry.generation import service as generation_service
from foundry.training_jobs import service as job_service
from foundry.usecases.generation import GenerationRunner
from foundry.usecases.webhooks import deliver_due
from training.inference import PipelineCache
from worker import queue
from worker.app import GENERATION_QUEUE, TRAINING_QUEUE
from worker.attribution import build_index_unless_current
from worker.jobs import orphaned_jobs, run_next_job

log = logging.getLogger(__name__)


def _worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@shared_task(name=queue.RUN_TRAINING_JOB)
def run_training_job(job_id: str) -> str:
    """A turn on the training queue: one message per submitted (or orphaned) job, each running whichever job
    the fair rotation across tenants says is next. When every waiting tenant is at its limit, the turn is
    kept for later while the named job still waits."""
    settings = get_settings()
    ran, status = run_next_job(settings, worker=_worker_name(), preferred=uuid.UUID(job_id))
    if ran is None:
        with session_factory(settings.resolved_database_url)() as session:
            waiting = job_service.get_job(session=session, job_id=uuid.UUID(job_id)).status == "queued"
        if waiting:
            queue.enqueue_training_job(uuid.UUID(job_id), settings, countdown=TURN_RETRY_S)
    return status


@shared_task(name=queue.BUILD_INDEX)
def build_attribution_index(model_id: str) -> str:
    """Rebuild a model's attribution index; a model whose current index is valid is left alone."""
    settings = get_settings()
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    row = build_index_unless_current(settings, blob_store=store, model_id=uuid.UUID(model_id),
                                     built_by=f"worker {_worker_name()}")
    return str(row.id)


def new_generation_runner(settings: Settings) -> GenerationRunner:
    """A runner with this process's pipeline cache: what the generation task serves with."""
    store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
    return GenerationRunner(settings, blob_store=store,
                            pipelines=PipelineCache(capacity=settings.pipeline_cache_size))


_runner: GenerationRunner | None = None


def generation_runner() -> GenerationRunner:
    """One runner per worker process: its pipeline cache outlives each task."""
    global _runner
    if _runner is None:
        _runner = new_generation_runner(get_settings())
    return _runner


TURN_RETRY_S = 1.0
EDIT_INPUT_PURGE_S = 600.0
"""How often a generation worker purges the uploads of edits past their retention."""
"""How long a turn waits when every waiting tenant already runs its most generations."""


@shared_task(name=queue.RUN_GENERATION)
def run_generation(generation_id: str) -> str:
    """One turn of the generation queue: serve the generation the fair rotation says is next, which is not
    always the one that sent the message (each queued generation sends one, so every one gets a turn)."""
    runner = generation_runner()
    served = runner.serve_next()
    if served is not None:
        return served.status
    if runner.load(uuid.UUID(generation_id)).status == "queued":  # its tenant is at its limit: keep the turn
        queue.enqueue_generation(uuid.UUID(generation_id), runner.settings, countdown=TURN_RETRY_S)
        return "waiting"
    return "nothing to serve"


def requeue_orphaned_jobs() -> int:
    """Queue again every running job whose worker stopped beating (killed, lost its machine)."""
    settings = get_settings()
    orphans = orphaned_jobs(settings)
    for job_id in orphans:
        log.warning("re-queueing training job %s: its worker stopped", job_id)
        queue.enqueue_training_job(job_id, settings)
    return len(orphans)


def requeue_stale_generations() -> int:
    """Queue again every generation left running longer than ``generation_stale_after_s`` (its
    worker died: nothing of its outcome was written, so serving it again is safe)."""
    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        released = generation_service.release_stale(
            session=session, older_than=utcnow() - timedelta(seconds=settings.generation_stale_after_s))
    for generation_id in released:
        log.warning("re-queueing generation %s: its worker stopped", generation_id)
        queue.enqueue_generation(generation_id, settings)
    return len(released)


def purge_expired_edit_inputs() -> int:
    """Delete the uploads of edits whose retention has ended (``FOUNDRY_EDIT_INPUT_RETENTION_DAYS``)."""
    settings = get_settings()
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        return generation_service.purge_edit_inputs(session=session, blob_store=open_blob_store(
            settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url), now=utcnow())


def send_due_webhooks() -> int:
    """Send the webhook deliveries that are due (new events, and retries whose back-off has passed)."""
    return deliver_due(get_settings())


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
    queues = {q.name for q in consumer.queues} if consumer is not None else set()
    settings = get_settings()
    if TRAINING_QUEUE in queues:
        _OrphanSweeper(max(0.5, settings.job_stale_after_s / 2), requeue_orphaned_jobs).start()
    if GENERATION_QUEUE in queues:
        _OrphanSweeper(max(0.5, settings.generation_stale_after_s / 2), requeue_stale_generations).start()
        _OrphanSweeper(settings.webhook_poll_s, send_due_webhooks).start()
        _OrphanSweeper(EDIT_INPUT_PURGE_S, purge_expired_edit_inputs).start()
