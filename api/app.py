"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI

from api.errors import install_error_handlers
from api.limits import RequestLimits
from api.openapi import install_openapi
from api.ratelimit import make_rate_limiter
from api.routers import (
    accounts,
    artist_web,
    brand_assets,
    catalog,
    custom_models,
    datasets,
    edits,
    generations,
    licensing,
    models,
    moderation,
    payouts,
    provenance,
    rights,
    training,
    webhooks,
)
from foundry import __version__
from foundry.config import Settings, get_settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Licensed-data image foundry", version=__version__)
    app.state.settings = settings
    app.state.rate_limiter = make_rate_limiter(settings)
    install_error_handlers(app)

    app.add_middleware(RequestLimits, settings=settings)

    @app.get("/v1/health", tags=["health"])
    def health() -> dict:
        return {"status": "ok", "version": __version__}

    app.include_router(catalog.router)
    app.include_router(datasets.router)
    app.include_router(training.router)
    app.include_router(models.router)
    app.include_router(generations.router)
    app.include_router(edits.router)
    app.include_router(accounts.router)
    app.include_router(provenance.router)
    app.include_router(payouts.router)
    app.include_router(rights.router)
    app.include_router(licensing.router)
    app.include_router(brand_assets.router)
    app.include_router(custom_models.router)
    app.include_router(webhooks.router)
    app.include_router(moderation.router)
    app.include_router(artist_web.router)
    install_openapi(app)
    return app
