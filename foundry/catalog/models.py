"""Catalog tables: who contributed what, and which import batch brought it in."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Index, Integer, String, Text, Uuid, false
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin, utcnow


class Contributor(IdMixin, CreatedAtMixin, Base):
    """A person or organisation whose licensed images the foundry may use and must pay."""

    __tablename__ = "contributor"

    display_name: Mapped[str] = mapped_column(String(300))
    external_ref: Mapped[str] = mapped_column(String(400), unique=True)
    payout_identity: Mapped[str | None] = mapped_column(String(400))
    style_name_consent: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    """Agreed to be named as a style in prompts ("in the style of NAME"); each such image pays them extra."""


class CatalogImport(IdMixin, Base):
    """One onboarding batch, with its outcome and a per-row report of what was refused and why."""

    __tablename__ = "catalog_import"

    source: Mapped[str] = mapped_column(String(1000))
    source_format: Mapped[str] = mapped_column(String(32))
    source_sha256: Mapped[str | None] = mapped_column(String(64))
    requested_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    rows_total: Mapped[int] = mapped_column(Integer, default=0)
    rows_imported: Mapped[int] = mapped_column(Integer, default=0)
    rows_unchanged: Mapped[int] = mapped_column(Integer, default=0)
    rows_rejected: Mapped[int] = mapped_column(Integer, default=0)
    contributors_created: Mapped[int] = mapped_column(Integer, default=0)
    near_duplicates: Mapped[int] = mapped_column(Integer, default=0)
    report: Mapped[dict] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)


class Asset(IdMixin, CreatedAtMixin, Base):
    """A licensed image, named by the sha256 of its original bytes (stored in the blob store)."""

    __tablename__ = "asset"
    __table_args__ = (Index("ix_asset_contributor_id", "contributor_id"),)

    sha256: Mapped[str] = mapped_column(String(64), unique=True)
    phash: Mapped[str] = mapped_column(String(16), index=True)
    format: Mapped[str] = mapped_column(String(16))
    width: Mapped[int]
    height: Mapped[int]
    byte_size: Mapped[int]
    rendition_sha256: Mapped[str] = mapped_column(String(64))
    caption: Mapped[str] = mapped_column(Text, default="")
    tags: Mapped[list] = mapped_column(default=list)
    source_ref: Mapped[str] = mapped_column(String(1000), index=True)
    embedded_rights: Mapped[dict] = mapped_column(default=dict)
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"))
    import_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("catalog_import.id"), index=True)
    near_duplicate_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("asset.id"))
    owner_tenant_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, index=True)
    attestation: Mapped[dict | None] = mapped_column(JSON)
    """A brand asset's rights statement as the tenant made it when uploading (who, what, when)."""
    """Set for a tenant's own brand assets: only that tenant's fine-tunes may ever learn from them."""
