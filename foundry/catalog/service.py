"""Catalog onboarding and queries.

An import is one database transaction owned by the caller. Blobs go to a staging area
named after the batch and are promoted when that transaction commits (or discarded when
it rolls back), so a failed or crashed import leaves neither rows nor blobs behind.
Row-level problems never abort the batch: they are rejected with a stable code in the
batch's report, and the valid rows are imported.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from itertools import islice
from pathlib import Path

import numpy as np
from sqlalchemy import event, exists, func, insert, select
from sqlalchemy.orm import Session

from foundry.accounts import service as accounts_service
from foundry.accounts.models import Tenant
from foundry.blobs import BlobStore, recover_staging
from foundry.catalog.imaging import ImageLimits, InspectedImage, inspect_rows
from foundry.catalog.models import Asset, CatalogImport, Contributor
from foundry.catalog.rights import ADVISORY_WARNINGS, EmbeddedRights
from foundry.catalog.schemas import CatalogSummaryRead, ContributorAssets
from foundry.catalog.sources import CandidateRow, CatalogSource, open_source
from foundry.concurrency import default_workers, ordered_chunked_map
from foundry.db import flushed, get_or_raise, newest_first, utcnow
from foundry.errors import FoundryError, NotFound
from foundry.licensing import service as licensing_service
from foundry.licensing.models import LicenseGrant
from foundry.licensing.policy import DATA_MINING_PROHIBITED, DATA_MINING_UNSPECIFIED, TrainingVerdict, allowed_uses
from foundry.licensing.terms import BRAND_LICENSE, LicenseCatalogue, LicenseTerms, Use
from provenance.hashing import NearDuplicateIndex, phash_from_hex

_INSERT_CHUNK = 500
_DATA_MINING_COLUMN_CHARS = 64
# Rejection codes for rows whose embedded rights keep every requested use away (else the reason itself).
_REJECTION_BY_VERDICT = {DATA_MINING_PROHIBITED: "ai_training_prohibited", DATA_MINING_UNSPECIFIED: "rights_unspecified"}
_READER_WARNING_TEXT = {
    "xmp_extra_blocks_ignored": "more XMP packets than the reader's limit; the rest were not read",
    "iptc_extra_blocks_ignored": "more IPTC blocks than the reader's limit; the rest were not read",
    "png_extra_metadata_chunks_ignored": "more metadata chunks than the reader's limit; the rest were not read",
    "xmp_malformed": "an XMP packet is not well-formed XML and could not be read",
    "xmp_too_large": "an XMP packet is larger than the reader accepts and was not read",
    "creator_conflict": "XMP and IPTC name different creators",
    "copyright_conflict": "XMP and IPTC give different copyright notices",
    "data_mining_conflict": "the file states different PLUS Data Mining values",
    "data_mining_unrecognised": "the file states a PLUS Data Mining value outside the vocabulary",
}


@dataclass(frozen=True)
class ImportOptions:
    limits: ImageLimits = field(default_factory=ImageLimits)
    near_duplicate_distance: int = 4
    workers: int = 0


ProgressCallback = Callable[[int, int], None]


@dataclass
class _Accepted:
    row: CandidateRow
    image: InspectedImage
    terms: LicenseTerms
    uses: frozenset[Use]
    contributor_ref: str
    contributor_name: str


@dataclass
class _BatchState:
    batch: CatalogImport
    owner_tenant: Tenant | None
    attestation: dict | None
    stage_id: str
    blob_store: BlobStore
    contributors: dict[str, uuid.UUID]
    near_index: NearDuplicateIndex
    licences: LicenseCatalogue
    seen_in_batch: dict[str, int] = field(default_factory=dict)
    rejections: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)
    near_duplicates: list[dict] = field(default_factory=list)
    pending_contributors: list[dict] = field(default_factory=list)
    pending_assets: list[dict] = field(default_factory=list)
    pending_grants: list[dict] = field(default_factory=list)

    def reject(self, row: CandidateRow, code: str, message: str, *, reason: str | None = None) -> None:
        self.rejections.append(_report_row(row, code, message, reason))

    def warn(self, row: CandidateRow, code: str, message: str, *, reason: str | None = None) -> None:
        self.warnings.append(_report_row(row, code, message, reason))


def _report_row(row: CandidateRow, code: str, message: str, reason: str | None) -> dict:
    """One line of an import report; ``reason`` is the licensing rule's code where it decided."""
    item = {"row": row.row_number, "ref": row.source_ref, "path": row.path, "code": code, "message": message}
    if reason is not None:
        item["reason"] = reason
    return item


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    iterator = iter(iterable)
    while chunk := list(islice(iterator, size)):
        yield chunk


