"""Container readers: where each image format keeps its XMP and IPTC IIM, and every copy of it.

Each reader walks its container's structure (bounds-checked, never decoding pixels) and hands
every metadata block it finds to a :class:`RightsFindings`; ``xmp.py`` parses them. Every block
counts, wherever the format allows one: all XMP segments of a JPEG (extended XMP reassembled,
segments between scans and the images of a multi-picture file included), every XMP chunk of a
PNG, WebP or GIF, every IFD of a TIFF, and every ``rdf:RDF`` of an SVG.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator

from foundry.catalog.rights.xmp import (
    MAX_METADATA_BLOCKS,
    MAX_XMP_PACKET_BYTES,
    PHOTOSHOP_RESOURCE_SIGNATURES,
    RDF_NS,
    EmbeddedRights,
    RightsFindings,
    parse_untrusted_xml,
    photoshop_iptc_blocks,
)

SUPPORTED_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp", "gif", "tiff", "svg")
_FORMAT_ALIASES = {"jpg": "jpeg", "mpo": "jpeg", "tif": "tiff", "svgz": "svg"}
MAX_SVG_BYTES = 32 * 1024 * 1024


def read_embedded_rights(data: bytes, image_format: str) -> EmbeddedRights:
    """Read the XMP and IPTC IIM rights metadata embedded in ``data``.

    ``image_format`` names the container ("png", "jpeg", "webp", "gif", "tiff", "svg"; "jpg",
    "mpo", "tif" and "svgz" are accepted as aliases, case-insensitively). Garbage, truncated or
    hostile bytes never raise: the result holds what could be read and ``warnings`` says what
    could not. Only misuse raises: ``TypeError`` for non-bytes data, ``ValueError`` for an
    unsupported format name.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"data must be bytes-like, not {type(data).__name__}")
    container = _normalise_format(image_format)
    findings = RightsFindings()
    try:
        _CONTAINER_READERS[container](bytes(data), findings)
    except (IndexError, ValueError, OverflowError, zlib.error):
        # Every reader bounds-checks as it goes; this is the backstop that keeps a parsing slip on
        # hostile input from failing an import, at the cost of whatever came after it.
        findings.warn(f"{container}_unreadable")
    return findings.to_rights()


def _normalise_format(image_format: str) -> str:
    if not isinstance(image_format, str):
        raise TypeError(f"image_format must be str, not {type(image_format).__name__}")
    name = image_format.strip().lower().lstrip(".")
    name = _FORMAT_ALIASES.get(name, name)
    if name not in SUPPORTED_FORMATS:
        raise ValueError(f"unsupported image format {image_format!r}; expected one of {', '.join(SUPPORTED_FORMATS)}")
    return name


_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_EXTENDED_XMP_HEADER = b"http://ns.adobe.com/xmp/extension/\x00"
_JPEG_PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
_JPEG_SOI, _JPEG_APP1, _JPEG_APP13, _JPEG_SOS, _JPEG_EOI = 0xD8, 0xE1, 0xED, 0xDA, 0xD9
# Markers that stand alone, without a length: TEM and RST0-7 (SOI starts an image).
_JPEG_STANDALONE_MARKERS = frozenset({0x01, *range(0xD0, 0xD8)})
# In entropy-coded data a 0xFF is followed by 0x00 (stuffing) or RST0-7; anything else is a marker.
_JPEG_NEXT_MARKER = re.compile(rb"\xff[\x01-\xcf\xd8-\xfe]")
_MAX_JPEG_IMAGES = 16


def _read_jpeg(data: bytes, findings: RightsFindings) -> None:
    """XMP from APP1 (extended XMP reassembled) and IPTC from APP13, in every segment of the file.

    The walk continues past each scan (progressive files may put segments between scans) and
    into the further images of a multi-picture (MPO) file, so no APP1 segment goes unread.
    """
    if not data.startswith(b"\xff\xd8"):
        findings.warn("jpeg_signature_missing")
        return
    photoshop_resources = bytearray()
    extended: dict[bytes, _ExtendedXmp] = {}
    for marker, payload in _jpeg_segments(data, findings):
        if marker == _JPEG_APP1 and payload.startswith(_JPEG_XMP_HEADER):
            findings.add_xmp_packet(payload[len(_JPEG_XMP_HEADER):])
        elif marker == _JPEG_APP1 and payload.startswith(_JPEG_EXTENDED_XMP_HEADER):
            _add_extended_xmp_chunk(payload[len(_JPEG_EXTENDED_XMP_HEADER):], extended, findings)
        elif marker == _JPEG_APP13 and payload.startswith(_JPEG_PHOTOSHOP_HEADER):
            # Resource data too large for one segment continues in the next APP13.
            photoshop_resources += payload[len(_JPEG_PHOTOSHOP_HEADER):]
    for packet in extended.values():
        if packet.complete:
            findings.add_xmp_packet(bytes(packet.data))
        else:
            findings.warn("xmp_extension_incomplete")
    for stream in photoshop_iptc_blocks(bytes(photoshop_resources), findings):
        findings.add_iptc_iim(stream)


