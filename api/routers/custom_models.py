"""Custom models, self-served by brand customers: a LoRA or fine-tune of a shared licensed base on the
tenant's own brand assets, with progress, cancel and delete (customer keys: their tenant's only)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import CustomerOrAdmin, SessionDep, SettingsDep, tenant_for
from api.errors import error_responses
from api.params import Offset, PageLimit
from foundry.datasets.schemas import CatalogMix
from foundry.models_registry.models import RegisteredModel
from foundry.training_jobs import service as job_service
from foundry.training_jobs.models import TrainingJob
from foundry.usecases import custom_models as custom_usecases
from worker.queue import CeleryQueue

router = APIRouter(prefix="/v1/custom-models", tags=["custom models"])


class BrandSelection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_ids: list[uuid.UUID] = Field(default=[], max_length=10_000)
    tags: list[str] = Field(default=[], max_length=100, description="Brand assets carrying any of these tags.")


class CustomModelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    kind: Literal["lora", "finetune"] = "lora"
    base_model_id: uuid.UUID = Field(description="A shared licensed-only model the tenant may use.")
    brand_assets: BrandSelection
    catalog: CatalogMix | None = Field(
        default=None, description="Licensed catalog images to mix in (prior preservation: the model keeps drawing "
                                  "what the base could). Half the training draws stay with the brand images; the "
                                  "catalog images' licensors share the custom model's fine-tune layer of the pool.")
    steps: int = Field(default=500, ge=1, le=custom_usecases.MAX_CUSTOM_STEPS, strict=True)
    trigger_word: str | None = Field(
        default=None, pattern=r"^[a-z0-9][a-z0-9-]{1,39}$",
        description="The name the model will be prompted with (e.g. the mascot's). Each brand image is trained "
                    "under it with a shuffled, random part of its caption, so the name alone draws the concept "
                    "in any prompt. Screened like a prompt.")
    tenant_id: uuid.UUID | None = Field(default=None, description="Admins only: whose custom model.")


class CustomModelRead(BaseModel):
    id: uuid.UUID
    name: str
    kind: str
    tenant_id: uuid.UUID
    base_model_id: uuid.UUID | None
    snapshot_id: uuid.UUID
    brand_images: int = Field(description="The tenant's own images in the snapshot (they never earn royalties).")
    catalog_images: int = Field(description="Licensed catalog images mixed in.")
    trigger_word: str | None
    status: str
    stage: str
    step: int
    total_steps: int
    progress: float = Field(description="Training steps done, 0 to 1.")
    queue_position: int | None = Field(description="While queued: 1 for the next training job a worker starts, "
                                                   "by the fair rotation across tenants.")
    eta_s: float | None
    model_id: uuid.UUID | None = Field(description="The private registered model, once trained.")
    deleted: bool
    error: dict | None
    charge: dict | None = Field(description="amount, currency, step_price; refunded for untrained steps if cancelled "
                                            "or failed")
    created_at: datetime
    finished_at: datetime | None


def _read(session, job: TrainingJob) -> CustomModelRead:
    model = session.get(RegisteredModel, job.result_model_id) if job.result_model_id else None
    brand, catalog = custom_usecases.image_counts(session=session, job=job)
    return CustomModelRead(brand_images=brand, catalog_images=catalog, trigger_word=(job.recipe or {}).get("brand_trigger"),
        id=job.id, name=job.name, kind=job.recipe_kind, tenant_id=job.owner_tenant_id, base_model_id=job.base_model_id,
        snapshot_id=job.snapshot_id, status=job.status, stage=job.stage, step=job.step, total_steps=job.total_steps,
        progress=round(job.step / job.total_steps, 4) if job.total_steps else 0.0, eta_s=job.eta_s,
        queue_position=job_service.queue_position(session=session, job=job),
        model_id=job.result_model_id, deleted=model is not None and model.retired_at is not None,
        error={"code": job.error_code, "message": job.error} if job.error_code else None,
        charge=(job.details or {}).get("charge"),
        created_at=job.created_at, finished_at=job.finished_at)


@router.post("", status_code=status.HTTP_202_ACCEPTED, response_model=CustomModelRead,
             responses=error_responses(404, 409, 422, s404="No such base model for this tenant, or no price for it.",
                                       s409="The base model no longer serves (model_withdrawn), or the "
                                            "Idempotency-Key was used with another body (idempotency_key_reused).",
                                       s422="No matching brand assets (snapshot_empty), a refused caption "
                                            "(prompt_refused), an unusable base (invalid_base_model)."))
def create_custom_model(principal: CustomerOrAdmin, session: SessionDep, settings: SettingsDep,
                        body: CustomModelCreate,
                        idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None
                        ) -> CustomModelRead:
    """Freeze the chosen brand assets into a snapshot, charge the steps and queue the training job; poll for
    progress. A retry with the same Idempotency-Key returns the same custom model, charged once."""
    job = custom_usecases.create_custom_model(
        session=session, queue=CeleryQueue(settings), tenant_id=tenant_for(principal, body.tenant_id), name=body.name,
        kind=body.kind, base_model_id=body.base_model_id, asset_ids=body.brand_assets.asset_ids,
        tags=body.brand_assets.tags, catalog=body.catalog, trigger_word=body.trigger_word, steps=body.steps,
        requested_by=f"api:{principal.name}",
        style_mode=settings.style_names, idempotency_key=idempotency_key, request=body.model_dump(mode="json"))
    return _read(session, job)


@router.get("", response_model=list[CustomModelRead])
def list_custom_models(principal: CustomerOrAdmin, session: SessionDep,
                       tenant_id: Annotated[uuid.UUID | None, Query(description="Admins only.")] = None,
                       limit: PageLimit = 50, offset: Offset = 0) -> list[CustomModelRead]:
    tenant = tenant_for(principal, tenant_id)
    return [_read(session, job) for job in job_service.list_jobs(session=session, tenant_id=tenant, limit=limit,
                                                                 offset=offset)]


@router.get("/{custom_model_id}", response_model=CustomModelRead, responses=error_responses(404))
def get_custom_model(principal: CustomerOrAdmin, session: SessionDep, custom_model_id: uuid.UUID) -> CustomModelRead:
    return _read(session, custom_usecases.get_custom_model(session=session, job_id=custom_model_id,
                                                           tenant_id=principal.tenant_scope))


@router.post("/{custom_model_id}/cancel", response_model=CustomModelRead,
             responses=error_responses(404, 409, s409="It already finished (training_job_finished)."))
def cancel_custom_model(principal: CustomerOrAdmin, session: SessionDep, custom_model_id: uuid.UUID
                        ) -> CustomModelRead:
    with session.begin():
        return _read(session, custom_usecases.cancel_custom_model(session=session, job_id=custom_model_id,
                                                                  tenant_id=principal.tenant_scope))


@router.delete("/{custom_model_id}", response_model=CustomModelRead, responses=error_responses(404))
def delete_custom_model(principal: CustomerOrAdmin, session: SessionDep, custom_model_id: uuid.UUID
                        ) -> CustomModelRead:
    """Stop it: cancelled if still training, its model no longer serves (weights kept for the audit period)."""
    with session.begin():
        return _read(session, custom_usecases.delete_custom_model(session=session, job_id=custom_model_id,
                                                                  tenant_id=principal.tenant_scope))
