"""Damaged archives, links and compressed SVGs become reported rows; fatal errors leave an audit record.

A corrupt zip member (bad CRC, bad deflate data, the encrypted flag) is that row rejected with a
code; an archive that cannot be opened at all is a 422 with a code (a readable CLI message); in
both cases nothing is half-written and no server path reaches the caller.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import zipfile
import zlib
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from foundry.catalog.models import Asset, CatalogImport
from foundry.catalog.sources import ImageRoot
from foundry.errors import InvalidInput
from tests.catalog.test_import import codes, row, run, write_manifest
from tests.support import images
from tests.support.rights_images import PLUS_VOCAB, xmp_packet
from tests.test_api_catalog import ADMIN, manifest_csv
from tests.test_cli_and_migrations import cli


def allowed_png(seed: int) -> bytes:
    return images.pattern_png(seed, xmp=xmp_packet(creator="Ada Artist", data_mining=PLUS_VOCAB + "DMI-ALLOWED",
                                                   license_url="https://creativecommons.org/licenses/by/4.0/"))


def damaged_zip(members: dict[str, bytes]) -> bytes:
    """A zip whose members named ``bad-crc*``, ``bad-deflate*`` and ``encrypted*`` are damaged that way."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            method = zipfile.ZIP_DEFLATED if name.startswith("bad-deflate") else zipfile.ZIP_STORED
            bundle.writestr(name, data, compress_type=method)
    archive = bytearray(buffer.getvalue())
    with zipfile.ZipFile(io.BytesIO(bytes(archive))) as bundle:
        infos = bundle.infolist()
    for info in infos:
        local = info.header_offset
        name_length, extra_length = struct.unpack("<HH", archive[local + 26: local + 30])
        data_start = local + 30 + name_length + extra_length
        if info.filename.startswith("bad-crc"):
            archive[data_start + 40] ^= 0xFF
        elif info.filename.startswith("bad-deflate"):
            archive[data_start: data_start + 4] = b"\xff\xff\xff\xff"
        elif info.filename.startswith("encrypted"):
            archive[local + 6] |= 0x01  # the local header's flag, and the central directory's
            central = bytes(archive).index(b"PK\x01\x02")
            while True:
                (name_length,) = struct.unpack("<H", archive[central + 28: central + 30])
                if archive[central + 46: central + 46 + name_length] == info.filename.encode():
                    archive[central + 8] |= 0x01
                    break
                central = bytes(archive).index(b"PK\x01\x02", central + 4)
    return bytes(archive)


def zip_with_symlink(members: dict[str, bytes], link_name: str, target: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as bundle:
        for name, data in members.items():
            bundle.writestr(name, data)
        link = zipfile.ZipInfo(link_name)
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        bundle.writestr(link, target)
    return buffer.getvalue()


def count(sessions, model) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(model))


# ------------------------------------------------------------------------------------------------
# Item 6: corrupt members are rows, unreadable archives are 4xx


MEMBERS = {"good.png": allowed_png(1), "bad-crc.png": allowed_png(2), "bad-deflate.png": allowed_png(3),
           "encrypted.png": allowed_png(4)}
EXPECTED = {"bad-crc.png": "archive_member_corrupt", "bad-deflate.png": "archive_member_corrupt",
            "encrypted.png": "archive_member_encrypted"}


def test_corrupt_members_of_an_embedded_zip_are_rejected_rows(settings, sessions, blob_store, tmp_path):
    archive = tmp_path / "images.zip"
    archive.write_bytes(damaged_zip(MEMBERS))
    batch = run(settings, sessions, blob_store, archive, source_format="embedded")
    assert (batch.status, batch.rows_imported) == ("succeeded", 1)
    assert codes(batch) == EXPECTED


