"""Image edits for brand customers: image-to-image, inpainting, outpainting of an upload, and variations of
an earlier output. Each answers like ``POST /v1/generations`` (200 done, 202 queued) and is charged,
attributed, watermarked and signed like one; its inputs are the outputs' C2PA ingredients."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from api.deps import BlobStoreDep, CustomerPrincipal, GenerationRunnerDep, SessionDep, SettingsDep
from api.errors import ApiError, error_responses
from api.forms import FormFields, file_property, multipart_body, read_form
from api.routers.generations import answer_started
from foundry.generation.schemas import EditCreate, GenerationRead, VariationCreate
from foundry.usecases import editing as editing_usecases
from worker.queue import CeleryQueue

router = APIRouter(prefix="/v1", tags=["edits"])

_EDIT_FIELDS = tuple(name for name in EditCreate.model_fields)


@dataclass
class EditForm:
    body: EditCreate
    image: bytes
    mask: bytes | None


def _read_file(upload: UploadFile, limit: int, name: str) -> bytes:
    data = upload.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "request_too_large", f"{name}: images are limited to {limit} bytes")
    return data


async def edit_form(request: Request, _principal: CustomerPrincipal, settings: SettingsDep) -> AsyncIterator[EditForm]:
    """The edit's form, read only once the caller is known to be a customer."""
    form = await read_form(request, max_files=2, max_fields=len(_EDIT_FIELDS) + 2)
    try:
        fields = FormFields(form)
        image = fields.file("image")
        mask = fields.file("mask", required=False)
        values = {name: value for name, value in form.items() if name in _EDIT_FIELDS and isinstance(value, str)}
        for name in form:
            if name not in _EDIT_FIELDS and name not in ("image", "mask"):
                fields.problem(name, "extra_forbidden", "Extra inputs are not permitted")
        body = None
        try:
            body = EditCreate(**{name: (None if value == "" and name in ("seed", "guidance_scale", "strength",
                                                                        "width", "height") else value)
                                 for name, value in values.items()})
        except ValidationError as invalid:
            fields.errors.extend({**error, "loc": ("body", *error["loc"])} for error in invalid.errors())
        fields.check()
        if body is None:
            raise RequestValidationError(fields.errors)
        yield EditForm(body=body, image=_read_file(image, settings.max_image_bytes, "image"),
                       mask=_read_file(mask, settings.max_image_bytes, "mask") if mask is not None else None)
    finally:
        await form.close()


_EDIT_BODY = multipart_body({
    "image": file_property("The image to edit (PNG, JPEG, WebP, GIF, TIFF or SVG), checked like a catalog image."),
    "mask": file_property("inpaint only: white (or transparent) where to paint, black where to keep; the image's size."),
    "operation": {"type": "string", "enum": ["image_to_image", "inpaint", "outpaint"]},
    "model_id": {"type": "string", "format": "uuid"},
    "prompt": {"type": "string", "maxLength": 2000},
    "negative_prompt": {"type": "string", "maxLength": 2000},
    "strength": {"type": "number", "exclusiveMinimum": 0, "maximum": 1,
                 "description": "Default 0.6 (image_to_image), 1 (inpaint, outpaint)."},
    **{f"pad_{side}": {"type": "integer", "minimum": 0, "description": f"outpaint: pixels added on the {side}."}
       for side in ("left", "top", "right", "bottom")},
    "seed": {"type": "integer", "minimum": 0},
    "num_images": {"type": "integer", "minimum": 1, "maximum": 8},
    "steps": {"type": "integer", "minimum": 1, "maximum": 150},
    "guidance_scale": {"type": "number", "minimum": 0, "maximum": 30},
    "scheduler": {"type": "string"},
    "mode": {"type": "string", "enum": ["auto", "async"]},
}, required=["image", "operation", "model_id", "prompt"])

_EDIT_ERRORS = error_responses(404, 409, 413, 503, s404="No such model for this tenant, or no price for it.",
                               s409="The Idempotency-Key was used with another body, or the model no longer serves.")


@router.post("/edits", response_model=GenerationRead, openapi_extra=_EDIT_BODY, responses={
    202: {"model": GenerationRead, "description": "Queued: poll the Location."}, **_EDIT_ERRORS})
def create_edit(principal: CustomerPrincipal, session: SessionDep, settings: SettingsDep, blob_store: BlobStoreDep,
                runner: GenerationRunnerDep, form: Annotated[EditForm, Depends(edit_form)],
                idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> Response:
    """Edit an uploaded image on the model's square canvas: ``image_to_image`` redraws it as far as
    ``strength`` says, ``inpaint`` repaints where the mask is white, ``outpaint`` extends it by the padding.
    A bad upload is 422 ``edit_input_rejected`` (``details.reason``: the catalog's rejection code), an image of
    the licensed catalog may be 422 ``edit_input_in_catalog``; nothing is written or charged then."""
    return answer_started(session, principal, lambda: editing_usecases.start_edit(
        session=session, runner=runner, queue=CeleryQueue(settings), blob_store=blob_store,
        tenant_id=principal.tenant_id, api_key_id=principal.key_id, body=form.body, image=form.image,
        mask=form.mask, idempotency_key=idempotency_key, sync_limit=settings.sync_work_limit))


@router.post("/variations", response_model=GenerationRead, responses={
    202: {"model": GenerationRead, "description": "Queued: poll the Location."}, **_EDIT_ERRORS})
def create_variation(principal: CustomerPrincipal, session: SessionDep, settings: SettingsDep,
                     blob_store: BlobStoreDep, runner: GenerationRunnerDep, body: VariationCreate,
                     idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key")] = None) -> Response:
    """Variations of one of this tenant's outputs (``generation_id``, ``image_index``): its raw pixels redrawn
    as far as ``strength`` says, with its prompt and model unless others are named."""
    return answer_started(session, principal, lambda: editing_usecases.start_variation(
        session=session, runner=runner, queue=CeleryQueue(settings), blob_store=blob_store,
        tenant_id=principal.tenant_id, api_key_id=principal.key_id, body=body, idempotency_key=idempotency_key,
        sync_limit=settings.sync_work_limit))
