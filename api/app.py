"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from api.errors import error_body, install_error_handlers
from api.ratelimit import make_rate_limiter
from api.routers import (
    accounts,
    artist_web,
    attribution,
    catalog,
    datasets,
    generations,
    licensing,
    payouts,
    provenance,
    rights,
    training,
)
from foundry import __version__
from foundry.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Licensed-data image foundry", version=__version__)
    app.state.settings = settings
    app.state.rate_limiter = make_rate_limiter(settings)
    install_error_handlers(app)

    @app.middleware("http")
    async def limit_request_size(request: Request, call_next):
        declared = request.headers.get("content-length")
        # JSON bodies are small by nature; only multipart uploads may be large
        multipart = request.headers.get("content-type", "").startswith("multipart/")
        limit = settings.max_upload_bytes if multipart else settings.max_json_bytes
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            return JSONResponse(error_body("request_too_large", f"this request is limited to {limit} bytes"),
                                status_code=413)
        return await call_next(request)

    @app.get("/v1/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    app.include_router(catalog.router)
    app.include_router(datasets.router)
    app.include_router(training.router)
    app.include_router(generations.router)
    app.include_router(accounts.router)
    app.include_router(provenance.router)
    app.include_router(payouts.router)
    app.include_router(rights.router)
    app.include_router(licensing.router)
    app.include_router(attribution.router)
    app.include_router(artist_web.router)
    return app