def test_corrupt_members_named_by_a_manifest_are_rejected_rows(settings, sessions, blob_store, tmp_path):
    archive = tmp_path / "images.zip"
    archive.write_bytes(damaged_zip(MEMBERS))
    manifest = write_manifest(tmp_path / "m", [row(name) for name in MEMBERS], {})
    batch = run(settings, sessions, blob_store, manifest, images=archive)
    assert batch.rows_imported == 1 and codes(batch) == EXPECTED


@pytest.fixture
def client(migrated):
    with TestClient(create_app(migrated)) as test_client:
        yield test_client


def test_api_answers_corrupt_members_with_rows_and_broken_archives_with_422(client, sessions):
    response = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "embedded"},
                           files={"archive": ("holiday.zip", damaged_zip(MEMBERS), "application/zip")})
    assert response.status_code == 201, response.text
    assert {item["path"]: item["code"] for item in response.json()["report"]["rejections"]} == EXPECTED

    whole = damaged_zip({"a.png": allowed_png(5)})
    cut = whole[: whole.index(b"PK\x01\x02")] + b"PK\x01\x02" + b"\x00" * 10 + whole[whole.index(b"PK\x05\x06"):]
    broken = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "embedded"},
                         files={"archive": ("holiday.zip", cut, "application/zip")})
    assert broken.status_code == 422, broken.text
    error = broken.json()["error"]
    assert error["code"] == "archive_corrupt" and "holiday.zip" in error["message"]
    assert "/tmp" not in error["message"] and "foundry-upload" not in error["message"]
    assert count(sessions, Asset) == 1


def test_api_error_messages_name_uploads_not_server_paths(client, sessions):
    not_zip = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "manifest"},
                          files={"archive": ("photos.zip", b"PK-but-not-really", "application/zip"),
                                 "manifest": ("rows.csv", manifest_csv([]), "text/csv")})
    assert not_zip.status_code == 422
    message = not_zip.json()["error"]["message"]
    assert "photos.zip" in message and "/tmp" not in message and "foundry-upload" not in message
    not_tar = client.post("/v1/catalog/imports", headers=ADMIN, data={"format": "openmoji"},
                          files={"archive": ("emoji.tgz", b"\x1f\x8b" + b"\x00" * 40, "application/gzip")})
    assert not_tar.status_code == 422 and not_tar.json()["error"]["code"] == "archive_corrupt"
    assert "emoji.tgz" in not_tar.json()["error"]["message"] and "/tmp" not in not_tar.json()["error"]["message"]
    with sessions() as session:
        failed = session.scalars(select(CatalogImport).where(CatalogImport.status == "failed")).all()
    assert {batch.source for batch in failed} == {"upload:photos.zip", "upload:emoji.tgz"}
    assert all("/tmp" not in batch.error for batch in failed)


def test_cli_reports_damaged_archives_without_a_traceback_and_records_the_failure(migrated, sessions, tmp_path):
    archive = tmp_path / "images.zip"
    archive.write_bytes(damaged_zip(MEMBERS))
    report = tmp_path / "report.json"
    result = cli(migrated, "catalog", "import", str(archive), "--format", "embedded", "--report", str(report))
    assert "archive_member_corrupt" in result.stdout and "Traceback" not in result.stderr
    assert {item["code"] for item in json.loads(report.read_text())["rejections"]} == set(EXPECTED.values())

    unreadable = tmp_path / "broken.tgz"
    unreadable.write_bytes(b"\x1f\x8b" + b"\x00" * 40)
    failed = cli(migrated, "catalog", "import", str(unreadable), "--format", "openmoji", check=False)
    assert failed.returncode == 1 and "archive_corrupt" in failed.stderr and "Traceback" not in failed.stderr
    bad_manifest = tmp_path / "manifest.csv"
    bad_manifest.write_text("just,some\nwords,here\n")
    assert cli(migrated, "catalog", "import", str(bad_manifest), check=False).returncode == 1
    with sessions() as session:
        records = {batch.source: batch for batch in session.scalars(
            select(CatalogImport).where(CatalogImport.status == "failed"))}
    assert set(records) == {str(unreadable), str(bad_manifest)}
    assert records[str(bad_manifest)].error.startswith("manifest_malformed:")
    assert records[str(unreadable)].requested_by == "cli" and records[str(unreadable)].finished_at is not None


