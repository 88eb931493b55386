"""Shapes of moderation requests and answers."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

RuleKind = Literal["public_figure", "trademark", "term"]


class ModerationRuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: RuleKind
    phrase: str = Field(min_length=1, max_length=200, description="Denied as whole words, in any case.")
    note: str = Field(default="", max_length=500)


class ModerationRuleRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    phrase: str
    note: str
    created_by: str
    created_at: datetime
    retired_at: datetime | None


class StyleConsent(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    named_styles: bool = Field(description="May customers ask for images 'in the style of' this contributor "
                                           "(each such image pays them an extra share)?")
