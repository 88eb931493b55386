"""Snapshots and the license gate.

A snapshot freezes, at one instant, every asset whose grant permits a training use: the exact
original and rendition hashes, the grant and a fingerprint of its terms, and the caption. Its
Merkle root names that content. The gate re-asks the licensing question whenever the snapshot
is about to be used (job start, every training batch): a grant revoked, expired or edited since,
or a blob whose bytes no longer match, stops the job and names the assets.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import insert, or_, select
from sqlalchemy.orm import Session

from foundry.accounts import service as accounts_service
from foundry.blobs import BlobStore, sha256_hex
from foundry.catalog.models import Asset
from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
from foundry.datasets.policy import SplitCandidate, heldout_asset_ids
from foundry.datasets.schemas import SnapshotFilters
from foundry.db import flushed, get_or_raise, newest_first, utcnow
from foundry.errors import FoundryError, InvalidInput
from foundry.licensing import service as licensing_service
from foundry.licensing.models import LicenseGrant
from foundry.licensing.policy import why_not_permitted
from foundry.licensing.terms import TRAINING_USES, Use
from provenance.merkle import leaf_hash, merkle_root

_USE_COLUMN = {
    Use.BASE_TRAINING: LicenseGrant.permits_base_training,
    Use.CUSTOMER_FINETUNE: LicenseGrant.permits_customer_finetune,
}


class LicenseGateViolation(FoundryError):
    """Some snapshot entries may no longer be used; ``details['violations']`` names them."""

    code = "license_gate_violation"


def grant_fingerprint(grant: LicenseGrant) -> str:
    """A hash of the terms a grant was taken under; any later edit of them changes it."""
    terms = {
        "asset_id": str(grant.asset_id),
        "license_code": grant.license_code,
        "uses": sorted(u.value for u in grant.uses),
        "valid_from": grant.valid_from.isoformat(),
        "valid_until": grant.valid_until.isoformat() if grant.valid_until else None,
        "data_mining": grant.data_mining,
    }
    return hashlib.sha256(json.dumps(terms, sort_keys=True).encode()).hexdigest()


def canonical_entry(entry: SnapshotEntry | dict) -> bytes:
    get = entry.get if isinstance(entry, dict) else lambda key: getattr(entry, key)
    caption_hash = hashlib.sha256(get("caption").encode()).hexdigest()
    fields = (str(get("asset_id")), get("asset_sha256"), get("rendition_sha256"), str(get("grant_id")),
              get("grant_fingerprint"), caption_hash)
    tags = get("tags") or []
    if tags:  # an entry without tags hashes as before, so the roots of older snapshots still verify
        fields = (*fields, hashlib.sha256(json.dumps(list(tags)).encode()).hexdigest())
    return "\n".join(fields).encode()


def _training_use(use: str | Use) -> Use:
    try:
        chosen = Use(use)
    except ValueError:
        raise InvalidInput(f"unknown use {use!r}", code="invalid_use") from None
    if chosen not in TRAINING_USES:
        raise InvalidInput(f"snapshots are for training uses, not {chosen.value}", code="invalid_use")
    return chosen


def _candidates(session: Session, use: Use, filters: SnapshotFilters, at: datetime):
    query = (
        select(Asset, LicenseGrant)
        .join(LicenseGrant, LicenseGrant.asset_id == Asset.id)
        .where(
            _USE_COLUMN[use].is_(True),
            or_(LicenseGrant.revoked_at.is_(None), LicenseGrant.revoked_at > at),
            LicenseGrant.valid_from <= at,
            or_(LicenseGrant.valid_until.is_(None), LicenseGrant.valid_until > at),
        )
    )
    if filters.tenant_id is None:
        query = query.where(Asset.owner_tenant_id.is_(None))
    elif filters.brand_assets_only:
        query = query.where(Asset.owner_tenant_id == filters.tenant_id)
    else:
        query = query.where(or_(Asset.owner_tenant_id.is_(None), Asset.owner_tenant_id == filters.tenant_id))
    if filters.contributor_ids:
        query = query.where(Asset.contributor_id.in_(filters.contributor_ids))
    if filters.import_ids:
        query = query.where(Asset.import_id.in_(filters.import_ids))
    if filters.asset_ids:
        query = query.where(Asset.id.in_(filters.asset_ids))
    return session.execute(query).all()


def _matches(asset: Asset, filters: SnapshotFilters) -> bool:
    if filters.tags and not set(filters.tags) & set(asset.tags or []):
        return False
    return not (filters.caption_contains
                and filters.caption_contains.lower() not in (asset.caption or "").lower())


def _chosen(session: Session, use: Use, filters: SnapshotFilters, at: datetime,
            opted_out: dict) -> list[tuple[Asset, LicenseGrant]]:
    """The assets ``filters`` selects, each with its newest grant permitting ``use`` at ``at``, in canonical
    order (by id) and cut to ``filters.limit``."""
    heldout = catalog_heldout_ids(session=session) if filters.heldout else frozenset()
    chosen: dict[uuid.UUID, tuple[Asset, LicenseGrant]] = {}
    for asset, grant in _candidates(session, use, filters, at):
        # The SQL is a prefilter; the pure policy has the final word (data mining, opt-outs, exact bounds).
        reason = why_not_permitted(grant.terms, use, at,
                                   opted_out_at=opted_out.get(asset.contributor_id, {}).get(use))
        if reason is not None or not _matches(asset, filters):
            continue
        if filters.heldout is not None and (asset.id in heldout) != (filters.heldout == "only"):
            continue
        current = chosen.get(asset.id)
        if current is None or (grant.valid_from, str(grant.id)) > (current[1].valid_from, str(current[1].id)):
            chosen[asset.id] = (asset, grant)
    ordered = sorted(chosen.values(), key=lambda pair: str(pair[0].id))
    return ordered[: filters.limit] if filters.limit is not None else ordered


def create_snapshot(
    *,
    session: Session,
    name: str,
    use: str | Use,
    filters: SnapshotFilters | None = None,
    created_by: str,
    description: str | None = None,
    at: datetime | None = None,
) -> DatasetSnapshot:
    """Freeze every asset licensed for ``use`` right now (and matching ``filters``) into a snapshot."""
    use = _training_use(use)
    filters = filters or SnapshotFilters()
    at = at or utcnow()
    if filters.tenant_id is not None:
        if use != Use.CUSTOMER_FINETUNE:
            raise InvalidInput("a tenant's snapshot serves its fine-tunes: use customer_finetune",
                               code="invalid_use")
        accounts_service.get_tenant(session=session, tenant_id=filters.tenant_id)
    elif filters.brand_assets_only:
        raise InvalidInput("brand_assets_only needs a tenant_id", code="invalid_filters")
    if filters.heldout == "only" and filters.tenant_id is not None:
        raise InvalidInput("the held-out split is part of the shared catalog: no tenant snapshot takes only it",
                           code="invalid_filters")
    if filters.catalog is not None and not (filters.tenant_id and filters.brand_assets_only):
        raise InvalidInput("catalog images are mixed into a tenant's brand-asset snapshot: catalog needs a "
                           "tenant_id and brand_assets_only", code="invalid_filters")
    opted_out = licensing_service.opt_outs(session=session)
    ordered = _chosen(session, use, filters, at, opted_out)
    if filters.catalog is not None and ordered:
        mix = filters.catalog
        mixed_in = _chosen(session, use, SnapshotFilters(
            contributor_ids=mix.contributor_ids, tags=mix.tags, caption_contains=mix.caption_contains,
            heldout=mix.heldout, limit=mix.limit), at, opted_out)
        if not mixed_in:
            raise InvalidInput("catalog: no licensed catalog image matches the mix-in filter", code="invalid_filters")
        ordered += mixed_in
        ordered.sort(key=lambda pair: str(pair[0].id))
    if not ordered:
        raise InvalidInput("no licensed asset matches; a snapshot cannot be empty", code="snapshot_empty")

    snapshot_id = uuid.uuid4()
    entries = [
        {
            "snapshot_id": snapshot_id, "asset_id": asset.id, "position": position,
            "asset_sha256": asset.sha256, "rendition_sha256": asset.rendition_sha256, "grant_id": grant.id,
            "grant_fingerprint": grant_fingerprint(grant), "contributor_id": asset.contributor_id,
            "caption": asset.caption or "", "tags": list(asset.tags or []),
        }
        for position, (asset, grant) in enumerate(ordered)
    ]
    snapshot = DatasetSnapshot(
        id=snapshot_id, created_at=at, name=name, use=use.value,
        filters=filters.model_dump(mode="json"), merkle_root=merkle_root([leaf_hash(canonical_entry(e)) for e in entries]),
        entry_count=len(entries), contributor_count=len({e["contributor_id"] for e in entries}),
        created_by=created_by, description=description, owner_tenant_id=filters.tenant_id,
    )
    flushed(session, snapshot)
    for start in range(0, len(entries), 1000):
        session.execute(insert(SnapshotEntry), entries[start:start + 1000])
    return snapshot


def catalog_heldout_ids(*, session: Session) -> frozenset[uuid.UUID]:
    """The shared catalog's held-out split as it stands (see ``foundry.datasets.policy``)."""
    rows = session.execute(
        select(Asset.id, Asset.sha256, Asset.tags, Asset.near_duplicate_of_id).where(Asset.owner_tenant_id.is_(None))
    ).all()
    return heldout_asset_ids([SplitCandidate(r.id, r.sha256, tuple(r.tags or ()), r.near_duplicate_of_id)
                              for r in rows])


