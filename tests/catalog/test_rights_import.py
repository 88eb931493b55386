"""Embedded rights through the whole onboarding path: one fail-closed rule for every format and layout.

Images whose metadata does not explicitly allow AI training (a prohibition of any kind, a value
outside the vocabulary, contradicting packets, XMP that cannot be parsed or more packets than the
reader reads) never get a training use, the report says why, and no snapshot for training takes
them, whichever way they came in; grants already in the database are judged by the same rule.
"""

from __future__ import annotations

import json
import zipfile

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from api.app import create_app
from foundry.catalog.models import Asset, Contributor
from foundry.catalog.rights import MAX_METADATA_BLOCKS
from foundry.datasets import service as dataset_service
from foundry.licensing.models import LicenseGrant
from foundry.licensing.policy import grant_training_verdict
from tests.catalog.test_import import codes, row, run, write_manifest
from tests.support import images
from tests.support import rights_images as rimages
from tests.support.rights_images import PLUS_VOCAB, xmp_packet
from tests.test_api_catalog import ADMIN, images_zip, manifest_csv
from tests.test_cli_and_migrations import cli

TRAINING = {"base_training", "customer_finetune"}


def packet(value: str | None, creator: str = "Ada Artist") -> bytes:
    cc_by = "https://creativecommons.org/licenses/by/4.0/"
    return xmp_packet(creator=creator, license_url=cc_by, data_mining=value)


def pattern_jpeg_with(packets: list[bytes], seed: int, iptc: bytes | None = None) -> bytes:
    """A distinct picture (the pattern's pixels) carrying ``packets`` as separate APP1 segments."""
    jpeg = images.pattern_jpeg(seed)
    segments = b"".join(rimages.jpeg_segment(0xE1, rimages.JPEG_XMP_HEADER + p) for p in packets)
    if iptc is not None:
        segments += rimages.jpeg_segment(0xED, rimages.PHOTOSHOP_HEADER + rimages.photoshop_resources(iptc))
    return rimages.insert_after_soi(jpeg, segments)


def grants_by_path(sessions) -> dict[str, LicenseGrant]:
    with sessions() as session:
        pairs = session.execute(select(Asset.source_ref, LicenseGrant).join(LicenseGrant,
                                                                              LicenseGrant.asset_id == Asset.id))
        return {ref.split(":", 1)[1]: grant for ref, grant in pairs}


def warnings_by_path(batch) -> dict[str, list[dict]]:
    found: dict[str, list[dict]] = {}
    for item in batch.report["warnings"]:
        found.setdefault(item["path"], []).append(item)
    return found


def snapshot_paths(sessions, use: str) -> set[str]:
    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="s", use=use, created_by="test")
        entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id)
        refs = dict(session.execute(select(Asset.id, Asset.source_ref)).all())
        return {refs[entry.asset_id].split(":", 1)[1] for entry in entries}


UNRECOGNISED = "no AI please"
NOT_ALLOWING = {  # file name -> (what the file's metadata says, the reason code in the report)
    "seelinked.jpg": ([packet(PLUS_VOCAB + "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR")], "data_mining_prohibited"),
    "unrecognised.jpg": ([packet(UNRECOGNISED)], "data_mining_unrecognised"),
    "conflict.jpg": ([packet(PLUS_VOCAB + "DMI-ALLOWED"), packet(PLUS_VOCAB + "DMI-UNSPECIFIED")],
                     "data_mining_conflict"),
    "ninth-packet.jpg": ([packet(PLUS_VOCAB + "DMI-ALLOWED")] * 8 + [packet(PLUS_VOCAB + "DMI-PROHIBITED")],
                         "data_mining_prohibited"),
    "malformed.jpg": ([rimages.malformed_xmp(packet(PLUS_VOCAB + "DMI-ALLOWED"))], "embedded_rights_unreadable"),
    "too-many.jpg": ([packet(PLUS_VOCAB + "DMI-ALLOWED")] * (MAX_METADATA_BLOCKS + 1), "embedded_rights_unreadable"),
}


