"""The catalog API over HTTP: admin auth, uploads, JSON errors with stable codes."""

from __future__ import annotations

import csv
import io
import uuid
import zipfile

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from tests.support import images

ADMIN = {"Authorization": "Bearer test-admin-key"}


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


def images_zip(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in entries.items():
            bundle.writestr(name, data)
    return buffer.getvalue()


def manifest_csv(rows: list[dict]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["path", "contributor", "license", "uses", "caption"])
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode()


def upload_manifest(client, rows, entries, headers=ADMIN):
    return client.post(
        "/v1/catalog/imports", headers=headers, data={"format": "manifest"},
        files={"archive": ("images.zip", images_zip(entries), "application/zip"),
               "manifest": ("manifest.csv", manifest_csv(rows), "text/csv")},
    )


def test_admin_key_is_required(client):
    missing = client.get("/v1/catalog/summary")
    wrong = client.get("/v1/catalog/summary", headers={"Authorization": "Bearer nope"})
    assert (missing.status_code, missing.json()["error"]["code"]) == (401, "missing_api_key")
    assert (wrong.status_code, wrong.json()["error"]["code"]) == (401, "invalid_api_key")


def test_issued_keys_are_scoped_hashed_and_revocable(migrated, sessions):
    from sqlalchemy import select

    from foundry.accounts import service as accounts_service
    from foundry.accounts.models import ApiKey

    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name="Acme")
        admin_key, admin_secret = accounts_service.create_api_key(session=session, role="admin", name="ops")
        _, customer_secret = accounts_service.create_api_key(session=session, role="customer", name="acme",
                                                             tenant_id=tenant.id)
    with sessions() as session:
        stored = session.scalars(select(ApiKey)).all()
    import hashlib

    stored_admin = next(k for k in stored if k.id == admin_key.id)
    assert stored_admin.secret_sha256 == hashlib.sha256(admin_secret.split("_", 2)[2].encode()).hexdigest()
    assert all(admin_secret not in str(value) for k in stored for value in vars(k).values())

    with TestClient(create_app(migrated.model_copy(update={"admin_api_key": None}))) as client:
        def summary(secret):
            return client.get("/v1/catalog/summary", headers={"Authorization": f"Bearer {secret}"})

        assert summary(admin_secret).status_code == 200
        forbidden = summary(customer_secret)
        assert (forbidden.status_code, forbidden.json()["error"]["code"]) == (403, "forbidden")
        assert summary("test-admin-key").status_code == 401  # no deployment key configured
        assert summary(admin_secret[:-1] + ("A" if admin_secret[-1] != "A" else "B")).status_code == 401
        with sessions() as session, session.begin():
            accounts_service.revoke_api_key(session=session, key_id=admin_key.id)
        revoked = summary(admin_secret)
        assert (revoked.status_code, revoked.json()["error"]["code"]) == (401, "invalid_api_key")


@pytest.mark.parametrize("role, scope, problem", [
    ("customer", {}, "needs --tenant"), ("artist", {}, "needs --contributor"),
    ("admin", {"tenant": True}, "not scoped"), ("wizard", {}, "unknown role"),
])
def test_key_scopes_are_checked(sessions, role, scope, problem):
    from foundry.accounts import service as accounts_service
    from foundry.errors import InvalidInput

    with sessions() as session, session.begin():
        tenant = accounts_service.create_tenant(session=session, name=f"T-{role}")
        with pytest.raises(InvalidInput, match=problem):
            accounts_service.create_api_key(session=session, role=role, name="x",
                                            tenant_id=tenant.id if scope.get("tenant") else None)