def get_snapshot(*, session: Session, snapshot_id: uuid.UUID) -> DatasetSnapshot:
    return get_or_raise(session, DatasetSnapshot, snapshot_id, code="snapshot_not_found", what="dataset snapshot")


def list_snapshots(*, session: Session, limit: int = 50, offset: int = 0) -> list[DatasetSnapshot]:
    return newest_first(session, DatasetSnapshot, order_by=DatasetSnapshot.created_at, limit=limit, offset=offset)


def brand_asset_ids(*, session: Session, snapshot_id: uuid.UUID) -> frozenset[uuid.UUID]:
    """The snapshot's entries that are a tenant's own brand assets (the rest are licensed catalog images)."""
    return frozenset(session.scalars(
        select(SnapshotEntry.asset_id).join(Asset, Asset.id == SnapshotEntry.asset_id)
        .where(SnapshotEntry.snapshot_id == snapshot_id, Asset.owner_tenant_id.is_not(None))))


def snapshot_entries(*, session: Session, snapshot_id: uuid.UUID, limit: int | None = None,
                     offset: int = 0) -> list[SnapshotEntry]:
    query = (select(SnapshotEntry).where(SnapshotEntry.snapshot_id == snapshot_id)
             .order_by(SnapshotEntry.position).limit(limit).offset(offset))
    return list(session.scalars(query))


