"""Fair queues: round robin across tenants, for any queue of work the workers take one item at a time.

Generations and training jobs are both served this way: one tenant's 500 queued images (or ten
fine-tunes) cannot starve another's single one. Pure rules over what each tenant has queued and running;
the services read those counts from their own tables. ``tenant_id`` None is the platform itself (jobs an
operator starts), which takes its turn like a tenant.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class TenantQueue:
    """One tenant's share of a queue, as the fair scheduler sees it."""

    tenant_id: uuid.UUID | None
    queued: int
    running: int
    last_started_at: datetime | None
    """When a worker last started one of its items (None: never)."""
    oldest_queued_at: datetime


def rotation(tenants: list[TenantQueue]) -> list[TenantQueue]:
    """Round robin across tenants: fewest running first, then the one served longest ago (never served
    first), then the one waiting longest. However many one tenant queues, each other tenant is next
    after at most one more of its items."""
    return sorted(tenants, key=lambda t: (t.running, t.last_started_at is not None,
                                          t.last_started_at or t.oldest_queued_at, t.oldest_queued_at,
                                          str(t.tenant_id)))


def next_tenant(tenants: list[TenantQueue], concurrency: int) -> TenantQueue | None:
    """The tenant whose oldest queued item a free worker takes; None when every tenant with queued work
    already runs ``concurrency`` items."""
    for tenant in rotation(tenants):
        if tenant.queued and tenant.running < concurrency:
            return tenant
    return None


def fair_position(tenant_id: uuid.UUID | None, rank: int, tenants: list[TenantQueue]) -> int:
    """Estimated place in line of a tenant's ``rank``-th queued item (0: its oldest), 1 being next:
    every tenant ahead in the rotation gets one more turn per round, the others one fewer."""
    order = [t.tenant_id for t in rotation(tenants)]
    mine = order.index(tenant_id)
    ahead = 0
    for place, tenant in enumerate(rotation(tenants)):
        if tenant.tenant_id == tenant_id:
            continue
        ahead += min(tenant.queued, rank + 1 if place < mine else rank)
    return ahead + rank + 1