def _bind_blobs_to_transaction(session: Session, blob_store: BlobStore, stage_id: str) -> None:
    """Promote the staged blobs when the surrounding transaction commits; drop them otherwise."""
    settled = False

    def on_commit(_session: Session) -> None:
        nonlocal settled
        if not settled:
            settled = True
            blob_store.promote(stage_id)

    def on_rollback(_session: Session) -> None:
        nonlocal settled
        if not settled:
            settled = True
            blob_store.discard(stage_id)

    event.listen(session, "after_commit", on_commit)
    event.listen(session, "after_rollback", on_rollback)


def recover_interrupted_imports(*, session: Session, blob_store: BlobStore) -> dict[str, int]:
    """Settle staging areas left by a crash: committed batches are promoted, the rest discarded."""
    stage_ids = blob_store.stage_ids()
    if not stage_ids:
        return {"promoted": 0, "discarded": 0}
    wanted = []
    for stage_id in stage_ids:
        try:
            wanted.append(uuid.UUID(hex=stage_id))
        except ValueError:
            continue
    committed = {
        batch_id.hex
        for batch_id in session.scalars(
            select(CatalogImport.id).where(CatalogImport.id.in_(wanted), CatalogImport.status == "succeeded")
        )
    }
    return recover_staging(blob_store, committed)


def import_catalog(
    *,
    session: Session,
    blob_store: BlobStore,
    source: CatalogSource,
    requested_by: str,
    options: ImportOptions = ImportOptions(),
    progress: ProgressCallback | None = None,
    owner_tenant_id: uuid.UUID | None = None,
    attestation: dict | None = None,
) -> CatalogImport:
    """Onboard every acceptable row of ``source`` in the caller's transaction; returns the batch.

    With ``owner_tenant_id`` the rows are that tenant's own brand assets, each recording ``attestation``
    (the tenant's statement that it holds the rights).
    """
    owner_tenant = accounts_service.get_tenant(session=session, tenant_id=owner_tenant_id) if owner_tenant_id else None
    recover_interrupted_imports(session=session, blob_store=blob_store)
    batch = CatalogImport(
        id=uuid.uuid4(),
        source=source.description,
        source_format=source.format,
        source_sha256=source.fingerprint(),
        requested_by=requested_by,
        status="running",
        started_at=utcnow(),
    )
    flushed(session, batch)
    state = _BatchState(
        batch=batch,
        owner_tenant=owner_tenant,
        attestation=attestation if owner_tenant is not None else None,
        stage_id=batch.id.hex,
        blob_store=blob_store,
        contributors=dict(session.execute(select(Contributor.external_ref, Contributor.id)).all()),
        near_index=_existing_near_duplicate_index(session, options.near_duplicate_distance),
        licences=licensing_service.license_catalogue(session=session),
    )
    _bind_blobs_to_transaction(session, blob_store, state.stage_id)

    total = source.count()
    done = 0
    results = ordered_chunked_map(
        partial(inspect_rows, limits=options.limits),
        source.rows(),
        workers=default_workers(options.workers),
    )
    for chunk in _chunks(results, 256):
        _settle_chunk(session, state, chunk)
        done += len(chunk)
        if len(state.pending_assets) >= _INSERT_CHUNK:
            _write_pending(session, state)
        if progress is not None:
            progress(done, total)
    _write_pending(session, state)

    batch.rows_total = done
    batch.rows_rejected = len(state.rejections)
    batch.near_duplicates = len(state.near_duplicates)
    batch.report = {
        "rejections": state.rejections,
        "warnings": state.warnings,
        "near_duplicates": state.near_duplicates,
    }
    batch.status = "succeeded"
    batch.finished_at = utcnow()
    session.flush()
    return batch


def _existing_near_duplicate_index(session: Session, distance: int) -> NearDuplicateIndex:
    index = NearDuplicateIndex(distance)
    for asset_id, phash, source_ref in session.execute(select(Asset.id, Asset.phash, Asset.source_ref)):
        index.add(phash_from_hex(phash), (asset_id, source_ref))
    return index


