"""The training job state machine: queued → running → succeeded | failed | cancelled.

Claiming a job is one conditional UPDATE, so however often a queue redelivers the task, only
one worker runs a job at a time; a job whose worker died (no heartbeat) can be claimed again
and resumes from its last checkpoint.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session

from foundry.accounts import service as accounts_service
from foundry.datasets import service as dataset_service
from foundry.db import flushed, get_or_raise, utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.fair_queue import TenantQueue, fair_position, next_tenant
from foundry.ledger import service as ledger_service
from foundry.ledger.accounts import PLATFORM_REVENUE, customer_account
from foundry.ledger.models import LedgerEntry
from foundry.ledger.periods import posting_period
from foundry.licensing.terms import Use
from foundry.models_registry import service as registry_service
from foundry.training_jobs.models import (
    CANCELLED,
    FAILED,
    QUEUED,
    RUNNING,
    STATUSES,
    SUCCEEDED,
    TERMINAL,
    TrainingJob,
)
from foundry.webhooks import service as webhook_service
from recipes import RECIPE_KINDS

LOG_TAIL_CHARS = 8000


def required_snapshot_use(recipe_kind: str, for_tenant: bool) -> Use:
    """Shared models learn only from base-training grants; a customer's own fine-tune from fine-tune grants."""
    return Use.CUSTOMER_FINETUNE if for_tenant and recipe_kind != "base" else Use.BASE_TRAINING


def create_job(*, session: Session, name: str, recipe_kind: str, recipe: dict, snapshot_id: uuid.UUID,
               base_model_id: uuid.UUID | None, requested_by: str,
               owner_tenant_id: uuid.UUID | None = None) -> TrainingJob:
    """Queue a job. With ``owner_tenant_id`` the model it registers is that tenant's alone (a private fine-tune)."""
    if recipe_kind not in RECIPE_KINDS:
        raise InvalidInput(f"unknown recipe {recipe_kind!r} ({', '.join(RECIPE_KINDS)})", code="invalid_recipe")
    snapshot = dataset_service.get_snapshot(session=session, snapshot_id=snapshot_id)
    if snapshot.owner_tenant_id is not None and snapshot.owner_tenant_id != owner_tenant_id:
        raise InvalidInput("this snapshot holds a tenant's brand assets; only that tenant's fine-tunes may use it",
                           code="snapshot_tenant_mismatch")
    needed = required_snapshot_use(recipe_kind, owner_tenant_id is not None)
    if snapshot.use != needed.value:
        raise InvalidInput(f"a {recipe_kind} job here needs a {needed.value} snapshot, not {snapshot.use}",
                           code="snapshot_use_mismatch")
    if recipe_kind == "base" and base_model_id is not None:
        raise InvalidInput("a base recipe trains from scratch; do not pass a base model", code="invalid_recipe")
    if recipe_kind != "base":
        if base_model_id is None:
            raise InvalidInput(f"a {recipe_kind} recipe needs a base model", code="base_model_missing")
        base = registry_service.get_model(session=session, model_id=base_model_id)
        if base.model_format != "diffusers_pipeline":
            raise InvalidInput("fine-tunes start from a full pipeline, not from an adapter", code="invalid_base_model")
        if recipe_kind == "upscaler" and (base.kind != "base" or not base.licensed_only):
            raise InvalidInput("an upscaler follows one of the foundry's licensed-only base models, "
                               f"not a {base.kind} model", code="invalid_base_model")
        if base.owner_tenant_id not in (None, owner_tenant_id):
            # a tenant's private model never becomes the base of a shared model or of another tenant's
            raise InvalidInput("this base model belongs to a tenant; only that tenant's fine-tunes may build on it",
                               code="base_model_tenant_mismatch")
    if owner_tenant_id is not None:
        accounts_service.get_tenant(session=session, tenant_id=owner_tenant_id)
    job = TrainingJob(name=name, recipe_kind=recipe_kind, recipe=recipe, snapshot_id=snapshot_id,
                      base_model_id=base_model_id, requested_by=requested_by, owner_tenant_id=owner_tenant_id,
                      status=QUEUED, total_steps=int(recipe.get("max_train_steps") or 0), artifacts=[], details={})
    return flushed(session, job)


def get_job(*, session: Session, job_id: uuid.UUID) -> TrainingJob:
    return get_or_raise(session, TrainingJob, job_id, code="training_job_not_found", what="training job")


