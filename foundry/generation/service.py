"""Accepting, claiming, finishing and reading generations.

The edge owns the transaction; these functions flush. ``finish_generation`` writes a
generation's whole outcome -- images, attribution lines, ledger entries, status -- so the
caller commits all of it or none.
"""

from __future__ import annotations

import base64
import json
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from fractions import Fraction

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundry.blobs import BlobStore
from foundry.catalog.models import Asset
from foundry.db import flushed, utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.fair_queue import TenantQueue, fair_position, next_tenant
from foundry.generation.editing import EditSubmission
from foundry.generation.models import EditInput, GeneratedImage, Generation
from foundry.generation.policy import (
    ModelCapabilities,
    capabilities_of,
    cascade_capabilities,
    request_fingerprint,
    resolve_request,
    serving_mode,
)
from foundry.generation.schemas import GenerationCreate
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.models_registry.policy import serving_problem
from foundry.moderation import service as moderation_service
from foundry.pricing import service as pricing_service
from foundry.royalties import service as royalties_service
from foundry.royalties.policy import Credit
from foundry.royalties.service import Attribution
from foundry.webhooks import service as webhook_service
from recipes import serving_guidance

_capabilities_cache: dict[str, ModelCapabilities] = {}


def model_capabilities(*, session: Session, model: RegisteredModel, blob_store: BlobStore) -> ModelCapabilities:
    """Read from the stored config files of the pipeline the model renders with (a LoRA: its parent's),
    cached per weights digest; the default guidance is the model's own (an adapter's may differ)."""
    pipeline, adapters = registry_service.serving_chain(session=session, model=model)
    guidance = serving_guidance(pipeline.recipe, *(adapter.recipe for adapter in adapters))
    return replace(_pipeline_capabilities(pipeline, registry_service.upscaling_stage(model), blob_store),
                   default_guidance_scale=guidance)


def _pipeline_capabilities(pipeline: RegisteredModel, upscaler: RegisteredModel | None,
                           blob_store: BlobStore) -> ModelCapabilities:
    key = pipeline.weights_sha256 + (f"+{upscaler.weights_sha256}" if upscaler is not None else "")
    cached = _capabilities_cache.get(key)
    if cached is not None:
        return cached

    def reader(stage: RegisteredModel):
        def read_json(relative: str) -> dict | None:
            digest = stage.files.get(relative)
            if digest is None:
                return None
            try:
                return json.loads(blob_store.get(digest))
            except (ValueError, UnicodeDecodeError):
                raise InvalidInput(f"the model's {relative} is not valid JSON", code="model_not_servable") from None
        return read_json

    capabilities = capabilities_of(reader(pipeline))
    if upscaler is not None:
        capabilities = cascade_capabilities(capabilities, reader(upscaler))
    _capabilities_cache[key] = capabilities
    return capabilities


def visible_model(*, session: Session, model_id: uuid.UUID, tenant_id: uuid.UUID | None) -> RegisteredModel:
    """A model the caller may see: shared models, or the tenant's own (anyone else's is 'not found')."""
    model = session.get(RegisteredModel, model_id)
    if model is None or (tenant_id is not None and model.owner_tenant_id not in (None, tenant_id)):
        raise NotFound(f"model {model_id} does not exist", code="model_not_found")
    return model


def servable_model(*, session: Session, model_id: uuid.UUID, tenant_id: uuid.UUID | None) -> RegisteredModel:
    """A visible model that may still serve under its revocation policy."""
    model = visible_model(session=session, model_id=model_id, tenant_id=tenant_id)
    if model.retired_at is not None:
        raise Conflict(f"model {model_id} was deleted by its owner on {model.retired_at.date()}", code="model_withdrawn")
    problem = serving_problem(revocation_policy=model.revocation_policy, grace_days=model.grace_days,
                              rights_affected_at=model.rights_affected_at, now=utcnow())
    if problem:
        raise Conflict(f"model {model_id} no longer serves: {problem}", code="model_withdrawn")
    return model


