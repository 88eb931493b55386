"""Artists' statements (their own key; admins any contributor's) and payout periods (admin)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query, Response

from api.deps import AdminPrincipal, CurrentPrincipal, SessionDep, SettingsDep
from api.errors import ApiError, error_responses
from api.params import Offset, Period, Threshold
from foundry.payouts import service as payouts_service

router = APIRouter(prefix="/v1", tags=["payouts"])

Currency = Annotated[str, Query(pattern=r"^[A-Z]{3}$")]
Limit = Annotated[int, Query(ge=1, le=500)]
ARTIST_ONLY = error_responses(403, s403="Only an artist key has statements under /v1/me.")
FOR_ARTISTS = {"x-roles": ["artist"]}


def _artist(principal) -> uuid.UUID:
    if principal.role != "artist" or principal.contributor_id is None:
        raise ApiError(403, "forbidden", "statements under /v1/me belong to artist keys; admins use "
                                         "/v1/contributors/{id}/statements")
    return principal.contributor_id


def _periods(session, contributor_id, currency) -> dict:
    return {"contributor_id": contributor_id, "currency": currency,
            "periods": payouts_service.periods_with_earnings(session=session, contributor_id=contributor_id,
                                                             currency=currency)}


def _statement(session, settings, contributor_id, period, currency, limit, offset) -> dict:
    body = asdict(payouts_service.statement(session=session, contributor_id=contributor_id, period=period,
                                            currency=currency, threshold=settings.payout_threshold))
    body["outputs_page"] = {"limit": limit, "offset": offset, "items": payouts_service.statement_outputs(
        session=session, contributor_id=contributor_id, period=period, currency=currency, limit=limit,
        offset=offset)}
    return body


def _csv(session, contributor_id, period, currency) -> Response:
    text = payouts_service.statement_csv(session=session, contributor_id=contributor_id, period=period,
                                         currency=currency)
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="statement-{period}.csv"'})


@router.get("/me/statements", responses=ARTIST_ONLY, openapi_extra=FOR_ARTISTS)
def my_statements(principal: CurrentPrincipal, session: SessionDep, currency: Currency = "USD") -> dict:
    return _periods(session, _artist(principal), currency)


@router.get("/me/statements/{period}.csv", response_class=Response, responses=ARTIST_ONLY,
            openapi_extra=FOR_ARTISTS)
def my_statement_csv(principal: CurrentPrincipal, session: SessionDep, period: Period,
                     currency: Currency = "USD") -> Response:
    return _csv(session, _artist(principal), period, currency)


@router.get("/me/statements/{period}", responses=ARTIST_ONLY, openapi_extra=FOR_ARTISTS)
def my_statement(principal: CurrentPrincipal, session: SessionDep, settings: SettingsDep, period: Period,
                 currency: Currency = "USD", limit: Limit = 100, offset: Offset = 0) -> dict:
    return _statement(session, settings, _artist(principal), period, currency, limit, offset)


@router.get("/contributors/{contributor_id}/statements")
def contributor_statements(_principal: AdminPrincipal, session: SessionDep, contributor_id: uuid.UUID,
                           currency: Currency = "USD") -> dict:
    return _periods(session, contributor_id, currency)


@router.get("/contributors/{contributor_id}/statements/{period}.csv", response_class=Response)
def contributor_statement_csv(_principal: AdminPrincipal, session: SessionDep, contributor_id: uuid.UUID,
                              period: Period, currency: Currency = "USD") -> Response:
    return _csv(session, contributor_id, period, currency)


@router.get("/contributors/{contributor_id}/statements/{period}")
def contributor_statement(_principal: AdminPrincipal, session: SessionDep, settings: SettingsDep,
                          contributor_id: uuid.UUID, period: Period, currency: Currency = "USD",
                          limit: Limit = 100, offset: Offset = 0) -> dict:
    return _statement(session, settings, contributor_id, period, currency, limit, offset)


@router.post("/payout-periods/{period}/close", responses=error_responses(
    409, s409="The period has not ended, or an earlier one is still open."))
def close_payout_period(principal: AdminPrincipal, session: SessionDep, settings: SettingsDep, period: Period,
                        threshold: Threshold = None) -> dict:
    """Freeze the period into a payout batch (threshold: minimum payout, default from settings). Twice is a no-op."""
    with session.begin():
        result = payouts_service.close_period(
            session=session, period=period, closed_by=f"api:{principal}",
            threshold=settings.payout_threshold if threshold is None else threshold)
        row = result.period
        return {"period": row.period, "status": row.status, "closed_now": result.closed_now,
                "closed_at": row.closed_at, "threshold": row.threshold, "contributors": row.contributors,
                "total_payable": row.total_payable}


@router.get("/payout-periods/{period}/batch.csv", response_class=Response,
            responses=error_responses(409, s409="The period is not closed yet (period_open)."))
def payout_batch_csv(_principal: AdminPrincipal, session: SessionDep, period: Period) -> Response:
    return Response(payouts_service.batch_csv(session=session, period=period), media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="payouts-{period}.csv"'})


@router.get("/reports/periods")
def report_periods(_principal: AdminPrincipal, session: SessionDep, currency: Currency = "USD") -> list[dict]:
    """Revenue, contributor pool, payouts and platform share per period."""
    return payouts_service.period_report(session=session, currency=currency)


@router.get("/reports/periods/{period}/contributors")
def report_top_contributors(_principal: AdminPrincipal, session: SessionDep, period: Period,
                            currency: Currency = "USD", limit: Limit = 20) -> list[dict]:
    return payouts_service.top_contributors(session=session, period=period, currency=currency, limit=limit)


@router.get("/reports/periods/{period}/models")
def report_models(_principal: AdminPrincipal, session: SessionDep, period: Period, currency: Currency = "USD") -> list[dict]:
    return payouts_service.model_report(session=session, period=period, currency=currency)
