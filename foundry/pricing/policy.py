"""Which price rule applies: the most specific active one wins."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Protocol, TypeVar


class RuleLike(Protocol):
    model_id: uuid.UUID | None
    tenant_id: uuid.UUID | None


R = TypeVar("R", bound=RuleLike)


def specificity(rule: RuleLike, *, model_id: uuid.UUID, tenant_id: uuid.UUID) -> int | None:
    """3 model+tenant, 2 model only, 1 tenant only, 0 catch-all; None when the rule does not apply."""
    if rule.model_id not in (None, model_id) or rule.tenant_id not in (None, tenant_id):
        return None
    return (2 if rule.model_id is not None else 0) + (1 if rule.tenant_id is not None else 0)


def applicable_rule(rules: Iterable[R], *, model_id: uuid.UUID, tenant_id: uuid.UUID) -> R | None:
    """Model+tenant beats model beats tenant beats the catch-all rule."""
    ranked = [(rank, rule) for rule in rules
              if (rank := specificity(rule, model_id=model_id, tenant_id=tenant_id)) is not None]
    return max(ranked, key=lambda pair: pair[0])[1] if ranked else None