def list_visible_models(*, session: Session, tenant_id: uuid.UUID | None, limit: int,
                        offset: int) -> list[RegisteredModel]:
    query = select(RegisteredModel)
    if tenant_id is not None:
        query = query.where(or_(RegisteredModel.owner_tenant_id.is_(None), RegisteredModel.owner_tenant_id == tenant_id))
    return list(session.scalars(query.order_by(RegisteredModel.created_at.desc(), RegisteredModel.id)
                                .limit(limit).offset(offset)))


def _by_idempotency_key(session: Session, tenant_id: uuid.UUID, key: str) -> Generation | None:
    return session.scalar(select(Generation).where(Generation.tenant_id == tenant_id,
                                                   Generation.idempotency_key == key))


def _replay(existing: Generation, fingerprint: str) -> Generation:
    if existing.request_sha256 != fingerprint:
        raise Conflict("this Idempotency-Key was used with a different request body", code="idempotency_key_reused",
                       details={"generation_id": str(existing.id)})
    return existing


def submit_generation(*, session: Session, blob_store: BlobStore, tenant_id: uuid.UUID,
                      api_key_id: uuid.UUID | None, body: GenerationCreate, idempotency_key: str | None,
                      sync_limit: float, style_mode: str = "strict", edit: EditSubmission | None = None,
                      input_retention: timedelta = timedelta(days=30)) -> tuple[Generation, bool]:
    """Accept a request: (generation, created). A replayed idempotency key returns the original.

    Its texts are screened first (``moderation.service.screen``): a refused one raises ``PromptRefused``
    with nothing written and nothing charged. An edit also records its inputs (an upload's bytes are kept
    for ``input_retention``; the caller has staged them)."""
    if idempotency_key is not None and not 1 <= len(idempotency_key) <= 200:
        raise InvalidInput("Idempotency-Key must be 1-200 characters", code="invalid_idempotency_key")
    fingerprint = request_fingerprint({**body.model_dump(mode="json"), **(edit.fingerprint() if edit else {})})
    if idempotency_key is not None and (existing := _by_idempotency_key(session, tenant_id, idempotency_key)):
        return _replay(existing, fingerprint), False
    screening = moderation_service.screen(
        session=session, texts={"prompt": body.prompt, "negative_prompt": body.negative_prompt}, style_mode=style_mode)
    model = servable_model(session=session, model_id=body.model_id, tenant_id=tenant_id)
    capabilities = model_capabilities(session=session, model=model, blob_store=blob_store)
    resolved = resolve_request(
        prompt=body.prompt, negative_prompt=body.negative_prompt,
        seed=body.seed if body.seed is not None else secrets.randbelow(2**32), num_images=body.num_images,
        steps=body.steps, guidance_scale=body.guidance_scale, width=body.width, height=body.height,
        scheduler=body.scheduler, capabilities=capabilities)
    if edit is not None:
        resolved = replace(resolved, edit=edit.plan.as_dict())
    rule = pricing_service.price_for(session=session, model_id=model.id, tenant_id=tenant_id)
    generation = Generation(
        tenant_id=tenant_id, api_key_id=api_key_id, model_id=model.id, idempotency_key=idempotency_key,
        request_sha256=fingerprint, request=resolved.as_dict(), prompt=resolved.prompt, seed=resolved.seed,
        num_images=resolved.num_images, status="queued",
        mode=serving_mode(requested=body.mode, request=resolved, capabilities=capabilities, sync_limit=sync_limit),
        price_rule_id=rule.id, unit_price=rule.unit_price, currency=rule.currency,
        named_styles=[str(contributor_id) for contributor_id in screening.named_contributor_ids])
    try:
        with session.begin_nested():
            flushed(session, generation)
            if edit is not None:
                expires_at = utcnow() + input_retention
                session.add_all(EditInput(
                    generation_id=generation.id, role=source.role, relationship=source.relationship,
                    sha256=source.sha256, format=source.format, width=source.width, height=source.height,
                    perceptual_hash=source.perceptual_hash, source_generation_id=source.source_generation_id,
                    source_image_index=source.source_image_index, catalog_asset_id=source.catalog_asset_id,
                    catalog_distance=source.catalog_distance, expires_at=expires_at if source.uploaded else None)
                    for source in edit.sources)
                session.flush()
    except IntegrityError:
        # a concurrent request with the same key won the race: answer with its generation
        existing = _by_idempotency_key(session, tenant_id, idempotency_key) if idempotency_key else None
        if existing is None:
            raise
        return _replay(existing, fingerprint), False
    return generation, True