def test_manifest_rows_whose_files_do_not_allow_training_lose_the_training_uses(settings, sessions, blob_store,
                                                                                tmp_path):
    files = {name: pattern_jpeg_with(packets, seed) for seed, (name, (packets, _)) in enumerate(NOT_ALLOWING.items())}
    files["plain.jpg"] = images.pattern_jpeg(50)  # no XMP at all: the manifest's licence is the grant
    files["unspecified.jpg"] = pattern_jpeg_with([packet(PLUS_VOCAB + "DMI-UNSPECIFIED")], 51)
    files["allowed.jpg"] = pattern_jpeg_with([packet(PLUS_VOCAB + "DMI-ALLOWED")], 52)
    files["iptc-prohibits.jpg"] = pattern_jpeg_with(
        [packet(PLUS_VOCAB + "DMI-ALLOWED")], 53,
        iptc=rimages.iim_dataset(2, 40, b"Data mining: DMI-PROHIBITED-AIMLTRAINING"))
    manifest = write_manifest(tmp_path / "cat", [row(name, uses="all") for name in files], files)

    batch = run(settings, sessions, blob_store, manifest)

    assert batch.rows_imported == len(files) and batch.rows_rejected == 0
    grants = grants_by_path(sessions)
    for name in [*NOT_ALLOWING, "iptc-prohibits.jpg"]:
        assert grants[name].uses == {"generation"}, name
    for name in ("plain.jpg", "unspecified.jpg", "allowed.jpg"):
        assert grants[name].uses == {"base_training", "customer_finetune", "generation"}, name
    warnings = warnings_by_path(batch)
    for name, (_, reason) in NOT_ALLOWING.items():
        removed = [w for w in warnings[name] if w["code"] == "training_uses_removed"]
        assert [w["reason"] for w in removed] == [reason], name
    assert [w.get("reason") for w in warnings["iptc-prohibits.jpg"] if w["code"] == "training_uses_removed"] == [
        "data_mining_prohibited"]
    # what the reader could not read reaches the report rows too
    assert "xmp_extra_blocks_ignored" in {w["code"] for w in warnings["too-many.jpg"]}
    assert "xmp_malformed" in {w["code"] for w in warnings["malformed.jpg"]}
    assert not {"plain.jpg", "unspecified.jpg", "allowed.jpg"} & set(warnings)

    trained = {"plain.jpg", "unspecified.jpg", "allowed.jpg"}
    assert snapshot_paths(sessions, "base_training") == trained
    assert snapshot_paths(sessions, "customer_finetune") == trained


def test_embedded_imports_need_an_explicit_allow_and_nothing_against_it(settings, sessions, blob_store, tmp_path):
    folder = tmp_path / "embedded"
    folder.mkdir()
    for seed, (name, (packets, _)) in enumerate(NOT_ALLOWING.items()):
        (folder / name).write_bytes(pattern_jpeg_with(packets, 100 + seed))
    (folder / "allowed.jpg").write_bytes(pattern_jpeg_with([packet(PLUS_VOCAB + "DMI-ALLOWED")] * 9, 120))

    batch = run(settings, sessions, blob_store, folder, source_format="embedded")

    assert codes(batch) == {
        "seelinked.jpg": "ai_training_prohibited", "unrecognised.jpg": "data_mining_unrecognised",
        "conflict.jpg": "data_mining_conflict", "ninth-packet.jpg": "ai_training_prohibited",
        "malformed.jpg": "embedded_rights_unreadable", "too-many.jpg": "embedded_rights_unreadable",
    }
    reasons = {item["path"]: item["reason"] for item in batch.report["rejections"]}
    assert reasons == {name: reason for name, (_, reason) in NOT_ALLOWING.items()}
    assert batch.rows_imported == 1 and set(grants_by_path(sessions)) == {"allowed.jpg"}


@pytest.mark.parametrize("image_format", ["png", "webp", "gif", "tiff", "svg"])
def test_every_format_reads_every_packet(settings, sessions, blob_store, tmp_path, image_format):
    """A prohibition after eight permissions is found in each container that can hold several packets."""
    packets = [packet(PLUS_VOCAB + "DMI-ALLOWED")] * 8 + [packet(PLUS_VOCAB + "DMI-PROHIBITED")]
    data = {"png": rimages.png_with_packets, "webp": rimages.webp_with_packets, "gif": rimages.gif_with_packets,
            "tiff": rimages.tiff_with_packets, "svg": rimages.svg_with_packets}[image_format](packets)
    name = f"late.{image_format}"
    batch = run(settings, sessions, blob_store, write_manifest(tmp_path / "cat", [row(name)], {name: data}))
    assert batch.rows_imported == 1, batch.report
    assert grants_by_path(sessions)[name].uses == {"generation"}


def test_a_limit_reached_through_the_api_and_the_cli_report_says_so(migrated, sessions, tmp_path):
    data = pattern_jpeg_with([packet(PLUS_VOCAB + "DMI-ALLOWED")] * (MAX_METADATA_BLOCKS + 1), 7)
    rows = [{"path": "many.jpg", "contributor": "Ada", "license": "CC0-1.0", "uses": "all", "caption": ""}]
    with TestClient(create_app(migrated)) as client:
        response = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "manifest"},
                               files={"archive": ("images.zip", images_zip({"many.jpg": data}), "application/zip"),
                                      "manifest": ("manifest.csv", manifest_csv(rows), "text/csv")})
    assert response.status_code == 201, response.text
    api_codes = {(w["code"], w.get("reason")) for w in response.json()["report"]["warnings"]}
    assert {("xmp_extra_blocks_ignored", None), ("training_uses_removed", "embedded_rights_unreadable")} <= api_codes

    folder = tmp_path / "cli"
    folder.mkdir()
    (folder / "many.jpg").write_bytes(pattern_jpeg_with([packet(PLUS_VOCAB + "DMI-ALLOWED")] * 70, 8))
    (folder / "manifest.csv").write_text("path,contributor,license,uses\nmany.jpg,Ada,CC0-1.0,all\n")
    report = tmp_path / "report.json"
    result = cli(migrated, "catalog", "import", str(folder / "manifest.csv"), "--report", str(report))
    saved = json.loads(report.read_text())
    assert "xmp_extra_blocks_ignored" in {w["code"] for w in saved["warnings"]}
    assert "training_uses_removed" in result.stdout