def test_a_corrupt_tar_stream_is_fatal_with_a_code(settings, sessions, blob_store, tmp_path):
    manifest = b'[{"hexcode": "1F600", "openmoji_author": "Emily"}]' + b" " * 5000
    damaged = bytearray(images.tar_gz({"package/data/openmoji.json": manifest}))
    damaged[len(damaged) // 2] ^= 0xFF
    tarball = tmp_path / "openmoji.tgz"
    tarball.write_bytes(bytes(damaged))
    with pytest.raises(InvalidInput) as caught:
        run(settings, sessions, blob_store, tarball)
    assert caught.value.code == "archive_corrupt"


# ------------------------------------------------------------------------------------------------
# Item 10: .svgz and links are reported rows


def test_svgz_files_and_links_in_an_embedded_folder_are_reported(settings, sessions, blob_store, tmp_path):
    folder = tmp_path / "embedded"
    (folder / "sub").mkdir(parents=True)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.png").write_bytes(allowed_png(20))
    (folder / "good.png").write_bytes(allowed_png(21))
    (folder / "drawing.svgz").write_bytes(zlib.compress(images.pattern_svg(1)))
    (folder / "sub" / "linked.png").symlink_to(outside / "secret.png")
    (folder / "linked-folder").symlink_to(outside, target_is_directory=True)
    (folder / "notes.txt").write_text("not an image, not a row")

    batch = run(settings, sessions, blob_store, folder, source_format="embedded")

    assert batch.rows_total == 4 and batch.rows_imported == 1
    assert codes(batch) == {"drawing.svgz": "unsupported_format", "sub/linked.png": "symlink_not_followed",
                            "linked-folder": "symlink_not_followed"}


def test_svgz_and_links_in_an_embedded_zip_are_reported(settings, sessions, blob_store, tmp_path):
    archive = tmp_path / "images.zip"
    archive.write_bytes(zip_with_symlink({"good.png": allowed_png(22), "drawing.svgz": b"\x1f\x8b..."},
                                         "link.png", "/etc/passwd"))
    batch = run(settings, sessions, blob_store, archive, source_format="embedded")
    assert batch.rows_imported == 1
    assert codes(batch) == {"drawing.svgz": "unsupported_format", "link.png": "symlink_not_followed"}


def test_a_linked_openmoji_svg_is_a_reported_row(settings, sessions, blob_store, tmp_path):
    package = tmp_path / "openmoji"
    (package / "data").mkdir(parents=True)
    (package / "color" / "svg").mkdir(parents=True)
    (package / "data" / "openmoji.json").write_text(json.dumps([
        {"hexcode": "1F600", "openmoji_author": "Emily"}, {"hexcode": "1F601", "openmoji_author": "Emily"}]))
    (package / "color" / "svg" / "1F600.svg").write_bytes(images.pattern_svg(1))
    (tmp_path / "elsewhere.svg").write_bytes(images.pattern_svg(2))
    (package / "color" / "svg" / "1F601.svg").symlink_to(tmp_path / "elsewhere.svg")
    batch = run(settings, sessions, blob_store, package, source_format="openmoji")
    assert batch.rows_imported == 1 and codes(batch) == {"color/svg/1F601.svg": "symlink_not_followed"}


def test_links_do_not_leak_through_a_folder_listing(tmp_path):
    """The embedded listing never descends into a linked folder (its contents are not rows)."""
    folder = tmp_path / "f"
    folder.mkdir()
    target = tmp_path / "t"
    target.mkdir()
    (target / "inside.png").write_bytes(b"x")
    os.symlink(target, folder / "link")
    entries = ImageRoot(folder, 1000).entries()
    assert [path for path, _ in entries] == ["link"] and Path(folder / "link").is_symlink()
