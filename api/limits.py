"""Limits before work: who is calling, and how many bytes a request may send, settled before a
route reads a byte of the body.

A pure ASGI middleware (Starlette's ``BaseHTTPMiddleware`` would not see the body stream as it
arrives) that, for every request:

1. authenticates ``/v1`` requests from their headers alone and applies the key's rate limit:
   a caller without a valid key gets 401 (429 when over its limit) and its body is never read;
2. refuses a declared ``Content-Length`` above the route's limit (413) without reading the body;
3. counts body bytes as they arrive, chunked or not, and answers 413 ``request_too_large`` the
   moment a request passes its route's limit: no more than the limit is ever buffered.

Roles are checked by the routes' dependencies; routes that take large uploads read their form
only after those dependencies ran (see ``api.forms``), so a key of the wrong role gets 403 before
its upload is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.deps import PRINCIPAL_STATE_KEY, authenticate_headers, check_rate_limit
from api.errors import ApiError, BodyTooLarge, error_body
from foundry.config import Settings
from foundry.db import session_factory

PUBLIC_PATHS = frozenset({"/v1/health"})
"""Paths under /v1 that answer without a key."""

MULTIPART_ALLOWANCE = 64 * 1024
"""Room for multipart boundaries, part headers and small fields around an uploaded file."""


@dataclass(frozen=True)
class RouteLimit:
    method: str
    path: re.Pattern
    limit_of: str
    """Name of the ``Settings`` field that holds the route's limit in bytes."""
    allowance: int = 0


UPLOAD_ROUTES = (
    RouteLimit("POST", re.compile(r"^/v1/catalog/imports/?$"), "max_upload_bytes"),
    RouteLimit("POST", re.compile(r"^/v1/brand-assets/?$"), "max_upload_bytes", MULTIPART_ALLOWANCE),
    RouteLimit("POST", re.compile(r"^/v1/provenance/verify/?$"), "max_image_bytes", MULTIPART_ALLOWANCE),
    RouteLimit("POST", re.compile(r"^/v1/edits/?$"), "max_edit_upload_bytes", MULTIPART_ALLOWANCE),
)
"""Routes that take uploads; every other request body is JSON or a small form (``max_json_bytes``)."""


def body_limit(settings: Settings, method: str, path: str) -> int:
    for route in UPLOAD_ROUTES:
        if route.method == method and route.path.match(path):
            return getattr(settings, route.limit_of) + route.allowance
    return settings.max_json_bytes


def needs_key(path: str) -> bool:
    return path.startswith("/v1/") and path not in PUBLIC_PATHS


def _refusal(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    # The body (if any) is left unread: close the connection rather than drain it.
    return JSONResponse(error_body(code, message), status_code=status,
                        headers={**(headers or {}), "Connection": "close"})


class RequestLimits:
    def __init__(self, app: ASGIApp, settings: Settings):
        self.app = app
        self.settings = settings
        self._sessions = session_factory(settings.resolved_database_url)

    def _authenticate(self, headers: Headers, rate_limiter):
        with self._sessions() as session:
            principal = authenticate_headers(headers, self.settings, session)
        check_rate_limit(rate_limiter, principal)
        return principal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if needs_key(scope["path"]):
            try:
                principal = await run_in_threadpool(self._authenticate, headers, scope["app"].state.rate_limiter)
            except ApiError as exc:
                await _refusal(exc.status, exc.code, exc.message, exc.headers)(scope, receive, send)
                return
            scope.setdefault("state", {})[PRINCIPAL_STATE_KEY] = principal

        limit = body_limit(self.settings, scope["method"], scope["path"])
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _refusal(413, "request_too_large", f"this request is limited to {limit} bytes")(scope, receive, send)
            return

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except BodyTooLarge as exc:
            if response_started:
                raise
            await _refusal(413, "request_too_large", exc.detail)(scope, receive, send)
