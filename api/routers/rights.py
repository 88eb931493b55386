"""Artists taking rights back (revoke one asset, opt out of a use), and models' revocation policy."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from fastapi import APIRouter, status
from pydantic import BaseModel, ConfigDict, Field

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from api.errors import ApiError, error_responses
from foundry.licensing import service as licensing_service
from foundry.withdrawals import service as withdrawals_service

router = APIRouter(prefix="/v1", tags=["rights"])


class WithdrawalCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    asset_id: uuid.UUID | None = Field(default=None, description="Revoke every grant of this one asset.")
    use: Literal["base_training", "customer_finetune", "generation"] | None = Field(
        default=None, description="Opt out of this use for all of the contributor's assets.")
    reason: str = Field(min_length=1, max_length=2000)


class WithdrawalRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    contributor_id: uuid.UUID
    asset_id: uuid.UUID | None
    use: str | None
    reason: str
    requested_by: str
    revoked_grants: int
    affected_models: list[str]
    created_at: datetime


def _withdraw(session, contributor_id: uuid.UUID, body: WithdrawalCreate, requested_by: str) -> WithdrawalRead:
    with session.begin():
        withdrawal = withdrawals_service.withdraw_rights(session=session, contributor_id=contributor_id,
                                                       asset_id=body.asset_id, use=body.use, reason=body.reason,
                                                       requested_by=requested_by)
        return WithdrawalRead.model_validate(withdrawal)


def _artist(principal) -> uuid.UUID:
    if principal.role != "artist" or principal.contributor_id is None:
        raise ApiError(403, "forbidden", "only an artist key withdraws its own rights")
    return principal.contributor_id


@router.post("/me/withdrawals", status_code=status.HTTP_201_CREATED, response_model=WithdrawalRead,
             responses=error_responses(403, 404, 409, s403="Only an artist key withdraws its own rights.",
                                       s404="No such asset.", s409="Already withdrawn."),
             openapi_extra={"x-roles": ["artist"]})
def withdraw_my_rights(principal: CurrentPrincipal, session: SessionDep, body: WithdrawalCreate) -> WithdrawalRead:
    return _withdraw(session, _artist(principal), body, f"artist:{principal.key_id}")


@router.get("/me/withdrawals", response_model=list[WithdrawalRead],
            responses=error_responses(403, s403="Only an artist key has withdrawals under /v1/me."),
            openapi_extra={"x-roles": ["artist"]})
def my_withdrawals(principal: CurrentPrincipal, session: SessionDep) -> list[WithdrawalRead]:
    return [WithdrawalRead.model_validate(w)
            for w in licensing_service.withdrawals_of(session=session, contributor_id=_artist(principal))]


@router.post("/contributors/{contributor_id}/withdrawals", status_code=status.HTTP_201_CREATED,
             response_model=WithdrawalRead, responses=error_responses(409, s409="Already withdrawn."))
def withdraw_rights_for(principal: AdminPrincipal, session: SessionDep, contributor_id: uuid.UUID,
                        body: WithdrawalCreate) -> WithdrawalRead:
    return _withdraw(session, contributor_id, body, f"admin:{principal}")
