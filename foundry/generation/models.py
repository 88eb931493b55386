"""Generations and their images.

A generation row is created when the request is accepted (queued); its outcome -- images,
attribution, ledger entries and the ``succeeded`` status -- is written in one transaction.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class Generation(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "generation"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenant.id"), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model.id"), index=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    """Fingerprint of the canonical request body: the same idempotency key must carry the same body."""
    request: Mapped[dict] = mapped_column(default=dict)
    """The full, resolved request (seed, size, steps, scheduler ...): enough to reproduce it."""
    prompt: Mapped[str] = mapped_column(Text)
    seed: Mapped[int] = mapped_column(BigInteger)
    num_images: Mapped[int] = mapped_column(Integer)
    mode: Mapped[str] = mapped_column(String(8))
    """sync (answered in the request) or async (served by a generation worker)."""
    status: Mapped[str] = mapped_column(String(16), index=True, default="queued")
    """queued, running, succeeded, failed."""
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    price_rule_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("price_rule.id"))
    unit_price: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    charge_amount: Mapped[int | None] = mapped_column(BigInteger)
    pool_amount: Mapped[int | None] = mapped_column(BigInteger)
    attribution: Mapped[dict] = mapped_column(default=dict)
    named_styles: Mapped[list] = mapped_column(default=list)
    """Contributors the prompt names as a style (each agreed to be named): they get the named-style share."""
    """The attribution summary shown to the customer and written into each image's manifest."""
    timings: Mapped[dict] = mapped_column(default=dict)
    refunded_at: Mapped[datetime | None]


class GeneratedImage(IdMixin, Base):
    __tablename__ = "generated_image"
    __table_args__ = (UniqueConstraint("generation_id", "index"),)

    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generation.id"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    raw_sha256: Mapped[str] = mapped_column(String(64))
    """The pipeline's own output, PNG at the generated size: same request and seed, same bytes."""
    delivery_sha256: Mapped[str] = mapped_column(String(64), index=True)
    """The delivered PNG: upscaled to at least 256 px, watermarked, C2PA-signed."""
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    delivery_width: Mapped[int] = mapped_column(Integer)
    delivery_height: Mapped[int] = mapped_column(Integer)
    perceptual_hash: Mapped[str] = mapped_column(String(16), index=True)
    watermark_id: Mapped[str] = mapped_column(String(40), unique=True)
    """The watermark payload's lookup key (hex)."""
    nearest_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("asset.id"))
    nearest_distance: Mapped[int | None] = mapped_column(Integer)
    near_duplicate: Mapped[bool] = mapped_column(Boolean, default=False)
    influence: Mapped[list | None] = mapped_column(default=None)
    """This output's most influential training images ({asset_id, contributor_id, share_ppm, score}, largest
    first): the evidence shown to contributors. None when it was not scored (no index, blank or noise)."""


class EditInput(IdMixin, Base):
    """An image an edit started from: an upload (kept only until ``expires_at``) or an earlier output.

    Its hash, size and C2PA relationship stay with the generation for good (they are in the signed
    manifest); the uploaded bytes are purged when the retention ends."""

    __tablename__ = "edit_input"
    __table_args__ = (UniqueConstraint("generation_id", "role"),)

    generation_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("generation.id"), index=True)
    role: Mapped[str] = mapped_column(String(8))
    """init (the image edited) or mask."""
    relationship: Mapped[str] = mapped_column(String(16))
    """C2PA ingredient relationship: parentOf (init) or componentOf (mask)."""
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    perceptual_hash: Mapped[str] = mapped_column(String(16))
    source_generation_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("generation.id"))
    """A variation's source generation (its raw output is the input; nothing was uploaded)."""
    source_image_index: Mapped[int | None] = mapped_column(Integer)
    catalog_asset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("asset.id"))
    """The licensed catalog image the input is a near-duplicate of, if any (its contributor is paid)."""
    catalog_distance: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(index=True)
    """When an uploaded input's bytes are purged (None: not an upload)."""
    purged_at: Mapped[datetime | None]
