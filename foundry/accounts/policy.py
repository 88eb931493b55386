"""Who a key may speak for. Pure rules, so the CLI, the API and tests agree."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

ROLES = ("admin", "customer", "artist")


def scope_problem(role: str, tenant_id: uuid.UUID | None, contributor_id: uuid.UUID | None) -> str | None:
    """Why this role/scope combination is invalid, or None when it is valid."""
    if role not in ROLES:
        return f"unknown role {role!r} (admin, customer, artist)"
    if role == "admin" and (tenant_id or contributor_id):
        return "an admin key is not scoped to a tenant or contributor"
    if role == "customer" and (tenant_id is None or contributor_id is not None):
        return "a customer key needs --tenant (and no contributor)"
    if role == "artist" and (contributor_id is None or tenant_id is not None):
        return "an artist key needs --contributor (and no tenant)"
    return None


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    role: str
    key_id: uuid.UUID | None
    name: str
    tenant_id: uuid.UUID | None = None
    contributor_id: uuid.UUID | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def tenant_scope(self) -> uuid.UUID | None:
        """The tenant whose records this caller sees; None (every tenant's) for an admin."""
        return None if self.is_admin else self.tenant_id
