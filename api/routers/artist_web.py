"""The artists' web page: sign in with an artist key, then a session cookie (CSRF-protected forms).

Server-rendered: totals of the period, a chart of earnings by period, the top assets with their
thumbnails, the outputs that paid, a CSV download, and the rights controls (revoke one asset's
grants, opt out of a use). Every number comes from the same service functions as the JSON API.
"""

from __future__ import annotations

import hmac
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import quote

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.templating import Jinja2Templates
from sqlalchemy import select

from api.deps import BlobStoreDep, SessionDep, SettingsDep
from api.params import MAX_INT32
from api.web_session import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    SESSION_SECONDS,
    WebSession,
    decode_session,
    encode_session,
    session_secret,
)
from foundry.accounts import service as accounts_service
from foundry.catalog.models import Asset, Contributor
from foundry.db import utcnow
from foundry.errors import FoundryError
from foundry.generation import service as generation_service
from foundry.ledger.periods import parse_period, period_of
from foundry.moderation import service as moderation_service
from foundry.payouts import service as payouts_service
from foundry.usecases import evidence as evidence_usecases
from foundry.withdrawals import service as withdrawals_service

router = APIRouter(prefix="/artist", tags=["artist pages"], include_in_schema=False)
OUTPUTS_PER_PAGE = 25
templates = Jinja2Templates(directory=str(Path(__file__).resolve().parents[1] / "templates"))


class NotSignedIn(Exception):
    pass


def _signed_in(request: Request, settings, session) -> WebSession:
    web = decode_session(session_secret(settings), request.cookies.get(SESSION_COOKIE))
    if web is None:
        raise NotSignedIn
    active = accounts_service.active_artist_session(session=session, session_id=web.session_id,
                                                    api_key_id=web.key_id, contributor_id=web.contributor_id)
    session.rollback()  # read before ending the look-up's transaction: the route opens its own
    if active is None:
        raise NotSignedIn
    return web


def _to_sign_in(message: str | None = None) -> RedirectResponse:
    target = "/artist/sign-in" + (f"?message={quote(message)}" if message else "")
    response = RedirectResponse(target, status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/artist")
    return response


def _form_session(request: Request, settings, session, csrf_token: str) -> WebSession | Response:
    """The signed-in session behind a form post, or the response refusing it (sign-in page, 403)."""
    try:
        web = _signed_in(request, settings, session)
    except NotSignedIn:
        return _to_sign_in()
    if not hmac.compare_digest(web.csrf.encode(), (csrf_token or "").encode()):
        return Response("invalid CSRF token", status_code=403)
    return web


@router.get("/sign-in", response_class=HTMLResponse)
def sign_in_page(request: Request, settings: SettingsDep, message: str | None = None) -> Response:
    token = secrets.token_urlsafe(24)
    response = templates.TemplateResponse(request, "sign_in.html", {"csrf": token, "message": message})
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=settings.cookie_secure,
                        path="/artist", max_age=3600)
    return response


@router.post("/sign-in")
def sign_in(request: Request, settings: SettingsDep, session: SessionDep,
            api_key: Annotated[str, Form(max_length=200)], csrf_token: Annotated[str, Form(max_length=100)]) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not expected or not hmac.compare_digest(expected.encode(), csrf_token.encode()):
        return _to_sign_in("Your sign-in form expired; please try again.")
    principal = accounts_service.authenticate(session=session, token=api_key.strip())
    session.rollback()
    if principal is None or principal.role != "artist":
        return _to_sign_in("That is not a valid artist key.")
    expires = int(time.time()) + SESSION_SECONDS
    with session.begin():
        row = accounts_service.start_artist_session(session=session, api_key_id=principal.key_id,
                                                    contributor_id=principal.contributor_id,
                                                    expires_at=datetime.fromtimestamp(expires, UTC))
        session_id = row.id
    cookie, _ = encode_session(session_secret(settings), session_id=session_id, key_id=principal.key_id,
                               contributor_id=principal.contributor_id, expires=expires)
    response = RedirectResponse("/artist", status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, httponly=True, samesite="strict", secure=settings.cookie_secure,
                        path="/artist", max_age=SESSION_SECONDS)
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/artist")
    return response


@router.post("/sign-out")
def sign_out(request: Request, settings: SettingsDep, session: SessionDep,
             csrf_token: Annotated[str, Form(max_length=100)]) -> Response:
    web = _form_session(request, settings, session, csrf_token)
    if isinstance(web, Response):
        return web
    with session.begin():
        accounts_service.end_artist_session(session=session, session_id=web.session_id)
    return _to_sign_in("Signed out.")