@dataclass(frozen=True)
class GateResult:
    snapshot_id: uuid.UUID
    merkle_root: str
    entries: int
    checked_at: datetime


def _violation_error(snapshot_id: uuid.UUID, violations: list[dict]) -> LicenseGateViolation:
    named = ", ".join(f"{v['asset_id']} ({v['reason']})" for v in violations[:10])
    more = f" and {len(violations) - 10} more" if len(violations) > 10 else ""
    return LicenseGateViolation(
        f"snapshot {snapshot_id} may not be used: {named}{more}",
        details={"snapshot_id": str(snapshot_id), "violations": violations},
    )


def check_entries(
    *, session: Session, snapshot: DatasetSnapshot, asset_ids: Iterable[uuid.UUID] | None = None,
    at: datetime | None = None,
) -> list[dict]:
    """Violations among ``asset_ids`` (default: all entries) at ``at``; empty when all may be used."""
    at = at or utcnow()
    use = Use(snapshot.use)
    query = (
        select(SnapshotEntry, LicenseGrant, Asset)
        .join(LicenseGrant, LicenseGrant.id == SnapshotEntry.grant_id)
        .join(Asset, Asset.id == SnapshotEntry.asset_id)
        .where(SnapshotEntry.snapshot_id == snapshot.id)
    )
    wanted = None
    if asset_ids is not None:
        wanted = {uuid.UUID(str(a)) for a in asset_ids}
        query = query.where(SnapshotEntry.asset_id.in_(wanted))
    violations = []
    found = set()
    opted_out = licensing_service.opt_outs(session=session)
    for entry, grant, asset in session.execute(query):
        found.add(entry.asset_id)
        reason = why_not_permitted(grant.terms, use, at, opted_out_at=opted_out.get(asset.contributor_id, {}).get(use))
        if reason is None and grant_fingerprint(grant) != entry.grant_fingerprint:
            reason = "grant_changed"
        if reason is None and (asset.sha256 != entry.asset_sha256 or asset.rendition_sha256 != entry.rendition_sha256):
            reason = "asset_changed"
        if reason is not None:
            violations.append({"asset_id": str(entry.asset_id), "reason": reason})
    if wanted is not None:
        violations += [{"asset_id": str(a), "reason": "not_in_snapshot"} for a in sorted(wanted - found, key=str)]
    return sorted(violations, key=lambda v: v["asset_id"])


def enforce_license_gate(*, session: Session, snapshot_id: uuid.UUID, asset_ids: Iterable[uuid.UUID] | None = None,
                         at: datetime | None = None) -> GateResult:
    """Raise LicenseGateViolation unless every (named) entry may be used now and the manifest is intact."""
    snapshot = get_snapshot(session=session, snapshot_id=snapshot_id)
    at = at or utcnow()
    if asset_ids is None:
        entries = snapshot_entries(session=session, snapshot_id=snapshot_id)
        root = merkle_root([leaf_hash(canonical_entry(e)) for e in entries])
        if root != snapshot.merkle_root or len(entries) != snapshot.entry_count:
            raise LicenseGateViolation(f"snapshot {snapshot_id}'s manifest no longer matches its Merkle root",
                                       code="manifest_tampered", details={"snapshot_id": str(snapshot_id)})
    violations = check_entries(session=session, snapshot=snapshot, asset_ids=asset_ids, at=at)
    if violations:
        raise _violation_error(snapshot_id, violations)
    return GateResult(snapshot_id=snapshot.id, merkle_root=snapshot.merkle_root, entries=snapshot.entry_count,
                      checked_at=at)


def load_rendition(*, blob_store: BlobStore, entry: SnapshotEntry) -> bytes:
    """The training bytes of an entry, refused unless they hash to what the snapshot recorded."""
    data = blob_store.get(entry.rendition_sha256)
    if sha256_hex(data) != entry.rendition_sha256:
        raise LicenseGateViolation(
            f"the rendition of asset {entry.asset_id} does not match the snapshot",
            details={"violations": [{"asset_id": str(entry.asset_id), "reason": "blob_tampered"}]},
        )
    return data


def verify_manifest(entries: Sequence[SnapshotEntry], expected_root: str) -> bool:
    return merkle_root([leaf_hash(canonical_entry(e)) for e in entries]) == expected_root
