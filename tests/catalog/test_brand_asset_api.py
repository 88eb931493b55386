"""Brand assets, self-served over HTTP: upload with an attestation through the catalog's pipeline, quotas
before work, thumbnails, tenant isolation, and withdrawal from later snapshots."""

from __future__ import annotations

import uuid

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from foundry.catalog.models import Asset
from foundry.datasets import service as dataset_service
from foundry.datasets.schemas import SnapshotFilters
from foundry.usecases.brand_assets import ATTESTATION
from tests.support import images
from tests.support.accounts import customer_keys

ADMIN = {"Authorization": "Bearer test-admin-key"}


@pytest.fixture
def tenants(sessions):
    return customer_keys(sessions, "Acme Shoes", "Globex")


def upload(client, headers, files, **fields):
    data = {"attest": "true", "attested_by": "Jo Brand, Acme marketing", **fields}
    return client.post("/v1/brand-assets", headers=headers, data=data,
                       files=[("files", (name, content, "application/octet-stream")) for name, content in files])


def test_a_customer_uploads_lists_and_withdraws_its_brand_assets(migrated, sessions, tenants):
    acme, acme_headers = tenants["Acme Shoes"]
    _, globex_headers = tenants["Globex"]
    with TestClient(create_app(migrated)) as client:
        answer = upload(client, acme_headers, [("red_running-shoe.png", images.pattern_png(11)),
                                               ("logo.jpg", images.pattern_jpeg(12)),
                                               ("broken.png", images.truncated(images.pattern_png(13)))],
                        captions=["", "the acme logo", "x"], tags="shoes, summer")
        assert answer.status_code == 201, answer.text
        batch = answer.json()
        assert (batch["rows_imported"], batch["rows_rejected"]) == (2, 1)
        [rejected] = batch["report"]["rejections"]
        assert rejected["ref"].endswith("broken.png") and rejected["code"].startswith("image_")

        listed = client.get("/v1/brand-assets", headers=acme_headers).json()
        assert sorted(a["caption"] for a in listed) == ["red running shoe", "the acme logo"]
        assert all(a["tags"] == ["shoes", "summer"] and a["licensed"] for a in listed)
        attestation = listed[0]["attestation"]
        assert attestation["statement"] == ATTESTATION and attestation["attested_by"] == "Jo Brand, Acme marketing"
        thumbnail = client.get(listed[0]["thumbnail_url"], headers=acme_headers)
        assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/png"

        # another tenant sees none of it; admins name the tenant
        assert client.get("/v1/brand-assets", headers=globex_headers).json() == []
        assert client.get(listed[0]["thumbnail_url"], headers=globex_headers).status_code == 404
        assert client.delete(f"/v1/brand-assets/{listed[0]['id']}", headers=globex_headers).status_code == 404
        assert len(client.get("/v1/brand-assets", headers=ADMIN, params={"tenant_id": str(acme)}).json()) == 2
        assert client.get("/v1/brand-assets", headers=ADMIN).status_code == 422

        shoe = next(a for a in listed if a["caption"] == "red running shoe")
        removed = client.delete(f"/v1/brand-assets/{shoe['id']}", headers=acme_headers)
        assert removed.status_code == 200 and removed.json()["revoked_grants"] == 1
        assert client.delete(f"/v1/brand-assets/{shoe['id']}", headers=acme_headers).json()["error"]["code"] == (
            "already_withdrawn")
        assert {a["caption"]: a["licensed"] for a in client.get("/v1/brand-assets", headers=acme_headers).json()} == {
            "red running shoe": False, "the acme logo": True}
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="acme", use="customer_finetune",
                                                   filters=SnapshotFilters(tenant_id=acme), created_by="test")
        in_snapshot = {e.asset_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id)}
        assert uuid.UUID(shoe["id"]) not in in_snapshot
        assert session.get(Asset, uuid.UUID(next(a["id"] for a in listed if a is not shoe))).owner_tenant_id == acme


def test_uploads_without_an_attestation_or_over_quota_import_nothing(migrated, sessions, tenants):
    _, acme_headers = tenants["Acme Shoes"]
    small = migrated.model_copy(update={"brand_asset_quota_count": 2})
    with TestClient(create_app(small)) as client:
        unattested = client.post("/v1/brand-assets", headers=acme_headers,
                                 files=[("files", ("a.png", images.pattern_png(21), "image/png"))])
        assert unattested.status_code == 422
        error = unattested.json()["error"]
        assert error["code"] == "validation_error"
        assert {"body.attest", "body.attested_by"} <= {f["field"] for f in error["fields"]}
        three = [(f"{n}.png", images.pattern_png(30 + n)) for n in range(3)]
        over = upload(client, acme_headers, three)
        assert (over.status_code, over.json()["error"]["code"]) == (409, "brand_asset_quota_exceeded")
        with sessions() as session:
            assert session.query(Asset).count() == 0
        assert upload(client, acme_headers, three[:2]).status_code == 201
        full = upload(client, acme_headers, [("later.png", images.pattern_png(40))])
        assert (full.status_code, full.json()["error"]["code"]) == (409, "brand_asset_quota_exceeded")
        assert client.post("/v1/brand-assets", headers={"Authorization": "Bearer nope"}).status_code == 401
        unnamed = upload(client, ADMIN, three[:1])  # an admin must name the tenant
        assert unnamed.status_code == 422
