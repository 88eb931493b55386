"""Attribution indexes and per-model attribution policy.

The edge owns the transaction: these functions only ``flush``.
"""

from __future__ import annotations

import io
import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.attribution.models import AttributionDispute, AttributionIndex
from foundry.attribution.policy import index_fingerprint
from foundry.blobs import BlobStore
from foundry.db import flushed, utcnow
from foundry.errors import Conflict, NotFound
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from provenance.influence import InfluenceIndex


def fingerprint_of(model: RegisteredModel) -> dict[str, str]:
    return index_fingerprint(snapshot_merkle_root=model.snapshot_merkle_root, weights_sha256=model.weights_sha256)


def active_index(*, session: Session, model: RegisteredModel) -> AttributionIndex | None:
    """The newest index built from exactly this model's weights and snapshot, or None."""
    wanted = fingerprint_of(model)
    for row in session.scalars(select(AttributionIndex).where(AttributionIndex.model_id == model.id)
                               .order_by(AttributionIndex.created_at.desc(), AttributionIndex.id)):
        if row.fingerprint == wanted:
            return row
    return None


def scoring_index(*, session: Session, model: RegisteredModel) -> AttributionIndex | None:
    """The index that scores ``model``'s outputs: its drawing stage's (a cascade is scored through the base
    stage that drew the picture, on the enlarged output brought back to that stage's size)."""
    return active_index(session=session, model=registry_service.drawing_stage(session=session, model=model))


def list_indexes(*, session: Session, model_id: uuid.UUID) -> list[AttributionIndex]:
    registry_service.get_model(session=session, model_id=model_id)
    return list(session.scalars(select(AttributionIndex).where(AttributionIndex.model_id == model_id)
                                .order_by(AttributionIndex.created_at.desc())))


def record_index(*, session: Session, model_id: uuid.UUID, index: InfluenceIndex, blob_sha256: str,
                 build_seconds: float, built_by: str, training_job_id: uuid.UUID | None) -> AttributionIndex:
    """Register a finished build, refused when the model changed underneath it."""
    model = registry_service.get_model(session=session, model_id=model_id)
    if index.fingerprint != fingerprint_of(model):
        raise Conflict("the index was built from other weights or another snapshot than the model's",
                       code="attribution_index_stale")
    row = AttributionIndex(model_id=model.id, method=index.config["method"], version=str(index.config["version"]),
                           config=dict(index.config), fingerprint=dict(index.fingerprint), blob_sha256=blob_sha256,
                           entry_count=len(index.asset_ids), build_seconds=round(build_seconds, 3),
                           training_job_id=training_job_id, built_by=built_by[:200])
    return flushed(session, row)


def set_influence_alpha(*, session: Session, model_id: uuid.UUID, alpha_bps: int) -> RegisteredModel:
    model = registry_service.get_model(session=session, model_id=model_id)
    model.influence_alpha_bps = alpha_bps
    session.flush()
    return model


def store_index(*, blob_store: BlobStore, index: InfluenceIndex) -> str:
    buffer = io.BytesIO()
    index.save(buffer)
    return blob_store.put(buffer.getvalue())


def load_index(*, blob_store: BlobStore, row: AttributionIndex) -> InfluenceIndex:
    """The stored index, checked against the row that names it."""
    index = InfluenceIndex.load(io.BytesIO(blob_store.get(row.blob_sha256)))
    if index.fingerprint != row.fingerprint or len(index.asset_ids) != row.entry_count:
        raise Conflict(f"attribution index {row.id} does not match its blob", code="attribution_index_corrupt")
    return index


def create_dispute(*, session: Session, generation_id: uuid.UUID, contributor_id: uuid.UUID, reason: str,
                   opened_by: str) -> AttributionDispute:
    return flushed(session, AttributionDispute(generation_id=generation_id, contributor_id=contributor_id,
                                               reason=reason, opened_by=opened_by, status="open"))


def get_dispute(*, session: Session, dispute_id: uuid.UUID) -> AttributionDispute:
    dispute = session.get(AttributionDispute, dispute_id)
    if dispute is None:
        raise NotFound(f"dispute {dispute_id} does not exist", code="dispute_not_found")
    return dispute


def record_dispute_check(*, session: Session, dispute_id: uuid.UUID, verdict: str, result: dict) -> AttributionDispute:
    """The check's outcome; a dispute is checked once (a new dispute asks again)."""
    dispute = get_dispute(session=session, dispute_id=dispute_id)
    if dispute.status != "open":
        raise Conflict(f"dispute {dispute_id} was already checked", code="dispute_already_checked")
    dispute.status, dispute.verdict, dispute.result, dispute.checked_at = "checked", verdict, result, utcnow()
    session.flush()
    return dispute


def disputes_of(*, session: Session, generation_id: uuid.UUID | None = None) -> list[AttributionDispute]:
    query = select(AttributionDispute).order_by(AttributionDispute.created_at.desc())
    if generation_id is not None:
        query = query.where(AttributionDispute.generation_id == generation_id)
    return list(session.scalars(query.limit(500)))
