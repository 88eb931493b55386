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
    near_duplicate: bool = False
    refunded: bool = False


class GenerationPage(BaseModel):
    items: list[GenerationRead]
    next_cursor: str | None
