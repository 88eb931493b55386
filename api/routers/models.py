"""``/v1/models/...``: the registry as the API shows it -- listing and lineage (customers see the shared
models and their own fine-tunes), and the admin's levers on a model: its influence attribution (alpha,
indexes, rebuilds) and its revocation policy."""

from __future__ import annotations

import uuid
from typing import Literal

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminPrincipal, BlobStoreDep, CustomerOrAdmin, SessionDep
from api.params import Offset, PageLimit
from foundry.attribution import service as attribution_service
from foundry.attribution.schemas import AttributionIndexRead, AttributionPolicyRead, AttributionPolicyUpdate
from foundry.errors import NotFound
from foundry.generation import service as generation_service
from foundry.models_registry import service as registry_service
from foundry.models_registry.schemas import LineageStep, ModelRead
from foundry.quality import service as quality_service
from foundry.quality.schemas import ModelWithQuality
from foundry.usecases.indexing import request_index_build
from worker.queue import CeleryQueue

router = APIRouter(prefix="/v1", tags=["models"])


class RevocationPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Literal["keep_serving", "stop_after_grace"]
    grace_days: int = Field(default=30, ge=0, le=3650, strict=True)


@router.get("/models", response_model=list[ModelRead])
def list_models(principal: CustomerOrAdmin, session: SessionDep, limit: PageLimit = 50,
                offset: Offset = 0) -> list[ModelRead]:
    """Admins see every model; a customer sees the shared models and its own fine-tunes."""
    models = generation_service.list_visible_models(session=session, tenant_id=principal.tenant_scope,
                                                    limit=limit, offset=offset)
    return [ModelRead.model_validate(m) for m in models]


@router.get("/models/{model_id}", response_model=ModelWithQuality)
def get_model(principal: CustomerOrAdmin, session: SessionDep, model_id: uuid.UUID) -> ModelWithQuality:
    """The model, with its newest quality measurement (null until measured)."""
    model = generation_service.visible_model(session=session, model_id=model_id, tenant_id=principal.tenant_scope)
    return ModelWithQuality.model_validate(model).model_copy(
        update={"quality": quality_service.latest_measurement(session=session, model_id=model.id)})


@router.get("/models/{model_id}/quality/sheet", response_class=Response,
            responses={200: {"content": {"image/png": {}}, "description": "The contact sheet (PNG)."}})
def get_quality_sheet(principal: CustomerOrAdmin, session: SessionDep, blob_store: BlobStoreDep,
                      model_id: uuid.UUID) -> Response:
    """The contact sheet of the model's newest measurement: held-out prompts by seeds, native and delivered size."""
    generation_service.visible_model(session=session, model_id=model_id, tenant_id=principal.tenant_scope)
    measurement = quality_service.require_measurement(session=session, model_id=model_id)
    if measurement.sheet_sha256 is None:
        raise NotFound(f"the newest measurement of model {model_id} has no contact sheet",
                       code="model_quality_not_found")
    return Response(blob_store.get(measurement.sheet_sha256), media_type="image/png")


@router.get("/models/{model_id}/lineage", response_model=list[LineageStep])
def get_lineage(principal: CustomerOrAdmin, session: SessionDep, model_id: uuid.UUID) -> list[LineageStep]:
    generation_service.visible_model(session=session, model_id=model_id, tenant_id=principal.tenant_scope)
    return [LineageStep(model_id=m.id, name=m.name, kind=m.kind, snapshot_id=m.snapshot_id,
                        snapshot_merkle_root=m.snapshot_merkle_root, weights_sha256=m.weights_sha256,
                        licensed_only=m.licensed_only)
            for m in registry_service.lineage(session=session, model_id=model_id)]


def _policy(session, model_id: uuid.UUID) -> AttributionPolicyRead:
    model = registry_service.get_model(session=session, model_id=model_id)
    index = attribution_service.active_index(session=session, model=model)
    return AttributionPolicyRead(model_id=model.id, influence_alpha_bps=model.influence_alpha_bps,
                                 index=AttributionIndexRead.model_validate(index) if index else None)


@router.get("/models/{model_id}/attribution", response_model=AttributionPolicyRead)
def get_attribution_policy(_principal: AdminPrincipal, session: SessionDep, model_id: uuid.UUID):
    return _policy(session, model_id)


@router.put("/models/{model_id}/attribution", response_model=AttributionPolicyRead)
def set_attribution_policy(_principal: AdminPrincipal, session: SessionDep, model_id: uuid.UUID,
                           body: AttributionPolicyUpdate):
    with session.begin():
        attribution_service.set_influence_alpha(session=session, model_id=model_id,
                                                alpha_bps=body.influence_alpha_bps)
    return _policy(session, model_id)


@router.get("/models/{model_id}/attribution-indexes", response_model=list[AttributionIndexRead])
def list_attribution_indexes(_principal: AdminPrincipal, session: SessionDep, model_id: uuid.UUID):
    return attribution_service.list_indexes(session=session, model_id=model_id)


@router.post("/models/{model_id}/attribution-indexes", status_code=status.HTTP_202_ACCEPTED)
def rebuild_attribution_index(_principal: AdminPrincipal, session: SessionDep, model_id: uuid.UUID,
                              request: Request) -> dict:
    """Queue a rebuild on the training workers (one gradient per training image: minutes, not a request)."""
    request_index_build(session=session, queue=CeleryQueue(request.app.state.settings), model_id=model_id)
    return {"model_id": model_id, "status": "queued"}


@router.put("/models/{model_id}/revocation-policy")
def set_revocation_policy(_principal: AdminPrincipal, session: SessionDep, model_id: uuid.UUID,
                          body: RevocationPolicy) -> dict:
    with session.begin():
        model = registry_service.set_revocation_policy(session=session, model_id=model_id, policy=body.policy,
                                                       grace_days=body.grace_days)
        return {"model_id": model.id, "policy": model.revocation_policy, "grace_days": model.grace_days,
                "rights_affected_at": model.rights_affected_at}
