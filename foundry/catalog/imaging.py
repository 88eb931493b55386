"""Decoding, verifying and normalising submitted images.

Everything here is pure and picklable so onboarding can fan it out to worker processes.
An image is accepted only if it fully decodes within the configured limits; SVGs are
rendered only after they are proven self-contained (no DTD or entities, no external
references, no scripts), so rendering can never reach the network or the file system.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import warnings
from dataclasses import dataclass, field

import defusedxml.ElementTree as SafeET
import resvg_py
from defusedxml import DefusedXmlException
from PIL import Image, ImageOps, UnidentifiedImageError

from foundry.catalog.rights import EmbeddedRights, read_embedded_rights
from provenance.hashing import perceptual_hash, phash_to_hex, sha256_hex

RASTER_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif", "TIFF": "tiff"}
SVG_NS = "{http://www.w3.org/2000/svg}"
_CSS_URL = re.compile(r"url\(\s*['\"]?\s*([^'\")\s]*)", re.IGNORECASE)
_SVG_LENGTH = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(px)?\s*$")
_MAX_SVG_SIDE = 100_000.0
_DATA_URI = re.compile(r"^data:([^;,]*)((?:;[^;,]*)*),(.*)$", re.DOTALL | re.IGNORECASE)
_DATA_URI_IMAGE_TYPES = {"image/png", "image/jpeg", "image/jpg", "image/gif", "image/webp"}
# A rendition whose every channel varies by no more than this carries no picture (blank or one flat colour).
BLANK_CHANNEL_RANGE = 4


@dataclass(frozen=True)
class ImageLimits:
    max_bytes: int = 50 * 1024 * 1024
    max_pixels: int = 64_000_000
    rendition_size: int = 256


@dataclass(frozen=True)
class InspectedImage:
    """What onboarding keeps of an accepted image: identity, geometry and a training rendition."""

    sha256: str
    byte_size: int
    format: str
    width: int
    height: int
    phash: str
    rendition: bytes = field(repr=False)
    rendition_sha256: str
    rights: dict


class ImageRejected(Exception):
    """The bytes are not an image we accept; ``code`` is stable and goes into import reports."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def sniff_format(data: bytes) -> str | None:
    head = data[:64]
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if text.startswith((b"<?xml", b"<svg", b"<!--", b"<!doctype")):
        return "svg"
    return None


def inspect_image(data: bytes, limits: ImageLimits) -> InspectedImage:
    """Verify ``data`` completely and build its normalised rendition, or raise ImageRejected.

    The content hash is over the original bytes (the blob store keeps them, named by it); the
    geometry, perceptual hash and rendition are of the picture as viewers show it (EXIF
    orientation applied).
    """
    if len(data) == 0:
        raise ImageRejected("empty_file", "the file is empty")
    if len(data) > limits.max_bytes:
        raise ImageRejected("file_too_large", f"{len(data)} bytes exceeds the limit of {limits.max_bytes}")
    image_format = sniff_format(data)
    if image_format is None:
        raise ImageRejected("unsupported_format", "not a PNG, JPEG, WebP, GIF, TIFF or SVG image")
    if image_format == "svg":
        width, height, rendition, thumbnail = _render_svg(data, limits)
    else:
        width, height, rendition, thumbnail = _decode_raster(data, limits)
    _reject_blank(rendition)
    # Both paths flatten on white, so the hash can skip compositing.
    phash = perceptual_hash(thumbnail, opaque=True)
    # XMP always holds an rdf:RDF element; an SVG without one has nothing to parse.
    has_rights = image_format != "svg" or b"RDF" in data
    rights = (read_embedded_rights(data, image_format) if has_rights else EmbeddedRights()).as_dict()
    return InspectedImage(
        sha256=sha256_hex(data),
        byte_size=len(data),
        format=image_format,
        width=width,
        height=height,
        phash=phash_to_hex(phash),
        rendition=rendition,
        rendition_sha256=sha256_hex(rendition),
        rights=rights,
    )


def _fit(width: float, height: float, longest: int) -> tuple[int, int]:
    scale = longest / max(width, height)
    return max(1, round(width * scale)), max(1, round(height * scale))


