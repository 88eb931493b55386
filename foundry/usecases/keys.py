"""Issuing an API key: an artist key's contributor must exist in the catalog (accounts do not import it)."""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from foundry.accounts import service as accounts_service
from foundry.accounts.models import ApiKey
from foundry.catalog.models import Contributor
from foundry.db import get_or_raise


def issue_api_key(*, session: Session, role: str, name: str, tenant_id: uuid.UUID | None = None,
                  contributor_id: uuid.UUID | None = None) -> tuple[ApiKey, str]:
    """A new key and its plaintext (shown once); ``contributor_not_found`` for an unknown contributor."""
    if contributor_id is not None:
        get_or_raise(session, Contributor, contributor_id, code="contributor_not_found", what="contributor")
    return accounts_service.create_api_key(session=session, role=role, name=name, tenant_id=tenant_id,
                                           contributor_id=contributor_id)