def edit_inputs(*, session: Session, generation_id: uuid.UUID) -> list[EditInput]:
    """What an edit started from, init first (none for text-to-image)."""
    return sorted(session.scalars(select(EditInput).where(EditInput.generation_id == generation_id)),
                  key=lambda row: row.role != "init")


def pool_credits(*, session: Session, generation: Generation, named_style_share: Fraction,
                 edit_source_share: Fraction) -> list[Credit]:
    """The pool's fixed credits of a generation: the styles its prompt names, then the contributor of the
    catalog image an edit starts from."""
    credits = [Credit("named_style", tuple(uuid.UUID(c) for c in generation.named_styles or ()), named_style_share)]
    sources = session.execute(select(Asset.contributor_id).join(EditInput, EditInput.catalog_asset_id == Asset.id)
                              .where(EditInput.generation_id == generation.id, EditInput.role == "init")).scalars()
    credits.append(Credit("edit_source", tuple(dict.fromkeys(sources)), edit_source_share))
    return [credit for credit in credits if credit.effective]


def purge_edit_inputs(*, session: Session, blob_store: BlobStore, now: datetime, limit: int = 500) -> int:
    """Delete uploaded edit inputs whose retention has ended (their hash and size stay on the row); a blob
    another unexpired input or a catalog asset still holds is kept. Returns the rows purged."""
    due = list(session.scalars(select(EditInput).where(EditInput.expires_at <= now, EditInput.purged_at.is_(None))
                               .order_by(EditInput.expires_at).limit(limit)))
    for row in due:
        still_held = session.scalar(select(func.count()).select_from(EditInput).where(
            EditInput.sha256 == row.sha256, EditInput.id != row.id, EditInput.purged_at.is_(None),
            or_(EditInput.expires_at.is_(None), EditInput.expires_at > now))) or \
            session.scalar(select(func.count()).select_from(Asset).where(Asset.sha256 == row.sha256))
        if not still_held:
            blob_store.delete(row.sha256)
        row.purged_at = now
    session.flush()
    return len(due)


def get_generation(*, session: Session, generation_id: uuid.UUID, tenant_id: uuid.UUID | None) -> Generation:
    """A tenant only ever finds its own generations; admins (tenant_id None) find any."""
    generation = session.get(Generation, generation_id)
    if generation is None or (tenant_id is not None and generation.tenant_id != tenant_id):
        raise NotFound(f"generation {generation_id} does not exist", code="generation_not_found")
    return generation


def images_of(*, session: Session, generation_id: uuid.UUID) -> list[GeneratedImage]:
    return list(session.scalars(select(GeneratedImage).where(GeneratedImage.generation_id == generation_id)
                                .order_by(GeneratedImage.index)))


def get_image(*, session: Session, generation_id: uuid.UUID, index: int, tenant_id: uuid.UUID | None) -> GeneratedImage:
    get_generation(session=session, generation_id=generation_id, tenant_id=tenant_id)
    image = session.scalar(select(GeneratedImage).where(GeneratedImage.generation_id == generation_id,
                                                        GeneratedImage.index == index))
    if image is None:
        raise NotFound(f"generation {generation_id} has no image {index}", code="image_not_found")
    return image


