"""Moderation rules and the refusals they caused."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from foundry.db import Base, CreatedAtMixin, IdMixin


class ModerationRule(IdMixin, CreatedAtMixin, Base):
    """One entry of a deny list: a phrase no prompt may contain (matched as whole words, any case)."""

    __tablename__ = "moderation_rule"

    kind: Mapped[str] = mapped_column(String(32))
    """``public_figure``, ``trademark`` or ``term``: why it is denied, reported with each refusal."""
    phrase: Mapped[str] = mapped_column(String(200))
    note: Mapped[str] = mapped_column(String(500), default="")
    created_by: Mapped[str] = mapped_column(String(200))
    retired_at: Mapped[datetime | None]


class PromptRefusal(IdMixin, CreatedAtMixin, Base):
    """A request refused for its text: never charged, counted in the admin report."""

    __tablename__ = "prompt_refusal"

    tenant_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tenant.id"), index=True)
    api_key_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("api_key.id"))
    rule: Mapped[str] = mapped_column(String(64), index=True)
    """The rule kind that matched (a deny-list kind, or ``named_style_without_consent``)."""
    rule_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("moderation_rule.id"))
    field: Mapped[str] = mapped_column(String(64))
    """Which text: ``prompt``, ``negative_prompt``, ``caption``."""
    matched: Mapped[str] = mapped_column(String(300))
