"""Onboarding through the service: accepted rows, per-row rejections, idempotency, atomicity."""

from __future__ import annotations

import csv
import json
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import func, select

from foundry.catalog import service as catalog_service
from foundry.catalog.models import Asset, CatalogImport, Contributor
from foundry.catalog.sources import open_source
from foundry.errors import InvalidInput
from foundry.licensing.models import LicenseGrant
from tests.support import images
from tests.support.rights_images import PLUS_VOCAB, xmp_packet

COLUMNS = ["path", "contributor", "contributor_ref", "license", "uses", "valid_from", "valid_until", "caption", "tags"]


def row(path, contributor="Ada Artist", license="CC-BY-4.0", uses="all", **extra) -> dict:
    return {"path": path, "contributor": contributor, "license": license, "uses": uses, "caption": f"picture {path}",
            "tags": "test;pattern", **extra}


def write_manifest(folder: Path, rows: list[dict], files: dict[str, bytes], name: str = "manifest.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for relative, data in files.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    manifest = folder / name
    if name.endswith(".jsonl"):
        manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    else:
        with manifest.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=COLUMNS)
            writer.writeheader()
            for item in rows:
                writer.writerow({k: item.get(k, "") for k in COLUMNS})
    return manifest


def run(settings, sessions, blob_store, location: Path, **kwargs) -> CatalogImport:
    options = catalog_service.import_options(settings)
    source = open_source(location, max_bytes=options.limits.max_bytes, **kwargs)
    return catalog_service.run_import(session_factory=sessions, blob_store=blob_store, source=source,
                                      requested_by="test", options=options)


def import_grouped_catalog(settings, sessions, blob_store, folder: Path, *, per_group: int, first_seed: int,
                           group_seed_step: int) -> CatalogImport:
    """Distinct images of two groups, tagged ``group:faces`` and ``group:flags``: what held-out splits and
    quality evaluators stratify by. Image ``n`` of group ``i`` is pattern ``first_seed + group_seed_step * i + n``."""
    files = {f"{group}-{n}.png": images.pattern_png(first_seed + group_seed_step * i + n)
             for i, group in enumerate(("faces", "flags")) for n in range(per_group)}
    rows = [row(name, tags=f"group:{name.split('-')[0]}") for name in files]
    return run(settings, sessions, blob_store, write_manifest(folder, rows, files))


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


def codes(batch: CatalogImport) -> dict[str, str]:
    return {item["path"] or item["ref"]: item["code"] for item in batch.report["rejections"]}


def test_manifest_import_stores_assets_grants_and_blobs(settings, sessions, blob_store, tmp_path):
    files = {"a.png": images.pattern_png(1), "b.jpg": images.pattern_jpeg(2), "c.svg": images.pattern_svg(3)}
    manifest = write_manifest(tmp_path / "cat", [
        row("a.png", uses="base_training;generation", valid_until="2030-01-01"),
        row("b.jpg", contributor="Bo Painter", contributor_ref="bo-1"),
        row("c.svg", uses="customer_finetune"),
    ], files)

    batch = run(settings, sessions, blob_store, manifest)

    assert (batch.status, batch.rows_total, batch.rows_imported, batch.rows_rejected) == ("succeeded", 3, 3, 0)
    assert batch.contributors_created == 2
    with sessions() as session:
        assets = {a.source_ref: a for a in session.scalars(select(Asset))}
        assert set(assets) == {"manifest:a.png", "manifest:b.jpg", "manifest:c.svg"}
        assert {a.format for a in assets.values()} == {"png", "jpeg", "svg"}
        svg = assets["manifest:c.svg"]
        assert (svg.width, svg.height) == (72, 72)
        grants = {g.asset_id: g for g in session.scalars(select(LicenseGrant))}
        png_grant = grants[assets["manifest:a.png"].id]
        assert (png_grant.permits_base_training, png_grant.permits_customer_finetune, png_grant.permits_generation) \
            == (True, False, True)
        assert png_grant.valid_until.year == 2030 and png_grant.valid_until.tzinfo is not None
        assert grants[svg.id].uses == {"customer_finetune"}
        refs = set(session.scalars(select(Contributor.external_ref)))
        assert refs == {"name:Ada Artist", "bo-1"}
        for asset in assets.values():
            assert blob_store.get(asset.sha256) == files[asset.source_ref.split(":", 1)[1]]
            rendition = blob_store.get(asset.rendition_sha256)
            assert rendition.startswith(b"\x89PNG")
    assert blob_store.stage_ids() == []


