"""Running a catalog import from a file or folder: what ``foundry catalog import``, the API's upload and
the demo run (the transaction, staging and failed-import record are ``catalog.service.import_from_location``'s)."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

from foundry.blobs import BlobStore, open_blob_store
from foundry.catalog import service as catalog_service
from foundry.catalog.models import CatalogImport
from foundry.config import Settings
from foundry.db import session_factory


def run_import(settings: Settings, location: Path, *, source_format: str = "auto", images: Path | None = None,
               requested_by: str, progress: Callable[[int, int], None] | None = None,
               owner_tenant_id: uuid.UUID | None = None, blob_store: BlobStore | None = None,
               attestation: dict | None = None, **labels: str) -> CatalogImport:
    """Import one catalog; ``labels`` (label, images_label, description) name uploads by their file names.

    ``blob_store`` is the caller's open store (the API keeps one per app), else the configured one.
    """
    return catalog_service.import_from_location(
        session_factory=session_factory(settings.resolved_database_url),
        blob_store=blob_store or open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url),
        location=location, source_format=source_format, images=images, requested_by=requested_by,
        options=catalog_service.import_options(settings), progress=progress, owner_tenant_id=owner_tenant_id,
        attestation=attestation, **labels)