def _encode_png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def open_raster(data: bytes, limits: ImageLimits, *, apply_orientation: bool = False) -> Image.Image:
    """Decode a raster image completely (every frame) within the limits, flattened on white as RGB.

    Bombs are refused from the header, before any pixel is decoded, against ``limits.max_pixels``
    (the deployment's FOUNDRY_MAX_IMAGE_PIXELS); ImageRejected otherwise. With
    ``apply_orientation`` the EXIF orientation is applied, so the image is upright as viewers show it.
    """
    with warnings.catch_warnings():
        # Pillow's own bomb warning fires at its default limit; the configured limit decides, below.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError:
            raise ImageRejected("decompression_bomb", _pillow_bomb_message(limits)) from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise ImageRejected("image_corrupt", f"cannot read the image header: {exc}") from None
        if image.format not in RASTER_FORMATS:
            raise ImageRejected("unsupported_format", f"{image.format} images are not accepted")
        width, height = image.size
        frames = getattr(image, "n_frames", 1)
        if width <= 0 or height <= 0:
            raise ImageRejected("image_corrupt", "the image has no pixels")
        if width * height * frames > limits.max_pixels:
            raise ImageRejected(
                "decompression_bomb",
                f"{width}x{height}x{frames} frames exceeds the configured limit of {limits.max_pixels} pixels "
                "(FOUNDRY_MAX_IMAGE_PIXELS)",
            )
        try:
            image.load()
            for index in range(1, frames):
                image.seek(index)
                image.load()
            image.seek(0)
            if apply_orientation:
                image = ImageOps.exif_transpose(image)
        except Image.DecompressionBombError:
            raise ImageRejected("decompression_bomb", _pillow_bomb_message(limits)) from None
        except (OSError, SyntaxError, ValueError, EOFError, TypeError) as exc:
            raise ImageRejected("image_corrupt", f"the image does not decode completely: {exc}") from None
    if image.mode == "RGB":
        return image
    rgba = image.convert("RGBA")
    flattened = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    flattened.alpha_composite(rgba)
    return flattened.convert("RGB")


def _pillow_bomb_message(limits: ImageLimits) -> str:
    """Pillow refuses outright at twice its own limit, before the size is known to us."""
    pillow_refuses_above = 2 * (Image.MAX_IMAGE_PIXELS or 0)
    if Image.MAX_IMAGE_PIXELS is None or limits.max_pixels < pillow_refuses_above:
        return f"the image exceeds the configured limit of {limits.max_pixels} pixels (FOUNDRY_MAX_IMAGE_PIXELS)"
    return f"the image has more than {pillow_refuses_above} pixels, more than the decoder opens"


def _reject_blank(rendition: bytes) -> None:
    """A rendition with no picture in it (all one colour, e.g. a white-on-transparent overlay) teaches nothing."""
    with Image.open(io.BytesIO(rendition)) as image:
        extrema = image.convert("RGB").getextrema()
    if all(high - low <= BLANK_CHANNEL_RANGE for low, high in extrema):
        colour = "#" + "".join(f"{(low + high) // 2:02x}" for low, high in extrema)
        raise ImageRejected("image_blank", f"the training rendition is a single flat colour ({colour}); "
                                           "flattened on white the image shows nothing")


def _decode_raster(data: bytes, limits: ImageLimits) -> tuple[int, int, bytes, Image.Image]:
    rendition = open_raster(data, limits, apply_orientation=True)
    width, height = rendition.size
    if max(width, height) > limits.rendition_size:
        rendition = rendition.resize(_fit(width, height, limits.rendition_size), Image.Resampling.LANCZOS)
    return width, height, _encode_png(rendition), rendition


def _svg_size(root) -> tuple[float, float]:
    view_box = (root.get("viewBox") or "").replace(",", " ").split()
    sizes = []
    for attribute in ("width", "height"):
        match = _SVG_LENGTH.match(root.get(attribute) or "")
        sizes.append(float(match.group(1)) if match else None)
    if None in sizes and len(view_box) == 4:
        try:
            sizes = [float(view_box[2]), float(view_box[3])]
        except ValueError:
            raise ImageRejected("svg_invalid", "the viewBox is not four numbers") from None
    if None in sizes:
        raise ImageRejected("svg_invalid", "the SVG gives neither width/height in px nor a viewBox")
    width, height = sizes
    if not (0 < width <= _MAX_SVG_SIDE and 0 < height <= _MAX_SVG_SIDE):
        raise ImageRejected("svg_invalid", f"implausible SVG size {width}x{height}")
    return width, height


def _check_svg_self_contained(root, limits: ImageLimits) -> None:
    """Refuse anything that could make the renderer reach outside the document.

    References must point inside the document (``#id``), in ``href`` attributes and in every
    CSS ``url()`` (presentation attributes such as fill, filter, clip-path or mask, ``style``
    attributes and ``<style>`` sheets). Raster images embedded as ``data:`` URIs are
    self-contained and accepted, within the same decoding limits as any submitted raster.
    """
    pixel_budget = limits.max_pixels
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        local = tag.rsplit("}", 1)[-1]
        if local == "script":
            raise ImageRejected("svg_script", "SVGs with scripts are not accepted")
        if local == "foreignObject":
            raise ImageRejected("svg_foreign_object", "SVGs with foreignObject content are not accepted")
        for name, value in element.attrib.items():
            if name.rsplit("}", 1)[-1] == "href":
                pixel_budget -= _check_href(local, value, limits, pixel_budget)
            elif name == "style":
                _check_css(value)
            else:
                _check_css_urls(value, f"the {name.rsplit('}', 1)[-1]!r} attribute of <{local}>")
        if local == "style" and element.text:
            _check_css(element.text)


