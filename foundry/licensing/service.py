"""Grant operations and the registry of license terms.

Revocation is a one-way door: a revoked grant is never un-revoked.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from foundry.db import get_or_raise, utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.licensing.models import LicenseGrant, LicenseTermsRecord, RightsWithdrawal
from foundry.licensing.schemas import LicenseTermsCreate
from foundry.licensing.terms import LicenseCatalogue, LicenseTerms, Use


def list_license_terms(*, session: Session) -> list[LicenseTermsRecord]:
    return list(session.scalars(select(LicenseTermsRecord).order_by(LicenseTermsRecord.code)))


def license_catalogue(*, session: Session) -> LicenseCatalogue:
    """The registered terms, ready to match a manifest's license text."""
    return LicenseCatalogue(record.as_terms() for record in list_license_terms(session=session))


def add_license_terms(*, session: Session, terms: LicenseTermsCreate, created_by: str) -> LicenseTermsRecord:
    """Register terms onboarding may accept. Terms are never edited in place: grants refer to them."""
    uses = frozenset(terms.uses)
    candidate = LicenseTerms(code=terms.code, name=terms.name, url=terms.url,
                             requires_attribution=terms.requires_attribution, share_alike=terms.share_alike,
                             grantable_uses=uses)
    clash = license_catalogue(session=session).clash(candidate)
    if clash is not None:
        raise Conflict(f"license terms {terms.code!r} would be confused with the registered {clash.code!r} "
                       "(same code, name or URL)", code="license_terms_exist")
    record = LicenseTermsRecord(
        code=terms.code, name=terms.name, url=terms.url, requires_attribution=terms.requires_attribution,
        share_alike=terms.share_alike, grants_base_training=Use.BASE_TRAINING in uses,
        grants_customer_finetune=Use.CUSTOMER_FINETUNE in uses, grants_generation=Use.GENERATION in uses,
        created_by=created_by,
    )
    session.add(record)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"license terms {terms.code!r} are already registered", code="license_terms_exist") from None
    return record


def get_grant(*, session: Session, grant_id: uuid.UUID) -> LicenseGrant:
    return get_or_raise(session, LicenseGrant, grant_id, code="grant_not_found", what="license grant")


def grants_for_asset(*, session: Session, asset_id: uuid.UUID) -> list[LicenseGrant]:
    return list(session.scalars(
        select(LicenseGrant).where(LicenseGrant.asset_id == asset_id).order_by(LicenseGrant.created_at)
    ))


def revoke_grant(*, session: Session, grant_id: uuid.UUID, reason: str, revoked_by: str,
                 at: datetime | None = None) -> LicenseGrant:
    """Revoke a grant from ``at`` (default now); every later license check refuses it."""
    if not reason or not reason.strip():
        raise InvalidInput("a revocation needs a reason", code="revocation_reason_missing")
    grant = session.get(LicenseGrant, grant_id, with_for_update=True)
    if grant is None:
        raise NotFound(f"license grant {grant_id} does not exist", code="grant_not_found")
    if grant.revoked_at is not None:
        raise Conflict(f"license grant {grant_id} was already revoked at {grant.revoked_at.isoformat()}",
                       code="grant_already_revoked")
    grant.revoked_at = at or utcnow()
    grant.revocation_reason = reason.strip()
    grant.revoked_by = revoked_by
    session.flush()
    return grant


def opt_outs(*, session: Session, contributor_ids: Iterable[uuid.UUID] | None = None) -> dict[uuid.UUID, dict[Use, datetime]]:
    """contributor -> use -> when they opted out of it (the earliest opt-out counts)."""
    query = select(RightsWithdrawal.contributor_id, RightsWithdrawal.use, RightsWithdrawal.created_at).where(
        RightsWithdrawal.use.is_not(None))
    if contributor_ids is not None:
        query = query.where(RightsWithdrawal.contributor_id.in_(list(contributor_ids)))
    found: dict[uuid.UUID, dict[Use, datetime]] = {}
    for contributor_id, use, at in session.execute(query):
        uses = found.setdefault(contributor_id, {})
        if Use(use) not in uses or at < uses[Use(use)]:
            uses[Use(use)] = at
    return found


