"""A brand customer's own model, self-served: the tenant's brand assets (by id or tag) frozen into a
Merkle-rooted snapshot, a LoRA or fine-tune of a shared licensed base on the training queue, a private
registered model. A custom model is its training job; its model is the job's result."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import CatalogMix, SnapshotFilters
from foundry.db import utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.generation import service as generation_service
from foundry.generation.policy import request_fingerprint
from foundry.models_registry import service as registry_service
from foundry.moderation import service as moderation_service
from foundry.moderation.service import PromptRefused
from foundry.pricing import service as pricing_service
from foundry.training_jobs import service as job_service
from foundry.training_jobs.models import TrainingJob
from foundry.usecases.queue import TaskQueue
from foundry.usecases.training import build_recipe
from recipes import CUSTOM_MODEL_SETTINGS, CUSTOM_TRIGGER_SETTINGS, TRIGGER_PATTERN

CUSTOM_KINDS = ("lora", "finetune")
MAX_CUSTOM_STEPS = 20_000


def create_custom_model(*, session: Session, queue: TaskQueue | None, tenant_id: uuid.UUID, name: str, kind: str,
                        base_model_id: uuid.UUID, asset_ids: list[uuid.UUID], tags: list[str], steps: int,
                        requested_by: str, catalog: CatalogMix | None = None, trigger_word: str | None = None,
                        style_mode: str = "strict", idempotency_key: str | None = None,
                        request: dict | None = None) -> TrainingJob:
    """Snapshot, screen, charge and queue in one transaction (a refused caption leaves nothing behind but the
    counted refusal); the job is handed to ``queue`` after the commit. The charge is ``steps`` times the
    base model's ``training_step_price`` for the tenant; a retry with the same Idempotency-Key (and the same
    ``request``) returns the first job and charges nothing again. ``catalog`` mixes licensed catalog images
    into the snapshot (the recipe's ``brand_share`` of draws stays with the brand images); their licensors
    are paid in the custom model's fine-tune layer, the tenant's own images never are. ``trigger_word``: the
    name the model will be prompted with; the brand images are trained under it (``Recipe.brand_trigger``)."""
    fingerprint = request_fingerprint(request or {})
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise InvalidInput("Idempotency-Key must be 1-200 characters", code="invalid_idempotency_key")
    if kind not in CUSTOM_KINDS:
        raise InvalidInput(f"kind: use one of {list(CUSTOM_KINDS)}", code="validation_error")
    if not asset_ids and not tags:
        raise InvalidInput("brand_assets: choose brand assets by asset_ids or tags", code="validation_error")
    if not 1 <= steps <= MAX_CUSTOM_STEPS:
        raise InvalidInput(f"steps: between 1 and {MAX_CUSTOM_STEPS}", code="validation_error")
    if trigger_word is not None and not TRIGGER_PATTERN.fullmatch(trigger_word):
        raise InvalidInput("trigger_word: one lowercase word (letters, digits, '-'), 2-40 characters",
                           code="validation_error")
    settings = {**CUSTOM_MODEL_SETTINGS[kind], **(CUSTOM_TRIGGER_SETTINGS[kind] if trigger_word is not None else {})}
    recipe = build_recipe(kind, {**settings, "max_train_steps": steps, "brand_trigger": trigger_word,
                                 "checkpoint_every": max(10, steps // 5),
                                 "lr_warmup_steps": min(steps // 4, settings.get("lr_warmup_steps", 0))})
    try:
        with session.begin():
            existing = _by_idempotency_key(session, tenant_id, idempotency_key) if idempotency_key else None
            if existing is not None:
                return _replay(existing, fingerprint)
            base = generation_service.servable_model(session=session, model_id=base_model_id, tenant_id=tenant_id)
            if base.owner_tenant_id is not None or not base.licensed_only:
                raise InvalidInput("base_model_id: a custom model builds on one of the foundry's shared licensed-only "
                                   "models", code="invalid_base_model")
            snapshot = dataset_service.create_snapshot(
                session=session, name=f"custom model {name}"[:200], use="customer_finetune",
                filters=SnapshotFilters(tenant_id=tenant_id, brand_assets_only=True, asset_ids=asset_ids, tags=tags,
                                        catalog=catalog),
                created_by=requested_by)
            if trigger_word is not None:
                moderation_service.screen(session=session, texts={"trigger_word": trigger_word}, style_mode=style_mode)
            for entry in dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id):
                moderation_service.screen(session=session, texts={"caption": entry.caption}, style_mode=style_mode)
            job = job_service.create_job(session=session, name=name, recipe_kind=kind, recipe=recipe,
                                         snapshot_id=snapshot.id, base_model_id=base.id, requested_by=requested_by,
                                         owner_tenant_id=tenant_id)
            job.idempotency_key, job.details = idempotency_key, {"request_sha256": fingerprint}
            rule = pricing_service.price_for(session=session, model_id=base.id, tenant_id=tenant_id)
            job_service.charge_training(session=session, job=job, step_price=rule.training_step_price,
                                        currency=rule.currency, price_rule_id=rule.id)
            session.refresh(job)
    except PromptRefused as refused:
        with session.begin():
            moderation_service.record_refusal(session=session, refused=refused, tenant_id=tenant_id, api_key_id=None)
        raise
    except IntegrityError:  # the same Idempotency-Key, sent twice at once: the other request made the job
        if idempotency_key is None:
            raise
        with session.begin():
            existing = _by_idempotency_key(session, tenant_id, idempotency_key)
            if existing is None:
                raise
            return _replay(existing, fingerprint)
    if queue is not None:
        queue.training_job(job.id)
    return job


def _by_idempotency_key(session: Session, tenant_id: uuid.UUID, key: str) -> TrainingJob | None:
    return session.scalar(select(TrainingJob).where(TrainingJob.owner_tenant_id == tenant_id,
                                                    TrainingJob.idempotency_key == key))


def _replay(existing: TrainingJob, fingerprint: str) -> TrainingJob:
    if (existing.details or {}).get("request_sha256") != fingerprint:
        raise Conflict("this Idempotency-Key was used with a different request body", code="idempotency_key_reused",
                       details={"custom_model_id": str(existing.id)})
    return existing


def get_custom_model(*, session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID | None) -> TrainingJob:
    """A tenant's custom model (any tenant's for None); a shared job or another tenant's is not found."""
    job = session.get(TrainingJob, job_id)
    if job is None or job.owner_tenant_id is None or (tenant_id is not None and job.owner_tenant_id != tenant_id):
        raise NotFound(f"custom model {job_id} does not exist", code="custom_model_not_found")
    return job


def image_counts(*, session: Session, job: TrainingJob) -> tuple[int, int]:
    """(brand images, catalog images) in the custom model's snapshot."""
    snapshot = dataset_service.get_snapshot(session=session, snapshot_id=job.snapshot_id)
    brand = len(dataset_service.brand_asset_ids(session=session, snapshot_id=job.snapshot_id))
    return brand, snapshot.entry_count - brand


def cancel_custom_model(*, session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID | None) -> TrainingJob:
    get_custom_model(session=session, job_id=job_id, tenant_id=tenant_id)
    return job_service.request_cancel(session=session, job_id=job_id)


def delete_custom_model(*, session: Session, job_id: uuid.UUID, tenant_id: uuid.UUID | None) -> TrainingJob:
    """Stop training it (if it still is) and stop serving its model; weights and records are kept."""
    job = get_custom_model(session=session, job_id=job_id, tenant_id=tenant_id)
    if not job_service.is_terminal(job):
        job_service.request_cancel(session=session, job_id=job.id)
    if job.result_model_id is not None:
        model = registry_service.get_model(session=session, model_id=job.result_model_id)
        model.retired_at = model.retired_at or utcnow()
    session.flush()
    return job
