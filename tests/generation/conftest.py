"""A tiny trained base model with a price and a signing CA: everything a generation needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from foundry.accounts import service as accounts_service
from foundry.pricing import service as pricing_service
from foundry.training_jobs import service as job_service
from provenance.c2pa_manifest import init_signing_ca
from tests.training_jobs.conftest import base_snapshot, licensed_catalog, tiny_base_recipe  # noqa: F401
from training import jobs as job_runner


@dataclass
class Customer:
    tenant_id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def train_tiny_model(settings, sessions, snapshot) -> uuid.UUID:
    with sessions() as session, session.begin():
        job = job_service.create_job(session=session, name="tiny", recipe_kind="base",
                                     recipe=tiny_base_recipe(max_train_steps=2, checkpoint_every=0),
                                     snapshot_id=snapshot.id, base_model_id=None, requested_by="test")
    assert job_runner.run_job(settings, job.id, worker="test") == "succeeded"
    with sessions() as session:
        return job_service.get_job(session=session, job_id=job.id).result_model_id


def make_customer(sessions, name: str) -> Customer:
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name=name)
        _, key = accounts_service.create_api_key(session=session, role="customer", name=f"{name} key",
                                                 tenant_id=tenant.id)
    return Customer(tenant.id, key)


@pytest.fixture
def served_model(migrated, sessions, base_snapshot):  # noqa: F811
    """A trained model with a catch-all price (25 USD cents, 40% pool) and signing material."""
    model_id = train_tiny_model(migrated, sessions, base_snapshot)
    with sessions() as session, session.begin():
        pricing_service.set_price(session=session, unit_price=25, currency="USD", pool_share_bps=4000,
                                  created_by="test")
    init_signing_ca(migrated.resolved_signing_dir)
    return model_id


@pytest.fixture
def customer(sessions, migrated) -> Customer:
    return make_customer(sessions, "Acme Brands")


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


ADMIN = {"Authorization": "Bearer test-admin-key"}
