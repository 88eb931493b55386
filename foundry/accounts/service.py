"""Tenant operations."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.accounts.models import ApiKey, ArtistSession, Tenant
from foundry.accounts.policy import Principal, scope_problem
from foundry.db import flushed, get_or_raise, utcnow
from foundry.errors import Conflict, InvalidInput


def create_tenant(*, session: Session, name: str) -> Tenant:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a tenant needs a name", code="tenant_name_missing")
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise Conflict(f"a tenant named {name!r} already exists", code="tenant_exists")
    tenant = Tenant(name=name)
    return flushed(session, tenant)


def get_tenant(*, session: Session, tenant_id: uuid.UUID) -> Tenant:
    return get_or_raise(session, Tenant, tenant_id, code="tenant_not_found", what="tenant")


def list_tenants(*, session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.name)))


KEY_PREFIX = "fdy"


def _hash_secret(secret: str) -> str:
    # Keys carry 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(secret.encode()).hexdigest()


def create_api_key(*, session: Session, role: str, name: str, tenant_id: uuid.UUID | None = None,
                   contributor_id: uuid.UUID | None = None) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which is never stored and cannot be shown again.

    An artist key's contributor is checked by the caller (``foundry.usecases.keys.issue_api_key``):
    contributors are the catalog's, and accounts do not reach up into the catalog.
    """
    problem = scope_problem(role, tenant_id, contributor_id)
    if problem:
        raise InvalidInput(problem, code="invalid_key_scope")
    if tenant_id is not None:
        get_tenant(session=session, tenant_id=tenant_id)
    prefix = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    key = ApiKey(name=name.strip() or role, prefix=prefix, secret_sha256=_hash_secret(secret), role=role,
                 tenant_id=tenant_id, contributor_id=contributor_id)
    flushed(session, key)
    return key, f"{KEY_PREFIX}_{prefix}_{secret}"


def authenticate(*, session: Session, token: str) -> Principal | None:
    """The principal a presented key stands for, or None for an unknown, malformed or revoked key."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        return None
    key = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if key is None or key.revoked_at is not None:
        return None
    if not hmac.compare_digest(key.secret_sha256, _hash_secret(parts[2])):
        return None
    return Principal(role=key.role, key_id=key.id, name=key.name, tenant_id=key.tenant_id,
                     contributor_id=key.contributor_id)


def revoke_api_key(*, session: Session, key_id: uuid.UUID) -> ApiKey:
    key = get_or_raise(session, ApiKey, key_id, code="api_key_not_found", what="API key")
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.flush()
    return key


def list_api_keys(*, session: Session) -> list[ApiKey]:
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


def start_artist_session(*, session: Session, api_key_id: uuid.UUID, contributor_id: uuid.UUID,
                         expires_at: datetime) -> ArtistSession:
    row = ArtistSession(api_key_id=api_key_id, contributor_id=contributor_id, expires_at=expires_at)
    return flushed(session, row)


def active_artist_session(*, session: Session, session_id: uuid.UUID, api_key_id: uuid.UUID,
                          contributor_id: uuid.UUID) -> ArtistSession | None:
    """The session if it is still on: not signed out, not expired, its key not revoked and still the artist's."""
    row = session.get(ArtistSession, session_id)
    if row is None or row.ended_at is not None or row.expires_at <= utcnow():
        return None
    if (row.api_key_id, row.contributor_id) != (api_key_id, contributor_id):
        return None
    key = session.get(ApiKey, row.api_key_id)
    if key is None or key.revoked_at is not None or key.contributor_id != contributor_id:
        return None
    return row


def end_artist_session(*, session: Session, session_id: uuid.UUID) -> None:
    """Sign out: the session's cookie no longer works, wherever a copy of it is. Idempotent."""
    row = session.get(ArtistSession, session_id)
    if row is not None and row.ended_at is None:
        row.ended_at = utcnow()
        session.flush()
