"""The API as it is deployed: uvicorn in its own process, on a migrated database with keys of every role."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import httpx
import pytest

from foundry.accounts import service as accounts_service
from foundry.catalog.models import Contributor
from foundry.processes import stop_process
from tests.generation.test_served import free_port, served_env

ADMIN_KEY = "test-admin-key"


@dataclass
class Keys:
    """Bearer keys of each role, and the scopes they speak for."""

    admin: str
    customer: str
    other_customer: str
    artist: str
    tenant_id: uuid.UUID
    other_tenant_id: uuid.UUID
    contributor_id: uuid.UUID

    @staticmethod
    def headers(key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


@pytest.fixture
def keys(sessions) -> Keys:
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Acme")
        other = accounts_service.create_tenant(session=session, name="Globex")
        contributor = Contributor(display_name="Ada", external_ref="ada")
        session.add(contributor)
        session.flush()
        _, customer = accounts_service.create_api_key(session=session, role="customer", name="acme",
                                                      tenant_id=tenant.id)
        _, other_customer = accounts_service.create_api_key(session=session, role="customer", name="globex",
                                                            tenant_id=other.id)
        _, artist = accounts_service.create_api_key(session=session, role="artist", name="ada",
                                                    contributor_id=contributor.id)
    return Keys(ADMIN_KEY, customer, other_customer, artist, tenant.id, other.id, contributor.id)


@dataclass
class Server:
    base: str
    pid: int


@contextmanager
def serve(settings, log_path, **env) -> Iterator[Server]:
    """uvicorn serving ``create_app`` with ``settings`` (plus FOUNDRY_* overrides) until the block ends."""
    port = free_port()
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.app:create_app", "--factory", "--port", str(port),
             "--log-level", "warning"],
            env={**served_env(settings), **env}, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                if process.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"uvicorn did not start:\n{log_path.read_text()[-3000:]}")
                time.sleep(0.1)
        yield Server(base, process.pid)
    finally:
        stop_process(process)