def _check_href(local: str, value: str, limits: ImageLimits, pixel_budget: int) -> int:
    """Refuse a reference out of the document; returns the pixels an embedded raster image uses."""
    target = value.strip()
    if target.startswith("#"):
        return 0
    if target[:5].lower() == "data:":
        return _check_data_uri(local, target, limits, pixel_budget)
    raise ImageRejected(
        "svg_external_reference",
        f"<{local}> references {value[:80]!r}; only references inside the document are accepted",
    )


def _check_data_uri(local: str, uri: str, limits: ImageLimits, pixel_budget: int) -> int:
    """An embedded raster image must decode completely within the limits left to the whole SVG."""
    match = _DATA_URI.match(uri)
    media_type = (match.group(1).strip().lower() if match else "") or "text/plain"
    if local not in ("image", "feImage") or match is None or media_type not in _DATA_URI_IMAGE_TYPES:
        raise ImageRejected("svg_external_reference",
                            f"<{local}> embeds {uri[:40]!r}; only PNG, JPEG, GIF or WebP images may be embedded")
    if ";base64" not in match.group(2).lower():
        raise ImageRejected("image_corrupt", "an embedded image must be base64-encoded")
    try:
        payload = base64.b64decode(re.sub(r"\s+", "", match.group(3)), validate=True)
    except (binascii.Error, ValueError):
        raise ImageRejected("image_corrupt", "an embedded image is not valid base64") from None
    if sniff_format(payload) not in set(RASTER_FORMATS.values()):
        raise ImageRejected("image_corrupt", f"an embedded {media_type} image is not a PNG, JPEG, GIF or WebP")
    budget = ImageLimits(max_bytes=limits.max_bytes, max_pixels=max(0, pixel_budget),
                         rendition_size=limits.rendition_size)
    try:
        embedded = open_raster(payload, budget)
    except ImageRejected as exc:
        raise ImageRejected(exc.code, f"an embedded image: {exc.message}") from None
    return embedded.width * embedded.height


def _check_css(css: str) -> None:
    if "@import" in css.lower():
        raise ImageRejected("svg_external_reference", "SVG style sheets may not @import")
    _check_css_urls(css, "SVG style")


def _check_css_urls(text: str, where: str) -> None:
    for target in _CSS_URL.findall(text):
        if not target.startswith("#"):
            raise ImageRejected("svg_external_reference", f"{where} references {target[:80]!r}")


def _render_svg(data: bytes, limits: ImageLimits) -> tuple[int, int, bytes, Image.Image]:
    try:
        root = SafeET.fromstring(data, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as exc:
        raise ImageRejected("svg_unsafe", f"SVGs with DTDs or entities are not accepted ({type(exc).__name__})") from None
    except SafeET.ParseError as exc:
        raise ImageRejected("image_corrupt", f"the SVG is not well-formed XML: {exc}") from None
    if root.tag != f"{SVG_NS}svg":
        raise ImageRejected("unsupported_format", f"the XML root is {root.tag!r}, not an SVG element")
    if b"<?xml-stylesheet" in data:
        raise ImageRejected("svg_external_reference", "SVGs may not link style sheets (xml-stylesheet)")
    _check_svg_self_contained(root, limits)
    width, height = _svg_size(root)
    target_w, target_h = _fit(width, height, limits.rendition_size)
    try:
        text = data.decode("utf-8-sig")
        png = resvg_py.svg_to_bytes(svg_string=text, width=target_w, height=target_h, background="#ffffff")
        # Rendering a thumbnail for the perceptual hash is cheaper than decoding the rendition.
        thumb_w, thumb_h = _fit(width, height, 32)
        thumbnail = resvg_py.svg_to_bytes(svg_string=text, width=thumb_w, height=thumb_h, background="#ffffff")
    except UnicodeDecodeError:
        raise ImageRejected("image_corrupt", "the SVG is not UTF-8 text") from None
    except ValueError as exc:
        raise ImageRejected("image_corrupt", f"the SVG does not render: {exc}") from None
    return round(width), round(height), bytes(png), Image.open(io.BytesIO(thumbnail))


def inspect_rows(rows: list, limits: ImageLimits) -> list[InspectedImage | tuple[str, str] | None]:
    """Worker-side: verify each row's bytes. Runs in a separate process, so it returns values."""
    results: list[InspectedImage | tuple[str, str] | None] = []
    for row in rows:
        if row.problem is not None or row.data is None:
            results.append(None)
            continue
        try:
            results.append(inspect_image(row.data, limits))
        except ImageRejected as exc:
            results.append((exc.code, exc.message))
        except Exception as exc:  # noqa: BLE001 - a decoder bug must reject the row, not abort the batch
            results.append(("image_corrupt", f"the decoder failed: {type(exc).__name__}: {exc}"))
    return results
