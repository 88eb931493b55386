"""The client half of the queue: hand committed work to the workers by task name.

What the API, the CLI and the use cases need to enqueue, without the tasks themselves (and so
without torch): a message names a task and carries ids. Enqueue only after the row is committed,
or the worker may not find it.
"""

from __future__ import annotations

import uuid

from celery import Celery

from foundry.config import Settings
from worker.app import GENERATION_QUEUE, TRAINING_QUEUE, create_app

RUN_TRAINING_JOB = "foundry.training.run_job"
RUN_GENERATION = "foundry.generation.run"
BUILD_INDEX = "foundry.attribution.build_index"

_apps: dict[str, Celery] = {}


def celery_for(settings: Settings) -> Celery:
    """A client app for ``settings``' broker (cached), for processes that only send tasks."""
    url = settings.resolved_broker_url
    if url not in _apps:
        _apps[url] = create_app(settings)
    return _apps[url]


def send(settings: Settings, task: str, args: list, queue: str, countdown: float | None = None) -> None:
    """Send one task message (the embedded broker's race on a queue's first use is settled in its channel)."""
    celery_for(settings).send_task(task, args=args, queue=queue, countdown=countdown)


def enqueue_training_job(job_id: uuid.UUID, settings: Settings, countdown: float | None = None) -> None:
    """Hand a committed job to the training queue: a turn for whichever job the fair rotation across
    tenants says is next (``countdown``: not before)."""
    send(settings, RUN_TRAINING_JOB, [str(job_id)], TRAINING_QUEUE, countdown)


def enqueue_generation(generation_id: uuid.UUID, settings: Settings, countdown: float | None = None) -> None:
    """Hand a committed generation to the generation queue: one message per queued generation, each a turn
    for whichever generation the fair rotation across tenants says is next (``countdown``: not before)."""
    send(settings, RUN_GENERATION, [str(generation_id)], GENERATION_QUEUE, countdown)


def enqueue_index_build(model_id: uuid.UUID, settings: Settings) -> None:
    """Ask a training worker to (re)build a model's attribution index."""
    send(settings, BUILD_INDEX, [str(model_id)], TRAINING_QUEUE)


class CeleryQueue:
    """``foundry.usecases.queue.TaskQueue`` on ``settings``' broker."""

    def __init__(self, settings: Settings):
        self.settings = settings

    def training_job(self, job_id: uuid.UUID) -> None:
        enqueue_training_job(job_id, self.settings)

    def generation(self, generation_id: uuid.UUID) -> None:
        enqueue_generation(generation_id, self.settings)

    def index_build(self, model_id: uuid.UUID) -> None:
        enqueue_index_build(model_id, self.settings)