def test_bad_rows_are_rejected_with_reasons_and_good_rows_still_import(settings, sessions, blob_store, tmp_path):
    good = images.pattern_png(10)
    files = {
        "good.png": good,
        "copy.png": good,
        "truncated.png": images.truncated(images.pattern_png(11)),
        "bomb.png": images.png_header_only(30_000, 30_000),
        "notes.png": b"just some text, not an image",
        "laughs.svg": images.BILLION_LAUGHS_SVG,
        "external.svg": images.EXTERNAL_REFERENCE_SVG,
        "css.svg": images.CSS_IMPORT_SVG,
        "script.svg": images.SCRIPT_SVG,
        "nobody.png": images.pattern_png(12),
        "weird-license.png": images.pattern_png(13),
        "no-uses.png": images.pattern_png(14),
        "bad-use.png": images.pattern_png(15),
        "backwards.png": images.pattern_png(16),
    }
    (tmp_path / "secret.png").write_bytes(images.pattern_png(99))
    manifest = write_manifest(tmp_path / "cat", [
        row("good.png"), row("copy.png"), row("truncated.png"), row("bomb.png"), row("notes.png"),
        row("laughs.svg"), row("external.svg"), row("css.svg"), row("script.svg"),
        row("nobody.png", contributor=""), row("weird-license.png", license="All rights reserved maybe"),
        row("no-uses.png", uses=""), row("bad-use.png", uses="base_training;world_domination"),
        row("backwards.png", valid_from="2025-01-01", valid_until="2024-01-01"),
        row("../secret.png"), row("/etc/passwd"), row("missing.png"),
    ], files)

    batch = run(settings, sessions, blob_store, manifest)

    assert batch.rows_total == 17 and batch.rows_imported == 1 and batch.rows_rejected == 16
    assert codes(batch) == {
        "copy.png": "duplicate_in_batch",
        "truncated.png": "image_corrupt",
        "bomb.png": "decompression_bomb",
        "notes.png": "unsupported_format",
        "laughs.svg": "svg_unsafe",
        "external.svg": "svg_external_reference",
        "css.svg": "svg_external_reference",
        "script.svg": "svg_script",
        "nobody.png": "missing_contributor",
        "weird-license.png": "unknown_license",
        "no-uses.png": "no_permitted_uses",
        "bad-use.png": "row_malformed",
        "backwards.png": "invalid_validity",
        "../secret.png": "path_traversal",
        "/etc/passwd": "path_traversal",
        "missing.png": "file_missing",
    }
    assert count(sessions, Asset) == 1 and count(sessions, LicenseGrant) == 1
    assert sorted(blob_store.iter_keys()) == sorted({_sha(good), _rendition(sessions)})