def withdraw_rights(*, session: Session, contributor_id: uuid.UUID, reason: str, requested_by: str,
                    asset_id: uuid.UUID | None = None, use: str | None = None) -> RightsWithdrawal:
    """Revoke one asset's grants (``asset_id``) or opt out of one use for every asset (``use``).

    Effects are immediate: later snapshots leave the assets out, training gates refuse them, and
    every model trained on them (and its descendants) is marked as affected so its revocation
    policy can apply. The withdrawal itself is append-only.
    """
    from foundry.catalog.models import Asset

    if (asset_id is None) == (use is None):
        raise InvalidInput("withdraw either one asset (asset_id) or one use for all assets (use)",
                           code="invalid_withdrawal")
    if not reason or not reason.strip():
        raise InvalidInput("a withdrawal needs a reason", code="withdrawal_reason_missing")
    now = utcnow()
    revoked = 0
    if asset_id is not None:
        asset = session.get(Asset, asset_id)
        if asset is None or asset.contributor_id != contributor_id:
            raise NotFound(f"asset {asset_id} does not exist", code="asset_not_found")
        for grant in grants_for_asset(session=session, asset_id=asset_id):
            if grant.revoked_at is None:
                revoke_grant(session=session, grant_id=grant.id, reason=reason, revoked_by=requested_by, at=now)
                revoked += 1
        if revoked == 0:
            raise Conflict(f"asset {asset_id} has no active grant left to revoke", code="already_withdrawn")
        asset_ids = [asset_id]
        uses = None
    else:
        try:
            chosen = Use(use)
        except ValueError:
            raise InvalidInput(f"unknown use {use!r}; one of {[u.value for u in Use]}", code="invalid_use") from None
        if chosen in opt_outs(session=session, contributor_ids=[contributor_id]).get(contributor_id, {}):
            raise Conflict(f"already opted out of {chosen.value}", code="already_withdrawn")
        asset_ids = list(session.scalars(select(Asset.id).where(Asset.contributor_id == contributor_id)))
        uses = None if chosen == Use.GENERATION else [chosen.value]
    affected = _mark_affected_models(session, asset_ids, uses, now)
    withdrawal = RightsWithdrawal(contributor_id=contributor_id, asset_id=asset_id, use=use, reason=reason.strip(),
                                  requested_by=requested_by, revoked_grants=revoked,
                                  affected_models=[str(model_id) for model_id in affected], created_at=now)
    session.add(withdrawal)
    session.flush()
    return withdrawal


def _mark_affected_models(session: Session, asset_ids: list[uuid.UUID], snapshot_uses: list[str] | None,
                          now: datetime) -> list[uuid.UUID]:
    """Models trained on any of ``asset_ids`` (in snapshots of ``snapshot_uses``; None: any), and their descendants."""
    from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
    from foundry.models_registry.models import RegisteredModel

    if not asset_ids:
        return []
    snapshots = select(SnapshotEntry.snapshot_id).where(SnapshotEntry.asset_id.in_(asset_ids)).distinct()
    if snapshot_uses is not None:
        snapshots = snapshots.join(DatasetSnapshot, DatasetSnapshot.id == SnapshotEntry.snapshot_id).where(
            DatasetSnapshot.use.in_(snapshot_uses))
    frontier = set(session.scalars(select(RegisteredModel.id).where(RegisteredModel.snapshot_id.in_(snapshots))))
    affected: set[uuid.UUID] = set()
    while frontier:
        affected |= frontier
        frontier = set(session.scalars(select(RegisteredModel.id).where(
            RegisteredModel.parent_id.in_(frontier)))) - affected
    for model in session.scalars(select(RegisteredModel).where(RegisteredModel.id.in_(affected))):
        if model.rights_affected_at is None:
            model.rights_affected_at = now
    return sorted(affected, key=str)


def withdrawals_of(*, session: Session, contributor_id: uuid.UUID) -> list[RightsWithdrawal]:
    return list(session.scalars(select(RightsWithdrawal).where(RightsWithdrawal.contributor_id == contributor_id)
                                .order_by(RightsWithdrawal.created_at)))