def _jpeg_segments(data: bytes, findings: RightsFindings) -> Iterator[tuple[int, bytes]]:
    """Yield (marker, payload) of every length-bearing segment, skipping entropy-coded data."""
    position = 2
    end = len(data)
    images = 1
    while True:
        if position >= end:  # the file ended without EOI
            findings.warn("jpeg_truncated")
            return
        if data[position] != 0xFF:
            findings.warn("jpeg_malformed")
            return
        while position < end and data[position] == 0xFF:  # fill bytes may precede a marker
            position += 1
        if position >= end:
            findings.warn("jpeg_truncated")
            return
        marker = data[position]
        position += 1
        if marker == _JPEG_EOI:
            # Another image may follow (MPO); plain trailing bytes after EOI are not metadata.
            if not data.startswith(b"\xff\xd8", position):
                return
            images += 1
            if images > _MAX_JPEG_IMAGES:
                findings.warn("jpeg_extra_images_ignored")
                return
            position += 2
            continue
        if marker in _JPEG_STANDALONE_MARKERS or marker == _JPEG_SOI:
            continue
        if marker == 0x00 or position + 2 > end:
            findings.warn("jpeg_malformed" if marker == 0x00 else "jpeg_truncated")
            return
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2 or position + length > end:
            findings.warn("jpeg_malformed" if length < 2 else "jpeg_truncated")
            return
        yield marker, data[position + 2 : position + length]
        position += length
        if marker == _JPEG_SOS:
            found = _JPEG_NEXT_MARKER.search(data, position)
            if found is None:
                findings.warn("jpeg_truncated")
                return
            position = found.start()


class _ExtendedXmp:
    """One extended XMP packet (JPEG APP1 "xmp/extension"), reassembled from its chunks by offset."""

    def __init__(self, length: int):
        self.data = bytearray(length)
        self.covered: dict[int, int] = {}

    @property
    def complete(self) -> bool:
        position = 0
        for offset, size in sorted(self.covered.items()):
            if offset > position:
                return False
            position = max(position, offset + size)
        return position >= len(self.data)


def _add_extended_xmp_chunk(body: bytes, packets: dict[bytes, _ExtendedXmp], findings: RightsFindings) -> None:
    """Body: 32-character GUID, full length (4 bytes), this chunk's offset (4 bytes), then data."""
    if len(body) < 40:
        findings.warn("xmp_extension_malformed")
        return
    guid, length = body[:32], int.from_bytes(body[32:36], "big")
    offset, chunk = int.from_bytes(body[36:40], "big"), body[40:]
    packet = packets.get(guid)
    if packet is None:
        if length > MAX_XMP_PACKET_BYTES:
            findings.warn("xmp_too_large")
            return
        if not findings.admit_block("xmp_extension"):
            return
        packet = packets[guid] = _ExtendedXmp(length)
    if offset + len(chunk) > len(packet.data):
        findings.warn("xmp_extension_malformed")
        return
    packet.data[offset : offset + len(chunk)] = chunk
    packet.covered[offset] = max(packet.covered.get(offset, 0), len(chunk))


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
# ImageMagick and ExifTool store profiles as hex text under these keywords.
_PNG_RAW_PROFILE_XMP = b"Raw profile type xmp"
_PNG_RAW_PROFILE_IPTC = (b"Raw profile type iptc", b"Raw profile type 8bim")
_PNG_METADATA_KEYWORDS = frozenset({_PNG_XMP_KEYWORD, _PNG_RAW_PROFILE_XMP, *_PNG_RAW_PROFILE_IPTC})