def queue_position(*, session: Session, generation: Generation) -> int | None:
    """1 for the next generation a worker will take (by the fair rotation across tenants); None once it is
    no longer queued."""
    if generation.status != "queued":
        return None
    rank = session.scalar(select(func.count()).select_from(Generation).where(
        Generation.status == "queued", Generation.mode == "async", Generation.tenant_id == generation.tenant_id,
        or_(Generation.created_at < generation.created_at,
            and_(Generation.created_at == generation.created_at, Generation.id < generation.id))))
    tenants = tenant_queues(session=session)
    if generation.tenant_id not in {t.tenant_id for t in tenants}:
        # An async one was taken by a worker since it was read: its status is read again, so that no answer
        # says "queued" without a place. (A small request queued only to be answered at once has none either.)
        if generation.mode == "async":
            session.refresh(generation, attribute_names=["status"])
        return None
    return fair_position(generation.tenant_id, int(rank), tenants)


def tenant_queues(*, session: Session) -> list[TenantQueue]:
    """Each tenant with generations waiting for a worker: how many, how many running, when last served."""
    queued = session.execute(select(Generation.tenant_id, func.count(), func.min(Generation.created_at))
                             .where(Generation.status == "queued", Generation.mode == "async")
                             .group_by(Generation.tenant_id)).all()
    if not queued:
        return []
    tenant_ids = [row[0] for row in queued]
    running = dict(session.execute(select(Generation.tenant_id, func.count()).where(
        Generation.status == "running", Generation.tenant_id.in_(tenant_ids)).group_by(Generation.tenant_id)).all())
    started = dict(session.execute(select(Generation.tenant_id, func.max(Generation.started_at)).where(
        Generation.tenant_id.in_(tenant_ids), Generation.started_at.is_not(None))
        .group_by(Generation.tenant_id)).all())
    return [TenantQueue(tenant_id=tenant_id, queued=count, running=running.get(tenant_id, 0),
                        last_started_at=started.get(tenant_id), oldest_queued_at=oldest)
            for tenant_id, count, oldest in queued]


def claim_next(*, session: Session, concurrency: int, attempts: int = 8) -> uuid.UUID | None:
    """Claim the generation the fair rotation says is next (see ``fair_queue.rotation``); None when nothing is
    waiting or every waiting tenant already runs ``concurrency`` generations. Another worker may claim the
    same one first: then the rotation is read again."""
    for _ in range(attempts):
        tenant = next_tenant(tenant_queues(session=session), concurrency)
        if tenant is None:
            return None
        tenant_id = tenant.tenant_id
        candidate = session.scalar(select(Generation.id).where(
            Generation.status == "queued", Generation.mode == "async", Generation.tenant_id == tenant_id)
            .order_by(Generation.created_at, Generation.id).limit(1))
        if candidate is not None and claim_generation(session=session, generation_id=candidate):
            return candidate
    return None


def encode_cursor(generation: Generation) -> str:
    raw = f"{generation.created_at.isoformat()}|{generation.id}"
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, identifier = raw.partition("|")
        return datetime.fromisoformat(created), uuid.UUID(identifier)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("the cursor is not one this API issued", code="invalid_cursor") from None


def list_generations(*, session: Session, tenant_id: uuid.UUID | None, limit: int,
                     cursor: str | None = None) -> tuple[list[Generation], str | None]:
    """A page of generations, newest first, with a keyset cursor for the next page."""
    query = select(Generation)
    if tenant_id is not None:
        query = query.where(Generation.tenant_id == tenant_id)
    if cursor:
        created, identifier = decode_cursor(cursor)
        query = query.where(or_(Generation.created_at < created,
                                and_(Generation.created_at == created, Generation.id < identifier)))
    rows = list(session.scalars(query.order_by(Generation.created_at.desc(), Generation.id.desc()).limit(limit + 1)))
    page = rows[:limit]
    return page, (encode_cursor(page[-1]) if len(rows) > limit else None)


def claim_generation(*, session: Session, generation_id: uuid.UUID) -> bool:
    """queued -> running, in one conditional UPDATE: exactly one worker wins a generation."""
    result = session.execute(update(Generation).where(Generation.id == generation_id, Generation.status == "queued")
                             .values(status="running", started_at=utcnow()))
    return result.rowcount == 1