def test_existing_grants_are_judged_by_the_same_rule(settings, sessions, blob_store, tmp_path):
    """Grants stored before the rule was one (training flags set next to a non-allowing value) stay out."""
    files = {f"{i}.png": images.pattern_png(200 + i) for i in range(4)}
    run(settings, sessions, blob_store, write_manifest(tmp_path / "cat", [row(name) for name in files], files))
    stored = {"0.png": "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR", "1.png": "not a vocabulary value",
              "2.png": " dmi-allowed "}
    with sessions() as session, session.begin():
        refs = dict(session.execute(select(Asset.source_ref, Asset.id)).all())
        for name, value in stored.items():
            session.execute(update(LicenseGrant).where(LicenseGrant.asset_id == refs[f"manifest:{name}"])
                            .values(data_mining=value))
    assert snapshot_paths(sessions, "base_training") == {"2.png", "3.png"}

    with sessions() as session, session.begin():
        snapshot = dataset_service.create_snapshot(session=session, name="all", use="customer_finetune",
                                                   created_by="test")
    with sessions() as session, session.begin():
        session.execute(update(LicenseGrant).where(LicenseGrant.asset_id == refs["manifest:3.png"])
                        .values(data_mining="DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"))
    with sessions() as session, pytest.raises(dataset_service.LicenseGateViolation) as caught:
        dataset_service.enforce_license_gate(session=session, snapshot_id=snapshot.id)
    assert caught.value.details["violations"] == [
        {"asset_id": str(refs["manifest:3.png"]), "reason": "data_mining_prohibited"}]


def test_an_overlong_data_mining_value_is_stored_cut_and_still_blocks(settings, sessions, blob_store, tmp_path):
    """The grant keeps the decisive value in a 64-character column; PostgreSQL must not refuse the batch."""
    value = "DMI-ALLOWED" + " " * 80 + "unless you train"
    files = {"long.png": images.pattern_png(300, xmp=packet(value))}
    batch = run(settings, sessions, blob_store, write_manifest(tmp_path / "cat", [row("long.png")], files))
    grant = grants_by_path(sessions)["long.png"]
    assert batch.rows_imported == 1 and grant.uses == {"generation"}
    assert len(grant.data_mining) == 64
    assert grant_training_verdict(grant.data_mining).reason == "data_mining_unrecognised"


def test_openmoji_rows_follow_the_same_rule(settings, sessions, blob_store, tmp_path):
    """The OpenMoji package's licence is the grant, but an emoji whose SVG forbids training loses training."""
    allowed = images.pattern_svg(5)
    forbidding = rimages.svg_with_metadata(packet(PLUS_VOCAB + "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR", "Emily"))
    tarball = tmp_path / "openmoji.tgz"
    tarball.write_bytes(images.tar_gz({
        "package/data/openmoji.json": json.dumps([
            {"hexcode": "1F600", "annotation": "a", "openmoji_author": "Emily"},
            {"hexcode": "1F601", "annotation": "b", "openmoji_author": "Emily"}]).encode(),
        "package/color/svg/1F600.svg": allowed,
        "package/color/svg/1F601.svg": forbidding,
    }))

    batch = run(settings, sessions, blob_store, tarball)

    assert batch.rows_imported == 2
    grants = grants_by_path(sessions)
    assert grants["1F600"].uses == {"base_training", "customer_finetune", "generation"}
    assert grants["1F601"].uses == {"generation"}


def test_rejected_rows_create_no_contributor(settings, sessions, blob_store, tmp_path):
    """A row refused as another contributor's image creates nobody, in manifest and embedded imports alike."""
    allowed = xmp_packet(creator="Zip Creator", license_url="https://creativecommons.org/licenses/by/4.0/",
                         data_mining=PLUS_VOCAB + "DMI-ALLOWED")
    data = images.pattern_png(41, xmp=allowed)
    run(settings, sessions, blob_store, write_manifest(tmp_path / "one", [row("a.png")], {"a.png": data}))
    batch = run(settings, sessions, blob_store,
                write_manifest(tmp_path / "two", [row("a.png", contributor="Someone Else")], {"a.png": data}))
    assert codes(batch) == {"a.png": "duplicate_of_existing_asset"}
    assert batch.contributors_created == 0

    archive = tmp_path / "embedded.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("copy.png", data)
    embedded = run(settings, sessions, blob_store, archive, source_format="embedded")
    assert codes(embedded) == {"copy.png": "duplicate_of_existing_asset"}
    assert embedded.contributors_created == 0
    with sessions() as session:
        assert set(session.scalars(select(Contributor.display_name))) == {"Ada Artist"}