def _read_png(data: bytes, findings: RightsFindings) -> None:
    """XMP from iTXt "XML:com.adobe.xmp" (tEXt/zTXt and raw-profile fallbacks after it)."""
    if not data.startswith(_PNG_SIGNATURE):
        findings.warn("png_signature_missing")
        return
    itxt_packets: list[bytes] = []
    fallback_packets: list[bytes] = []
    raw_profile_packets: list[bytes] = []
    iptc_profiles: list[bytes] = []
    metadata_chunks_seen = 0
    for chunk_type, body in _png_chunks(data, findings):
        if chunk_type not in (b"iTXt", b"tEXt", b"zTXt"):
            continue
        keyword, separator, rest = body.partition(b"\x00")
        if not separator or keyword not in _PNG_METADATA_KEYWORDS:
            continue
        metadata_chunks_seen += 1
        if metadata_chunks_seen > MAX_METADATA_BLOCKS:  # cap the decompression work, too
            findings.warn("png_extra_metadata_chunks_ignored")
            continue
        if keyword == _PNG_XMP_KEYWORD:
            text = _png_text_body(chunk_type, rest, findings, MAX_XMP_PACKET_BYTES, "xmp_too_large")
            if text is not None:
                (itxt_packets if chunk_type == b"iTXt" else fallback_packets).append(text)
        else:
            # Hex doubles the size, and a short header precedes it.
            limit = 2 * MAX_XMP_PACKET_BYTES + 64
            text = _png_text_body(chunk_type, rest, findings, limit, "png_raw_profile_too_large")
            profile = _decode_raw_profile(text, findings) if text is not None else None
            if profile is not None:
                (raw_profile_packets if keyword == _PNG_RAW_PROFILE_XMP else iptc_profiles).append(profile)
    for packet in itxt_packets + fallback_packets + raw_profile_packets:
        findings.add_xmp_packet(packet)
    for profile in iptc_profiles:
        profile = profile.removeprefix(_JPEG_PHOTOSHOP_HEADER)
        if profile[:4] in PHOTOSHOP_RESOURCE_SIGNATURES:
            for stream in photoshop_iptc_blocks(profile, findings):
                findings.add_iptc_iim(stream)
        else:
            findings.add_iptc_iim(profile)


def _png_chunks(data: bytes, findings: RightsFindings) -> Iterator[tuple[bytes, bytes]]:
    position = len(_PNG_SIGNATURE)
    end = len(data)
    while position < end:
        if position + 8 > end:
            findings.warn("png_truncated")
            return
        length = int.from_bytes(data[position : position + 4], "big")
        chunk_type = data[position + 4 : position + 8]
        body_start = position + 8
        if body_start + length > end:
            findings.warn("png_truncated")
            return
        yield chunk_type, data[body_start : body_start + length]
        if chunk_type == b"IEND":
            return
        position = body_start + length + 4  # skip the CRC


def _png_text_body(
    chunk_type: bytes, rest: bytes, findings: RightsFindings, limit: int, too_large_warning: str
) -> bytes | None:
    """The text of a tEXt/zTXt/iTXt chunk after its keyword, decompressed (to at most ``limit``)."""
    if chunk_type == b"tEXt":
        return rest
    if chunk_type == b"zTXt":
        if rest[:1] != b"\x00":
            findings.warn("png_compression_unknown")
            return None
        return _bounded_inflate(rest[1:], findings, limit, too_large_warning)
    # iTXt: compression flag, compression method, language tag\0, translated keyword\0, text.
    if len(rest) < 2:
        findings.warn("png_itxt_malformed")
        return None
    compressed, method = rest[0], rest[1]
    _language, _, after_language = rest[2:].partition(b"\x00")
    _translated, separator, text = after_language.partition(b"\x00")
    if not separator:
        findings.warn("png_itxt_malformed")
        return None
    if not compressed:
        return text
    if method != 0:
        findings.warn("png_compression_unknown")
        return None
    return _bounded_inflate(text, findings, limit, too_large_warning)


def _bounded_inflate(compressed: bytes, findings: RightsFindings, limit: int, too_large_warning: str) -> bytes | None:
    """zlib-inflate at most ``limit`` bytes (and no more than the file's metadata budget has left),
    so a decompression bomb costs next to nothing."""
    budget = min(limit, findings.bytes_left)
    try:
        inflater = zlib.decompressobj()
        inflated = inflater.decompress(compressed, budget + 1)
    except zlib.error:
        findings.warn("compressed_metadata_corrupt")
        return None
    if len(inflated) > budget:
        findings.warn(too_large_warning if budget == limit else "metadata_too_large")
        return None
    return inflated


def _decode_raw_profile(text: bytes, findings: RightsFindings) -> bytes | None:
    """Decode ImageMagick's "\\nname\\n   length\\nhex..." raw profile text."""
    lines = text.strip().split(b"\n", 2)
    if len(lines) < 3:
        findings.warn("png_raw_profile_malformed")
        return None
    hex_digits = re.sub(rb"\s+", b"", lines[2])
    if len(hex_digits) > 2 * MAX_XMP_PACKET_BYTES:
        findings.warn("png_raw_profile_too_large")
        return None
    try:
        return bytes.fromhex(hex_digits.decode("ascii"))
    except (ValueError, UnicodeDecodeError):
        findings.warn("png_raw_profile_malformed")
        return None


