"""Content Credentials and the invisible watermark, on their own."""

from __future__ import annotations

import io
import uuid

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from PIL import Image, ImageDraw

from provenance import watermark
from provenance.c2pa_manifest import CHAIN_FILE, KEY_FILE, ContentCredentials, SigningNotConfigured, init_signing_ca


def emoji_like(size=32, seed=0) -> Image.Image:
    """A colourful shape with a black outline on white, like OpenMoji (and like our outputs)."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    colour = ((seed * 67) % 256, (seed * 131 + 80) % 256, (seed * 29 + 160) % 256)
    draw.ellipse((size // 8, size // 8, size - size // 8, size - size // 8), fill=colour, outline="black", width=2)
    return image


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> ContentCredentials:
    folder = tmp_path_factory.mktemp("signing")
    init_signing_ca(folder)
    return ContentCredentials(folder)


def test_the_signing_leaf_has_the_profile_c2pa_requires(credentials):
    leaf = x509.load_pem_x509_certificates((credentials.folder / CHAIN_FILE).read_bytes())[0]
    assert ExtendedKeyUsageOID.EMAIL_PROTECTION in leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert leaf.extensions.get_extension_for_class(x509.KeyUsage).value.digital_signature
    assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert (credentials.folder / KEY_FILE).stat().st_mode & 0o077 == 0


def test_init_ca_refuses_to_overwrite(credentials):
    with pytest.raises(FileExistsError):
        init_signing_ca(credentials.folder)


def test_missing_signing_material_is_a_clear_error(tmp_path):
    with pytest.raises(SigningNotConfigured, match="init-ca"):
        ContentCredentials(tmp_path)


def test_signed_png_is_trusted_and_carries_the_generation_record(credentials):
    record = {"generation_id": str(uuid.uuid4()), "image_index": 0, "weights_sha256": "ab" * 32}
    signed = credentials.sign_png(png(emoji_like(256)), title="x.png", generator={"name": "t", "version": "1"},
                                  generation=record)
    report = credentials.read(signed)
    assert report.verdict == "trusted" and report.generation == record and report.intact


def test_a_foreign_ca_signature_is_valid_but_not_trusted(credentials, tmp_path):
    init_signing_ca(tmp_path / "other")
    stranger = ContentCredentials(tmp_path / "other")
    signed = stranger.sign_png(png(emoji_like(256)), title="x.png", generator={"name": "t", "version": "1"},
                               generation={"generation_id": "x"})
    report = credentials.read(signed)
    assert report.verdict == "valid" and "signingCredential.untrusted" in report.status_codes


def test_an_edited_generation_record_is_invalid(credentials):
    record = {"generation_id": "11111111-1111-1111-1111-111111111111", "image_index": 0}
    signed = credentials.sign_png(png(emoji_like(256)), title="x.png", generator={"name": "t", "version": "1"},
                                  generation=record)
    tampered = signed.replace(b"11111111-1111-1111-1111-111111111111", b"22222222-2222-2222-2222-222222222222")
    assert tampered != signed
    assert credentials.read(tampered).verdict in ("invalid", "corrupt")
    assert credentials.read(png(emoji_like(256))).verdict == "no_manifest"


def test_watermark_survives_png_jpeg_and_resizing_on_white_background_emoji():
    survived = {"png": 0, "jpeg90": 0, "resize90": 0}
    cases = 24
    for seed in range(cases):
        generation_id = uuid.UUID(int=((seed + 1) * 0x9E3779B97F4A7C15_F39CC0605CEDC834) % 2**128, version=4)
        delivered = emoji_like(32, seed).resize((256, 256), Image.Resampling.NEAREST)  # as the runner delivers
        marked = watermark.embed(delivered, watermark.payload_for(generation_id, seed % 8))
        jpeg = io.BytesIO()
        marked.save(jpeg, format="JPEG", quality=90)
        copies = {"png": Image.open(io.BytesIO(png(marked))), "jpeg90": Image.open(jpeg),
                  "resize90": marked.resize((230, 230), Image.Resampling.BICUBIC).resize((256, 256),
                                                                                        Image.Resampling.BICUBIC)}
        for attack, copy in copies.items():
            reading = watermark.extract(copy)
            if reading is not None:
                # error correction either recovers the exact payload or refuses: never a wrong id
                assert (reading.generation_id, reading.index) == (generation_id, seed % 8)
                survived[attack] += 1
    assert survived["png"] == cases and survived["jpeg90"] >= cases - 1 and survived["resize90"] >= cases * 0.9


def test_unmarked_or_blank_images_carry_no_watermark():
    for image in (emoji_like(256), Image.new("RGB", (300, 300), "white"), Image.new("RGB", (300, 300), "black")):
        assert watermark.extract(image) is None
    assert watermark.extract(Image.new("RGB", (100, 100), "white")) is None  # too small to hold one


def test_watermark_refuses_small_images_and_wrong_payloads():
    with pytest.raises(ValueError, match="256"):
        watermark.embed(emoji_like(64), watermark.payload_for(uuid.uuid4(), 0))
    with pytest.raises(ValueError):
        watermark.embed(emoji_like(256), b"short")
