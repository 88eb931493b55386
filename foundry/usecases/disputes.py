"""Disputed royalty splits: an admin opens a dispute for one contributor's share of one generation, and
a check by a second method (``worker.disputes``: unlearning the output) records whether the output
depends on that contributor's images. The ledger is never touched here."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from foundry.attribution import service as attribution_service
from foundry.attribution.models import AttributionDispute
from foundry.datasets import service as dataset_service
from foundry.datasets.models import SnapshotEntry
from foundry.errors import Conflict, InvalidInput
from foundry.generation import service as generation_service
from foundry.generation.models import Generation
from foundry.models_registry import service as registry_service
from foundry.royalties import service as royalties_service


def open_dispute(*, session: Session, generation_id: uuid.UUID, contributor_id: uuid.UUID, reason: str,
                 opened_by: str) -> AttributionDispute:
    """A dispute over what ``contributor_id`` was paid (or not paid) by a generation: one whose images the
    model learnt from."""
    reason = reason.strip()
    if not 1 <= len(reason) <= 2000:
        raise InvalidInput("reason: say why, in 1-2000 characters", code="validation_error")
    generation = generation_service.get_generation(session=session, generation_id=generation_id, tenant_id=None)
    if generation.status != "succeeded":
        raise Conflict(f"generation {generation_id} is {generation.status}: nothing was attributed",
                       code="generation_not_attributed")
    if not any(entry.contributor_id == contributor_id for entry in learnt_from(session=session, generation=generation)):
        raise InvalidInput(f"contributor {contributor_id} has no image in what this generation's model learnt from",
                           code="contributor_not_in_model")
    return attribution_service.create_dispute(session=session, generation_id=generation.id,
                                              contributor_id=contributor_id, reason=reason, opened_by=opened_by)


def learnt_from(*, session: Session, generation: Generation) -> list[SnapshotEntry]:
    """The licensed images of every snapshot in the generation's model lineage (never a tenant's own)."""
    chain = registry_service.lineage(session=session, model_id=generation.model_id)
    brand = set()
    entries: list[SnapshotEntry] = []
    for model in chain:
        if model.snapshot_id is None:
            continue
        brand |= dataset_service.brand_asset_ids(session=session, snapshot_id=model.snapshot_id)
        entries += dataset_service.snapshot_entries(session=session, snapshot_id=model.snapshot_id)
    seen: set[uuid.UUID] = set()
    unique = []
    for entry in entries:
        if entry.asset_id not in seen and entry.asset_id not in brand:
            seen.add(entry.asset_id)
            unique.append(entry)
    return unique


def paid_share_ppm(*, session: Session, generation_id: uuid.UUID, contributor_id: uuid.UUID) -> int:
    """The contributor's recorded share of the generation's pool, all methods together (millionths)."""
    return sum(line.share_ppm for line, _ in royalties_service.attribution_lines(session=session,
                                                                                generation_id=generation_id)
               if line.contributor_id == contributor_id)