@router.get("", response_class=HTMLResponse)
def dashboard(request: Request, settings: SettingsDep, session: SessionDep, period: str | None = None,
              page: Annotated[int, Query(ge=0, le=MAX_INT32 // OUTPUTS_PER_PAGE)] = 0, notice: str | None = None,
              currency: str = "USD") -> Response:
    try:
        web = _signed_in(request, settings, session)
    except NotSignedIn:
        return _to_sign_in()
    period = period or period_of(utcnow())
    try:
        parse_period(period)
    except FoundryError:
        period = period_of(utcnow())
    statement = payouts_service.statement(session=session, contributor_id=web.contributor_id, period=period,
                                          currency=currency, threshold=settings.payout_threshold, top_assets=12)
    outputs = payouts_service.statement_outputs(session=session, contributor_id=web.contributor_id, period=period,
                                                currency=currency, limit=OUTPUTS_PER_PAGE,
                                                offset=page * OUTPUTS_PER_PAGE)
    history = list(reversed(payouts_service.periods_with_earnings(session=session, contributor_id=web.contributor_id,
                                                                  currency=currency)))[-24:]
    top = max((abs(item["earned"]) for item in history), default=0) or 1
    chart = [{**item, "height": round(120 * max(item["earned"], 0) / top)} for item in history]
    captions = {asset.id: asset.caption for asset in session.scalars(
        select(Asset).where(Asset.id.in_([a["asset_id"] for a in statement.by_asset])))}
    my_assets = list(session.scalars(select(Asset).where(Asset.contributor_id == web.contributor_id)
                                     .order_by(Asset.caption).limit(500)))
    return templates.TemplateResponse(request, "artist.html", {
        "s": statement, "outputs": outputs, "page": page, "chart": chart, "captions": captions,
        "my_assets": my_assets, "csrf": web.csrf, "notice": notice, "currency": currency,
        "contributor": session.get(Contributor, web.contributor_id),
    })


@router.get("/statements/{period}.csv")
def statement_csv(request: Request, settings: SettingsDep, session: SessionDep, period: str,
                  currency: str = "USD") -> Response:
    try:
        web = _signed_in(request, settings, session)
    except NotSignedIn:
        return _to_sign_in()
    text = payouts_service.statement_csv(session=session, contributor_id=web.contributor_id, period=period,
                                         currency=currency)
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="statement-{period}.csv"'})


@router.get("/assets/{asset_id}/thumbnail")
def thumbnail(request: Request, settings: SettingsDep, session: SessionDep, blob_store: BlobStoreDep,
              asset_id: uuid.UUID) -> Response:
    try:
        web = _signed_in(request, settings, session)
    except NotSignedIn:
        return Response(status_code=401)
    asset = session.get(Asset, asset_id)
    if asset is None or asset.contributor_id != web.contributor_id:
        return Response(status_code=404)
    return Response(blob_store.get(asset.rendition_sha256), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400"})


@router.get("/outputs/{generation_id}", response_class=HTMLResponse)
def output_evidence(request: Request, settings: SettingsDep, session: SessionDep, generation_id: uuid.UUID) -> Response:
    """An output that paid the artist, beside their training images that shaped it, with the scores."""
    try:
        web = _signed_in(request, settings, session)
    except NotSignedIn:
        return _to_sign_in()
    try:
        evidence = evidence_usecases.generation_evidence(session=session, generation_id=generation_id,
                                                         contributor_id=web.contributor_id)
    except FoundryError:
        return Response("not found", status_code=404)
    return templates.TemplateResponse(request, "evidence.html", {"e": evidence})


@router.get("/outputs/{generation_id}/images/{index}")
def output_image(request: Request, settings: SettingsDep, session: SessionDep, blob_store: BlobStoreDep,
                 generation_id: uuid.UUID, index: Annotated[int, PathParam(ge=0, le=MAX_INT32)]) -> Response:
    """The delivered output, for an artist it paid."""
    try:
        web = _signed_in(request, settings, session)
    except NotSignedIn:
        return Response(status_code=401)
    try:
        evidence = evidence_usecases.generation_evidence(session=session, generation_id=generation_id,
                                                         contributor_id=web.contributor_id)
        image = generation_service.get_image(session=session, generation_id=evidence.generation.id, index=index,
                                             tenant_id=None)
    except FoundryError:
        return Response(status_code=404)
    return Response(blob_store.get(image.delivery_sha256), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=86400"})


@router.post("/withdrawals")
def withdraw(request: Request, settings: SettingsDep, session: SessionDep,
             csrf_token: Annotated[str, Form(max_length=100)], reason: Annotated[str, Form(max_length=2000)],
             asset_id: Annotated[str, Form(max_length=64)] = "", use: Annotated[str, Form(max_length=40)] = "") -> Response:
    web = _form_session(request, settings, session, csrf_token)
    if isinstance(web, Response):
        return web
    try:
        chosen_asset = uuid.UUID(asset_id) if asset_id else None
    except ValueError:
        return RedirectResponse("/artist?notice=" + quote("That asset id is not valid."), status_code=303)
    try:
        with session.begin():
            withdrawal = withdrawals_service.withdraw_rights(
                session=session, contributor_id=web.contributor_id, asset_id=chosen_asset, use=use or None,
                reason=reason, requested_by=f"artist:{web.key_id}")
            what = f"revoked {withdrawal.revoked_grants} grant(s)" if chosen_asset else f"opted out of {use}"
            notice = f"Done: {what}; {len(withdrawal.affected_models)} model(s) affected."
    except FoundryError as exc:
        notice = f"Not done: {exc.message}"
    return RedirectResponse("/artist?notice=" + quote(notice), status_code=303)


@router.post("/style-consent")
def style_consent(request: Request, settings: SettingsDep, session: SessionDep,
                  csrf_token: Annotated[str, Form(max_length=100)],
                  named_styles: Annotated[Literal["true", "false"], Form()]) -> Response:
    web = _form_session(request, settings, session, csrf_token)
    if isinstance(web, Response):
        return web
    with session.begin():
        moderation_service.set_style_consent(session=session, contributor_id=web.contributor_id,
                                             consent=named_styles == "true")
    notice = "Named styles allowed." if named_styles == "true" else "Named styles no longer allowed."
    return RedirectResponse("/artist?notice=" + quote(notice), status_code=303)
