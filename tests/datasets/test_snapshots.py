"""Snapshots take exactly the assets licensed for training, freeze them, and the gate re-checks them."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from foundry.catalog.models import Asset
from foundry.datasets import service as dataset_service
from foundry.datasets.models import DatasetSnapshot, SnapshotEntry
from foundry.datasets.schemas import SnapshotFilters
from foundry.errors import InvalidInput
from foundry.licensing import service as licensing_service
from foundry.licensing.models import LicenseGrant
from tests.catalog.test_import import row, run, write_manifest
from tests.support import images
from tests.support.rights_images import PLUS_VOCAB, xmp_packet

FUTURE = (datetime.now(UTC) + timedelta(days=365)).date().isoformat()
PAST = (datetime.now(UTC) - timedelta(days=30)).date().isoformat()
LONG_AGO = (datetime.now(UTC) - timedelta(days=400)).date().isoformat()


@pytest.fixture
def catalog(settings, sessions, blob_store, tmp_path):
    """One asset per licensing situation, named by its file."""
    prohibited = xmp_packet(creator="Ada Artist", data_mining=PLUS_VOCAB + "DMI-PROHIBITED")
    files = {name: images.pattern_png(seed) for seed, name in enumerate(
        ["ok-a.png", "ok-b.png", "revoked.png", "expired.png", "not-yet.png", "generation-only.png",
         "finetune-only.png"], start=200)}
    files["no-mining.png"] = images.pattern_png(300, xmp=prohibited)
    rows = [
        row("ok-a.png", tags="cat;red"), row("ok-b.png", contributor="Bo Painter", tags="dog"),
        row("revoked.png"), row("expired.png", valid_from=LONG_AGO, valid_until=PAST),
        row("not-yet.png", valid_from=FUTURE), row("generation-only.png", uses="generation"),
        row("finetune-only.png", uses="customer_finetune"), row("no-mining.png"),
    ]
    run(settings, sessions, blob_store, write_manifest(tmp_path / "cat", rows, files))
    with sessions() as session, session.begin():
        assets = {a.source_ref.split(":", 1)[1]: a.id for a in session.scalars(select(Asset))}
        grant = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == assets["revoked.png"])).one()
        licensing_service.revoke_grant(session=session, grant_id=grant.id, reason="artist left", revoked_by="test")
    return assets


def snapshot(sessions, use="base_training", **filters):
    with sessions() as session, session.begin():
        return dataset_service.create_snapshot(session=session, name="s", use=use,
                                               filters=SnapshotFilters(**filters), created_by="test")


def members(sessions, snap) -> set[uuid.UUID]:
    with sessions() as session:
        return {e.asset_id for e in dataset_service.snapshot_entries(session=session, snapshot_id=snap.id)}


def test_snapshot_takes_exactly_the_assets_licensed_for_the_use(sessions, catalog):
    base = snapshot(sessions)
    assert members(sessions, base) == {catalog["ok-a.png"], catalog["ok-b.png"]}
    assert (base.entry_count, base.contributor_count) == (2, 2)
    finetune = snapshot(sessions, use="customer_finetune")
    assert members(sessions, finetune) == {catalog["ok-a.png"], catalog["ok-b.png"], catalog["finetune-only.png"]}


def test_filters(sessions, catalog):
    assert members(sessions, snapshot(sessions, tags=["dog"])) == {catalog["ok-b.png"]}
    assert members(sessions, snapshot(sessions, caption_contains="OK-A")) == {catalog["ok-a.png"]}
    with pytest.raises(InvalidInput, match="cannot be empty"):
        snapshot(sessions, tags=["unicorn"])
    with pytest.raises(InvalidInput, match="training uses"):
        snapshot(sessions, use="generation")


def test_merkle_root_names_the_content(sessions, catalog):
    first, second = snapshot(sessions), snapshot(sessions)
    assert first.id != second.id and first.merkle_root == second.merkle_root
    assert snapshot(sessions, tags=["dog"]).merkle_root != first.merkle_root
    with sessions() as session:
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=first.id)
    assert dataset_service.verify_manifest(entries, first.merkle_root)


def test_entries_keep_the_catalog_tags_and_the_root_covers_them(sessions, catalog):
    snap = snapshot(sessions)
    with sessions() as session:
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=snap.id)
    assert {tuple(e.tags) for e in entries} == {("cat", "red"), ("dog",)}
    fields = ("asset_id", "asset_sha256", "rendition_sha256", "grant_id", "grant_fingerprint", "caption")
    leaves = [{**{name: getattr(e, name) for name in fields}, "tags": list(e.tags)} for e in entries]
    assert dataset_service.verify_manifest(leaves, snap.merkle_root)
    leaves[0]["tags"] = ["other"]
    assert not dataset_service.verify_manifest(leaves, snap.merkle_root)
    # an untagged entry hashes exactly as entries did before tags were kept
    untagged = {**leaves[0], "tags": []}
    assert dataset_service.canonical_entry(untagged) == "\n".join(
        [str(untagged["asset_id"]), untagged["asset_sha256"], untagged["rendition_sha256"],
         str(untagged["grant_id"]), untagged["grant_fingerprint"],
         hashlib.sha256(untagged["caption"].encode()).hexdigest()]).encode()


def test_entries_and_roots_are_write_once_in_the_database(sessions, catalog):
    snap = snapshot(sessions)
    statements = [
        update(SnapshotEntry).values(caption="changed"),
        text("DELETE FROM snapshot_entry"),
        update(DatasetSnapshot).values(merkle_root="0" * 64),
        text("DELETE FROM dataset_snapshot"),
    ]
    for statement in statements:
        with (pytest.raises((IntegrityError, OperationalError, DBAPIError), match="immutable"),
              sessions() as session, session.begin()):
            session.execute(statement)
    with sessions() as session:
        assert session.get(DatasetSnapshot, snap.id).merkle_root == snap.merkle_root


def test_gate_passes_then_names_assets_revoked_or_edited_since(sessions, catalog):
    snap = snapshot(sessions)
    with sessions() as session:
        assert dataset_service.enforce_license_gate(session=session, snapshot_id=snap.id).entries == 2
    with sessions() as session, session.begin():
        grant_a = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == catalog["ok-a.png"])).one()
        licensing_service.revoke_grant(session=session, grant_id=grant_a.id, reason="changed mind", revoked_by="t")
        grant_b = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == catalog["ok-b.png"])).one()
        grant_b.valid_until = datetime.now(UTC) + timedelta(days=3650)
    with sessions() as session, pytest.raises(dataset_service.LicenseGateViolation) as caught:
        dataset_service.enforce_license_gate(session=session, snapshot_id=snap.id)
    violations = {v["asset_id"]: v["reason"] for v in caught.value.details["violations"]}
    assert violations == {str(catalog["ok-a.png"]): "revoked", str(catalog["ok-b.png"]): "grant_changed"}
    assert str(catalog["ok-a.png"]) in caught.value.message


def test_gate_refuses_ids_outside_the_snapshot(sessions, catalog):
    snap = snapshot(sessions)
    with sessions() as session, pytest.raises(dataset_service.LicenseGateViolation) as caught:
        dataset_service.enforce_license_gate(session=session, snapshot_id=snap.id,
                                             asset_ids=[catalog["ok-a.png"], catalog["finetune-only.png"]])
    assert caught.value.details["violations"] == [
        {"asset_id": str(catalog["finetune-only.png"]), "reason": "not_in_snapshot"}]


def test_tampered_blob_is_refused(sessions, catalog, blob_store):
    snap = snapshot(sessions)
    with sessions() as session:
        entry = dataset_service.snapshot_entries(session=session, snapshot_id=snap.id)[0]
    assert dataset_service.load_rendition(blob_store=blob_store, entry=entry).startswith(b"\x89PNG")
    path = blob_store.root / "blobs" / entry.rendition_sha256[:2] / entry.rendition_sha256[2:4] / entry.rendition_sha256
    path.write_bytes(images.pattern_png(999))
    with pytest.raises(dataset_service.LicenseGateViolation, match="does not match"):
        dataset_service.load_rendition(blob_store=blob_store, entry=entry)


def test_revocation_is_one_way(sessions, catalog):
    with sessions() as session, session.begin():
        grant = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == catalog["revoked.png"])).one()
        assert grant.revoked_by == "test" and grant.revocation_reason == "artist left"
        from foundry.errors import Conflict

        with pytest.raises(Conflict):
            licensing_service.revoke_grant(session=session, grant_id=grant.id, reason="again", revoked_by="t")


def test_snapshot_api_and_cli(migrated, sessions, catalog):
    from fastapi.testclient import TestClient

    from api.app import create_app
    from tests.test_cli_and_migrations import cli

    admin = {"Authorization": "Bearer test-admin-key"}
    with TestClient(create_app(migrated)) as client:
        created = client.post("/v1/datasets", headers=admin,
                              json={"name": "all", "use": "base_training", "filters": {"tags": ["cat", "dog"]}})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["entry_count"] == 2
        page = client.get(f"/v1/datasets/{body['id']}/entries?limit=1", headers=admin).json()
        assert page["total"] == 2 and len(page["items"]) == 1
        assert client.post(f"/v1/datasets/{body['id']}/gate", headers=admin).json()["usable"] is True
        bad = client.post("/v1/datasets", headers=admin, json={"name": "x", "use": "generation"})
        assert bad.status_code == 422 and bad.json()["error"]["code"] == "validation_error"
        empty = client.post("/v1/datasets", headers=admin,
                            json={"name": "x", "use": "base_training", "filters": {"tags": ["unicorn"]}})
        assert (empty.status_code, empty.json()["error"]["code"]) == (422, "snapshot_empty")
        missing = client.get(f"/v1/datasets/{uuid.uuid4()}", headers=admin)
        assert (missing.status_code, missing.json()["error"]["code"]) == (404, "snapshot_not_found")

    made = cli(migrated, "dataset", "snapshot", "--name", "dogs", "--tag", "dog")
    assert "1 assets from 1 contributors" in made.stdout
    snapshot_id = made.stdout.split()[1].rstrip(":")
    assert "all 1 entries may be used" in cli(migrated, "dataset", "gate", snapshot_id).stdout
    with sessions() as session, session.begin():
        grant = session.scalars(select(LicenseGrant).where(LicenseGrant.asset_id == catalog["ok-b.png"])).one()
        licensing_service.revoke_grant(session=session, grant_id=grant.id, reason="gone", revoked_by="t")
    refused = cli(migrated, "dataset", "gate", snapshot_id, check=False)
    assert refused.returncode == 1 and f"{catalog['ok-b.png']}: revoked" in refused.stderr