def _sha(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _rendition(sessions) -> str:
    with sessions() as session:
        return session.scalar(select(Asset.rendition_sha256))


def test_jsonl_manifest_with_zipped_images(settings, sessions, blob_store, tmp_path):
    archive = tmp_path / "images.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("pics/one.png", images.pattern_png(21))
        bundle.writestr("pics/two.png", images.pattern_png(22))
        bundle.writestr("../evil.png", images.pattern_png(23))
    manifest = write_manifest(tmp_path / "m", [row("pics/one.png"), row("pics/two.png", tags=["x", "y"]),
                                               row("../evil.png")], {}, name="manifest.jsonl")
    (tmp_path / "m" / "manifest.jsonl").write_text(
        (tmp_path / "m" / "manifest.jsonl").read_text() + "{not json\n")

    batch = run(settings, sessions, blob_store, manifest, images=archive)

    assert batch.rows_imported == 2
    assert codes(batch) == {"../evil.png": "path_traversal", "manifest:line:4": "row_malformed"}
    with sessions() as session:
        tags = {a.source_ref: a.tags for a in session.scalars(select(Asset))}
    assert tags["manifest:pics/two.png"] == ["x", "y"]


def test_reimport_is_idempotent(settings, sessions, blob_store, tmp_path):
    manifest = write_manifest(tmp_path / "cat", [row("a.png"), row("b.png")],
                              {"a.png": images.pattern_png(31), "b.png": images.pattern_png(32)})
    first = run(settings, sessions, blob_store, manifest)
    keys = sorted(blob_store.iter_keys())
    second = run(settings, sessions, blob_store, manifest)

    assert (first.rows_imported, second.rows_imported, second.rows_unchanged) == (2, 0, 2)
    assert second.contributors_created == 0 and second.report["warnings"] == []
    assert count(sessions, Asset) == 2 and count(sessions, LicenseGrant) == 2 and count(sessions, Contributor) == 1
    assert sorted(blob_store.iter_keys()) == keys


def test_same_image_from_another_contributor_is_rejected(settings, sessions, blob_store, tmp_path):
    data = images.pattern_png(41)
    run(settings, sessions, blob_store, write_manifest(tmp_path / "one", [row("a.png")], {"a.png": data}))
    batch = run(settings, sessions, blob_store,
                write_manifest(tmp_path / "two", [row("a.png", contributor="Someone Else")], {"a.png": data}))
    assert codes(batch) == {"a.png": "duplicate_of_existing_asset"}


def test_near_duplicates_are_imported_and_reported(settings, sessions, blob_store, tmp_path):
    picture = images.pattern_image(51, size=128)
    files = {"orig.png": images.encode(picture, "PNG"), "recompressed.jpg": images.encode(picture, "JPEG", quality=80),
             "other.png": images.pattern_png(52)}
    manifest = write_manifest(tmp_path / "cat", [row(name) for name in files], files)

    batch = run(settings, sessions, blob_store, manifest)

    assert batch.rows_imported == 3
    assert [(n["ref"], n["near"]) for n in batch.report["near_duplicates"]] == \
        [("manifest:recompressed.jpg", "manifest:orig.png")]
    with sessions() as session:
        by_ref = {a.source_ref: a for a in session.scalars(select(Asset))}
    assert by_ref["manifest:recompressed.jpg"].near_duplicate_of_id == by_ref["manifest:orig.png"].id


def test_embedded_data_mining_prohibition_removes_training_uses(settings, sessions, blob_store, tmp_path):
    prohibited = xmp_packet(creator="Ada Artist", data_mining=PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING")
    files = {"a.png": images.pattern_png(61, xmp=prohibited), "b.png": images.pattern_png(62, xmp=prohibited)}
    manifest = write_manifest(tmp_path / "cat", [row("a.png"), row("b.png", uses="base_training")], files)

    batch = run(settings, sessions, blob_store, manifest)

    assert codes(batch) == {"b.png": "ai_training_prohibited"}
    assert [w["code"] for w in batch.report["warnings"]] == ["training_uses_removed"]
    with sessions() as session:
        grant = session.scalars(select(LicenseGrant)).one()
    assert grant.uses == {"generation"} and grant.data_mining == "DMI-PROHIBITED-AIMLTRAINING"


def test_rights_embedded_in_files_drive_an_embedded_import(settings, sessions, blob_store, tmp_path):
    folder = tmp_path / "embedded"
    folder.mkdir()
    cc_by = "https://creativecommons.org/licenses/by/4.0/"
    (folder / "allowed.png").write_bytes(images.pattern_png(
        71, xmp=xmp_packet(creator="Cleo Camera", license_url=cc_by, data_mining=PLUS_VOCAB + "DMI-ALLOWED")))
    (folder / "prohibited.png").write_bytes(images.pattern_png(
        72, xmp=xmp_packet(creator="Cleo Camera", license_url=cc_by, data_mining=PLUS_VOCAB + "DMI-PROHIBITED")))
    (folder / "silent.png").write_bytes(images.pattern_png(
        73, xmp=xmp_packet(creator="Cleo Camera", license_url=cc_by)))
    (folder / "anonymous.png").write_bytes(images.pattern_png(
        74, xmp=xmp_packet(license_url=cc_by, data_mining=PLUS_VOCAB + "DMI-ALLOWED")))

    batch = run(settings, sessions, blob_store, folder, source_format="embedded")

    assert batch.rows_imported == 1
    assert codes(batch) == {"prohibited.png": "ai_training_prohibited", "silent.png": "rights_unspecified",
                            "anonymous.png": "missing_contributor"}
    with sessions() as session:
        contributor = session.scalars(select(Contributor)).one()
        grant = session.scalars(select(LicenseGrant)).one()
    assert contributor.display_name == "Cleo Camera"
    assert grant.license_code == "CC-BY-4.0" and len(grant.uses) == 3


@pytest.mark.parametrize("content, message", [
    ("path,contributor\nx.png,Ada\n", "lacks required columns"),
    ("", "no rows"),
    ('path,contributor,license,uses\n"unterminated,Ada,CC0-1.0,all\n', "not valid CSV"),
])
def test_malformed_manifest_is_fatal_and_writes_nothing(settings, sessions, blob_store, tmp_path, content, message):
    manifest = tmp_path / "manifest.csv"
    manifest.write_text(content)
    with pytest.raises(InvalidInput, match=message):
        run(settings, sessions, blob_store, manifest)
    assert count(sessions, Asset) == 0 and count(sessions, CatalogImport) == 0


def test_failure_mid_import_leaves_no_rows_and_no_blobs(settings, sessions, blob_store, tmp_path, monkeypatch):
    files = {f"{i}.png": images.pattern_png(100 + i) for i in range(6)}
    manifest = write_manifest(tmp_path / "cat", [row(name) for name in files], files)
    original = catalog_service._write_pending

    def explode_after_first_write(session, state):
        if state.pending_assets:
            original(session, state)
            raise OSError("disk full while writing the batch")

    monkeypatch.setattr(catalog_service, "_write_pending", explode_after_first_write)
    with pytest.raises(OSError, match="disk full"):
        run(settings, sessions, blob_store, manifest)

    assert count(sessions, Asset) == 0 and count(sessions, Contributor) == 0 and count(sessions, LicenseGrant) == 0
    assert list(blob_store.iter_keys()) == [] and blob_store.stage_ids() == []
    with sessions() as session:
        failed = session.scalars(select(CatalogImport)).one()
    assert failed.status == "failed" and "disk full" in failed.error
