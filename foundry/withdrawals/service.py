"""Withdrawing rights: a contributor revokes one asset's grants or opts out of one use.

A flow across licensing (the grants and the withdrawal record), the catalog (whose assets),
datasets and the registry (which models learned from them, and their descendants): its own
module, so that licensing need not reach up into the domains that depend on it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.catalog.models import Asset
from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
from foundry.db import flushed, utcnow
from foundry.errors import Conflict, InvalidInput, NotFound
from foundry.licensing import service as licensing_service
from foundry.licensing.models import RightsWithdrawal
from foundry.licensing.terms import Use
from foundry.models_registry.models import RegisteredModel


def withdraw_rights(*, session: Session, contributor_id: uuid.UUID, reason: str, requested_by: str,
                    asset_id: uuid.UUID | None = None, use: str | None = None) -> RightsWithdrawal:
    """Revoke one asset's grants (``asset_id``) or opt out of one use for every asset (``use``).

    Effects are immediate: later snapshots leave the assets out, training gates refuse them, and
    every model trained on them (and its descendants) is marked as affected so its revocation
    policy can apply. The withdrawal itself is append-only.
    """
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
        for grant in licensing_service.grants_for_asset(session=session, asset_id=asset_id):
            if grant.revoked_at is None:
                licensing_service.revoke_grant(session=session, grant_id=grant.id, reason=reason, revoked_by=requested_by, at=now)
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
        if chosen in licensing_service.opt_outs(session=session, contributor_ids=[contributor_id]).get(contributor_id, {}):
            raise Conflict(f"already opted out of {chosen.value}", code="already_withdrawn")
        asset_ids = list(session.scalars(select(Asset.id).where(Asset.contributor_id == contributor_id)))
        uses = None if chosen == Use.GENERATION else [chosen.value]
    affected = _mark_affected_models(session, asset_ids, uses, now)
    withdrawal = RightsWithdrawal(contributor_id=contributor_id, asset_id=asset_id, use=use, reason=reason.strip(),
                                  requested_by=requested_by, revoked_grants=revoked,
                                  affected_models=[str(model_id) for model_id in affected], created_at=now)
    return flushed(session, withdrawal)


def _mark_affected_models(session: Session, asset_ids: list[uuid.UUID], snapshot_uses: list[str] | None,
                          now: datetime) -> list[uuid.UUID]:
    """Models trained on any of ``asset_ids`` (in snapshots of ``snapshot_uses``; None: any), and their descendants."""
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
