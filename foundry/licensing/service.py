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


def withdrawals_of(*, session: Session, contributor_id: uuid.UUID) -> list[RightsWithdrawal]:
    return list(session.scalars(select(RightsWithdrawal).where(RightsWithdrawal.contributor_id == contributor_id)
                                .order_by(RightsWithdrawal.created_at)))
