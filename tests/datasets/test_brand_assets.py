"""A tenant's own brand assets: onboarded for it, usable only by its own fine-tunes."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from foundry.accounts import service as accounts_service
from foundry.catalog.models import Asset, Contributor
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import InvalidInput, NotFound
from foundry.licensing.models import LicenseGrant
from foundry.training_jobs import service as job_service
from tests.catalog.test_import import row, run, write_manifest
from tests.support import images


@pytest.fixture
def tenants(sessions):
    with sessions() as session, session.begin():
        return (accounts_service.create_tenant(session=session, name="Acme Shoes"),
                accounts_service.create_tenant(session=session, name="Globex"))


@pytest.fixture
def mixed_catalog(settings, sessions, blob_store, tmp_path, tenants):
    acme, _ = tenants
    run(settings, sessions, blob_store, write_manifest(
        tmp_path / "public", [row("p1.png"), row("p2.png")],
        {"p1.png": images.pattern_png(901), "p2.png": images.pattern_png(902)}))
    options_path = write_manifest(tmp_path / "brand", [row("logo.png", contributor="", license=""),
                                                       row("shoe.png", contributor="", license="", uses="all")],
                                  {"logo.png": images.pattern_png(903), "shoe.png": images.pattern_png(904)})
    from foundry.catalog import service as catalog_service
    from foundry.catalog.sources import open_source

    opts = catalog_service.import_options(settings)
    batch = catalog_service.run_import(session_factory=sessions, blob_store=blob_store,
                                       source=open_source(options_path, max_bytes=opts.limits.max_bytes),
                                       requested_by="test", options=opts, owner_tenant_id=acme.id)
    assert batch.rows_imported == 2 and batch.rows_rejected == 0
    assert {w["code"] for w in batch.report["warnings"]} == {"brand_uses_limited"}
    with sessions() as session:
        return {a.source_ref.split(":", 1)[1]: a for a in session.scalars(select(Asset))}


def members(sessions, use, **filters) -> set[str]:
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="s", use=use,
                                                   filters=SnapshotFilters(**filters), created_by="t")
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id)
        refs = {session.get(Asset, e.asset_id).source_ref.split(":", 1)[1] for e in entries}
    return refs


def test_brand_assets_belong_to_their_tenant_and_serve_only_its_fine_tunes(sessions, tenants, mixed_catalog):
    acme, globex = tenants
    logo = mixed_catalog["logo.png"]
    with sessions() as session:
        contributor = session.get(Contributor, logo.contributor_id)
        grant = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == logo.id)).one()
    assert logo.owner_tenant_id == acme.id and contributor.external_ref == f"tenant:{acme.id}"
    assert grant.license_code == "TENANT-BRAND-1.0" and grant.uses == {"customer_finetune"}

    assert members(sessions, "base_training") == {"p1.png", "p2.png"}
    assert members(sessions, "customer_finetune") == {"p1.png", "p2.png"}
    assert members(sessions, "customer_finetune", tenant_id=acme.id) == {"p1.png", "p2.png", "logo.png", "shoe.png"}
    assert members(sessions, "customer_finetune", tenant_id=acme.id, brand_assets_only=True) == {"logo.png", "shoe.png"}
    assert members(sessions, "customer_finetune", tenant_id=globex.id) == {"p1.png", "p2.png"}
    with pytest.raises(InvalidInput, match="customer_finetune"):
        members(sessions, "base_training", tenant_id=acme.id)
    with pytest.raises(NotFound):
        members(sessions, "customer_finetune", tenant_id=uuid.uuid4())


def test_a_brand_snapshot_mixes_in_the_chosen_catalog_images(sessions, tenants, mixed_catalog):
    from foundry.datasets.schemas import CatalogMix

    acme, _ = tenants
    brand_only = {"tenant_id": acme.id, "brand_assets_only": True}
    assert members(sessions, "customer_finetune", **brand_only, catalog=CatalogMix()) == {
        "logo.png", "shoe.png", "p1.png", "p2.png"}
    one = members(sessions, "customer_finetune", **brand_only, catalog=CatalogMix(limit=1))
    assert {"logo.png", "shoe.png"} < one and len(one) == 3
    with pytest.raises(InvalidInput, match="snapshot cannot be empty"):
        members(sessions, "customer_finetune", **brand_only, tags=["nothing"], catalog=CatalogMix())
    with pytest.raises(InvalidInput, match="mix-in filter"):
        members(sessions, "customer_finetune", **brand_only, catalog=CatalogMix(caption_contains="no such caption"))
    for filters in ({"tenant_id": acme.id}, {}):  # mixing in needs a brand-only tenant snapshot
        with pytest.raises(InvalidInput) as caught:
            members(sessions, "customer_finetune", **filters, catalog=CatalogMix())
        assert caught.value.code == "invalid_filters"
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(
            session=session, name="mix", use="customer_finetune",
            filters=SnapshotFilters(**brand_only, catalog=CatalogMix()), created_by="t")
        brand = dataset_service.brand_asset_ids(session=session, snapshot_id=snapshot.id)
    assert brand == {mixed_catalog["logo.png"].id, mixed_catalog["shoe.png"].id}
    assert snapshot.entry_count == 4 and snapshot.filters["catalog"]["limit"] == 400


def test_only_the_owning_tenant_may_train_on_its_snapshot(sessions, tenants, mixed_catalog):
    acme, globex = tenants
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="acme", use="customer_finetune",
                                                   filters=SnapshotFilters(tenant_id=acme.id), created_by="t")
    assert snapshot.owner_tenant_id == acme.id
    for tenant_id in (globex.id, None):
        with sessions() as session, session.begin(), pytest.raises(InvalidInput) as caught:
            job_service.create_job(session=session, name="x", recipe_kind="lora", recipe={},
                                   snapshot_id=snapshot.id, base_model_id=uuid.uuid4(), requested_by="t",
                                   owner_tenant_id=tenant_id)
        assert caught.value.code == "snapshot_tenant_mismatch"


def test_brand_import_for_an_unknown_tenant_imports_nothing(settings, sessions, blob_store, tmp_path):
    from foundry.catalog import service as catalog_service
    from foundry.catalog.sources import open_source

    manifest = write_manifest(tmp_path / "b", [row("x.png", license="")], {"x.png": images.pattern_png(905)})
    opts = catalog_service.import_options(settings)
    with pytest.raises(NotFound, match="tenant"):
        catalog_service.run_import(session_factory=sessions, blob_store=blob_store,
                                   source=open_source(manifest, max_bytes=opts.limits.max_bytes),
                                   requested_by="t", options=opts, owner_tenant_id=uuid.uuid4())
    with sessions() as session:
        assert session.scalars(select(Asset)).all() == []
    assert list(blob_store.iter_keys()) == []
