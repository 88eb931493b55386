"""Models' influence attribution: the index generations use, its rebuilds, and the blend's alpha."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request, status

from api.deps import AdminPrincipal, SessionDep
from foundry.attribution import service as attribution_service
from foundry.attribution.schemas import AttributionIndexRead, AttributionPolicyRead, AttributionPolicyUpdate
from foundry.models_registry import service as registry_service
from foundry.usecases.indexing import request_index_build
from worker.queue import CeleryQueue

router = APIRouter(prefix="/v1", tags=["attribution"])


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
