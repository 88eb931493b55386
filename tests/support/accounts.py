"""Tenants with customer keys, as the API tests need them."""

from __future__ import annotations

import uuid

from foundry.accounts import service as accounts_service


def customer_keys(sessions, *names: str) -> dict[str, tuple[uuid.UUID, dict[str, str]]]:
    """One tenant per name, each with a customer key: name -> (tenant id, Authorization header)."""
    keys = {}
    with sessions() as session, session.begin():
        for name in names:
            tenant = accounts_service.create_tenant(session=session, name=name)
            _, key = accounts_service.create_api_key(session=session, role="customer", name=name, tenant_id=tenant.id)
            keys[name] = (tenant.id, {"Authorization": f"Bearer {key}"})
    return keys