def list_jobs(*, session: Session, status: str | None = None, tenant_id: uuid.UUID | None = None, limit: int = 50,
              offset: int = 0) -> list[TrainingJob]:
    """Newest first; only jobs in ``status`` and only ``tenant_id``'s jobs when given (what an operator
    watching the queue, or a tenant's own page, asks for)."""
    query = select(TrainingJob).order_by(TrainingJob.created_at.desc(), TrainingJob.id)
    if status is not None:
        if status not in STATUSES:
            raise InvalidInput(f"unknown training job status {status!r}; use one of {list(STATUSES)}",
                               code="validation_error")
        query = query.where(TrainingJob.status == status)
    if tenant_id is not None:
        query = query.where(TrainingJob.owner_tenant_id == tenant_id)
    return list(session.scalars(query.limit(limit).offset(offset)))


def claim_job(*, session: Session, job_id: uuid.UUID, worker: str, stale_after: timedelta) -> bool:
    """Take the job for ``worker`` if it is queued, or running under a worker that stopped beating."""
    now = utcnow()
    result = session.execute(
        update(TrainingJob)
        .where(TrainingJob.id == job_id,
               or_(TrainingJob.status == QUEUED,
                   and_(TrainingJob.status == RUNNING, TrainingJob.heartbeat_at < now - stale_after)))
        .values(status=RUNNING, worker=worker, attempts=TrainingJob.attempts + 1, heartbeat_at=now,
                started_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def tenant_queues(*, session: Session) -> list[TenantQueue]:
    """Each owner (a tenant, or None for the platform's own jobs) with training jobs waiting: how many,
    how many running, when one of its jobs last started."""
    queued = session.execute(select(TrainingJob.owner_tenant_id, func.count(), func.min(TrainingJob.created_at))
                             .where(TrainingJob.status == QUEUED).group_by(TrainingJob.owner_tenant_id)).all()
    if not queued:
        return []
    running = dict(session.execute(select(TrainingJob.owner_tenant_id, func.count())
                                   .where(TrainingJob.status == RUNNING).group_by(TrainingJob.owner_tenant_id)).all())
    started = dict(session.execute(select(TrainingJob.owner_tenant_id, func.max(TrainingJob.started_at))
                                   .where(TrainingJob.started_at.is_not(None))
                                   .group_by(TrainingJob.owner_tenant_id)).all())
    return [TenantQueue(tenant_id=owner, queued=count, running=running.get(owner, 0),
                        last_started_at=started.get(owner), oldest_queued_at=oldest)
            for owner, count, oldest in queued]


def _owned_by(owner: uuid.UUID | None):
    return TrainingJob.owner_tenant_id.is_(None) if owner is None else TrainingJob.owner_tenant_id == owner


def claim_next(*, session: Session, worker: str, stale_after: timedelta, concurrency: int,
               preferred: uuid.UUID | None = None, attempts: int = 8) -> uuid.UUID | None:
    """Claim the training job a free worker should run: ``preferred`` first when its worker died (a resume
    keeps its place), else the oldest queued job of the owner the fair rotation names (at most
    ``concurrency`` running per owner). None when nothing may start now."""
    if preferred is not None:
        job = session.get(TrainingJob, preferred)
        if job is not None and job.status == RUNNING and claim_job(session=session, job_id=preferred, worker=worker,
                                                                   stale_after=stale_after):
            return preferred
    for _ in range(attempts):
        tenant = next_tenant(tenant_queues(session=session), concurrency)
        if tenant is None:
            return None
        candidate = session.scalar(select(TrainingJob.id).where(TrainingJob.status == QUEUED,
                                                                _owned_by(tenant.tenant_id))
                                   .order_by(TrainingJob.created_at, TrainingJob.id).limit(1))
        if candidate is not None and claim_job(session=session, job_id=candidate, worker=worker,
                                               stale_after=stale_after):
            return candidate
    return None


def queue_position(*, session: Session, job: TrainingJob) -> int | None:
    """1 for the next job a worker will start (by the fair rotation across owners); None once it started."""
    if job.status != QUEUED:
        return None
    rank = session.scalar(select(func.count()).select_from(TrainingJob).where(
        TrainingJob.status == QUEUED, _owned_by(job.owner_tenant_id),
        or_(TrainingJob.created_at < job.created_at,
            and_(TrainingJob.created_at == job.created_at, TrainingJob.id < job.id))))
    return fair_position(job.owner_tenant_id, int(rank), tenant_queues(session=session))


def heartbeat(*, session: Session, job_id: uuid.UUID, worker: str) -> None:
    session.execute(update(TrainingJob).where(TrainingJob.id == job_id, TrainingJob.worker == worker,
                                              TrainingJob.status == RUNNING).values(heartbeat_at=utcnow()))


def record_progress(*, session: Session, job_id: uuid.UUID, step: int, total: int, loss: float | None,
                    images_per_s: float | None, eta_s: float | None, log_line: str | None = None) -> None:
    job = get_job(session=session, job_id=job_id)
    if total and step * 10 // total > job.step * 10 // max(job.total_steps, 1):  # each tenth of the way
        _custom_model_event(session, job, "custom_model.progress", step=step, total_steps=total, eta_s=eta_s)
    job.step, job.total_steps, job.loss, job.images_per_s, job.eta_s = step, total, loss, images_per_s, eta_s
    job.heartbeat_at = utcnow()
    if log_line:
        job.log_tail = (job.log_tail + log_line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    session.flush()


def append_log(*, session: Session, job_id: uuid.UUID, line: str) -> None:
    job = get_job(session=session, job_id=job_id)
    job.log_tail = (job.log_tail + line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    session.flush()


def cancel_requested(*, session: Session, job_id: uuid.UUID) -> bool:
    return session.scalar(select(TrainingJob.cancel_requested_at).where(TrainingJob.id == job_id)) is not None


def request_cancel(*, session: Session, job_id: uuid.UUID) -> TrainingJob:
    """Cancel a queued job at once; ask a running one to stop at its next step. Idempotent."""
    job = session.get(TrainingJob, job_id, with_for_update=True)
    if job is None:
        raise NotFound(f"training job {job_id} does not exist", code="training_job_not_found")
    if job.status in (SUCCEEDED, FAILED):
        raise Conflict(f"training job {job_id} already {job.status}", code="training_job_finished")
    if job.cancel_requested_at is None:
        job.cancel_requested_at = utcnow()
    if job.status == QUEUED:
        job.status, job.finished_at = CANCELLED, utcnow()
        session.flush()
        refund_untrained_steps(session=session, job=job)
    session.flush()
    return job


def finish_cancelled(*, session: Session, job_id: uuid.UUID, step: int) -> TrainingJob:
    job = get_job(session=session, job_id=job_id)
    job.status, job.step, job.finished_at = CANCELLED, step, utcnow()
    session.flush()
    refund_untrained_steps(session=session, job=job)
    return job


def charge_training(*, session: Session, job: TrainingJob, step_price: int, currency: str,
                    price_rule_id: uuid.UUID) -> int:
    """Charge a tenant's job for every step it asks for, once (the posting key is the job's); what it does
    not train is refunded when it is cancelled or fails (:func:`refund_untrained_steps`). The amount.

    A job under a minutes budget (``max_train_minutes``) may plan fewer steps than it asks for, so it is
    never charged by the step: refused rather than billed for steps it might not train."""
    if (job.recipe or {}).get("max_train_minutes") is not None:
        raise ValueError("a job charged by the step must not carry a minutes budget (max_train_minutes)")
    amount = job.total_steps * step_price
    job.details = {**(job.details or {}), "charge": {"amount": amount, "currency": currency, "step_price": step_price,
                                                      "price_rule_id": str(price_rule_id)}}
    if amount > 0 and job.owner_tenant_id is not None:
        ledger_service.post(session=session, entries=[LedgerEntry(
            transaction_id=uuid.uuid4(), posting_key=ledger_service.training_charge_key(job.id),
            period=posting_period(session=session, at=utcnow()), kind="charge",
            debit_account=customer_account(job.owner_tenant_id), credit_account=PLATFORM_REVENUE, amount=amount,
            currency=currency, tenant_id=job.owner_tenant_id, model_id=job.base_model_id, training_job_id=job.id,
            memo=f"custom model training: {job.total_steps} steps at {step_price}")])
    session.flush()
    return amount


def refund_untrained_steps(*, session: Session, job: TrainingJob) -> int:
    """A cancelled or failed job gives back what it did not train: a reversing entry of its charge for the
    steps left, posted at most once (its posting key is the charge's reversal). The amount refunded."""
    charge = (job.details or {}).get("charge") or {}
    amount = max(job.total_steps - job.step, 0) * int(charge.get("step_price", 0))
    original = session.scalar(select(LedgerEntry).where(
        LedgerEntry.posting_key == ledger_service.training_charge_key(job.id))) if amount else None
    if original is None:
        return 0
    refunded = ledger_service.post(session=session, entries=[LedgerEntry(
        transaction_id=uuid.uuid4(), posting_key=ledger_service.reversal_key(original.id),
        period=posting_period(session=session, at=utcnow()), kind="reversal",
        debit_account=original.credit_account, credit_account=original.debit_account,
        amount=min(amount, original.amount), currency=original.currency, tenant_id=original.tenant_id,
        model_id=original.model_id, training_job_id=job.id, reverses_entry_id=original.id,
        memo=f"refund: {job.total_steps - job.step} untrained steps")])
    return min(amount, original.amount) if refunded else 0


def fail_job(*, session: Session, job_id: uuid.UUID, code: str, message: str, details: dict | None = None) -> TrainingJob:
    job = get_job(session=session, job_id=job_id)
    job.status, job.error_code, job.error, job.finished_at = FAILED, code, message[:8000], utcnow()
    job.details = {**(job.details or {}), **(details or {})}
    job.log_tail = (job.log_tail + f"failed: {message[:2000]}\n")[-LOG_TAIL_CHARS:]
    session.flush()
    refund_untrained_steps(session=session, job=job)
    _custom_model_event(session, job, "custom_model.failed", error={"code": code, "message": message[:2000]})
    return job


def record_trained_model(*, session: Session, job_id: uuid.UUID, model_id: uuid.UUID, artifacts: list[dict],
                         step: int, next_stage: str) -> TrainingJob:
    """The weights are registered: the job moves on to its post-training stage. A job re-claimed
    after this point resumes at that stage instead of training again."""
    job = get_job(session=session, job_id=job_id)
    job.result_model_id, job.artifacts, job.step, job.eta_s = model_id, artifacts, step, 0.0
    job.stage, job.stage_progress = next_stage, {}
    session.flush()
    return job


def enter_stage(*, session: Session, job_id: uuid.UUID, stage: str) -> TrainingJob:
    """The job moves on to its next post-training stage (a re-claimed job resumes there)."""
    job = get_job(session=session, job_id=job_id)
    job.stage, job.stage_progress = stage, {}
    session.flush()
    return job


def record_stage_progress(*, session: Session, job_id: uuid.UUID, done: int, total: int,
                          log_line: str | None = None) -> None:
    job = get_job(session=session, job_id=job_id)
    job.stage_progress = {"done": done, "total": total}
    job.heartbeat_at = utcnow()
    if log_line:
        job.log_tail = (job.log_tail + log_line.rstrip() + "\n")[-LOG_TAIL_CHARS:]
    session.flush()


def complete_job(*, session: Session, job_id: uuid.UUID, model_id: uuid.UUID, artifacts: list[dict],
                 step: int) -> TrainingJob:
    job = get_job(session=session, job_id=job_id)
    job.status, job.result_model_id, job.artifacts = SUCCEEDED, model_id, artifacts
    job.step, job.finished_at, job.eta_s = step, utcnow(), 0.0
    session.flush()
    _custom_model_event(session, job, "custom_model.succeeded", model_id=str(model_id))
    return job


def _custom_model_event(session: Session, job: TrainingJob, event_type: str, **data) -> None:
    """A tenant's own training job (a custom model) tells the tenant's webhooks how it is going."""
    webhook_service.record_event(session=session, tenant_id=job.owner_tenant_id, event_type=event_type, data={
        "training_job_id": str(job.id), "name": job.name, "recipe": job.recipe_kind, "status": job.status,
        "step": job.step, "total_steps": job.total_steps, "url": f"/v1/training-jobs/{job.id}", **data})


def stale_jobs(*, session: Session, stale_after: timedelta, now: datetime | None = None) -> list[uuid.UUID]:
    """Running jobs whose worker stopped beating: candidates to hand to a live worker."""
    now = now or utcnow()
    query = select(TrainingJob.id).where(TrainingJob.status == RUNNING, TrainingJob.heartbeat_at < now - stale_after)
    return list(session.scalars(query))


def is_terminal(job: TrainingJob) -> bool:
    return job.status in TERMINAL
