"""Every error leaves the API as JSON with a stable machine-readable ``code``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi import routing as fastapi_routing
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from foundry.errors import Conflict, FoundryError, InvalidInput, NotFound, PermissionDenied, Unavailable

_STATUS_BY_ERROR: list[tuple[type[FoundryError], int]] = [
    (NotFound, 404),
    (PermissionDenied, 403),
    (Conflict, 409),
    (InvalidInput, 422),
    (Unavailable, 503),
]


class FieldProblem(BaseModel):
    field: str = Field(description="Where the problem is: body.prompt, query.offset, path.index, ...")
    message: str
    type: str | None = Field(default=None, description="The validator that refused it.")


class ErrorDetail(BaseModel):
    model_config = ConfigDict(extra="allow")

    code: str = Field(description="Stable, machine-readable: validation_error, missing_api_key, model_not_found, ...")
    message: str = Field(description="What went wrong, for a person.")
    fields: list[FieldProblem] | None = Field(default=None, description="Each refused field (validation errors).")
    details: dict | None = Field(default=None, description="Facts about a domain error (ids, violations).")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorDetail


ERROR_DESCRIPTIONS = {
    400: "The body could not be read: not UTF-8 JSON, or broken multipart (malformed_request).",
    401: "No API key, or not a valid one (missing_api_key, invalid_api_key).",
    403: "This key's role may not do this (forbidden).",
    404: "A named resource does not exist, or is not this caller's to see.",
    409: "The request conflicts with the resource's state.",
    413: "The request body is larger than this route accepts (request_too_large).",
    422: "The request is not valid: each refused field is listed (validation_error), or a domain rule refused it.",
    429: "Too many requests for this key (rate_limited); see Retry-After.",
    503: "The deployment cannot do this now (e.g. provenance signing is not configured).",
}


def error_responses(*statuses: int, **descriptions: str) -> dict:
    """``responses=`` for a route's own error answers (the body schema is added to every error by ``api.openapi``).

    ``descriptions`` override the generic text by status, e.g. ``s409="..."``.
    """
    return {status: {"description": descriptions.get(f"s{status}", ERROR_DESCRIPTIONS[status])}
            for status in statuses}


class ApiError(Exception):
    """An error raised by the transport layer itself (auth, sizes), with its HTTP status."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers


class BodyTooLarge(StarletteHTTPException):
    """Raised from ``receive`` once a request body passes its limit (see ``api.limits``). An
    HTTPException, so FastAPI's body parsing passes it on instead of turning it into a 400."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=f"this request is limited to {limit} bytes",
                         headers={"Connection": "close"})  # the rest of the body is not read: do not drain it
        self.limit = limit


def error_body(code: str, message: str, **extra) -> dict:
    return {"error": {"code": code, "message": message, **extra}}


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.code, exc.message), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(FoundryError)
    async def _domain_error(_request: Request, exc: FoundryError) -> JSONResponse:
        status = next((code for kind, code in _STATUS_BY_ERROR if isinstance(exc, kind)), 400)
        extra = {"fields": exc.details["fields"]} if "fields" in exc.details else {}
        return JSONResponse(error_body(exc.code, exc.message, details=exc.details, **extra), status_code=status)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        fields = [
            {"field": ".".join(str(part) for part in error["loc"]), "message": error["msg"], "type": error["type"]}
            for error in exc.errors()
        ]
        return JSONResponse(error_body("validation_error", "the request is not valid", fields=fields),
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {400: "malformed_request", 404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        headers = dict(getattr(exc, "headers", None) or {})
        if exc.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(request))
        return JSONResponse(error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
                            status_code=exc.status_code, headers=headers or None)


def every_route(app) -> list:
    """The app's routes, flat: FastAPI versions that keep included routers nested expand them."""
    expand = getattr(fastapi_routing, "iter_route_contexts", None)
    return list(expand(app.router.routes)) if expand is not None else list(app.router.routes)


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers at this path (Starlette's own 405 names only the first route's)."""
    methods: set[str] = set()
    for route in every_route(request.app):
        route_methods, path_regex = getattr(route, "methods", None), getattr(route, "path_regex", None)
        if route_methods and path_regex is not None and path_regex.match(request.scope["path"]):
            methods.update(route_methods)
    return sorted(methods)
