"""Shapes of webhook requests and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

EventType = Literal["generation.succeeded", "generation.failed", "custom_model.progress", "custom_model.succeeded",
                    "custom_model.failed"]
"""``foundry.webhooks.policy.EVENT_TYPES``."""
DeliveryStatus = Literal["pending", "sending", "delivered", "failed"]


class WebhookCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(min_length=1, max_length=2000, description="https:// (or http://) address that receives "
                                                                "signed POSTs; no credentials in it.")
    events: list[EventType] | None = Field(default=None, min_length=1, description="Event types to send; "
                                                                                  "default: every type.")
    description: str = Field(default="", max_length=200)
    tenant_id: uuid.UUID | None = Field(default=None, description="Admins only: the tenant the endpoint is for "
                                                                  "(a customer key always means its own).")


class WebhookRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    tenant_id: uuid.UUID
    url: str
    events: list[str]
    description: str
    created_at: datetime
    disabled_at: datetime | None


class WebhookCreated(WebhookRead):
    secret: str = Field(description="The HMAC-SHA256 key of the signatures; shown this once.")


class WebhookDeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict
