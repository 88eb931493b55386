"""Snapshot tables. Entries are write-once: database triggers refuse updates and deletes."""

from __future__ import annotations

import uuid

from sqlalchemy import ForeignKey, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class DatasetSnapshot(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "dataset_snapshot"

    name: Mapped[str] = mapped_column(String(200))
    use: Mapped[str] = mapped_column(String(32))
    filters: Mapped[dict] = mapped_column(default=dict)
    merkle_root: Mapped[str] = mapped_column(String(64), index=True)
    entry_count: Mapped[int] = mapped_column(Integer)
    contributor_count: Mapped[int] = mapped_column(Integer)
    created_by: Mapped[str] = mapped_column(String(200))
    description: Mapped[str | None] = mapped_column(Text)
    owner_tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    """The tenant whose fine-tunes this snapshot serves; None for the shared models."""


class SnapshotEntry(Base):
    """One licensed asset in a snapshot, with the exact bytes and grant terms it was taken under."""

    __tablename__ = "snapshot_entry"

    snapshot_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("dataset_snapshot.id"), primary_key=True)
    asset_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("asset.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    asset_sha256: Mapped[str] = mapped_column(String(64))
    rendition_sha256: Mapped[str] = mapped_column(String(64))
    grant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("license_grant.id"), index=True)
    grant_fingerprint: Mapped[str] = mapped_column(String(64))
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"), index=True)
    caption: Mapped[str] = mapped_column(Text)
    tags: Mapped[list] = mapped_column(default=list, server_default="[]")
    """The asset's catalog tags when the snapshot was taken: a recipe may caption with them."""