def _read_webp(data: bytes, findings: RightsFindings) -> None:
    """XMP from the RIFF "XMP " chunk of an extended (VP8X) WebP."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        findings.warn("webp_signature_missing")
        return
    declared_end = 8 + int.from_bytes(data[4:8], "little")
    if declared_end > len(data):
        findings.warn("webp_truncated")
    end = min(declared_end, len(data))
    position = 12
    while position < end:
        if position + 8 > end:
            findings.warn("webp_truncated")
            return
        fourcc = data[position : position + 4]
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        body_start = position + 8
        if body_start + size > end:
            findings.warn("webp_truncated")
            return
        if fourcc == b"XMP ":
            findings.add_xmp_packet(data[body_start : body_start + size])
        position = body_start + size + (size & 1)


_GIF_XMP_APPLICATION = b"XMP DataXMP"
# XMP in GIF is stored raw, not in sub-blocks; this "magic trailer" (0x01, 0xFF..0x00, 0x00) makes
# sub-block readers skip it and marks where the packet ends.
_GIF_XMP_MAGIC_TRAILER = bytes([0x01]) + bytes(range(0xFF, -1, -1)) + b"\x00"


def _read_gif(data: bytes, findings: RightsFindings) -> None:
    """XMP from the "XMP DataXMP" application extension, walking the GIF block structure."""
    if data[:6] not in (b"GIF87a", b"GIF89a"):
        findings.warn("gif_signature_missing")
        return
    if len(data) < 13:
        findings.warn("gif_truncated")
        return
    position = 13 + _gif_color_table_size(data[10])
    end = len(data)
    while True:
        if position >= end:
            findings.warn("gif_truncated")
            return
        introducer = data[position]
        if introducer == 0x3B:  # trailer
            return
        if introducer == 0x21:  # extension
            if position + 2 > end:
                findings.warn("gif_truncated")
                return
            label = data[position + 1]
            position += 2
            if label == 0xFF and data[position : position + 12] == b"\x0b" + _GIF_XMP_APPLICATION:
                packet_start = position + 12
                packet_end = data.find(_GIF_XMP_MAGIC_TRAILER, packet_start)
                if packet_end < 0:
                    findings.warn("gif_truncated")
                    return
                findings.add_xmp_packet(data[packet_start:packet_end])
                position = packet_end + len(_GIF_XMP_MAGIC_TRAILER)
                continue
            position = _skip_gif_sub_blocks(data, position)
        elif introducer == 0x2C:  # image descriptor
            if position + 10 > end:
                findings.warn("gif_truncated")
                return
            position += 10 + _gif_color_table_size(data[position + 9]) + 1  # +1: LZW minimum code size
            position = _skip_gif_sub_blocks(data, position)
        else:
            findings.warn("gif_malformed")
            return
        if position < 0:
            findings.warn("gif_truncated")
            return


def _gif_color_table_size(packed_fields: int) -> int:
    return 3 * (2 << (packed_fields & 0x07)) if packed_fields & 0x80 else 0


def _skip_gif_sub_blocks(data: bytes, position: int) -> int:
    """Position after a sub-block chain's terminator, or -1 if the data ends first."""
    end = len(data)
    while position < end:
        block_size = data[position]
        position += 1
        if block_size == 0:
            return position
        position += block_size
    return -1


_TIFF_TYPE_SIZES = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_TIFF_TAG_XMP = 700
_TIFF_TAG_IPTC = 33723
_TIFF_TAG_PHOTOSHOP = 34377
_TIFF_MAX_ENTRIES = 4096


