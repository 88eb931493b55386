"""A tenant's own brand assets, self-served: upload with a rights attestation (through the catalog's
onboarding pipeline, every rejection reported per file), quota, list, withdraw."""

from __future__ import annotations

import csv
import re
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

from foundry.blobs import BlobStore
from foundry.catalog import service as catalog_service
from foundry.catalog.models import CatalogImport
from foundry.config import Settings
from foundry.db import session_factory, utcnow
from foundry.errors import Conflict, InvalidInput
from foundry.usecases.imports import run_import
from foundry.withdrawals import service as withdrawals_service

ATTESTATION = ("I own this material or hold every right needed to let the foundry train a model for my "
               "organisation on it.")
"""What the uploader states for each brand asset, recorded with it."""
MAX_FILES_PER_UPLOAD = 100


@dataclass(frozen=True)
class BrandUpload:
    """One uploaded image, saved in the upload's folder: its name as uploaded, its name there, caption, tags."""

    filename: str
    stored_as: str
    caption: str
    tags: tuple[str, ...] = ()


def caption_from_filename(filename: str) -> str:
    """``red_running-shoe.png`` -> ``red running shoe``: a caption when the uploader gave none."""
    return re.sub(r"[\s_-]+", " ", Path(filename).stem).strip()


def remaining_quota(settings: Settings, *, session, tenant_id: uuid.UUID) -> tuple[int, int]:
    """(assets, bytes) the tenant may still add; refused at once (409) when either is used up."""
    count, size = catalog_service.brand_asset_usage(session=session, tenant_id=tenant_id)
    assets, room = settings.brand_asset_quota_count - count, settings.brand_asset_quota_bytes - size
    if assets <= 0 or room <= 0:
        raise Conflict(f"the tenant's brand assets are at their quota ({settings.brand_asset_quota_count} assets, "
                       f"{settings.brand_asset_quota_bytes} bytes); withdraw some first",
                       code="brand_asset_quota_exceeded", details={"assets": count, "bytes": size})
    return assets, room


def upload_brand_assets(settings: Settings, *, tenant_id: uuid.UUID, folder: Path, uploads: list[BrandUpload],
                        attested_by: str, api_key_id: uuid.UUID | None, requested_by: str,
                        blob_store: BlobStore) -> CatalogImport:
    """Onboard uploaded images as the tenant's brand assets (license ``brand-owned``, customer fine-tunes
    only), each recording the attestation. Quotas are checked before anything is imported."""
    if not uploads:
        raise InvalidInput("files: upload at least one image", code="validation_error")
    if len(uploads) > MAX_FILES_PER_UPLOAD:
        raise InvalidInput(f"files: at most {MAX_FILES_PER_UPLOAD} images per upload", code="validation_error")
    if not attested_by.strip():
        raise InvalidInput("attested_by: name who makes the rights statement", code="validation_error")
    with session_factory(settings.resolved_database_url)() as session:
        assets, room = remaining_quota(settings, session=session, tenant_id=tenant_id)
    total = sum((folder / upload.stored_as).stat().st_size for upload in uploads)
    if len(uploads) > assets or total > room:
        raise Conflict(f"this upload ({len(uploads)} files, {total} bytes) would pass the tenant's quota "
                       f"({assets} more assets, {room} more bytes)", code="brand_asset_quota_exceeded",
                       details={"files": len(uploads), "bytes": total, "assets_left": assets, "bytes_left": room})
    attestation = {"statement": ATTESTATION, "attested_by": attested_by.strip()[:200],
                   "api_key_id": str(api_key_id) if api_key_id else None, "at": utcnow().isoformat()}
    with tempfile.TemporaryDirectory(prefix="foundry-brand-") as tmp:
        manifest = Path(tmp) / "manifest.csv"
        with manifest.open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["path", "contributor", "license", "uses", "caption", "tags"])
            for upload in uploads:
                writer.writerow([upload.stored_as, "", "", "customer_finetune", upload.caption, ";".join(upload.tags)])
        return run_import(settings, manifest, source_format="manifest", images=folder,
                          requested_by=requested_by, owner_tenant_id=tenant_id, blob_store=blob_store,
                          attestation=attestation, label="brand asset upload", images_label="uploaded files",
                          description=f"brand assets: {len(uploads)} file(s) by {attested_by.strip()[:100]}")


def withdraw_brand_asset(*, session, tenant_id: uuid.UUID | None, asset_id: uuid.UUID, reason: str,
                         requested_by: str):
    """Withdraw a brand asset from every future snapshot and from fine-tunes still running (their next
    licence-gate check refuses it); models already trained keep the tenant's revocation policy."""
    asset = catalog_service.get_brand_asset(session=session, tenant_id=tenant_id, asset_id=asset_id)
    return withdrawals_service.withdraw_rights(session=session, contributor_id=asset.contributor_id,
                                               asset_id=asset.id, reason=reason, requested_by=requested_by)
