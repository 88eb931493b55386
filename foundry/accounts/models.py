"""Tenants: brand customers. Their own brand assets and fine-tunes are theirs alone."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class Tenant(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "tenant"

    name: Mapped[str] = mapped_column(String(200), unique=True)


class ApiKey(IdMixin, CreatedAtMixin, Base):
    """A caller's credential. Only a hash of the secret is stored; the key is shown once."""

    __tablename__ = "api_key"

    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    contributor_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("contributor.id"), index=True)
    revoked_at: Mapped[datetime | None]


class ArtistSession(IdMixin, CreatedAtMixin, Base):
    """A signed-in artist web session. The cookie names this row; signing out ends it here, so a copy
    of the cookie stops working even before it expires."""

    __tablename__ = "artist_session"

    api_key_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("api_key.id"), index=True)
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"))
    expires_at: Mapped[datetime]
    ended_at: Mapped[datetime | None]
