"""Catalog routes: onboarding batches, their reports, assets and the catalog summary."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Depends, Request, UploadFile, status

from api.deps import AdminPrincipal, BlobStoreDep, SessionDep, SettingsDep
from api.errors import ApiError, error_responses
from api.forms import FormFields, file_property, multipart_body, read_form, save_upload
from api.params import Offset, PageLimit
from foundry.catalog import service as catalog_service
from foundry.catalog.schemas import AssetRead, CatalogSummaryRead, ImportPage, ImportRead, ImportSummaryRead
from foundry.licensing import service as licensing_service
from foundry.usecases.imports import run_import

router = APIRouter(prefix="/v1", tags=["catalog"])

_ARCHIVE_NAMES = {"openmoji": "catalog.tgz", "embedded": "images.zip", "manifest": "images.zip"}


SOURCE_FORMATS = ("openmoji", "manifest", "embedded")


@dataclass
class ImportUpload:
    archive: UploadFile
    source_format: str
    manifest: UploadFile | None
    tenant_id: uuid.UUID | None


async def import_upload(request: Request) -> AsyncIterator[ImportUpload]:
    """The upload's form, read only once the caller is known to be an admin."""
    form = await read_form(request, max_files=2, max_fields=4)
    try:
        fields = FormFields(form)
        upload = ImportUpload(archive=fields.file("archive"), source_format=fields.choice("format", SOURCE_FORMATS),
                              manifest=fields.file("manifest", required=False),
                              tenant_id=fields.optional_uuid("tenant_id"))
        fields.check()
        yield upload
    finally:
        await form.close()


_IMPORT_BODY = multipart_body({
    "archive": file_property("tgz of the OpenMoji package, or zip of images"),
    "format": {"type": "string", "enum": list(SOURCE_FORMATS)},
    "manifest": file_property("CSV or JSONL manifest (format=manifest)"),
    "tenant_id": {"type": "string", "format": "uuid", "description": "Import as this tenant's own brand assets."},
}, required=["archive", "format"])


@router.post("/catalog/imports", status_code=status.HTTP_201_CREATED, response_model=ImportRead,
             openapi_extra=_IMPORT_BODY, responses=error_responses(404, s404="tenant_id names no tenant."))
def create_import(
    principal: AdminPrincipal,
    settings: SettingsDep,
    blob_store: BlobStoreDep,
    upload: Annotated[ImportUpload, Depends(import_upload)],
) -> ImportRead:
    """Onboard an uploaded catalog. Row problems are reported per row; anything fatal imports nothing."""
    archive, source_format, manifest, tenant_id = (upload.archive, upload.source_format, upload.manifest,
                                                   upload.tenant_id)
    if source_format == "manifest" and manifest is None:
        raise ApiError(422, "manifest_missing", "format=manifest needs a manifest file")
    with tempfile.TemporaryDirectory(prefix="foundry-upload-") as tmp:
        folder = Path(tmp)
        archive_path = folder / _ARCHIVE_NAMES[source_format]
        budget = settings.max_upload_bytes
        budget -= save_upload(archive, archive_path, budget)
        location = archive_path
        if source_format == "manifest":
            suffix = ".jsonl" if (manifest.filename or "").lower().endswith((".jsonl", ".ndjson")) else ".csv"
            location = folder / f"manifest{suffix}"
            save_upload(manifest, location, budget)
        # Messages name the uploaded files, never the temporary paths they were saved under.
        archive_name = archive.filename or archive_path.name
        batch = run_import(
            settings, location, source_format=source_format,
            images=archive_path if source_format == "manifest" else None,
            label=(manifest.filename or location.name) if source_format == "manifest" else archive_name,
            images_label=archive_name, description=f"upload:{archive_name}",
            requested_by=f"api:{principal}", owner_tenant_id=tenant_id, blob_store=blob_store,
        )
    return ImportRead.model_validate(batch)


@router.get("/catalog/imports", response_model=ImportPage)
def list_imports(
    _principal: AdminPrincipal,
    session: SessionDep,
    limit: PageLimit = 50,
    offset: Offset = 0,
) -> ImportPage:
    batches = catalog_service.list_imports(session=session, limit=limit, offset=offset)
    return ImportPage(items=[ImportSummaryRead.model_validate(b) for b in batches], limit=limit, offset=offset)


@router.get("/catalog/imports/{import_id}", response_model=ImportRead)
def get_import(_principal: AdminPrincipal, session: SessionDep, import_id: uuid.UUID) -> ImportRead:
    return ImportRead.model_validate(catalog_service.get_import(session=session, import_id=import_id))


@router.get("/catalog/summary", response_model=CatalogSummaryRead)
def get_summary(_principal: AdminPrincipal, session: SessionDep) -> CatalogSummaryRead:
    return catalog_service.catalog_summary(session=session)


@router.get("/assets/{asset_id}", response_model=AssetRead)
def get_asset(_principal: AdminPrincipal, session: SessionDep, asset_id: uuid.UUID) -> AssetRead:
    asset = catalog_service.get_asset(session=session, asset_id=asset_id)
    grants = licensing_service.grants_for_asset(session=session, asset_id=asset_id)
    return AssetRead.model_validate({**AssetRead.model_validate(asset).model_dump(), "grants": grants})
