"""A tiny trained base model with a price and a signing CA: everything a generation needs."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from foundry import migrate
from foundry.accounts import service as accounts_service
from foundry.blobs import LocalBlobStore
from foundry.config import Settings
from foundry.datasets import service as dataset_service
from foundry.db import session_factory
from foundry.models_registry import service as registry_service
from foundry.pricing import service as pricing_service
from foundry.training_jobs import service as job_service
from provenance.c2pa_manifest import init_signing_ca
from tests.training_jobs.conftest import base_snapshot, build_catalog, licensed_catalog, tiny_base_recipe  # noqa: F401
from worker import jobs as job_runner


@dataclass
class Customer:
    tenant_id: uuid.UUID
    key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}


def create_tiny_job(sessions, snapshot, name: str = "tiny"):
    """A queued two-step base-training job on ``snapshot``."""
    with sessions() as session, session.begin():
        return job_service.create_job(session=session, name=name, recipe_kind="base",
                                      recipe=tiny_base_recipe(max_train_steps=2, checkpoint_every=0),
                                      snapshot_id=snapshot.id, base_model_id=None, requested_by="test")


def train_tiny_model(settings, sessions, snapshot) -> uuid.UUID:
    job = create_tiny_job(sessions, snapshot)
    assert job_runner.run_job(settings, job.id, worker="test") == "succeeded"
    with sessions() as session:
        return job_service.get_job(session=session, job_id=job.id).result_model_id


def make_customer(sessions, name: str) -> Customer:
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name=name)
        _, key = accounts_service.create_api_key(session=session, role="customer", name=f"{name} key",
                                                 tenant_id=tenant.id)
    return Customer(tenant.id, key)


@pytest.fixture(scope="session")
def tiny_model_folder(tmp_path_factory) -> Path:
    """One tiny base model, trained for real on the test catalog once per test process.

    Tests register this folder against their own database's snapshot of the same catalog (same
    images and captions), so each test pays for a registration, not for a training run.
    """
    root = tmp_path_factory.mktemp("tiny-model")
    settings = Settings(var_dir=root / "var", database_url=f"sqlite:///{root / 'train.db'}",
                        blob_url=(root / "var" / "blobs").as_uri(), import_workers=1)
    migrate.upgrade(settings.resolved_database_url)
    sessions = session_factory(settings.resolved_database_url)
    blob_store = LocalBlobStore(root / "var" / "blobs")
    build_catalog(settings, sessions, blob_store, root)
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="all", use="base_training", created_by="test")
    model_id = train_tiny_model(settings, sessions, snapshot)
    with sessions() as session:
        model = registry_service.get_model(session=session, model_id=model_id)
        return registry_service.materialize(model=model, blob_store=blob_store, cache_dir=root / "models")


def register_model(sessions, blob_store, folder: Path, snapshot, **extra) -> uuid.UUID:
    with sessions() as session, session.begin():
        model = registry_service.register_trained(
            session=session, blob_store=blob_store, folder=folder, name=extra.pop("name", "tiny-base"),
            kind=extra.pop("kind", "base"), model_format="diffusers_pipeline", snapshot_id=snapshot.id,
            snapshot_merkle_root=snapshot.merkle_root, recipe={}, text_encoder_origin={"kind": "trained_from_scratch"},
            parent=extra.pop("parent", None), training_job_id=uuid.uuid4(), metrics={}, **extra)
        return model.id


@pytest.fixture
def served_model(migrated, sessions, blob_store, base_snapshot, tiny_model_folder):  # noqa: F811
    """A trained model with a catch-all price (25 USD cents, 40% pool) and signing material."""
    model_id = register_model(sessions, blob_store, tiny_model_folder, base_snapshot)
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


@pytest.fixture
def toy_outputs_count(monkeypatch):
    """The toy model, trained a few steps, draws noise, which is never paid by influence; tests of the
    influence arithmetic let its outputs count (the check itself is tested on its own)."""
    import foundry.usecases.generation as generation_usecases
    import worker.attribution as attribution_worker

    monkeypatch.setattr(generation_usecases, "uninformative", lambda pixels: None)
    monkeypatch.setattr(attribution_worker, "uninformative", lambda pixels: None)
