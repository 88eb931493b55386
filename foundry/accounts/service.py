"""Tenant operations."""

from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.accounts.models import Tenant
from foundry.catalog.models import Contributor
from foundry.db import get_or_raise
from foundry.errors import Conflict, InvalidInput


def create_tenant(*, session: Session, name: str) -> Tenant:
    name = (name or "").strip()
    if not name:
        raise InvalidInput("a tenant needs a name", code="tenant_name_missing")
    if session.scalar(select(Tenant.id).where(Tenant.name == name)) is not None:
        raise Conflict(f"a tenant named {name!r} already exists", code="tenant_exists")
    tenant = Tenant(name=name)
    session.add(tenant)
    session.flush()
    return tenant


def get_tenant(*, session: Session, tenant_id: uuid.UUID) -> Tenant:
    return get_or_raise(session, Tenant, tenant_id, code="tenant_not_found", what="tenant")


def list_tenants(*, session: Session) -> list[Tenant]:
    return list(session.scalars(select(Tenant).order_by(Tenant.name)))


def brand_contributor_ref(tenant_id: uuid.UUID) -> str:
    """The contributor that stands for a tenant's own brand assets (it is never paid royalties)."""
    return f"tenant:{tenant_id}"


def ensure_brand_contributor(*, session: Session, tenant: Tenant) -> Contributor:
    reference = brand_contributor_ref(tenant.id)
    contributor = session.scalar(select(Contributor).where(Contributor.external_ref == reference))
    if contributor is None:
        contributor = Contributor(display_name=f"{tenant.name} (brand assets)", external_ref=reference)
        session.add(contributor)
        session.flush()
    return contributor