def test_manifest_upload_imports_and_reports(client):
    rows = [
        {"path": "a.png", "contributor": "Ada", "license": "CC0-1.0", "uses": "all", "caption": "blocks"},
        {"path": "../../etc/passwd", "contributor": "Ada", "license": "CC0-1.0", "uses": "all", "caption": ""},
    ]
    response = upload_manifest(client, rows, {"a.png": images.pattern_png(1)})
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["rows_imported"], body["rows_rejected"]) == (1, 1)
    assert body["report"]["rejections"][0]["code"] == "path_traversal"

    fetched = client.get(f"/v1/catalog/imports/{body['id']}", headers=ADMIN).json()
    assert fetched["id"] == body["id"] and fetched["status"] == "succeeded"
    listing = client.get("/v1/catalog/imports", headers=ADMIN).json()
    assert [item["id"] for item in listing["items"]] == [body["id"]]
    summary = client.get("/v1/catalog/summary", headers=ADMIN).json()
    assert (summary["assets"], summary["contributors"]) == (1, 1)


def test_asset_detail_includes_its_grants(client, sessions):
    rows = [{"path": "a.png", "contributor": "Ada", "license": "CC-BY-4.0", "uses": "generation", "caption": "c"}]
    assert upload_manifest(client, rows, {"a.png": images.pattern_png(2)}).status_code == 201
    from sqlalchemy import select

    from foundry.catalog.models import Asset

    with sessions() as session:
        asset_id = session.scalar(select(Asset.id))
    body = client.get(f"/v1/assets/{asset_id}", headers=ADMIN).json()
    assert body["caption"] == "c" and body["grants"][0]["license_code"] == "CC-BY-4.0"
    assert body["grants"][0]["permits_generation"] and not body["grants"][0]["permits_base_training"]


def test_openmoji_format_upload(client):
    package = images.tar_gz({
        "package/data/openmoji.json": b'[{"hexcode": "1F600", "annotation": "grinning face", "tags": "face",'
                                      b' "openmoji_author": "Emily", "openmoji_date": "2018-04-18"}]',
        "package/color/svg/1F600.svg": images.pattern_svg(5),
    })
    response = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "openmoji"},
                           files={"archive": ("openmoji.tgz", package, "application/gzip")})
    assert response.status_code == 201, response.text
    assert response.json()["rows_imported"] == 1


@pytest.mark.parametrize("case, expected_status, expected_code", [
    ("no_manifest", 422, "manifest_missing"),
    ("bad_format", 422, "validation_error"),
    ("corrupt_archive", 422, "images_root_invalid"),
    ("malformed_manifest", 422, "manifest_malformed"),
])
def test_bad_uploads_get_clear_errors(client, case, expected_status, expected_code):
    archive = ("images.zip", images_zip({"a.png": images.pattern_png(3)}), "application/zip")
    data = {"format": "manifest"}
    files = {"archive": archive, "manifest": ("m.csv", b"path,contributor\na.png,Ada\n", "text/csv")}
    if case == "no_manifest":
        files.pop("manifest")
    elif case == "bad_format":
        data = {"format": "pdf"}
    elif case == "corrupt_archive":
        files["archive"] = ("images.zip", b"PK-but-not-really", "application/zip")
        files["manifest"] = ("m.csv", manifest_csv([]), "text/csv")
    response = client.post("/v1/catalog/imports", headers=ADMIN, data=data, files=files)
    assert response.status_code == expected_status, response.text
    assert response.json()["error"]["code"] == expected_code
    if case == "bad_format":
        assert any(field["field"].endswith("format") for field in response.json()["error"]["fields"])
    assert client.get("/v1/catalog/summary", headers=ADMIN).json()["assets"] == 0


def test_oversized_requests_are_refused(migrated):
    with TestClient(create_app(migrated.model_copy(update={"max_upload_bytes": 1000}))) as client:
        response = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "embedded"},
                               files={"archive": ("images.zip", b"x" * 5000, "application/zip")})
    assert (response.status_code, response.json()["error"]["code"]) == (413, "request_too_large")


def test_unknown_ids_are_404_with_a_code(client):
    response = client.get(f"/v1/catalog/imports/{uuid.uuid4()}", headers=ADMIN)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "import_not_found")
    response = client.get(f"/v1/assets/{uuid.uuid4()}", headers=ADMIN)
    assert (response.status_code, response.json()["error"]["code"]) == (404, "asset_not_found")
    response = client.get("/v1/assets/not-a-uuid", headers=ADMIN)
    assert (response.status_code, response.json()["error"]["code"]) == (422, "validation_error")
