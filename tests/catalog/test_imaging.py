"""Image checks from issue 11: orientation, blank renditions, SVG self-containment, bomb messages."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image
from sqlalchemy import select

from foundry.catalog.imaging import ImageLimits, ImageRejected, inspect_image
from foundry.catalog.models import Asset
from provenance.hashing import hamming, phash_from_hex, sha256_hex
from tests.catalog.test_import import codes, row, run, write_manifest
from tests.support import images

RED, BLUE = (220, 30, 30), (30, 30, 220)


def left_red_right_blue(width: int = 400, height: int = 300) -> Image.Image:
    picture = Image.new("RGB", (width, height), BLUE)
    picture.paste(RED, (0, 0, width // 2, height))
    return picture


def jpeg_with_orientation(picture: Image.Image, orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return images.encode(picture, "JPEG", quality=95, exif=exif)


def near(colour, expected, tolerance=40) -> bool:
    return all(abs(a - b) <= tolerance for a, b in zip(colour, expected, strict=True))


# ------------------------------------------------------------------------------------------------
# EXIF orientation (item 5)


def test_exif_orientation_is_applied_before_the_rendition_and_hashes():
    stored = left_red_right_blue()  # 400x300 as stored; orientation 6 shows it turned 90° clockwise
    data = jpeg_with_orientation(stored, 6)
    inspected = inspect_image(data, ImageLimits(rendition_size=256))

    assert (inspected.width, inspected.height) == (300, 400)
    rendition = Image.open(io.BytesIO(inspected.rendition)).convert("RGB")
    assert rendition.size == (192, 256)
    # the stored left half (red) is on top once turned clockwise, the right half (blue) below
    assert near(rendition.getpixel((96, 20)), RED) and near(rendition.getpixel((96, 236)), BLUE)
    assert inspected.sha256 == sha256_hex(data)  # content-addressed: the original bytes
    upright = inspect_image(images.encode(stored.rotate(-90, expand=True), "JPEG", quality=95), ImageLimits())
    assert hamming(phash_from_hex(inspected.phash), phash_from_hex(upright.phash)) <= 2


@pytest.mark.parametrize("orientation, size", [(1, (400, 300)), (3, (400, 300)), (8, (300, 400))])
def test_other_orientations(orientation, size):
    inspected = inspect_image(jpeg_with_orientation(left_red_right_blue(), orientation), ImageLimits())
    assert (inspected.width, inspected.height) == size


# ------------------------------------------------------------------------------------------------
# Blank renditions (item 12)


def white_on_transparent_overlay() -> bytes:
    overlay = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    overlay.paste((255, 255, 255, 255), (16, 16, 48, 48))
    return images.encode(overlay, "PNG")


@pytest.mark.parametrize("data", [
    white_on_transparent_overlay(),
    images.encode(Image.new("RGB", (64, 64), (12, 140, 90)), "JPEG", quality=90),
    images.encode(Image.new("RGBA", (64, 64), (0, 0, 0, 0)), "PNG"),
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><rect width="10" height="10" fill="#fff"/></svg>',
], ids=["white-overlay", "flat-jpeg", "transparent", "white-svg"])
def test_blank_renditions_are_refused(data):
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, ImageLimits())
    assert caught.value.code == "image_blank"


def test_a_small_mark_on_white_is_not_blank():
    picture = Image.new("RGB", (64, 64), "white")
    picture.paste((0, 0, 0), (30, 30, 34, 34))
    assert inspect_image(images.encode(picture, "PNG"), ImageLimits()).width == 64


# ------------------------------------------------------------------------------------------------
# SVG: nothing outside the document (item 10)


def svg(body: str, extra_namespaces: str = "") -> bytes:
    return (f'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"{extra_namespaces}'
            f' viewBox="0 0 20 20"><rect width="10" height="20" fill="#123456"/>{body}</svg>').encode()


@pytest.mark.parametrize("body", [
    '<rect width="5" height="5" fill="url(file:///etc/passwd#g)"/>',
    '<rect width="5" height="5" stroke="URL( \'http://example.invalid/p.svg#x\' )"/>',
    '<rect width="5" height="5" filter="url(https://example.invalid/f.svg#f)"/>',
    '<rect width="5" height="5" clip-path="url(file:///tmp/c.svg#c)"/>',
    '<rect width="5" height="5" mask="url(//example.invalid/m#m)"/>',
    '<rect width="5" height="5" marker-start="url(file:///m.svg#m)"/>',
    '<rect width="5" height="5" style="fill: url(file:///etc/passwd#g)"/>',
    '<style>rect { fill: url("http://example.invalid/p#p") }</style>',
    '<style>@import "http://example.invalid/x.css";</style>',
    '<use href="http://example.invalid/sprite.svg#icon"/>',
    '<image xlink:href="file:///etc/hostname" width="5" height="5"/>',
    '<image href="data:image/svg+xml;base64,PHN2Zy8+" width="5" height="5"/>',
    '<use href="data:image/png;base64,iVBORw0KGgo=" />',
])
def test_references_outside_the_document_are_refused(body):
    with pytest.raises(ImageRejected) as caught:
        inspect_image(svg(body), ImageLimits())
    assert caught.value.code == "svg_external_reference", caught.value.message


def test_a_linked_style_sheet_is_refused():
    data = b'<?xml-stylesheet href="http://example.invalid/s.css"?>\n' + svg("")
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, ImageLimits())
    assert caught.value.code == "svg_external_reference"


def data_uri(data: bytes, media_type: str = "image/png") -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode()}"


def test_raster_data_uris_are_self_contained_and_rendered():
    red = images.encode(Image.new("RGB", (8, 8), RED), "PNG")
    body = (f'<image x="10" width="10" height="20" preserveAspectRatio="none" href="{data_uri(red)}"/>'
            '<rect width="1" height="1" fill="url(#g)"/><linearGradient id="g"/>')
    inspected = inspect_image(svg(body), ImageLimits(rendition_size=20))
    rendition = Image.open(io.BytesIO(inspected.rendition)).convert("RGB")
    assert near(rendition.getpixel((15, 10)), RED, tolerance=10)


def test_data_uri_images_obey_the_bomb_limits():
    bomb = images.png_header_only(20_000, 20_000)
    with pytest.raises(ImageRejected) as caught:
        inspect_image(svg(f'<image width="5" height="5" href="{data_uri(bomb)}"/>'), ImageLimits())
    assert caught.value.code == "decompression_bomb" and "embedded image" in caught.value.message
    # the limit is shared: two images each under it, together over it
    picture = images.encode(images.pattern_image(3, size=80), "PNG")
    two = "".join(f'<image width="5" height="5" href="{data_uri(picture)}"/>' for _ in range(2))
    with pytest.raises(ImageRejected) as caught:
        inspect_image(svg(two), ImageLimits(max_pixels=10_000))
    assert caught.value.code == "decompression_bomb"
    assert inspect_image(svg(two), ImageLimits(max_pixels=20_000)).format == "svg"


@pytest.mark.parametrize("uri, code", [
    ("data:image/png;base64,not*base64", "image_corrupt"),
    ("data:image/png,rawbytes", "image_corrupt"),
    (f"data:image/png;base64,{base64.b64encode(b'GIF89a-but-not-really').decode()}", "image_corrupt"),
])
def test_broken_data_uris_are_refused(uri, code):
    with pytest.raises(ImageRejected) as caught:
        inspect_image(svg(f'<image width="5" height="5" href="{uri}"/>'), ImageLimits())
    assert caught.value.code == code


# ------------------------------------------------------------------------------------------------
# Bomb messages quote the configured limit (item 11)


@pytest.mark.parametrize("data", [
    images.png_header_only(3_000, 3_000),      # under Pillow's own limit: our check
    images.png_header_only(30_000, 30_000),    # over twice Pillow's limit: Pillow refuses first
], ids=["ours", "pillows"])
def test_bomb_messages_quote_the_configured_limit(data):
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, ImageLimits(max_pixels=1_234_567))
    assert caught.value.code == "decompression_bomb"
    assert "1234567" in caught.value.message and str(Image.MAX_IMAGE_PIXELS) not in caught.value.message


def test_a_limit_above_pillows_own_warning_is_honoured():
    picture = Image.new("1", (10_000, 9_500))  # 95 Mpx: over Pillow's warning threshold, under 100 Mpx
    picture.paste(1, (0, 0, 5_000, 9_500))
    data = images.encode(picture, "PNG")
    inspected = inspect_image(data, ImageLimits(max_pixels=100_000_000, rendition_size=64))
    assert (inspected.width, inspected.height) == (10_000, 9_500)


# ------------------------------------------------------------------------------------------------
# Through the import (SQLite and PostgreSQL)


def test_import_stores_displayed_geometry_and_rejects_blank_renditions(settings, sessions, blob_store, tmp_path):
    turned = jpeg_with_orientation(left_red_right_blue(), 6)
    files = {"turned.jpg": turned, "overlay.png": white_on_transparent_overlay(),
             "outside.svg": svg('<rect width="5" height="5" fill="url(file:///etc/passwd#g)"/>')}
    batch = run(settings, sessions, blob_store, write_manifest(tmp_path / "cat", [row(n) for n in files], files))

    assert codes(batch) == {"overlay.png": "image_blank", "outside.svg": "svg_external_reference"}
    with sessions() as session:
        asset = session.scalars(select(Asset)).one()
    assert (asset.width, asset.height) == (300, 400) and asset.sha256 == sha256_hex(turned)
    assert Image.open(io.BytesIO(blob_store.get(asset.rendition_sha256))).size == (192, 256)
