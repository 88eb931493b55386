"""Dataset snapshot routes (admin): create, read, list entries, re-run the license gate."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from api.deps import AdminPrincipal, SessionDep
from api.errors import error_responses
from api.params import Offset, PageLimit
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotCreate, SnapshotRead

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])


class SnapshotEntryRead(BaseModel):
    position: int
    asset_id: uuid.UUID
    asset_sha256: str
    rendition_sha256: str
    grant_id: uuid.UUID
    grant_fingerprint: str
    contributor_id: uuid.UUID
    caption: str


class SnapshotEntryPage(BaseModel):
    items: list[SnapshotEntryRead]
    limit: int
    offset: int
    total: int


class GateRead(BaseModel):
    snapshot_id: uuid.UUID
    merkle_root: str
    entries: int
    usable: bool
    violations: list[dict]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=SnapshotRead,
             responses=error_responses(404, s404="A tenant named in the filters does not exist."))
def create_snapshot(principal: AdminPrincipal, session: SessionDep, body: SnapshotCreate) -> SnapshotRead:
    with session.begin():
        snapshot = dataset_service.create_snapshot(
            session=session, name=body.name, use=body.use, filters=body.filters,
            created_by=f"api:{principal}", description=body.description,
        )
        return SnapshotRead.model_validate(snapshot)


@router.get("", response_model=list[SnapshotRead])
def list_snapshots(_principal: AdminPrincipal, session: SessionDep, limit: PageLimit = 50,
                   offset: Offset = 0) -> list[SnapshotRead]:
    snapshots = dataset_service.list_snapshots(session=session, limit=limit, offset=offset)
    return [SnapshotRead.model_validate(s) for s in snapshots]


@router.get("/{snapshot_id}", response_model=SnapshotRead)
def get_snapshot(_principal: AdminPrincipal, session: SessionDep, snapshot_id: uuid.UUID) -> SnapshotRead:
    return SnapshotRead.model_validate(dataset_service.get_snapshot(session=session, snapshot_id=snapshot_id))


@router.get("/{snapshot_id}/entries", response_model=SnapshotEntryPage)
def list_entries(_principal: AdminPrincipal, session: SessionDep, snapshot_id: uuid.UUID,
                 limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                 offset: Offset = 0) -> SnapshotEntryPage:
    snapshot = dataset_service.get_snapshot(session=session, snapshot_id=snapshot_id)
    entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot_id, limit=limit, offset=offset)
    return SnapshotEntryPage(items=[SnapshotEntryRead.model_validate(e, from_attributes=True) for e in entries],
                             limit=limit, offset=offset, total=snapshot.entry_count)


@router.post("/{snapshot_id}/gate", response_model=GateRead)
def check_gate(_principal: AdminPrincipal, session: SessionDep, snapshot_id: uuid.UUID) -> GateRead:
    """Would this snapshot pass the license gate right now? Lists every asset that would stop a job."""
    snapshot = dataset_service.get_snapshot(session=session, snapshot_id=snapshot_id)
    violations = dataset_service.check_entries(session=session, snapshot=snapshot)
    return GateRead(snapshot_id=snapshot.id, merkle_root=snapshot.merkle_root, entries=snapshot.entry_count,
                    usable=not violations, violations=violations)