def _read_tiff(data: bytes, findings: RightsFindings) -> None:
    """XMP (tag 700) and IPTC (tags 33723 and 34377) from every IFD of a TIFF or BigTIFF.

    Parsed directly rather than through Pillow so that no image decoding (or decompression-bomb
    check) is involved. Every page's IFD is read: a prohibition on any page keeps the file out.
    """
    header = data[:4]
    if header in (b"II*\x00", b"MM\x00*"):
        offset_size, count_size, entry_size = 4, 2, 12
        first_ifd_field = data[4:8]
    elif header in (b"II+\x00", b"MM\x00+"):
        offset_size, count_size, entry_size = 8, 8, 20
        first_ifd_field = data[8:16]
    else:
        findings.warn("tiff_signature_missing")
        return
    byteorder = "little" if header[:2] == b"II" else "big"
    if len(first_ifd_field) != offset_size:
        findings.warn("tiff_truncated")
        return
    ifd = int.from_bytes(first_ifd_field, byteorder)
    seen: set[int] = set()
    while ifd != 0:
        if ifd in seen:
            findings.warn("tiff_malformed")
            return
        seen.add(ifd)
        if not findings.admit_block("tiff_ifd"):
            return
        if ifd + count_size > len(data):
            findings.warn("tiff_truncated")
            return
        entry_count = int.from_bytes(data[ifd : ifd + count_size], byteorder)
        if entry_count > _TIFF_MAX_ENTRIES:
            findings.warn("tiff_malformed")
            return
        for index in range(entry_count):
            entry_start = ifd + count_size + index * entry_size
            entry = data[entry_start : entry_start + entry_size]
            if len(entry) != entry_size:
                findings.warn("tiff_truncated")
                return
            _read_tiff_entry(data, entry, offset_size, byteorder, findings)
        next_field_start = ifd + count_size + entry_count * entry_size
        next_field = data[next_field_start : next_field_start + offset_size]
        if len(next_field) != offset_size:
            findings.warn("tiff_truncated")
            return
        ifd = int.from_bytes(next_field, byteorder)


def _read_tiff_entry(data: bytes, entry: bytes, offset_size: int, byteorder: str, findings: RightsFindings) -> None:
    tag = int.from_bytes(entry[0:2], byteorder)
    if tag not in (_TIFF_TAG_XMP, _TIFF_TAG_IPTC, _TIFF_TAG_PHOTOSHOP):
        return
    field_type = int.from_bytes(entry[2:4], byteorder)
    count = int.from_bytes(entry[4 : 4 + offset_size], byteorder)
    value_field = entry[4 + offset_size :]
    byte_length = count * _TIFF_TYPE_SIZES.get(field_type, 1)
    if byte_length <= offset_size:
        value = value_field[:byte_length]
    else:
        value_offset = int.from_bytes(value_field, byteorder)
        value = data[value_offset : value_offset + byte_length]
        if len(value) != byte_length:
            findings.warn("tiff_truncated")
            return
    if tag == _TIFF_TAG_XMP:
        findings.add_xmp_packet(value)
    elif tag == _TIFF_TAG_IPTC:
        findings.add_iptc_iim(value)
    else:
        for stream in photoshop_iptc_blocks(value, findings):
            findings.add_iptc_iim(stream)


_XMPMETA_FRAGMENT = re.compile(rb"<x:xmpmeta\b.*?</x:xmpmeta>", re.DOTALL)


def _read_xmpmeta_fragments(document: bytes, findings: RightsFindings) -> None:
    """Parse each ``<x:xmpmeta>...</x:xmpmeta>`` span on its own (each declares its namespaces)."""
    for match in _XMPMETA_FRAGMENT.finditer(document):
        if not findings.add_xmp_packet(match.group(0)):
            return


def _read_svg(data: bytes, findings: RightsFindings) -> None:
    """Every ``rdf:RDF`` in the SVG (in ``<metadata>`` or elsewhere), and XMP kept as text in it.

    SVG may legitimately carry a DOCTYPE, so DTDs are allowed here but entities and external
    references are not. When the document as a whole is refused or too large to parse, the
    x:xmpmeta fragments in it are still tried on their own: a prohibition must not be missed just
    because the drawing around it is unreadable.
    """
    if data[:2] == b"\x1f\x8b":  # svgz
        try:
            inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
            data = inflater.decompress(data, MAX_SVG_BYTES + 1)
        except zlib.error:
            findings.warn("svg_compressed_corrupt")
            return
    if len(data) > MAX_SVG_BYTES:
        findings.warn("svg_too_large")
        _read_xmpmeta_fragments(data, findings)
        return
    root = parse_untrusted_xml(data, forbid_dtd=False, warning_prefix="svg", findings=findings)
    if root is None:
        _read_xmpmeta_fragments(data, findings)
        return
    for rdf in root.iter(f"{{{RDF_NS}}}RDF"):
        if not findings.admit_block("svg_rdf"):
            return
        findings.add_rdf(rdf)
    for element in root.iter():
        # XMP pasted into <metadata> as text (CDATA) is still the file's statement.
        if isinstance(element.tag, str) and element.tag.rpartition("}")[2] == "metadata" and element.text:
            _read_xmpmeta_fragments(element.text.encode("utf-8"), findings)


_CONTAINER_READERS: dict[str, Callable[[bytes, RightsFindings], None]] = {
    "png": _read_png,
    "jpeg": _read_jpeg,
    "webp": _read_webp,
    "gif": _read_gif,
    "tiff": _read_tiff,
    "svg": _read_svg,
}
