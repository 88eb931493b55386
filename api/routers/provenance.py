"""Provenance verification: upload an image, learn where it came from."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Depends, Request, UploadFile

from api.deps import CurrentPrincipal, GenerationRunnerDep, SessionDep, SettingsDep
from api.errors import ApiError, error_responses
from api.forms import FormFields, file_property, multipart_body, read_form
from foundry.catalog import service as catalog_service
from foundry.generation.verification import verify_image
from provenance.c2pa_manifest import SigningNotConfigured

router = APIRouter(prefix="/v1", tags=["provenance"])


async def verify_upload(request: Request) -> AsyncIterator[UploadFile]:
    """The uploaded image, read only once the caller's key is known to be valid."""
    form = await read_form(request, max_files=1, max_fields=1)
    try:
        fields = FormFields(form)
        image = fields.file("image")
        fields.check()
        yield image
    finally:
        await form.close()


@router.post("/provenance/verify", openapi_extra=multipart_body(
    {"image": file_property("The image to check (PNG, JPEG, WebP, GIF, TIFF).")}, required=["image"]),
    responses=error_responses(503, s503="This deployment has no signing material (provenance_not_configured)."))
def verify(principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, runner: GenerationRunnerDep,
           image: Annotated[UploadFile, Depends(verify_upload)]) -> dict:
    """Reads the C2PA manifest, else the invisible watermark, else looks up the perceptual hash."""
    limit = settings.max_image_bytes
    data = image.file.read(limit + 1)
    if len(data) > limit:
        raise ApiError(413, "file_too_large", f"images are limited to {limit} bytes")
    if not data:
        raise ApiError(422, "empty_file", "the upload is empty")
    try:
        credentials = runner.ensure_signing()
    except SigningNotConfigured as exc:
        raise ApiError(503, "provenance_not_configured", str(exc)) from None
    report = verify_image(session=session, data=data, credentials=credentials,
                          limits=catalog_service.import_options(settings).limits, viewer=principal)
    return asdict(report)