def _settle_chunk(session: Session, state: _BatchState, chunk: list[tuple[CandidateRow, object]]) -> None:
    inspected = [r.sha256 for _, r in chunk if isinstance(r, InspectedImage)]
    existing = {
        sha: (asset_id, contributor_id)
        for sha, asset_id, contributor_id in session.execute(
            select(Asset.sha256, Asset.id, Asset.contributor_id).where(Asset.sha256.in_(inspected))
        )
    } if inspected else {}
    existing_grants = _grants_by_asset(session, [asset_id for asset_id, _ in existing.values()])
    for row, result in chunk:
        if row.problem is not None:
            state.reject(row, *row.problem)
        elif result is None:
            state.reject(row, "file_missing", "the row has no image bytes")
        elif isinstance(result, tuple):
            state.reject(row, *result)
        else:
            _settle_row(state, row, result, existing, existing_grants)


def _grants_by_asset(session: Session, asset_ids: list[uuid.UUID]) -> dict[uuid.UUID, list[LicenseGrant]]:
    grants: dict[uuid.UUID, list[LicenseGrant]] = {}
    if asset_ids:
        for grant in session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id.in_(asset_ids))):
            grants.setdefault(grant.asset_id, []).append(grant)
    return grants


def _report_reader_warnings(state: _BatchState, row: CandidateRow, rights: EmbeddedRights) -> None:
    """Every problem the rights reader met reaches the report, whatever becomes of the row."""
    for code in rights.warnings:
        text = _READER_WARNING_TEXT.get(code, "the embedded rights metadata could not be read completely")
        consequence = "" if code in ADVISORY_WARNINGS else "; the file gets no training permission"
        state.warn(row, code, f"embedded rights: {text}{consequence}")


def _refuse_for_verdict(state: _BatchState, row: CandidateRow, verdict: TrainingVerdict, message: str) -> None:
    state.reject(row, _REJECTION_BY_VERDICT.get(verdict.reason, verdict.reason), message, reason=verdict.reason)


def _resolve_rights(state: _BatchState, row: CandidateRow, image: InspectedImage) -> _Accepted | None:
    """Decide contributor, license and uses for a verified image, or reject the row.

    One rule decides what embedded rights allow (:func:`judge_embedded_rights`); where the file
    itself is the grant (embedded imports) it must explicitly allow training, where a manifest
    row or the OpenMoji package grants the uses it must merely not forbid it.
    """
    rights = EmbeddedRights.from_dict(image.rights)
    _report_reader_warnings(state, row, rights)
    if state.owner_tenant is not None:
        # A tenant's own brand material: credited to the tenant, used only for its own fine-tunes.
        row.contributor_name = f"{state.owner_tenant.name} (brand assets)"
        row.contributor_ref = brand_contributor_ref(state.owner_tenant.id)
        row.license = row.license or BRAND_LICENSE
        if row.uses and row.uses != {Use.CUSTOMER_FINETUNE}:
            state.warn(row, "brand_uses_limited", "brand assets serve only the tenant's own fine-tunes")
        row.uses = frozenset({Use.CUSTOMER_FINETUNE})
    verdict = rights.training_verdict(licence_is_the_grant=not row.rights_from_file)
    if row.rights_from_file:
        row.contributor_name = rights.creator
        row.contributor_ref = f"creator:{row.contributor_name}" if row.contributor_name else None
        row.license = rights.license_url or rights.web_statement
        row.credit_line = rights.copyright_notice
        if not verdict.allows_training:
            hint = "; supply a manifest with the grant" if verdict.reason == DATA_MINING_UNSPECIFIED else ""
            _refuse_for_verdict(state, row, verdict, verdict.explanation + hint)
            return None
        row.uses = frozenset(Use)
    if not row.contributor_name:
        state.reject(row, "missing_contributor", "the row names no contributor")
        return None
    terms = state.licences.resolve(row.license)
    if terms is None:
        state.reject(row, "unknown_license", state.licences.unknown_message(row.license))
        return None
    requested = row.uses or frozenset()
    if not requested:
        state.reject(row, "no_permitted_uses", "the row permits no use")
        return None
    if row.valid_from and row.valid_until and row.valid_until <= row.valid_from:
        state.reject(row, "invalid_validity", "valid_until is not after valid_from")
        return None
    grantable = requested & terms.grantable_uses
    if grantable != requested:
        beyond = ", ".join(sorted(u.value for u in requested - grantable))
        if not grantable:
            state.reject(row, "no_permitted_uses", f"{terms.code} grants none of the requested uses ({beyond})")
            return None
        state.warn(row, "uses_not_granted_by_license", f"{terms.code} does not grant {beyond}")
    uses = allowed_uses(grantable, verdict)
    if uses != grantable:
        dropped = ", ".join(sorted(u.value for u in grantable - uses))
        if not uses:
            _refuse_for_verdict(state, row, verdict, f"{verdict.explanation}; that forbids the only uses requested: {dropped}")
            return None
        state.warn(row, "training_uses_removed", f"{verdict.explanation}; removed {dropped}", reason=verdict.reason)
    creator = rights.creator
    if creator and not row.rights_from_file and creator.strip().lower() != row.contributor_name.strip().lower():
        state.warn(row, "creator_mismatch", f"the file names its creator {creator!r}, the row {row.contributor_name!r}")
    reference = row.contributor_ref or f"name:{row.contributor_name}"
    return _Accepted(row, image, terms, uses, reference, row.contributor_name)


