"""Real image bytes for onboarding tests: distinct pictures, hostile files and rights metadata."""

from __future__ import annotations

import io
import random
import struct
import tarfile
import zlib

from PIL import Image
from PIL.PngImagePlugin import PngInfo


def pattern_image(seed: int, size: int = 64) -> Image.Image:
    """A blocky random picture; different seeds give perceptually different images."""
    rng = random.Random(seed)
    cells = 8
    small = Image.new("RGB", (cells, cells))
    small.putdata([tuple(rng.randrange(256) for _ in range(3)) for _ in range(cells * cells)])
    return small.resize((size, size), Image.Resampling.NEAREST)


def encode(image: Image.Image, image_format: str = "PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=image_format, **options)
    return buffer.getvalue()


def pattern_png(seed: int, size: int = 64, *, xmp: bytes | None = None) -> bytes:
    info = PngInfo()
    if xmp is not None:
        info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"))
    return encode(pattern_image(seed, size), "PNG", pnginfo=info)


def pattern_jpeg(seed: int, size: int = 64) -> bytes:
    return encode(pattern_image(seed, size), "JPEG", quality=95)


def pattern_svg(seed: int) -> bytes:
    rng = random.Random(seed)
    rects = "".join(
        f'<rect x="{x * 9}" y="{y * 9}" width="9" height="9" fill="#{rng.randrange(1 << 24):06x}"/>'
        for x in range(8) for y in range(8)
    )
    return f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 72 72">{rects}</svg>'.encode()


def tar_gz(files: dict[str, bytes]) -> bytes:
    """A gzipped tarball of ``files`` (archive path -> bytes), in order: how an OpenMoji package ships."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that declares a huge canvas but carries almost no data: a decompression bomb."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b"")


def truncated(data: bytes, keep: float = 0.6) -> bytes:
    return data[: int(len(data) * keep)]


BILLION_LAUGHS_SVG = b"""<?xml version="1.0"?>
<!DOCTYPE svg [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>
<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><text>&b;</text></svg>"""

EXTERNAL_REFERENCE_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink"
 viewBox="0 0 10 10"><image xlink:href="file:///etc/passwd" width="10" height="10"/></svg>"""

CSS_IMPORT_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10">
<style>@import url(http://example.invalid/x.css);</style><rect width="10" height="10"/></svg>"""

SCRIPT_SVG = b"""<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><script>alert(1)</script>
<rect width="10" height="10"/></svg>"""
