"""Celery tasks: thin wrappers that take ids and hand them to the job runner."""

from __future__ import annotations

import logging
import os
import socket
import uuid

from celery.signals import worker_ready

from foundry.config import get_settings
from training.celery_app import TRAINING_QUEUE, celery_app

log = logging.getLogger(__name__)


@celery_app.task(name="foundry.training.run_job")
def run_training_job(job_id: str) -> str:
    from training.jobs import run_job

    return run_job(get_settings(), uuid.UUID(job_id), worker=f"{socket.gethostname()}:{os.getpid()}")


def enqueue_training_job(job_id: uuid.UUID) -> None:
    """Hand a committed job to the training queue (call only after the job row is committed)."""
    run_training_job.apply_async(args=[str(job_id)], queue=TRAINING_QUEUE)


@worker_ready.connect
def _requeue_orphaned_jobs(sender=None, **_kwargs) -> None:
    """A worker that starts re-queues jobs whose worker died, so a kill -9 never strands a job."""
    consumer = getattr(sender, "task_consumer", None)
    if consumer is None or TRAINING_QUEUE not in {queue.name for queue in consumer.queues}:
        return
    from training.jobs import orphaned_jobs

    for job_id in orphaned_jobs(get_settings()):
        log.warning("re-queueing training job %s: its worker stopped", job_id)
        enqueue_training_job(job_id)
