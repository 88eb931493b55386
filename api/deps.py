"""Request dependencies: settings, a database session, the blob store, and who is calling."""

from __future__ import annotations

import hmac
import uuid
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.datastructures import Headers

from api.errors import ApiError
from api.ratelimit import retry_after_header
from foundry.accounts import service as accounts_service
from foundry.accounts.policy import Principal
from foundry.blobs import BlobStore, open_blob_store
from foundry.config import Settings
from foundry.db import session_factory
from foundry.errors import InvalidInput
from foundry.usecases.generation import GenerationRunner
from training.inference import PipelineCache


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    with session_factory(settings.resolved_database_url)() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def get_blob_store(request: Request) -> BlobStore:
    store = getattr(request.app.state, "blob_store", None)
    if store is None:
        settings: Settings = request.app.state.settings
        store = open_blob_store(settings.resolved_blob_url, s3_endpoint_url=settings.s3_endpoint_url)
        request.app.state.blob_store = store
    return store


BlobStoreDep = Annotated[BlobStore, Depends(get_blob_store)]


PRINCIPAL_STATE_KEY = "principal"
"""Where ``api.limits.RequestLimits`` leaves the caller it authenticated before the body was read."""


def _bearer_token(headers: Headers) -> str:
    header = headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing_api_key", "send an API key as 'Authorization: Bearer <key>'",
                       headers={"WWW-Authenticate": "Bearer"})
    return token.strip()


def authenticate_headers(headers: Headers, settings: Settings, session: Session) -> Principal:
    """Who the request's bearer key stands for (the deployment's admin key, or an issued key); 401 otherwise."""
    token = _bearer_token(headers)
    configured = settings.admin_api_key
    if configured is not None and hmac.compare_digest(token.encode(), configured.get_secret_value().encode()):
        return Principal(role="admin", key_id=None, name="admin")
    principal = accounts_service.authenticate(session=session, token=token)
    session.rollback()  # the look-up must not leave a transaction open for the route
    if principal is None:
        raise ApiError(401, "invalid_api_key", "the API key is not valid", headers={"WWW-Authenticate": "Bearer"})
    return principal


def check_rate_limit(limiter, principal: Principal) -> None:
    decision = limiter.hit(str(principal.key_id or principal.name))
    if not decision.allowed:
        raise ApiError(429, "rate_limited", "too many requests for this API key; retry later",
                       headers={"Retry-After": retry_after_header(decision)})


def current_principal(request: Request, settings: SettingsDep, session: SessionDep) -> Principal:
    """Who is calling, within its rate limit: normally settled by the middleware before the body was read."""
    principal = getattr(request.state, PRINCIPAL_STATE_KEY, None)
    if principal is None:  # a route outside the middleware's /v1 scope
        principal = authenticate_headers(request.headers, settings, session)
        check_rate_limit(request.app.state.rate_limiter, principal)
    return principal


CurrentPrincipal = Annotated[Principal, Depends(current_principal)]


def require_admin(principal: CurrentPrincipal) -> str:
    """The admin principal's name; only admins onboard catalogs, snapshot and train shared models."""
    if not principal.is_admin:
        raise ApiError(403, "forbidden", f"{principal.role} keys may not use this endpoint")
    return principal.name


AdminPrincipal = Annotated[str, Depends(require_admin)]


def require_customer_or_admin(principal: CurrentPrincipal) -> Principal:
    """Brand customers act for their tenant; admins may read everything. Artists get 403."""
    if principal.role not in ("customer", "admin"):
        raise ApiError(403, "forbidden", f"{principal.role} keys may not use this endpoint")
    return principal


CustomerOrAdmin = Annotated[Principal, Depends(require_customer_or_admin)]


def require_customer(principal: CurrentPrincipal) -> Principal:
    """Only a tenant's own key acts for the tenant (generations are charged to it)."""
    if principal.role != "customer" or principal.tenant_id is None:
        raise ApiError(403, "forbidden", "only a brand customer's key can request generations")
    return principal


CustomerPrincipal = Annotated[Principal, Depends(require_customer)]


def tenant_for(principal: Principal, asked: uuid.UUID | None) -> uuid.UUID:
    """The tenant a tenant-scoped request acts for: a customer key's own (naming another is 422), or the
    one an admin names (naming none is 422)."""
    if principal.is_admin:
        if asked is None:
            raise InvalidInput("tenant_id: an admin names the tenant this is for", code="validation_error")
        return asked
    if asked not in (None, principal.tenant_id):
        raise InvalidInput("tenant_id: a customer key acts for its own tenant only", code="validation_error")
    return principal.tenant_id


def require_artist(principal: CurrentPrincipal) -> uuid.UUID:
    """The contributor an artist key speaks for; what is under /v1/me for artists is theirs alone."""
    if principal.role != "artist" or principal.contributor_id is None:
        raise ApiError(403, "forbidden", "only an artist key speaks for its contributor here; admins use "
                                         "/v1/contributors/{id}/...")
    return principal.contributor_id


ArtistContributor = Annotated[uuid.UUID, Depends(require_artist)]


def get_generation_runner(request: Request, blob_store: BlobStoreDep) -> GenerationRunner:
    """This API process's runner for synchronous generations (its pipeline cache lives as long as the app)."""
    runner = getattr(request.app.state, "generation_runner", None)
    if runner is None:
        settings: Settings = request.app.state.settings
        runner = GenerationRunner(settings, blob_store=blob_store,
                                  pipelines=PipelineCache(capacity=settings.pipeline_cache_size))
        request.app.state.generation_runner = runner
    return runner


GenerationRunnerDep = Annotated[GenerationRunner, Depends(get_generation_runner)]
