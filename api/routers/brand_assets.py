"""Brand assets, self-served by brand customers: upload with a rights attestation, list with thumbnails,
withdraw. Customer keys act for their own tenant; admin keys name the tenant."""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response, status
from pydantic import BaseModel, Field
from starlette.datastructures import UploadFile

from api.deps import BlobStoreDep, CustomerOrAdmin, SessionDep, SettingsDep, tenant_for
from api.errors import error_responses
from api.forms import FormFields, file_property, multipart_body, read_form, save_upload
from api.params import Offset, PageLimit
from foundry.catalog import service as catalog_service
from foundry.catalog.schemas import ImportRead
from foundry.usecases import brand_assets as brand_usecases
from foundry.usecases.brand_assets import ATTESTATION, MAX_FILES_PER_UPLOAD, BrandUpload

router = APIRouter(prefix="/v1/brand-assets", tags=["brand assets"])


@dataclass
class BrandForm:
    tenant_id: uuid.UUID
    folder: Path
    uploads: list[BrandUpload]
    attested_by: str


async def brand_form(request: Request, principal: CustomerOrAdmin, settings: SettingsDep,
                     session: SessionDep) -> AsyncIterator[BrandForm]:
    """The upload, read only after the role check, and for a customer only once its quota has room."""
    if not principal.is_admin:
        brand_usecases.remaining_quota(settings, session=session, tenant_id=principal.tenant_id)
        session.rollback()  # the quota read ends here; the import opens its own transaction
    form = await read_form(request, max_files=MAX_FILES_PER_UPLOAD, max_fields=MAX_FILES_PER_UPLOAD + 8)
    try:
        fields = FormFields(form)
        files = [value for value in form.getlist("files") if isinstance(value, UploadFile)]
        if not files:
            fields.problem("files", "missing", "Field required: one or more image files")
        captions = [value for value in form.getlist("captions") if isinstance(value, str)]
        if captions and len(captions) != len(files):
            fields.problem("captions", "value_error", "give one caption per file, in the same order, or none")
        if form.get("attest") != "true":
            fields.problem("attest", "value_error", f"attest must be 'true': {ATTESTATION}")
        attested_by = form.get("attested_by")
        if not isinstance(attested_by, str) or not attested_by.strip():
            fields.problem("attested_by", "missing", "name who makes the rights statement")
        tags = form.get("tags")
        tenant = fields.optional_uuid("tenant_id")
        fields.check()
        tenant_id = tenant_for(principal, tenant)
        tag_list = tuple(t.strip() for t in re.split(r"[;,]", tags) if t.strip()) if isinstance(tags, str) else ()
        with tempfile.TemporaryDirectory(prefix="foundry-brand-upload-") as tmp:
            folder, budget, uploads = Path(tmp), settings.max_upload_bytes, []
            for number, upload in enumerate(files):
                name = Path(upload.filename or f"image-{number}").name
                stored_as = f"{number:03d}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[:120]}"
                budget -= save_upload(upload, folder / stored_as, budget)
                uploads.append(BrandUpload(filename=name, stored_as=stored_as,
                                           caption=(captions[number] if captions else "").strip()
                                           or brand_usecases.caption_from_filename(name), tags=tag_list))
            yield BrandForm(tenant_id=tenant_id, folder=folder, uploads=uploads, attested_by=attested_by.strip())
    finally:
        await form.close()


_UPLOAD_BODY = multipart_body({
    "files": {"type": "array", "items": file_property("an image (PNG, JPEG, WebP, SVG...)"), "maxItems": 100},
    "captions": {"type": "array", "items": {"type": "string"},
                 "description": "One caption per file, in order (default: from the file name)."},
    "tags": {"type": "string", "description": "Tags for every file, separated by commas."},
    "attest": {"type": "string", "enum": ["true"], "description": ATTESTATION},
    "attested_by": {"type": "string", "description": "Who makes the statement (recorded with each asset)."},
    "tenant_id": {"type": "string", "format": "uuid", "description": "Admins only: whose brand assets."},
}, required=["files", "attest", "attested_by"])


