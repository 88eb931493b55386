"""Setting and resolving prices."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.accounts import service as accounts_service
from foundry.db import flushed, utcnow
from foundry.errors import InvalidInput, NotFound
from foundry.models_registry import service as registry_service
from foundry.money import Money
from foundry.pricing.models import PriceRule
from foundry.pricing.policy import applicable_rule


def set_price(*, session: Session, unit_price: int, currency: str, pool_share_bps: int, created_by: str,
              finetune_share_bps: int = 5000, model_id: uuid.UUID | None = None,
              tenant_id: uuid.UUID | None = None, training_step_price: int = 0) -> PriceRule:
    """A new rule for this (model, tenant) scope; the rule it replaces is retired, never edited."""
    try:
        Money(unit_price, currency)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(str(exc), code="invalid_price") from None
    if unit_price < 0 or not isinstance(training_step_price, int) or training_step_price < 0:
        raise InvalidInput("a price cannot be negative", code="invalid_price")
    for name, value in (("pool_share_bps", pool_share_bps), ("finetune_share_bps", finetune_share_bps)):
        if not isinstance(value, int) or not 0 <= value <= 10_000:
            raise InvalidInput(f"{name} is basis points between 0 and 10000", code="invalid_price")
    if model_id is not None:
        registry_service.get_model(session=session, model_id=model_id)
    if tenant_id is not None:
        accounts_service.get_tenant(session=session, tenant_id=tenant_id)
    for old in session.scalars(select(PriceRule).where(
            PriceRule.retired_at.is_(None), _same_scope(PriceRule.model_id, model_id),
            _same_scope(PriceRule.tenant_id, tenant_id)).with_for_update()):
        old.retired_at = utcnow()
    rule = PriceRule(model_id=model_id, tenant_id=tenant_id, unit_price=unit_price, currency=currency,
                     pool_share_bps=pool_share_bps, finetune_share_bps=finetune_share_bps,
                     training_step_price=training_step_price, created_by=created_by)
    return flushed(session, rule)


def _same_scope(column, value):
    return column.is_(None) if value is None else column == value


def active_rules(*, session: Session) -> list[PriceRule]:
    return list(session.scalars(select(PriceRule).where(PriceRule.retired_at.is_(None))
                                .order_by(PriceRule.created_at)))


def price_for(*, session: Session, model_id: uuid.UUID, tenant_id: uuid.UUID) -> PriceRule:
    candidates = session.scalars(select(PriceRule).where(
        PriceRule.retired_at.is_(None),
        (PriceRule.model_id.is_(None)) | (PriceRule.model_id == model_id),
        (PriceRule.tenant_id.is_(None)) | (PriceRule.tenant_id == tenant_id)))
    rule = applicable_rule(candidates, model_id=model_id, tenant_id=tenant_id)
    if rule is None:
        raise NotFound("no price is configured for this model and tenant; an admin sets one with "
                       "'foundry prices set' or POST /v1/prices", code="price_not_configured")
    return rule
