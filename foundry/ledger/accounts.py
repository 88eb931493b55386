"""Every ledger account name, in one place.

* ``customer:<tenant id>``    -- what a brand customer owes (debited by charges);
* ``platform:revenue``        -- the foundry's revenue (credited by charges, debited by royalties);
* ``contributor:<id>``        -- what the foundry owes a contributor (credited by royalties, debited by payouts);
* ``platform:payouts``        -- money paid out to contributors (credited by payouts).
"""

from __future__ import annotations

import uuid

PLATFORM_REVENUE = "platform:revenue"
PLATFORM_PAYOUTS = "platform:payouts"
CUSTOMER_PREFIX = "customer:"
CONTRIBUTOR_PREFIX = "contributor:"


def customer_account(tenant_id: uuid.UUID) -> str:
    return f"{CUSTOMER_PREFIX}{tenant_id}"


def contributor_account(contributor_id: uuid.UUID) -> str:
    return f"{CONTRIBUTOR_PREFIX}{contributor_id}"


def is_contributor_account(account: str) -> bool:
    return account.startswith(CONTRIBUTOR_PREFIX)


def own_account(principal) -> tuple[str, dict] | None:
    """The ledger account a caller owns and the entry filter that shows it; None for admins."""
    if principal.role == "customer":
        return customer_account(principal.tenant_id), {"tenant_id": principal.tenant_id}
    if principal.role == "artist":
        return contributor_account(principal.contributor_id), {"contributor_id": principal.contributor_id}
    return None
