from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_IMAGES_PER_REQUEST = 8

SchedulerName = Literal["default", "ddpm", "ddim", "euler", "euler_ancestral", "dpmsolver++", "pndm"]


class GenerationCreate(BaseModel):
    """A text-to-image request. Strict: a wrong type is refused, never coerced or clamped."""

    model_config = ConfigDict(extra="forbid", strict=True)

    model_id: uuid.UUID = Field(strict=False)
    prompt: str = Field(min_length=1, max_length=2000, description="What to draw; not blank.",
                        json_schema_extra={"pattern": r"\S"})
    negative_prompt: str = Field(default="", max_length=2000,
                                 description="What to avoid; blank (empty or only whitespace) means none.")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1, description="Returned when omitted.")
    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES_PER_REQUEST)
    steps: int = Field(default=30, ge=1, le=150)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0, description=(
        "Classifier-free guidance; default: the scale the model follows prompts best at, from its recipe "
        "(measured by the quality benchmark), else 9."))
    width: int | None = Field(default=None, description="One of the model's supported sizes; default its native size.")
    height: int | None = Field(default=None)
    scheduler: SchedulerName = "default"
    mode: Literal["auto", "async"] = Field(
        default="auto", description="auto answers small requests at once and queues larger ones; async always queues.")

    @field_validator("prompt")
    @classmethod
    def _prompt_has_text(cls, prompt: str) -> str:
        if not prompt.strip():
            raise ValueError("the prompt is blank: describe the image to generate")
        return prompt


EditOperation = Literal["image_to_image", "inpaint", "outpaint"]


class EditCreate(GenerationCreate):
    """An edit of an uploaded image (the image and mask come as files beside these fields).

    The size is the model's: the input is fitted onto its square canvas (see ``generation.editing``)."""

    model_config = ConfigDict(extra="forbid", strict=False)

    operation: EditOperation
    strength: float | None = Field(default=None, gt=0.0, le=1.0, description=(
        "How much of the image is redrawn: near 0 keeps it, 1 redraws the masked region from noise. Default "
        "0.6 for image_to_image, 1 for inpaint and outpaint."))
    pad_left: int = Field(default=0, ge=0, description="outpaint: pixels added on the left (of the input's size).")
    pad_top: int = Field(default=0, ge=0)
    pad_right: int = Field(default=0, ge=0)
    pad_bottom: int = Field(default=0, ge=0)


class VariationCreate(BaseModel):
    """Variations of an earlier output of this tenant: image-to-image from its raw pixels."""

    model_config = ConfigDict(extra="forbid", strict=True)

    generation_id: uuid.UUID = Field(strict=False)
    image_index: int = Field(default=0, ge=0, le=MAX_IMAGES_PER_REQUEST - 1)
    model_id: uuid.UUID | None = Field(default=None, strict=False,
                                       description="Default: the model that made the source image.")
    prompt: str | None = Field(default=None, min_length=1, max_length=2000,
                               description="Default: the source generation's prompt.")
    negative_prompt: str = Field(default="", max_length=2000)
    strength: float | None = Field(default=None, gt=0.0, le=1.0, description="Default 0.5.")
    seed: int | None = Field(default=None, ge=0, le=2**32 - 1)
    num_images: int = Field(default=1, ge=1, le=MAX_IMAGES_PER_REQUEST)
    steps: int = Field(default=30, ge=1, le=150)
    guidance_scale: float | None = Field(default=None, ge=0.0, le=30.0)
    scheduler: SchedulerName = "default"
    mode: Literal["auto", "async"] = "auto"


class EditInputRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    role: str
    relationship: str
    sha256: str
    format: str
    width: int
    height: int
    source_generation_id: uuid.UUID | None
    source_image_index: int | None
    catalog_asset_id: uuid.UUID | None
    catalog_distance: int | None
    expires_at: datetime | None
    purged_at: datetime | None


class AttributionAsset(BaseModel):
    asset_id: uuid.UUID
    share_ppm: int
    """The asset's share of the influence part of the pool, in millionths."""
    amount: int | None = None


class AttributionEntry(BaseModel):
    contributor_id: uuid.UUID
    display_name: str
    method: str
    share: str
    """Exact fraction of the pool."""
    share_ppm: int
    amount: int
    asset_count: int
    top_assets: list[AttributionAsset] = []


class AttributionRead(BaseModel):
    method: str
    currency: str
    charge: int
    pool: int
    platform: int
    contributors: list[AttributionEntry]


class GeneratedImageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    index: int
    url: str
    width: int
    height: int
    delivery_width: int
    delivery_height: int
    raw_sha256: str
    delivery_sha256: str
    perceptual_hash: str
    near_duplicate: bool
    nearest_asset_id: uuid.UUID | None
    nearest_distance: int | None


class GenerationRead(BaseModel):
    id: uuid.UUID
    status: str
    mode: str
    model_id: uuid.UUID
    tenant_id: uuid.UUID
    prompt: str
    seed: int
    num_images: int
    request: dict
    queue_position: int | None = None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    error: dict | None = None
    price: dict
    images: list[GeneratedImageRead] = []
    attribution: AttributionRead | None = None
    inputs: list[EditInputRead] = Field(default=[], description="What an edit started from (empty otherwise).")
    near_duplicate: bool = False
    refunded: bool = False


class GenerationPage(BaseModel):
    items: list[GenerationRead]
    next_cursor: str | None