def _settle_row(state, row, image, existing, existing_grants) -> None:
    accepted = _resolve_rights(state, row, image)
    if accepted is None:
        return
    first_row = state.seen_in_batch.get(image.sha256)
    if first_row is not None:
        state.reject(row, "duplicate_in_batch", f"the same image as row {first_row}")
        return
    state.seen_in_batch[image.sha256] = row.row_number
    # Only a row that brings an asset in creates its contributor; a refused row creates nothing.
    contributor_id = state.contributors.get(accepted.contributor_ref)
    if image.sha256 in existing:
        asset_id, owner_id = existing[image.sha256]
        if owner_id != contributor_id:
            state.reject(row, "duplicate_of_existing_asset", f"already in the catalog as asset {asset_id} of another contributor")
            return
        if not any(_same_grant(g, accepted) for g in existing_grants.get(asset_id, [])):
            state.warn(row, "grant_terms_differ",
                       "the asset is already in the catalog under other terms; change grants through licensing")
        state.batch.rows_unchanged += 1
        return
    if contributor_id is None:
        contributor_id = _create_contributor(state, accepted)

    asset_id = uuid.uuid4()
    near = state.near_index.nearest(phash_from_hex(image.phash))
    near_id = None
    if near is not None:
        (near_id, near_ref), distance = near
        state.near_duplicates.append(
            {"row": row.row_number, "ref": row.source_ref, "near": near_ref, "distance": distance}
        )
    state.near_index.add(phash_from_hex(image.phash), (asset_id, row.source_ref))

    state.blob_store.stage(state.stage_id, row.data)
    state.blob_store.stage(state.stage_id, image.rendition)
    now = utcnow()
    state.pending_assets.append({
        "id": asset_id, "created_at": now, "sha256": image.sha256, "phash": image.phash, "format": image.format,
        "width": image.width, "height": image.height, "byte_size": image.byte_size,
        "rendition_sha256": image.rendition_sha256, "caption": row.caption, "tags": row.tags,
        "source_ref": row.source_ref, "embedded_rights": image.rights, "contributor_id": contributor_id,
        "import_id": state.batch.id, "near_duplicate_of_id": near_id,
        "owner_tenant_id": state.owner_tenant.id if state.owner_tenant else None, "attestation": state.attestation,
    })
    state.pending_grants.append({
        "id": uuid.uuid4(), "created_at": now, "asset_id": asset_id, "license_code": accepted.terms.code,
        "license_name": accepted.terms.name, "license_url": accepted.terms.url, "credit_line": row.credit_line,
        "permits_base_training": Use.BASE_TRAINING in accepted.uses,
        "permits_customer_finetune": Use.CUSTOMER_FINETUNE in accepted.uses,
        "permits_generation": Use.GENERATION in accepted.uses,
        "data_mining": _storable_data_mining(image.rights.get("data_mining")), "valid_from": row.valid_from or now,
        "valid_until": row.valid_until, "revoked_at": None, "revocation_reason": None, "revoked_by": None,
        "import_id": state.batch.id,
    })
    state.batch.rows_imported += 1


def _storable_data_mining(value: str | None) -> str | None:
    """The decisive Data Mining value, cut to its column; a cut value stays unrecognisable (so blocking)."""
    if value is None or len(value) <= _DATA_MINING_COLUMN_CHARS:
        return value
    return value[: _DATA_MINING_COLUMN_CHARS - 1] + "\u2026"


def _same_grant(grant: LicenseGrant, accepted: _Accepted) -> bool:
    return grant.license_code == accepted.terms.code and grant.uses == accepted.uses and grant.revoked_at is None


