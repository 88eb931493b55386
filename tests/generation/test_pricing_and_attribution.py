"""Price rules and pro-rata attribution of layered models (base + customer fine-tune)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from fractions import Fraction

import pytest
from sqlalchemy import select

from foundry.accounts import service as accounts_service
from foundry.catalog import service as catalog_service
from foundry.catalog.models import Contributor
from foundry.catalog.sources import open_source
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import InvalidInput, NotFound
from foundry.models_registry.models import RegisteredModel
from foundry.pricing import service as pricing_service
from foundry.pricing.policy import applicable_rule
from foundry.royalties import service as royalties_service
from tests.catalog.test_import import row, run, write_manifest
from tests.generation.conftest import register_model
from tests.support import images


@dataclass
class Rule:
    model_id: uuid.UUID | None
    tenant_id: uuid.UUID | None
    name: str


def test_the_most_specific_rule_wins():
    model, tenant, other = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    rules = [Rule(None, None, "default"), Rule(None, tenant, "tenant"), Rule(model, None, "model"),
             Rule(model, tenant, "both"), Rule(other, None, "other model")]
    assert applicable_rule(rules, model_id=model, tenant_id=tenant).name == "both"
    assert applicable_rule(rules[:4], model_id=model, tenant_id=other).name == "model"
    assert applicable_rule(rules[:2], model_id=model, tenant_id=tenant).name == "tenant"
    assert applicable_rule(rules[:1], model_id=other, tenant_id=other).name == "default"
    assert applicable_rule(rules[4:], model_id=model, tenant_id=tenant) is None


def test_setting_a_price_retires_the_rule_it_replaces(sessions, served_model):
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Big Spender")
        special = pricing_service.set_price(session=session, unit_price=99, currency="EUR", pool_share_bps=6000,
                                            created_by="t", model_id=served_model, tenant_id=tenant.id)
        newer = pricing_service.set_price(session=session, unit_price=80, currency="EUR", pool_share_bps=6000,
                                          created_by="t", model_id=served_model, tenant_id=tenant.id)
        assert special.retired_at is not None and newer.retired_at is None
        assert pricing_service.price_for(session=session, model_id=served_model, tenant_id=tenant.id).id == newer.id
        assert pricing_service.price_for(session=session, model_id=served_model,
                                         tenant_id=uuid.uuid4()).unit_price == 25
        for bad in ({"unit_price": -1}, {"currency": "usd"}, {"pool_share_bps": 10_001}):
            with pytest.raises(InvalidInput):
                pricing_service.set_price(session=session, **{"unit_price": 1, "currency": "USD",
                                                              "pool_share_bps": 1, "created_by": "t", **bad})
        with pytest.raises(NotFound):
            pricing_service.set_price(session=session, unit_price=1, currency="USD", pool_share_bps=1,
                                      created_by="t", model_id=uuid.uuid4())


def test_prices_over_http_are_admin_only(client, customer, served_model):
    from tests.generation.conftest import ADMIN

    body = {"unit_price": 30, "currency": "USD", "pool_share_bps": 5000, "model_id": str(served_model)}
    assert client.post("/v1/prices", json=body, headers=customer.headers).status_code == 403
    created = client.post("/v1/prices", json=body, headers=ADMIN)
    assert created.status_code == 201 and created.json()["unit_price"] == 30
    bad = client.post("/v1/prices", json={**body, "currency": "dollars"}, headers=ADMIN)
    assert bad.status_code == 422
    assert {r["unit_price"] for r in client.get("/v1/prices", headers=ADMIN).json()} == {25, 30}


def test_a_layered_model_splits_the_pool_and_brand_assets_earn_nothing(migrated, sessions, blob_store, served_model,
                                                                       base_snapshot, tiny_model_folder, tmp_path):
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Layered Brand")
    # the tenant's own brand assets plus one licensor's fine-tune images
    brand_files = {f"brand{i}.png": images.pattern_png(900 + i, size=48) for i in range(3)}
    options = catalog_service.import_options(migrated)
    brand = catalog_service.run_import(
        session_factory=sessions, blob_store=blob_store, requested_by="t", options=options, owner_tenant_id=tenant.id,
        source=open_source(write_manifest(tmp_path / "brand", [row(n, contributor="", license="")
                                                               for n in brand_files], brand_files),
                           max_bytes=options.limits.max_bytes))
    licensor_files = {f"lic{i}.png": images.pattern_png(950 + i, size=48) for i in range(2)}
    licensed = run(migrated, sessions, blob_store, write_manifest(
        tmp_path / "lic", [row(n, contributor="Fine Licensor") for n in licensor_files], licensor_files))
    with sessions() as session, session.begin():
        finetune_snapshot = dataset_service.create_snapshot(
            session=session, name="ft", use="customer_finetune", created_by="t",
            filters=SnapshotFilters(tenant_id=tenant.id, import_ids=[brand.id, licensed.id]))
        assert finetune_snapshot.entry_count == 5
    with sessions() as session:
        base_model = session.get(RegisteredModel, served_model)
    finetune_id = register_model(sessions, blob_store, tiny_model_folder, finetune_snapshot, name="ft",
                                 kind="finetune", parent=base_model, owner_tenant_id=tenant.id)
    with sessions() as session:
        model = session.get(RegisteredModel, finetune_id)
        names = {c.id: c.display_name for c in session.scalars(select(Contributor))}
        attribution = royalties_service.pro_rata_attribution(
            session=session, model=model, charge=1000, currency="USD", pool_share=Fraction(1, 2),
            finetune_share=Fraction(3, 10))
    amounts = {names[s.contributor_id]: s.amount for s in attribution.shares}
    assert attribution.pool == 500 and sum(amounts.values()) == 500
    assert not any("brand assets" in name for name in amounts)
    # 30% of the pool to the fine-tune layer (only the licensor, 2 assets); 70% to the base's 3/3/2
    assert amounts["Fine Licensor"] == 150
    assert amounts["Artist 0"] + amounts["Artist 1"] + amounts["Artist 2"] == 350
    assert amounts["Artist 2"] == round(350 * 2 / 8)
