"""Attribution indexes: a model's training features, stored as a blob and tied to what they describe."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Float, ForeignKey, Integer, String, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class AttributionIndex(IdMixin, CreatedAtMixin, Base):
    """One build of a model's influence index. A model may have several (rebuilds); the newest whose
    fingerprint matches the model's weights and snapshot is the one generations use."""

    __tablename__ = "attribution_index"

    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    method: Mapped[str] = mapped_column(String(64))
    version: Mapped[str] = mapped_column(String(16))
    config: Mapped[dict] = mapped_column(default=dict)
    """Timesteps, noise seed, projection size and seed, damping, parameter subset: enough to recompute."""
    fingerprint: Mapped[dict] = mapped_column(default=dict)
    """Snapshot Merkle root and weights digest the index was built from."""
    blob_sha256: Mapped[str] = mapped_column(String(64))
    entry_count: Mapped[int] = mapped_column(Integer)
    build_seconds: Mapped[float] = mapped_column(Float)
    training_job_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    built_by: Mapped[str] = mapped_column(String(200))


class AttributionDispute(IdMixin, CreatedAtMixin, Base):
    """A contributor's share of a generation, disputed and checked by a second, independent method.

    The check (``worker.disputes``) makes a copy of the model forget the generation's outputs and
    measures how much the disputed contributor's images are forgotten with them, against the other
    contributors' images. The ledger is never changed by a check: a correction, if an admin decides
    one, is a reversing entry like any other."""

    __tablename__ = "attribution_dispute"

    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generation.id"), index=True)
    contributor_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("contributor.id"), index=True)
    reason: Mapped[str] = mapped_column(String(2000))
    opened_by: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")
    """``open`` until checked, then ``checked``."""
    verdict: Mapped[str | None] = mapped_column(String(16))
    """``supported``, ``not_supported`` or ``inconclusive``: does the output depend on this contributor's images?"""
    result: Mapped[dict | None] = mapped_column(default=None)
    """The check's method and config, the contributor's paid share, its loss rise and rank among the others."""
    checked_at: Mapped[datetime | None]