def release_stale(*, session: Session, older_than: datetime) -> list[uuid.UUID]:
    """Generations left running by a dead worker go back to the queue (nothing of theirs was written)."""
    stale = list(session.scalars(select(Generation.id).where(Generation.status == "running",
                                                             Generation.started_at < older_than)))
    if stale:
        session.execute(update(Generation).where(Generation.id.in_(stale), Generation.status == "running")
                        .values(status="queued", started_at=None, mode="async"))  # a worker serves it now
    return stale


@dataclass(frozen=True)
class DeliveredImage:
    index: int
    raw_sha256: str
    delivery_sha256: str
    width: int
    height: int
    delivery_width: int
    delivery_height: int
    perceptual_hash: str
    watermark_id: str
    nearest_asset_id: uuid.UUID | None
    nearest_distance: int | None
    near_duplicate: bool
    influence: list[dict] | None = None


def finish_generation(*, session: Session, generation: Generation, model: RegisteredModel,
                      images: list[DeliveredImage], attribution: Attribution, timings: dict) -> Generation:
    """The generation's whole outcome, in the caller's transaction."""
    if generation.status != "running":
        raise Conflict(f"generation {generation.id} is {generation.status}, not running", code="generation_not_running")
    session.add_all(GeneratedImage(generation_id=generation.id, **image.__dict__) for image in images)
    royalties_service.post_generation(session=session, generation_id=generation.id, tenant_id=generation.tenant_id,
                                      model_id=model.id, attribution=attribution)
    generation.charge_amount = attribution.charge
    generation.pool_amount = attribution.pool
    generation.attribution = attribution_summary(attribution)
    generation.timings = timings
    generation.status = "succeeded"
    generation.finished_at = utcnow()
    session.flush()
    webhook_service.record_event(session=session, tenant_id=generation.tenant_id, event_type="generation.succeeded",
                                 data={**_event_data(generation), "images": [
                                     {"index": image.index, "url": f"/v1/generations/{generation.id}/images/{image.index}",
                                      "width": image.delivery_width, "height": image.delivery_height}
                                     for image in images],
                                     "charge": {"amount": attribution.charge, "currency": attribution.currency}})
    return generation


def _event_data(generation: Generation) -> dict:
    return {"generation_id": str(generation.id), "model_id": str(generation.model_id), "status": generation.status,
            "num_images": generation.num_images, "url": f"/v1/generations/{generation.id}"}


def fail_generation(*, session: Session, generation_id: uuid.UUID, code: str, message: str) -> None:
    """A failed generation is never charged; it keeps why it failed."""
    failed = session.execute(update(Generation).where(Generation.id == generation_id,
                                                      Generation.status.in_(("queued", "running")))
                             .values(status="failed", error_code=code, error_message=message[:2000],
                                     finished_at=utcnow()))
    if failed.rowcount == 1:
        generation = session.get(Generation, generation_id, populate_existing=True)
        webhook_service.record_event(session=session, tenant_id=generation.tenant_id, event_type="generation.failed",
                                     data={**_event_data(generation), "error": {"code": code,
                                                                                "message": message[:2000]}})


def attribution_summary(attribution: Attribution) -> dict:
    return {
        "method": attribution.method, "currency": attribution.currency, "charge": attribution.charge,
        "pool": attribution.pool, "platform": attribution.platform, "parameters": attribution.parameters,
        "contributors": [{"contributor_id": str(share.contributor_id), "method": share.method,
                          "share": f"{share.weight.numerator}/{share.weight.denominator}",
                          "amount": share.amount, "asset_count": share.asset_count}
                         for share in attribution.shares],
    }


def refund_generation(*, session: Session, generation_id: uuid.UUID, reason: str) -> Generation:
    """Reverse the generation's charge and royalties; a second refund is a no-op."""
    generation = get_generation(session=session, generation_id=generation_id, tenant_id=None)
    if generation.status != "succeeded":
        raise Conflict(f"generation {generation_id} is {generation.status}; only succeeded ones are refunded",
                       code="generation_not_refundable")
    if generation.charge_amount:
        royalties_service.reverse_generation(session=session, generation_id=generation_id, reason=reason)
    if generation.refunded_at is None:
        generation.refunded_at = utcnow()
    session.flush()
    return generation

