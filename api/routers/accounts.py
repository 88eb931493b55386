"""Pricing (admin), the caller's own account and balances, and the ledger."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, status
from pydantic import BaseModel

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from api.errors import ApiError, error_responses
from api.params import Offset
from foundry.ledger import service as ledger_service
from foundry.ledger.accounts import own_account
from foundry.pricing import service as pricing_service
from foundry.pricing.schemas import PriceRuleCreate, PriceRuleRead

router = APIRouter(prefix="/v1", tags=["accounts"])


class LedgerEntryRead(BaseModel):
    id: uuid.UUID
    transaction_id: uuid.UUID
    posted_at: str
    kind: str
    debit_account: str
    credit_account: str
    amount: int
    currency: str
    generation_id: uuid.UUID | None
    contributor_id: uuid.UUID | None
    asset_id: uuid.UUID | None
    reverses_entry_id: uuid.UUID | None
    memo: str | None


def _entry_read(entry) -> LedgerEntryRead:
    return LedgerEntryRead(posted_at=entry.posted_at.isoformat(),
                           **{k: getattr(entry, k) for k in LedgerEntryRead.model_fields if k != "posted_at"})


@router.post("/prices", status_code=status.HTTP_201_CREATED, response_model=PriceRuleRead,
             responses=error_responses(404, s404="The model or tenant named in the body does not exist."))
def set_price(principal: AdminPrincipal, session: SessionDep, body: PriceRuleCreate) -> PriceRuleRead:
    """A new price for a (model, tenant) scope; the rule it replaces is retired, never edited."""
    with session.begin():
        rule = pricing_service.set_price(session=session, created_by=f"api:{principal}", **body.model_dump())
        return PriceRuleRead.model_validate(rule)


@router.get("/prices", response_model=list[PriceRuleRead])
def list_prices(_principal: AdminPrincipal, session: SessionDep) -> list[PriceRuleRead]:
    return [PriceRuleRead.model_validate(rule) for rule in pricing_service.active_rules(session=session)]


def _own_account(principal) -> tuple[str, dict]:
    owned = own_account(principal)
    if owned is None:
        raise ApiError(403, "forbidden", "admin keys have no account of their own; use /v1/ledger/balances")
    return owned


@router.get("/me")
def who_am_i(principal: CurrentPrincipal, session: SessionDep,
             currency: Annotated[str, Query(pattern=r"^[A-Z]{3}$")] = "USD") -> dict:
    """The caller's role and scope, and for customers and artists their ledger balance."""
    answer = {"role": principal.role, "name": principal.name,
              "tenant_id": principal.tenant_id, "contributor_id": principal.contributor_id}
    if not principal.is_admin:
        account, _ = _own_account(principal)
        answer["account"] = account
        answer["balance"] = {"currency": currency,
                             "amount": ledger_service.account_balance(session=session, account=account,
                                                                         currency=currency)}
    return answer


@router.get("/me/ledger", response_model=list[LedgerEntryRead],
            responses=error_responses(403, s403="Admin keys have no ledger account of their own."),
            openapi_extra={"x-roles": ["customer", "artist"]})
def my_ledger(principal: CurrentPrincipal, session: SessionDep,
              limit: Annotated[int, Query(ge=1, le=500)] = 100,
              offset: Offset = 0) -> list[LedgerEntryRead]:
    """A customer's charges or an artist's royalties (and their reversals), oldest first."""
    _, scope = _own_account(principal)
    return [_entry_read(entry) for entry in ledger_service.entries_for(session=session, limit=limit,
                                                                          offset=offset, **scope)]


@router.get("/ledger/balances")
def ledger_balances(_principal: AdminPrincipal, session: SessionDep) -> dict:
    """Every account's balance per currency; each currency sums to zero (double entry)."""
    balances = ledger_service.trial_balance(session=session)
    return {"balances": balances, "sums": {currency: sum(accounts.values())
                                          for currency, accounts in balances.items()}}
