"""Grant operations. Revocation is a one-way door: a revoked grant is never un-revoked."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.db import get_or_raise, utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.licensing.models import LicenseGrant


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
