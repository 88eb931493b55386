"""License terms as data: seeded by migration 0010, managed by admins (CLI and API), read by imports."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.app import create_app
from foundry.accounts import service as accounts_service
from foundry.licensing import service as licensing_service
from foundry.licensing.models import LicenseGrant
from tests.catalog.test_import import codes, row, run, write_manifest
from tests.support import images
from tests.test_api_catalog import ADMIN
from tests.test_cli_and_migrations import cli

SEEDED = ["CC-BY-4.0", "CC-BY-SA-4.0", "CC0-1.0", "FOUNDRY-CONTRIBUTOR-1.0", "TENANT-BRAND-1.0"]
NON_COMMERCIAL = {"code": "CC-BY-NC-4.0", "name": "Creative Commons Attribution Non Commercial 4.0 International",
                  "url": "https://creativecommons.org/licenses/by-nc/4.0/", "uses": ["generation"]}


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


def test_migration_seeds_the_terms_the_foundry_started_with(sessions):
    with sessions() as session:
        registered = licensing_service.list_license_terms(session=session)
    assert sorted(t.code for t in registered) == sorted(SEEDED)
    assert all(t.grantable_uses == {"base_training", "customer_finetune", "generation"} for t in registered)


def test_admins_list_and_register_terms(client):
    listed = client.get("/v1/license-terms", headers=ADMIN)
    assert listed.status_code == 200 and [t["code"] for t in listed.json()] == sorted(SEEDED, key=str.lower)
    assert listed.json()[0]["uses"] == ["base_training", "customer_finetune", "generation"]

    created = client.post("/v1/license-terms", headers=ADMIN, json=NON_COMMERCIAL)
    assert created.status_code == 201, created.text
    assert (created.json()["code"], created.json()["uses"]) == ("CC-BY-NC-4.0", ["generation"])
    assert created.json()["requires_attribution"] is True and created.json()["created_by"] == "api:admin"
    assert "CC-BY-NC-4.0" in [t["code"] for t in client.get("/v1/license-terms", headers=ADMIN).json()]


@pytest.mark.parametrize("change", [
    {"code": "cc-by-nc-4.0"},                                                  # same code, other case
    {"code": "LicenseRef-nc", "name": NON_COMMERCIAL["name"].upper()},        # same name
    {"code": "LicenseRef-nc", "name": "Other", "url": "http://www.creativecommons.org/licenses/by-nc/4.0/deed.de"},
    {"code": "CC0-1.0", "name": "Other", "url": "https://example.com/x"},     # a seeded code
])
def test_terms_that_would_be_confused_are_409(client, change):
    assert client.post("/v1/license-terms", headers=ADMIN, json=NON_COMMERCIAL).status_code == 201
    response = client.post("/v1/license-terms", headers=ADMIN, json=NON_COMMERCIAL | change)
    assert (response.status_code, response.json()["error"]["code"]) == (409, "license_terms_exist")


@pytest.mark.parametrize("change, field", [
    ({"code": "not an spdx id"}, "code"),
    ({"code": ""}, "code"),
    ({"url": "ftp://example.com/licence"}, "url"),
    ({"uses": []}, "uses"),
    ({"uses": ["world_domination"]}, "uses"),
    ({"name": "   "}, "name"),
    ({"grants": "everything"}, "grants"),
])
def test_invalid_terms_are_422(client, change, field):
    response = client.post("/v1/license-terms", headers=ADMIN, json=NON_COMMERCIAL | change)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error"), response.text
    assert any(field in item["field"].split(".") for item in response.json()["error"]["fields"])


def test_only_admins_manage_terms(client, sessions):
    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Acme")
        _, customer = accounts_service.create_api_key(session=session, role="customer", name="c", tenant_id=tenant.id)
    headers = {"Authorization": f"Bearer {customer}"}
    assert client.get("/v1/license-terms", headers=headers).status_code == 403
    refused = client.post("/v1/license-terms", headers=headers, json=NON_COMMERCIAL)
    assert (refused.status_code, refused.json()["error"]["code"]) == (403, "forbidden")
    assert client.post("/v1/license-terms", json=NON_COMMERCIAL).status_code == 401
    with sessions() as session:
        assert "CC-BY-NC-4.0" not in [t.code for t in licensing_service.list_license_terms(session=session)]


def test_imports_read_the_registered_terms(client, settings, sessions, blob_store, tmp_path):
    files = {"gpl.png": images.pattern_png(1), "nc.png": images.pattern_png(2)}
    manifest = write_manifest(tmp_path / "cat", [row("gpl.png", license="GPL-2+"),
                                                 row("nc.png", license="CC BY-NC 4.0", uses="all")], files)
    before = run(settings, sessions, blob_store, manifest)
    assert codes(before) == {"gpl.png": "unknown_license", "nc.png": "unknown_license"}
    message = next(r["message"] for r in before.report["rejections"] if r["path"] == "gpl.png")
    assert "'GPL-2+'" in message and all(code in message for code in SEEDED)
    assert "foundry licenses add" in message and "/v1/license-terms" in message

    assert client.post("/v1/license-terms", headers=ADMIN, json=NON_COMMERCIAL).status_code == 201
    after = run(settings, sessions, blob_store, manifest)
    assert codes(after) == {"gpl.png": "unknown_license"}
    assert [(w["path"], w["code"]) for w in after.report["warnings"]] == [("nc.png", "uses_not_granted_by_license")]
    with sessions() as session:
        grant = session.scalars(select(LicenseGrant)).one()
    assert (grant.license_code, grant.uses) == ("CC-BY-NC-4.0", {"generation"})


def test_cli_lists_and_adds_terms(migrated, sessions):
    listed = cli(migrated, "licenses", "list").stdout
    assert all(code in listed for code in SEEDED)
    added = cli(migrated, "licenses", "add", "LicenseRef-Acme-Stock-2", "--name", "Acme stock licence 2",
                "--url", "https://acme.example/licence/2", "--uses", "base_training;generation", "--no-attribution")
    assert "registered license terms LicenseRef-Acme-Stock-2 (base_training, generation)" in added.stdout
    again = cli(migrated, "licenses", "add", "LicenseRef-Acme-Stock-2", "--name", "x", "--url", "https://x.example",
                "--uses", "all", check=False)
    assert again.returncode == 1 and "[license_terms_exist]" in again.stderr and "Traceback" not in again.stderr
    invalid = cli(migrated, "licenses", "add", "GPL 2+", "--name", "x", "--url", "https://x.example",
                  "--uses", "everything", check=False)
    assert invalid.returncode == 1 and "invalid" in invalid.stderr and "Traceback" not in invalid.stderr
    with sessions() as session:
        stored = {t.code: t for t in licensing_service.list_license_terms(session=session)}
    assert stored["LicenseRef-Acme-Stock-2"].grantable_uses == {"base_training", "generation"}
    assert stored["LicenseRef-Acme-Stock-2"].requires_attribution is False
    assert "LicenseRef-Acme-Stock-2" in cli(migrated, "licenses", "list").stdout