@router.post("", status_code=status.HTTP_201_CREATED, response_model=ImportRead, openapi_extra=_UPLOAD_BODY,
             responses=error_responses(404, 409, 413, s404="tenant_id names no tenant.",
                                       s409="The tenant's brand-asset quota is used up (brand_asset_quota_exceeded)."))
def upload_brand_assets(principal: CustomerOrAdmin, settings: SettingsDep, blob_store: BlobStoreDep,
                        form: Annotated[BrandForm, Depends(brand_form)]) -> ImportRead:
    """Onboard images as the tenant's own brand assets: the catalog's pipeline (every rejection reported per
    file, nothing half-written), used only by the tenant's own custom models, never paid royalties."""
    batch = brand_usecases.upload_brand_assets(
        settings, tenant_id=form.tenant_id, folder=form.folder, uploads=form.uploads, attested_by=form.attested_by,
        api_key_id=principal.key_id, requested_by=f"api:{principal.name}", blob_store=blob_store)
    return ImportRead.model_validate(batch)


class BrandAssetRead(BaseModel):
    id: uuid.UUID
    caption: str
    tags: list[str]
    format: str
    width: int
    height: int
    byte_size: int
    sha256: str
    created_at: datetime
    licensed: bool = Field(description="False once withdrawn: no later snapshot or training step uses it.")
    attestation: dict | None
    thumbnail_url: str


@router.get("", response_model=list[BrandAssetRead])
def list_brand_assets(principal: CustomerOrAdmin, session: SessionDep,
                      tenant_id: Annotated[uuid.UUID | None, Query(description="Admins only.")] = None,
                      limit: PageLimit = 50, offset: Offset = 0) -> list[BrandAssetRead]:
    tenant = tenant_for(principal, tenant_id)
    return [BrandAssetRead(id=asset.id, caption=asset.caption, tags=asset.tags, format=asset.format,
                           width=asset.width, height=asset.height, byte_size=asset.byte_size, sha256=asset.sha256,
                           created_at=asset.created_at, licensed=licensed, attestation=asset.attestation,
                           thumbnail_url=f"/v1/brand-assets/{asset.id}/thumbnail")
            for asset, licensed in catalog_service.list_brand_assets(session=session, tenant_id=tenant, limit=limit,
                                                                      offset=offset)]


@router.get("/{asset_id}/thumbnail", response_class=Response, responses={
    200: {"content": {"image/png": {}}, "description": "The training rendition (PNG)."}, **error_responses(404)})
def brand_asset_thumbnail(principal: CustomerOrAdmin, session: SessionDep, blob_store: BlobStoreDep,
                          asset_id: uuid.UUID) -> Response:
    asset = catalog_service.get_brand_asset(session=session, tenant_id=principal.tenant_scope, asset_id=asset_id)
    return Response(blob_store.get(asset.rendition_sha256), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400"})


@router.delete("/{asset_id}", responses=error_responses(404, 409, s409="Already withdrawn (already_withdrawn)."))
def withdraw_brand_asset(principal: CustomerOrAdmin, session: SessionDep, asset_id: uuid.UUID,
                         reason: Annotated[str, Query(min_length=1, max_length=2000)] = "deleted by the tenant"
                         ) -> dict:
    """Withdraw it from every future snapshot and from custom models still training (at their next licence
    check); models already trained keep the tenant's revocation policy."""
    with session.begin():
        withdrawal = brand_usecases.withdraw_brand_asset(
            session=session, tenant_id=principal.tenant_scope, asset_id=asset_id, reason=reason,
            requested_by=f"api:{principal.name}")
        return {"asset_id": str(asset_id), "withdrawal_id": str(withdrawal.id),
                "revoked_grants": withdrawal.revoked_grants, "affected_models": withdrawal.affected_models}