def _create_contributor(state: _BatchState, accepted: _Accepted) -> uuid.UUID:
    new_id = uuid.uuid4()
    state.contributors[accepted.contributor_ref] = new_id
    state.pending_contributors.append({
        "id": new_id, "created_at": utcnow(), "display_name": accepted.contributor_name,
        "external_ref": accepted.contributor_ref, "payout_identity": accepted.row.payout_identity,
    })
    state.batch.contributors_created += 1
    return new_id


def _write_pending(session: Session, state: _BatchState) -> None:
    for model, rows in ((Contributor, state.pending_contributors), (Asset, state.pending_assets),
                        (LicenseGrant, state.pending_grants)):
        if rows:
            session.execute(insert(model), rows)
            rows.clear()


def record_failed_import(*, session: Session, source: str, source_format: str, requested_by: str,
                         error: str) -> CatalogImport:
    """Keep an audit trail of imports that failed as a whole (nothing else of them is stored)."""
    now = utcnow()
    batch = CatalogImport(source=source, source_format=source_format, requested_by=requested_by,
                          status="failed", started_at=now, finished_at=now, error=error, report={})
    return flushed(session, batch)


def get_import(*, session: Session, import_id: uuid.UUID) -> CatalogImport:
    return get_or_raise(session, CatalogImport, import_id, code="import_not_found", what="catalog import")


def list_imports(*, session: Session, limit: int = 50, offset: int = 0) -> list[CatalogImport]:
    return newest_first(session, CatalogImport, order_by=CatalogImport.started_at, limit=limit, offset=offset)


def get_asset(*, session: Session, asset_id: uuid.UUID) -> Asset:
    return get_or_raise(session, Asset, asset_id, code="asset_not_found", what="asset")


def catalog_summary(*, session: Session, top: int = 5) -> CatalogSummaryRead:
    by_format = dict(session.execute(select(Asset.format, func.count()).group_by(Asset.format)).all())
    grants_by_use = {
        use.value: session.scalar(select(func.count()).where(column.is_(True), LicenseGrant.revoked_at.is_(None))) or 0
        for use, column in ((Use.BASE_TRAINING, LicenseGrant.permits_base_training),
                            (Use.CUSTOMER_FINETUNE, LicenseGrant.permits_customer_finetune),
                            (Use.GENERATION, LicenseGrant.permits_generation))
    }
    top_rows = session.execute(
        select(Contributor.display_name, func.count(Asset.id))
        .join(Asset, Asset.contributor_id == Contributor.id)
        .group_by(Contributor.id, Contributor.display_name)
        .order_by(func.count(Asset.id).desc(), Contributor.display_name)
        .limit(top)
    ).all()
    return CatalogSummaryRead(
        contributors=session.scalar(select(func.count()).select_from(Contributor)) or 0,
        assets=session.scalar(select(func.count()).select_from(Asset)) or 0,
        grants=session.scalar(select(func.count()).select_from(LicenseGrant)) or 0,
        grants_by_use=grants_by_use,
        assets_by_format=by_format,
        imports=session.scalar(select(func.count()).select_from(CatalogImport)) or 0,
        top_contributors=[ContributorAssets(display_name=name, assets=count) for name, count in top_rows],
    )



def asset_hashes(*, session: Session) -> tuple[tuple, list[uuid.UUID], np.ndarray]:
    """Every catalog image's perceptual hash, with the catalog's version (where, how many, newest): a caller
    that keeps the hashes reloads them only when the version changes."""
    return catalog_version(session=session), *_hash_rows(session)


def catalog_version(*, session: Session) -> tuple:
    count, newest = session.execute(select(func.count(), func.max(Asset.created_at))).one()
    return str(session.get_bind().url), int(count), newest


def _hash_rows(session: Session) -> tuple[list[uuid.UUID], np.ndarray]:
    rows = session.execute(select(Asset.id, Asset.phash)).all()
    return [row[0] for row in rows], np.array([phash_from_hex(row[1]) for row in rows], dtype=np.uint64)


def import_options(settings) -> ImportOptions:
    """Import limits as the deployment's settings configure them."""
    return ImportOptions(
        limits=ImageLimits(
            max_bytes=settings.max_image_bytes,
            max_pixels=settings.max_image_pixels,
            rendition_size=settings.rendition_size,
        ),
        near_duplicate_distance=settings.near_duplicate_distance,
        workers=settings.import_workers,
    )


