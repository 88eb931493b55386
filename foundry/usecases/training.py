"""Submitting a training job: validate the recipe (or a named preset), record the job, then enqueue it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from foundry.datasets import service as dataset_service
from foundry.db import session_factory
from foundry.errors import InvalidInput
from foundry.moderation import service as moderation_service
from foundry.moderation.service import PromptRefused
from foundry.training_jobs import service as job_service
from foundry.training_jobs.models import TrainingJob
from foundry.usecases.queue import TaskQueue
from recipes import PRESETS, recipe_for_job


def build_recipe(recipe_kind: str, overrides: dict[str, Any], preset: str | None = None) -> dict:
    """The validated recipe as stored with the job; an unknown preset or bad settings are InvalidInput."""
    if preset is not None and preset not in PRESETS:
        raise InvalidInput(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}", code="unknown_preset",
                           details={"presets": sorted(PRESETS)})
    try:
        return recipe_for_job(recipe_kind, overrides, preset).to_dict()
    except ValueError as exc:
        raise InvalidInput(f"invalid recipe settings: {exc}", code="invalid_recipe") from None


def submit_training_job(*, session: Session, queue: TaskQueue | None, recipe_kind: str, snapshot_id: uuid.UUID, name: str,
                        base_model_id: uuid.UUID | None = None, overrides: dict[str, Any] | None = None,
                        preset: str | None = None, requested_by: str,
                        owner_tenant_id: uuid.UUID | None = None, style_mode: str = "strict") -> TrainingJob:
    """Record the job in its own transaction on ``session`` and, once committed, hand it to ``queue``.

    ``queue=None`` leaves the job queued for a runner the caller starts itself (``--inline``, the demo).
    A tenant's job (a custom model) is refused when a caption of its snapshot breaks a moderation rule
    (``prompt_refused``, counted like a refused prompt).
    """
    recipe = build_recipe(recipe_kind, overrides or {}, preset)
    if owner_tenant_id is not None:
        screen_captions(session=session, snapshot_id=snapshot_id, tenant_id=owner_tenant_id, style_mode=style_mode)
    with session.begin():
        job = job_service.create_job(session=session, name=name, recipe_kind=recipe_kind, recipe=recipe,
                                     snapshot_id=snapshot_id, base_model_id=base_model_id,
                                     requested_by=requested_by, owner_tenant_id=owner_tenant_id)
        session.flush()
        session.refresh(job)  # every column loaded: callers read the job after the commit
    if queue is not None:
        queue.training_job(job.id)  # only after the commit: a worker must find the row
    return job


def screen_captions(*, session: Session, snapshot_id: uuid.UUID, tenant_id: uuid.UUID, style_mode: str) -> None:
    """Every caption a tenant's model would learn from passes the same rules as a prompt."""
    try:
        with session.begin():
            for entry in dataset_service.snapshot_entries(session=session, snapshot_id=snapshot_id):
                moderation_service.screen(session=session, texts={"caption": entry.caption}, style_mode=style_mode)
    except PromptRefused as refused:
        with session.begin():
            moderation_service.record_refusal(session=session, refused=refused, tenant_id=tenant_id, api_key_id=None)
        raise


def wait_for_job(settings, job_id: uuid.UUID, *, on_progress: Callable[[TrainingJob], None] | None = None,
                 poll_s: float = 0.5) -> TrainingJob:
    """Poll a job until it ends (succeeded, failed, cancelled); ``on_progress`` sees each reading."""
    sessions = session_factory(settings.resolved_database_url)
    while True:
        with sessions() as session:
            job = job_service.get_job(session=session, job_id=job_id)
            session.expunge(job)
        if on_progress is not None:
            on_progress(job)
        if job_service.is_terminal(job):
            return job
        time.sleep(poll_s)
