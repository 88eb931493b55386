"""POST /v1/provenance/verify on real outputs: intact, tampered, stripped, re-encoded, foreign, broken."""

from __future__ import annotations

import io
import struct

from PIL import Image
from sqlalchemy import select

from foundry.catalog.models import Contributor
from tests.generation.test_generation_api import generate


def verify(client, customer, data: bytes, name="image.png", mime="image/png"):
    return client.post("/v1/provenance/verify", headers=customer.headers, files={"image": (name, data, mime)})


def delivered(client, customer, served_model) -> tuple[dict, bytes]:
    body = generate(client, customer, served_model).json()
    return body, client.get(body["images"][0]["url"], headers=customer.headers).content


def chunks(png: bytes):
    position = 8
    while position < len(png):
        length, kind = struct.unpack(">I4s", png[position:position + 8])
        yield kind, png[position:position + 12 + length]
        position += 12 + length


def change_one_pixel_keep_manifest(png: bytes) -> bytes:
    """Edit one pixel and re-encode, then put the original C2PA chunk back: a forged 'credential'."""
    manifest_chunk = next(chunk for kind, chunk in chunks(png) if kind == b"caBX")
    image = Image.open(io.BytesIO(png)).convert("RGB")
    image.putpixel((10, 10), (0, 0, 0) if image.getpixel((10, 10)) != (0, 0, 0) else (255, 255, 255))
    edited = reencode_image(image)
    parts = list(chunks(edited))
    return b"\x89PNG\r\n\x1a\n" + parts[0][1] + manifest_chunk + b"".join(chunk for _, chunk in parts[1:])


def reencode_image(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def reencode(png: bytes, fmt: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").save(buffer, format=fmt, **options)
    return buffer.getvalue()


def test_an_untouched_output_is_verified_by_its_content_credentials(client, customer, served_model):
    body, png = delivered(client, customer, served_model)
    report = verify(client, customer, png).json()
    assert report["found"] and report["method"] == "c2pa" and report["manifest"]["verdict"] == "trusted"
    assert report["altered"] is False and report["generation"]["id"] == body["id"] and report["image_index"] == 0
    assert report["model"]["id"] == str(served_model) and report["lineage"][0]["snapshot_merkle_root"]
    assert report["licenses"] and report["contributors"]["count"] == 3
    assert "prompt" not in str(report)  # public provenance, not the customer's request


def test_changed_pixels_break_the_manifest_and_are_reported_as_altered(client, customer, served_model):
    body, png = delivered(client, customer, served_model)
    report = verify(client, customer, change_one_pixel_keep_manifest(png)).json()
    assert report["manifest"]["verdict"] == "invalid"
    assert "assertion.dataHash.mismatch" in report["manifest"]["status_codes"]
    assert report["found"] and report["altered"] is True and report["generation"]["id"] == body["id"]


def test_a_stripped_manifest_falls_back_to_the_watermark(client, customer, served_model):
    body, png = delivered(client, customer, served_model)
    report = verify(client, customer, reencode(png)).json()
    assert report["manifest"]["verdict"] == "no_manifest"
    assert report["method"] == "watermark" and report["generation"]["id"] == body["id"]
    assert report["watermark"]["generation_id"] == body["id"] and report["altered"] is True


def test_a_jpeg_copy_is_still_traced(client, customer, served_model):
    body, png = delivered(client, customer, served_model)
    report = verify(client, customer, reencode(png, "JPEG", quality=90), "copy.jpg", "image/jpeg").json()
    assert report["found"] and report["method"] in ("watermark", "perceptual_hash")
    assert report["generation"]["id"] == body["id"]


def test_a_downscaled_copy_is_found_by_its_perceptual_hash(client, customer, served_model):
    body, png = delivered(client, customer, served_model)
    small = io.BytesIO()
    Image.open(io.BytesIO(png)).convert("RGB").resize((64, 64), Image.Resampling.LANCZOS).save(small, format="PNG")
    report = verify(client, customer, small.getvalue()).json()
    assert report["method"] == "perceptual_hash" and report["generation"]["id"] == body["id"]
    assert report["perceptual_distance"] <= 6


def test_an_unrelated_image_is_not_claimed(client, customer, served_model):
    generate(client, customer, served_model)
    foreign = io.BytesIO()
    Image.effect_noise((300, 300), 64).convert("RGB").save(foreign, format="PNG")
    report = verify(client, customer, foreign.getvalue()).json()
    assert report["found"] is False and report["method"] is None and report["altered"] is None


def test_broken_uploads_are_clear_4xx(client, customer, served_model, migrated):
    assert verify(client, customer, b"").json()["error"]["code"] == "empty_file"
    corrupt = verify(client, customer, b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
    assert corrupt.status_code == 422 and corrupt.json()["error"]["code"] == "image_corrupt"
    text = verify(client, customer, b"hello", "x.txt", "text/plain")
    assert text.status_code == 422 and text.json()["error"]["code"] == "unsupported_format"
    bomb = io.BytesIO()
    Image.new("1", (12000, 12000)).save(bomb, format="PNG")
    limited = migrated.model_copy(update={"max_image_pixels": 10_000_000})
    from fastapi.testclient import TestClient

    from api.app import create_app

    with TestClient(create_app(limited)) as small_client:
        response = verify(small_client, customer, bomb.getvalue())
    assert response.status_code == 422 and response.json()["error"]["code"] == "decompression_bomb"
    assert client.post("/v1/provenance/verify", files={"image": ("a.png", b"x", "image/png")}).status_code == 401


def test_other_callers_get_the_provenance_but_not_another_tenants_generation_record(client, customer, served_model,
                                                                                  sessions, licensed_catalog):
    from foundry.accounts import service as accounts_service
    from tests.generation.conftest import ADMIN, make_customer

    body, png = delivered(client, customer, served_model)
    rival = make_customer(sessions, "Rival Brands")
    with sessions() as session, session.begin():
        contributor_id = session.scalar(select(Contributor.id).limit(1))
        _, artist_key = accounts_service.create_api_key(session=session, role="artist", name="a",
                                                        contributor_id=contributor_id)
    for headers in (rival.headers, {"Authorization": f"Bearer {artist_key}"}):
        for image in (png, reencode(png)):  # read from the manifest, then from the watermark alone
            response = client.post("/v1/provenance/verify", headers=headers,
                                   files={"image": ("image.png", image, "image/png")})
            report = response.json()
            assert report["found"] and report["model"]["id"] == str(served_model) and report["licenses"]
            assert report["generation"] is None and report["image_index"] is None
            assert body["id"] not in response.text and body["created_at"][:19] not in response.text
            assert "refunded" not in response.text
    mine = verify(client, customer, reencode(png)).json()
    assert mine["generation"]["id"] == body["id"] and mine["watermark"]["generation_id"] == body["id"]
    admin = client.post("/v1/provenance/verify", headers=ADMIN, files={"image": ("i.png", png, "image/png")}).json()
    assert admin["generation"]["id"] == body["id"] and admin["generation"]["refunded"] is False
