"""Every error leaves the API as JSON with a stable machine-readable ``code``."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from foundry.errors import Conflict, FoundryError, InvalidInput, NotFound, PermissionDenied, Unavailable

_STATUS_BY_ERROR: list[tuple[type[FoundryError], int]] = [
    (NotFound, 404),
    (PermissionDenied, 403),
    (Conflict, 409),
    (InvalidInput, 422),
    (Unavailable, 503),
]


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
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 413: "request_too_large"}
        return JSONResponse(error_body(codes.get(exc.status_code, "http_error"), str(exc.detail)),
                            status_code=exc.status_code, headers=getattr(exc, "headers", None))