def run_import(
    *,
    session_factory: Callable[[], Session],
    blob_store: BlobStore,
    source: CatalogSource,
    requested_by: str,
    options: ImportOptions,
    progress: ProgressCallback | None = None,
    owner_tenant_id: uuid.UUID | None = None,
    attestation: dict | None = None,
) -> CatalogImport:
    """The whole unit of work every entry point (CLI, API, worker) runs for one import.

    The batch commits as one transaction; if anything fails, it rolls back (its staged
    blobs are discarded with it) and a failed-import record is kept for the audit trail.
    """
    try:
        with session_factory() as session, session.begin():
            return import_catalog(session=session, blob_store=blob_store, source=source,
                                  requested_by=requested_by, options=options, progress=progress,
                                  owner_tenant_id=owner_tenant_id, attestation=attestation)
    except BaseException as exc:
        with session_factory() as session, session.begin():
            record_failed_import(session=session, source=source.description, source_format=source.format,
                                 requested_by=requested_by, error=f"{type(exc).__name__}: {exc}"[:4000])
        raise
    finally:
        source.close()



def import_from_location(
    *,
    session_factory: Callable[[], Session],
    blob_store: BlobStore,
    location: Path,
    source_format: str,
    requested_by: str,
    options: ImportOptions,
    images: Path | None = None,
    label: str | None = None,
    images_label: str | None = None,
    description: str | None = None,
    progress: ProgressCallback | None = None,
    owner_tenant_id: uuid.UUID | None = None,
    attestation: dict | None = None,
) -> CatalogImport:
    """Open a submitted catalog and import it: what the CLI and the API both run.

    A catalog that cannot be opened at all (a malformed manifest, an unreadable archive) imports
    nothing but still leaves a failed import record, as a failure during the import does.
    ``label``/``images_label`` name the submitted files in messages instead of their paths here.
    """
    try:
        source = open_source(location, source_format=source_format, images=images,
                             max_bytes=options.limits.max_bytes, label=label, images_label=images_label)
    except FoundryError as exc:
        with session_factory() as session, session.begin():
            record_failed_import(session=session, source=description or label or str(location),
                                 source_format=source_format, requested_by=requested_by,
                                 error=f"{exc.code}: {exc.message}"[:4000])
        raise
    if description is not None:
        source.description = description
    return run_import(session_factory=session_factory, blob_store=blob_store, source=source,
                      requested_by=requested_by, options=options, progress=progress,
                      owner_tenant_id=owner_tenant_id, attestation=attestation)


def brand_contributor_ref(tenant_id: uuid.UUID) -> str:
    """The contributor that stands for a tenant's own brand assets (it is never paid royalties)."""
    return f"tenant:{tenant_id}"


def ensure_brand_contributor(*, session: Session, tenant: Tenant) -> Contributor:
    reference = brand_contributor_ref(tenant.id)
    contributor = session.scalar(select(Contributor).where(Contributor.external_ref == reference))
    if contributor is None:
        contributor = Contributor(display_name=f"{tenant.name} (brand assets)", external_ref=reference)
        flushed(session, contributor)
    return contributor


def brand_asset_usage(*, session: Session, tenant_id: uuid.UUID) -> tuple[int, int]:
    """(assets, original bytes) of a tenant's brand assets that are still licensed: what its quota counts."""
    count, size = session.execute(
        select(func.count(Asset.id), func.coalesce(func.sum(Asset.byte_size), 0))
        .where(Asset.owner_tenant_id == tenant_id, _still_licensed())).one()
    return int(count), int(size)


def list_brand_assets(*, session: Session, tenant_id: uuid.UUID, limit: int = 50, offset: int = 0
                      ) -> list[tuple[Asset, bool]]:
    """A tenant's brand assets, newest first, each with whether it is still licensed (not withdrawn)."""
    rows = session.execute(select(Asset, _still_licensed().label("licensed"))
                           .where(Asset.owner_tenant_id == tenant_id)
                           .order_by(Asset.created_at.desc(), Asset.id).limit(limit).offset(offset)).all()
    return [(asset, bool(licensed)) for asset, licensed in rows]


def get_brand_asset(*, session: Session, tenant_id: uuid.UUID | None, asset_id: uuid.UUID) -> Asset:
    """A brand asset of ``tenant_id`` (of any tenant when None); anything else is not found."""
    asset = session.get(Asset, asset_id)
    if asset is None or asset.owner_tenant_id is None or (tenant_id is not None and asset.owner_tenant_id != tenant_id):
        raise NotFound(f"brand asset {asset_id} does not exist", code="asset_not_found")
    return asset


def _still_licensed():
    """An asset some grant of which is not revoked."""
    return exists(select(LicenseGrant.id).where(LicenseGrant.asset_id == Asset.id, LicenseGrant.revoked_at.is_(None)))
