"""Generation routes for brand customers: request, poll, fetch images, page through history."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import asdict
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from api.deps import (
    AdminPrincipal,
    BlobStoreDep,
    CustomerOrAdmin,
    CustomerPrincipal,
    GenerationRunnerDep,
    SessionDep,
    SettingsDep,
)
from api.errors import ApiError, error_body, error_responses
from api.params import Cursor, ImageIndex
from foundry.generation import service as generation_service
from foundry.generation.models import Generation
from foundry.generation.schemas import (
    AttributionRead,
    EditInputRead,
    GeneratedImageRead,
    GenerationCreate,
    GenerationPage,
    GenerationRead,
)
from foundry.royalties import service as royalties_service
from foundry.usecases import evidence as evidence_usecases
from foundry.usecases import generation as generation_usecases
from provenance.c2pa_manifest import SigningNotConfigured
from worker.queue import CeleryQueue

router = APIRouter(prefix="/v1", tags=["generations"])

_FAILURE_STATUS = {"provenance_not_configured": 503, "model_not_found": 409, "model_not_servable": 409,
                   "model_withdrawn": 409}


def generation_read(session, generation: Generation) -> GenerationRead:
    position = generation_service.queue_position(session=session, generation=generation)  # first: it may re-read
    images = generation_service.images_of(session=session, generation_id=generation.id)
    attribution = None
    if generation.status == "succeeded":
        attribution = AttributionRead(
            method=generation.attribution["method"], currency=generation.currency,
            charge=generation.attribution["charge"], pool=generation.attribution["pool"],
            platform=generation.attribution["platform"],
            contributors=[{"contributor_id": line.contributor_id, "display_name": name, "method": line.method,
                           "share": line.weight, "share_ppm": line.share_ppm, "amount": line.amount,
                           "asset_count": line.asset_count, "top_assets": line.top_assets}
                          for line, name in royalties_service.attribution_lines(session=session,
                                                                                generation_id=generation.id)])
    return GenerationRead(
        id=generation.id, status=generation.status, mode=generation.mode, model_id=generation.model_id,
        tenant_id=generation.tenant_id, prompt=generation.prompt, seed=generation.seed,
        num_images=generation.num_images, request=generation.request,
        queue_position=position,
        created_at=generation.created_at, started_at=generation.started_at, finished_at=generation.finished_at,
        error={"code": generation.error_code, "message": generation.error_message} if generation.error_code else None,
        price={"unit_price": generation.unit_price, "currency": generation.currency,
               "charge": generation.charge_amount, "price_rule_id": str(generation.price_rule_id)},
        images=[GeneratedImageRead(url=f"/v1/generations/{generation.id}/images/{image.index}",
                                   **{k: getattr(image, k) for k in GeneratedImageRead.model_fields if k != "url"})
                for image in images],
        attribution=attribution, near_duplicate=any(image.near_duplicate for image in images),
        inputs=[EditInputRead.model_validate(row)
                for row in generation_service.edit_inputs(session=session, generation_id=generation.id)],
        refunded=generation.refunded_at is not None,
    )


def generation_answer(session, generation: Generation) -> JSONResponse:
    """200 with the generation when it is done, 202 with its Location while queued, the error when it failed."""
    body = generation_read(session, generation)
    if generation.status == "failed":
        code = generation.error_code or "generation_failed"
        return JSONResponse(error_body(code, generation.error_message or "the generation failed",
                                       generation_id=str(generation.id)),
                            status_code=_FAILURE_STATUS.get(code, 500))
    status = 200 if generation.status == "succeeded" else 202
    headers = {"Location": f"/v1/generations/{generation.id}"}
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


@router.post("/generations", response_model=GenerationRead, responses={
    202: {"model": GenerationRead, "description": "Queued: poll the Location."},
    **error_responses(404, 409, 503, s404="No such model for this tenant, or no price is configured for it.",
                      s409="The Idempotency-Key was used with another body, or the model no longer serves.")})
def create_generation(principal: CustomerPrincipal, session: SessionDep, settings: SettingsDep,
                      blob_store: BlobStoreDep, runner: GenerationRunnerDep, body: GenerationCreate,
                      idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> Response:
    """Small requests are answered at once (200); larger ones, or ``mode: async``, queue (202)."""
    return answer_started(session, principal, lambda: generation_usecases.start_generation(
        session=session, runner=runner, queue=CeleryQueue(settings), blob_store=blob_store,
        tenant_id=principal.tenant_id, api_key_id=principal.key_id, body=body, idempotency_key=idempotency_key,
        sync_limit=settings.sync_work_limit))


def answer_started(session, principal, start: Callable[[], Generation]) -> Response:
    """Run a use case that starts a generation (text-to-image, an edit, a variation) and answer with it; a
    deployment that cannot sign outputs is 503 before anything is written."""
    try:
        generation = start()
    except SigningNotConfigured as exc:
        raise ApiError(503, "provenance_not_configured", str(exc)) from None
    return generation_answer(session, generation_service.get_generation(session=session, generation_id=generation.id,
                                                               tenant_id=principal.tenant_id))


@router.get("/generations", response_model=GenerationPage)
def list_generations(principal: CustomerOrAdmin, session: SessionDep,
                     limit: Annotated[int, Query(ge=1, le=100)] = 20,
                     cursor: Cursor = None,
                     tenant_id: Annotated[uuid.UUID | None, Query(description="Admins only.")] = None,
                     ) -> GenerationPage:
    if not principal.is_admin:
        if tenant_id not in (None, principal.tenant_id):
            raise ApiError(403, "forbidden", "a customer key reads only its own tenant's generations")
        tenant_id = principal.tenant_id
    page, next_cursor = generation_service.list_generations(session=session, tenant_id=tenant_id, limit=limit,
                                                            cursor=cursor)
    return GenerationPage(items=[generation_read(session, g) for g in page], next_cursor=next_cursor)


@router.get("/generations/{generation_id}", response_model=GenerationRead)
def get_generation(principal: CustomerOrAdmin, session: SessionDep, generation_id: uuid.UUID) -> GenerationRead:
    generation = generation_service.get_generation(session=session, generation_id=generation_id,
                                                   tenant_id=None if principal.is_admin else principal.tenant_id)
    return generation_read(session, generation)


class EvidenceAssetRead(BaseModel):
    asset_id: uuid.UUID
    contributor_id: uuid.UUID
    display_name: str
    caption: str
    role: Literal["evidence", "paid"] = Field(description="evidence: among the output's most influential images by the evidence score; "
                                  "paid: not among them, but among the images its influence pool paid most.")
    share_ppm: int = Field(description="The training image's part of this output's influence pool, in millionths "
                                       "(0: not paid by influence, or by less than one millionth).")
    score: float | None = Field(description="Its evidence score (comparable within one model's index); null when "
                                            "the evidence search did not score it.")
    payment_score: float | None = Field(description="The score that split the pool (method version 3 scores "
                                                    "payment in its own view; before, the evidence score); null when the payment view's candidate "
                                                    "search (indexes of many images) did not score it.")


class OutputEvidenceRead(BaseModel):
    index: int
    url: str = Field(description="The output (add ?variant=raw for the pipeline's own pixels).")
    scored: bool = Field(description="False: not scored (no index, or a blank or noise output paid pro rata).")
    assets: list[EvidenceAssetRead] = Field(description="Its most influential training images, largest evidence "
                                                        "score first, then the best-paid others.")


class PaidLineRead(BaseModel):
    contributor_id: uuid.UUID
    display_name: str
    method: str
    share_ppm: int
    amount: int


class GenerationEvidenceRead(BaseModel):
    generation_id: uuid.UUID
    model_id: uuid.UUID
    prompt: str
    method: str = Field(description="How the pool was split: pro_rata, or blend (influence and pro rata).")
    influence: dict | None = Field(description="The influence method, version and index that scored the outputs.")
    currency: str
    pool: int
    outputs: list[OutputEvidenceRead]
    paid: list[PaidLineRead]


@router.get("/generations/{generation_id}/attribution", response_model=GenerationEvidenceRead)
def get_generation_attribution(principal: CustomerOrAdmin, session: SessionDep,
                               generation_id: uuid.UUID) -> GenerationEvidenceRead:
    """Each output beside the training images that shaped it most, with their scores, and who was paid what."""
    evidence = evidence_usecases.generation_evidence(
        session=session, generation_id=generation_id, tenant_id=None if principal.is_admin else principal.tenant_id)
    generation = evidence.generation
    return GenerationEvidenceRead(
        generation_id=generation.id, model_id=generation.model_id, prompt=generation.prompt, method=evidence.method,
        influence=evidence.influence, currency=generation.currency, pool=generation.attribution["pool"],
        outputs=[OutputEvidenceRead(index=output.index, url=f"/v1/generations/{generation.id}/images/{output.index}",
                                    scored=output.scored, assets=[EvidenceAssetRead(**asdict(a)) for a in output.assets])
                 for output in evidence.outputs],
        paid=[PaidLineRead(**asdict(line)) for line in evidence.paid])


@router.get("/generations/{generation_id}/images/{index}", response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def get_generation_image(principal: CustomerOrAdmin, session: SessionDep, blob_store: BlobStoreDep,
                         generation_id: uuid.UUID, index: ImageIndex,
                         variant: Annotated[Literal["delivery", "raw"], Query()] = "delivery") -> Response:
    """The delivered PNG (watermarked, with Content Credentials), or the pipeline's raw output."""
    image = generation_service.get_image(session=session, generation_id=generation_id, index=index,
                                         tenant_id=None if principal.is_admin else principal.tenant_id)
    digest = image.delivery_sha256 if variant == "delivery" else image.raw_sha256
    return Response(blob_store.get(digest), media_type="image/png",
                    headers={"ETag": f'"{digest}"', "Cache-Control": "private, max-age=31536000, immutable"})


@router.post("/generations/{generation_id}/refund", response_model=GenerationRead,
             responses=error_responses(409, s409="Only succeeded generations are refunded."))
def refund_generation(_principal: AdminPrincipal, session: SessionDep, generation_id: uuid.UUID,
                      reason: Annotated[str, Query(min_length=1, max_length=400)]) -> GenerationRead:
    """Reverse the charge and royalties with new ledger entries (a second refund adds none)."""
    with session.begin():
        generation = generation_service.refund_generation(session=session, generation_id=generation_id,
                                                          reason=reason)
    return generation_read(session, generation)

