"""Rights metadata embedded in image bytes (XMP and IPTC IIM), read so onboarding can honour it.

Licensed images often carry their own statement of who made them, who owns them and whether they
may be mined for AI training (the PLUS "Data Mining" property). This module finds that metadata in
the container formats the foundry accepts and reduces it to one small, JSON-storable record.

Everything here is a pure function of the bytes given. The input is untrusted: XML is parsed with
defusedxml only (no DTDs, entities or external references), every length read from the file is
bounds-checked, and sizes are capped. Whatever cannot be read becomes a short code in
``EmbeddedRights.warnings`` instead of an exception, so a hostile file can never abort an import.

Precedence, when a file says the same thing more than once:

* XMP wins over IPTC IIM, field by field; IIM only fills fields XMP leaves empty. XMP is the current
  carrier of IPTC Photo Metadata and IIM is its legacy form. When both are present and disagree, a
  ``creator_conflict`` / ``copyright_conflict`` warning is added so a person can look.
* Within XMP, the first non-empty value in document order wins, and packets are tried in their
  container's precedence order (for PNG: iTXt, then tEXt/zTXt, then ImageMagick raw profiles).
* Except for Data Mining, where a prohibition anywhere beats a permission found first: if the file
  states several different values, the first prohibiting one is kept, with ``data_mining_conflict``.
* ``dc:creator`` takes the first entry of its Seq; language alternatives take ``x-default``,
  otherwise their first entry.
* ``license_url`` is ``cc:license`` when present, else a Creative Commons URL found in the web
  statement.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS_NS = "http://ns.adobe.com/xap/1.0/rights/"
CC_NS = "http://creativecommons.org/ns#"
LEGACY_CC_NS = "http://web.resource.org/cc/"
PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCAB_PREFIX = "http://ns.useplus.org/ldf/vocab/"
XML_NS = "http://www.w3.org/XML/1998/namespace"

DMI_UNSPECIFIED = "DMI-UNSPECIFIED"
DMI_ALLOWED = "DMI-ALLOWED"
DMI_PROHIBITED_AIML_TRAINING = "DMI-PROHIBITED-AIMLTRAINING"
DMI_PROHIBITED_GENAIML_TRAINING = "DMI-PROHIBITED-GENAIMLTRAINING"
DMI_PROHIBITED_EXCEPT_SEARCH_ENGINE_INDEXING = "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"
DMI_PROHIBITED = "DMI-PROHIBITED"
DMI_PROHIBITED_SEE_CONSTRAINT = "DMI-PROHIBITED-SEECONSTRAINT"
DMI_PROHIBITED_SEE_EMBEDDED_RIGHTS_EXPR = "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR"
DMI_PROHIBITED_SEE_LINKED_RIGHTS_EXPR = "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"

DATA_MINING_CODES: frozenset[str] = frozenset(
    {
        DMI_UNSPECIFIED,
        DMI_ALLOWED,
        DMI_PROHIBITED_AIML_TRAINING,
        DMI_PROHIBITED_GENAIML_TRAINING,
        DMI_PROHIBITED_EXCEPT_SEARCH_ENGINE_INDEXING,
        DMI_PROHIBITED,
        DMI_PROHIBITED_SEE_CONSTRAINT,
        DMI_PROHIBITED_SEE_EMBEDDED_RIGHTS_EXPR,
        DMI_PROHIBITED_SEE_LINKED_RIGHTS_EXPR,
    }
)
# The only values under which training may proceed. Everything else, including values we do not
# recognise, is a prohibition or a condition we cannot evaluate automatically, so it blocks.
DATA_MINING_CODES_PERMITTING_TRAINING: frozenset[str] = frozenset({DMI_UNSPECIFIED, DMI_ALLOWED})

SUPPORTED_FORMATS: tuple[str, ...] = ("png", "jpeg", "webp", "gif", "tiff", "svg")
_FORMAT_ALIASES = {"jpg": "jpeg", "mpo": "jpeg", "tif": "tiff", "svgz": "svg"}

MAX_XMP_PACKET_BYTES = 4 * 1024 * 1024
MAX_IPTC_BYTES = 4 * 1024 * 1024
MAX_SVG_BYTES = 32 * 1024 * 1024
# A file may repeat metadata blocks; past this many we stop, so crafted files cannot multiply the
# (decompression and parsing) work per byte.
MAX_METADATA_BLOCKS = 8
_MAX_RDF_NESTING = 8


@dataclass(frozen=True)
class EmbeddedRights:
    """Rights statements found inside one image file; ``None`` where the file says nothing."""

    creator: str | None = None
    copyright_notice: str | None = None
    web_statement: str | None = None
    usage_terms: str | None = None
    license_url: str | None = None
    data_mining: str | None = None
    other_constraints: str | None = None
    warnings: tuple[str, ...] = field(default=())

    @property
    def prohibits_ai_training(self) -> bool:
        """Whether the PLUS Data Mining value rules out using the image to train a model.

        Only DMI-ALLOWED and DMI-UNSPECIFIED (or no value at all) permit training. Every
        DMI-PROHIBITED variant blocks it: EXCEPTSEARCHENGINEINDEXING allows nothing but search
        indexing, and SEECONSTRAINT / SEE*RIGHTSEXPR defer to terms we cannot evaluate
        automatically. An unrecognised value blocks too, for the same reason.
        """
        return self.data_mining is not None and _data_mining_prohibits_training(self.data_mining)

    @property
    def is_empty(self) -> bool:
        """True when no rights field was found (warnings alone do not count as rights)."""
        return all(getattr(self, name) is None for name in _RIGHTS_FIELD_NAMES)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form, for storing alongside the catalogued image."""
        data = asdict(self)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddedRights:
        """Inverse of :meth:`as_dict`, so stored records can be re-evaluated under current rules."""
        values = {name: data.get(name) for name in _RIGHTS_FIELD_NAMES}
        return cls(**values, warnings=tuple(data.get("warnings") or ()))


_RIGHTS_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in fields(EmbeddedRights) if f.name != "warnings")


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
    findings = _Findings()
    try:
        _CONTAINER_READERS[container](bytes(data), findings)
    except (IndexError, ValueError, OverflowError, zlib.error):
        # Every reader bounds-checks as it goes; this is the backstop that keeps a parsing slip on
        # hostile input from failing an import, at the cost of whatever came after it.
        findings.warn(f"{container}_unreadable")
    return findings.to_rights()


def normalise_data_mining(value: str) -> str | None:
    """Reduce a PLUS Data Mining value (vocabulary URI or bare code) to its vocabulary code.

    Returns ``None`` for a blank value. Unrecognised values come back stripped but otherwise
    as written, so that they stay visible (and, via ``prohibits_ai_training``, block training).
    """
    text = value.strip()
    if not text:
        return None
    candidate = text
    for prefix in (PLUS_VOCAB_PREFIX, "https://ns.useplus.org/ldf/vocab/"):
        if text.lower().startswith(prefix):
            candidate = text[len(prefix) :]
            break
    code = candidate.upper()
    return code if code in DATA_MINING_CODES else text


def _data_mining_prohibits_training(code: str) -> bool:
    return code not in DATA_MINING_CODES_PERMITTING_TRAINING


def _normalise_format(image_format: str) -> str:
    if not isinstance(image_format, str):
        raise TypeError(f"image_format must be str, not {type(image_format).__name__}")
    name = image_format.strip().lower().lstrip(".")
    name = _FORMAT_ALIASES.get(name, name)
    if name not in SUPPORTED_FORMATS:
        raise ValueError(f"unsupported image format {image_format!r}; expected one of {', '.join(SUPPORTED_FORMATS)}")
    return name


# --------------------------------------------------------------------------------------------------
# Accumulating what a container yields

_DC_CREATOR = f"{{{DC_NS}}}creator"
_DC_RIGHTS = f"{{{DC_NS}}}rights"
_XMP_RIGHTS_WEB_STATEMENT = f"{{{XMP_RIGHTS_NS}}}WebStatement"
_XMP_RIGHTS_USAGE_TERMS = f"{{{XMP_RIGHTS_NS}}}UsageTerms"
_CC_LICENSE = f"{{{CC_NS}}}license"
_LEGACY_CC_LICENSE = f"{{{LEGACY_CC_NS}}}license"
_PLUS_DATA_MINING = f"{{{PLUS_NS}}}DataMining"
_PLUS_OTHER_CONSTRAINTS = f"{{{PLUS_NS}}}OtherConstraints"
_WANTED_XMP_PROPERTIES = frozenset(
    {
        _DC_CREATOR,
        _DC_RIGHTS,
        _XMP_RIGHTS_WEB_STATEMENT,
        _XMP_RIGHTS_USAGE_TERMS,
        _CC_LICENSE,
        _LEGACY_CC_LICENSE,
        _PLUS_DATA_MINING,
        _PLUS_OTHER_CONSTRAINTS,
    }
)


@dataclass
class _Findings:
    """What the container readers collected, before precedence rules turn it into EmbeddedRights."""

    xmp_properties: dict[str, str] = field(default_factory=dict)
    data_mining_codes: list[str] = field(default_factory=list)
    iptc_values: dict[tuple[int, int], bytes] = field(default_factory=dict)
    iptc_charset: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    blocks_seen: dict[str, int] = field(default_factory=dict)

    def warn(self, code: str) -> None:
        if code not in self.warnings:
            self.warnings.append(code)

    def add_xmp_packet(self, packet: bytes) -> None:
        """Parse one serialised XMP packet; its properties fill only what earlier packets left empty."""
        if not self._admit_block("xmp"):
            return
        if len(packet) > MAX_XMP_PACKET_BYTES:
            self.warn("xmp_too_large")
            return
        root = _parse_untrusted_xml(_trim_packet(packet), forbid_dtd=True, warning_prefix="xmp", findings=self)
        if root is None:
            return
        rdf_roots = list(root.iter(f"{{{RDF_NS}}}RDF"))
        if not rdf_roots:
            self.warn("xmp_without_rdf")
        for rdf in rdf_roots:
            self.add_rdf(rdf)

    def add_rdf(self, rdf: Element) -> None:
        for name, value in _rdf_properties(rdf):
            self.xmp_properties.setdefault(name, value)
            if name == _PLUS_DATA_MINING:
                code = normalise_data_mining(value)
                if code is not None and code not in self.data_mining_codes:
                    self.data_mining_codes.append(code)

    def add_iptc_iim(self, stream: bytes) -> None:
        """Parse one IPTC IIM dataset stream; values already seen are kept (first wins)."""
        if not self._admit_block("iptc"):
            return
        if len(stream) > MAX_IPTC_BYTES:
            self.warn("iptc_too_large")
            return
        for record, dataset, value in _iim_datasets(stream, self):
            if (record, dataset) == (1, 90):
                self.iptc_charset = self.iptc_charset or value
            else:
                self.iptc_values.setdefault((record, dataset), value)

    def _admit_block(self, kind: str) -> bool:
        seen = self.blocks_seen.get(kind, 0)
        if seen >= MAX_METADATA_BLOCKS:
            self.warn(f"{kind}_extra_blocks_ignored")
            return False
        self.blocks_seen[kind] = seen + 1
        return True

    def to_rights(self) -> EmbeddedRights:
        xmp = self.xmp_properties
        iptc_creator = self._iptc_text(2, 80)
        iptc_copyright = self._iptc_text(2, 116)
        creator = xmp.get(_DC_CREATOR)
        copyright_notice = xmp.get(_DC_RIGHTS)
        if creator and iptc_creator and creator != iptc_creator:
            self.warn("creator_conflict")
        if copyright_notice and iptc_copyright and copyright_notice != iptc_copyright:
            self.warn("copyright_conflict")

        web_statement = xmp.get(_XMP_RIGHTS_WEB_STATEMENT)
        license_url = xmp.get(_CC_LICENSE) or xmp.get(_LEGACY_CC_LICENSE)
        if license_url is None and web_statement is not None:
            license_url = _creative_commons_url_in(web_statement)

        return EmbeddedRights(
            creator=creator or iptc_creator,
            copyright_notice=copyright_notice or iptc_copyright,
            web_statement=web_statement,
            usage_terms=xmp.get(_XMP_RIGHTS_USAGE_TERMS),
            license_url=license_url,
            data_mining=self._decisive_data_mining_code(),
            other_constraints=xmp.get(_PLUS_OTHER_CONSTRAINTS),
            warnings=tuple(self.warnings),
        )

    def _decisive_data_mining_code(self) -> str | None:
        """Unlike other fields, a prohibition anywhere in the file beats a permission before it."""
        codes = self.data_mining_codes
        if not codes:
            return None
        if any(code not in DATA_MINING_CODES for code in codes):
            self.warn("data_mining_unrecognised")
        if len(codes) > 1:
            self.warn("data_mining_conflict")
        return next((code for code in codes if _data_mining_prohibits_training(code)), codes[0])

    def _iptc_text(self, record: int, dataset: int) -> str | None:
        raw = self.iptc_values.get((record, dataset))
        if raw is None:
            return None
        # 1:90 "ESC % G" declares UTF-8; IIM without a declaration is read as Latin-1, which can
        # decode any byte string, so a wrong guess garbles accents rather than losing the field.
        if self.iptc_charset is not None and b"\x1b%G" in self.iptc_charset:
            text = raw.decode("utf-8", errors="replace")
        else:
            text = raw.decode("latin-1")
        return _clean_text(text.replace("\x00", ""))


_CREATIVE_COMMONS_URL = re.compile(
    r"https?://(?:www\.)?creativecommons\.org/(?:licenses|publicdomain)/[^\s\"'<>]*", re.IGNORECASE
)


def _creative_commons_url_in(text: str) -> str | None:
    match = _CREATIVE_COMMONS_URL.search(text)
    return match.group(0).rstrip(".,;)") if match else None


def _clean_text(text: str | None) -> str | None:
    if text is None:
        return None
    stripped = text.strip()
    return stripped or None


# --------------------------------------------------------------------------------------------------
# XML and RDF


def _trim_packet(packet: bytes) -> bytes:
    # Writers pad packets with NULs or spaces for in-place editing; expat rejects trailing NULs.
    # UTF-16 packets (rare, but allowed outside JPEG) contain NULs of their own, so are left alone.
    if packet.startswith((b"\xff\xfe", b"\xfe\xff")):
        return packet
    return packet.strip(b"\x00 \t\r\n")


def _parse_untrusted_xml(
    document: bytes, *, forbid_dtd: bool, warning_prefix: str, findings: _Findings
) -> Element | None:
    """Parse with defusedxml, turning every refusal or syntax error into a warning."""
    try:
        return defused_fromstring(document, forbid_dtd=forbid_dtd, forbid_entities=True, forbid_external=True)
    except DTDForbidden:
        findings.warn(f"{warning_prefix}_forbidden_dtd")
    except EntitiesForbidden:
        findings.warn(f"{warning_prefix}_forbidden_entity")
    except ExternalReferenceForbidden:
        findings.warn(f"{warning_prefix}_forbidden_external_reference")
    except DefusedXmlException:
        findings.warn(f"{warning_prefix}_forbidden_construct")
    except (ParseError, ValueError, LookupError):  # LookupError: an unknown declared encoding
        findings.warn(f"{warning_prefix}_malformed")
    return None


_RDF_RESOURCE = f"{{{RDF_NS}}}resource"
_RDF_PARSE_TYPE = f"{{{RDF_NS}}}parseType"
_RDF_VALUE = f"{{{RDF_NS}}}value"
_RDF_LI = f"{{{RDF_NS}}}li"
_RDF_ALT = f"{{{RDF_NS}}}Alt"
_RDF_CONTAINERS = frozenset({f"{{{RDF_NS}}}Seq", f"{{{RDF_NS}}}Bag", _RDF_ALT})
_XML_LANG = f"{{{XML_NS}}}lang"
_DC_TITLE = f"{{{DC_NS}}}title"


def _rdf_properties(rdf: Element) -> Iterator[tuple[str, str]]:
    """Yield (Clark-notation name, text value) for the rights properties of each top-level RDF node.

    Node elements are rdf:Description or typed nodes (Inkscape's cc:Work); their properties may
    be attributes (XMP's compact form) or child elements.
    """
    for node in rdf:
        if not isinstance(node.tag, str):
            continue
        for name, raw in node.attrib.items():
            if name not in _WANTED_XMP_PROPERTIES:
                continue
            value = _clean_text(raw)
            if value is not None:
                yield name, value
        for prop in node:
            if prop.tag not in _WANTED_XMP_PROPERTIES:
                continue
            value = _property_value(prop, depth=0)
            if value is not None:
                yield prop.tag, value


def _property_value(element: Element, *, depth: int) -> str | None:
    """The single text value an RDF property element stands for, or None if it has none.

    Handles rdf:resource, Seq/Bag (first non-empty item), Alt (x-default, else first), qualified
    values (rdf:value) and simple structs such as Inkscape's cc:Agent/dc:title.
    """
    if depth > _MAX_RDF_NESTING:
        return None
    resource = element.get(_RDF_RESOURCE)
    if resource is not None:
        return _clean_text(resource)
    children = [child for child in element if isinstance(child.tag, str)]
    for child in children:
        if child.tag in _RDF_CONTAINERS:
            return _container_value(child, depth=depth + 1)
    if element.get(_RDF_PARSE_TYPE) == "Resource":
        return _struct_value(element, depth=depth + 1)
    if children:
        return _struct_value(children[0], depth=depth + 1)
    if element.get(_RDF_VALUE) is not None:
        return _clean_text(element.get(_RDF_VALUE))
    return _clean_text(element.text)


def _container_value(container: Element, *, depth: int) -> str | None:
    items = [item for item in container if item.tag == _RDF_LI]
    if container.tag == _RDF_ALT:
        items.sort(key=lambda item: item.get(_XML_LANG, "").lower() != "x-default")
    for item in items:
        value = _property_value(item, depth=depth)
        if value is not None:
            return value
    return None


def _struct_value(node: Element, *, depth: int) -> str | None:
    for name in (_RDF_VALUE, _DC_TITLE):
        attribute = _clean_text(node.get(name))
        if attribute is not None:
            return attribute
        child = node.find(name)
        if child is not None:
            value = _property_value(child, depth=depth)
            if value is not None:
                return value
    return None


# --------------------------------------------------------------------------------------------------
# IPTC IIM and Photoshop image resources


_PHOTOSHOP_IPTC_RESOURCE_ID = 0x0404
_PHOTOSHOP_RESOURCE_SIGNATURES = frozenset({b"8BIM", b"PHUT", b"AgHg", b"DCSR", b"MeSa"})


def _iim_datasets(stream: bytes, findings: _Findings) -> Iterator[tuple[int, int, bytes]]:
    """Walk IIM datasets (tag 0x1C, record, dataset, length[, extended length], value)."""
    position = 0
    end = len(stream)
    while position < end:
        if stream[position] != 0x1C:
            # Writers commonly pad the block with NULs; anything else is damage.
            if stream[position:].strip(b"\x00"):
                findings.warn("iptc_malformed")
            return
        if position + 5 > end:
            findings.warn("iptc_truncated")
            return
        record, dataset = stream[position + 1], stream[position + 2]
        length = int.from_bytes(stream[position + 3 : position + 5], "big")
        position += 5
        if length & 0x8000:
            length_size = length & 0x7FFF
            if not 1 <= length_size <= 4 or position + length_size > end:
                findings.warn("iptc_malformed")
                return
            length = int.from_bytes(stream[position : position + length_size], "big")
            position += length_size
        if position + length > end:
            findings.warn("iptc_truncated")
            return
        yield record, dataset, stream[position : position + length]
        position += length


def _photoshop_iptc_blocks(resources: bytes, findings: _Findings) -> Iterator[bytes]:
    """Yield the IPTC IIM stream(s) held in Photoshop image resource blocks (resource 0x0404)."""
    position = 0
    end = len(resources)
    while position < end:
        if position + 7 > end or resources[position : position + 4] not in _PHOTOSHOP_RESOURCE_SIGNATURES:
            if resources[position:].strip(b"\x00"):  # trailing NUL padding is normal
                findings.warn("photoshop_resources_malformed")
            return
        resource_id = int.from_bytes(resources[position + 4 : position + 6], "big")
        name_length = resources[position + 6]
        # The Pascal name (length byte + text) is padded to an even size.
        position += 6 + 1 + name_length + ((1 + name_length) & 1)
        if position + 4 > end:
            findings.warn("photoshop_resources_truncated")
            return
        size = int.from_bytes(resources[position : position + 4], "big")
        position += 4
        if position + size > end:
            findings.warn("photoshop_resources_truncated")
            return
        if resource_id == _PHOTOSHOP_IPTC_RESOURCE_ID:
            yield resources[position : position + size]
        position += size + (size & 1)


# --------------------------------------------------------------------------------------------------
# Containers


_JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
_JPEG_PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
_JPEG_APP1, _JPEG_APP13, _JPEG_SOS, _JPEG_EOI = 0xE1, 0xED, 0xDA, 0xD9
# Markers that stand alone, without a length: TEM, RST0-7 and SOI.
_JPEG_STANDALONE_MARKERS = frozenset({0x01, 0xD8, *range(0xD0, 0xD8)})


def _read_jpeg(data: bytes, findings: _Findings) -> None:
    """XMP from APP1 and IPTC from APP13, walking the marker segments up to the first scan.

    Metadata segments precede the entropy-coded data, so the walk stops at SOS instead of
    scanning image data, where marker-like bytes appear by chance. Extended XMP (the
    ``xmp/extension`` APP1 segments) is not reassembled: the rights properties belong in the
    main packet, and extended XMP exists for bulky data such as thumbnails.
    """
    if not data.startswith(b"\xff\xd8"):
        findings.warn("jpeg_signature_missing")
        return
    photoshop_resources = bytearray()
    position = 2
    end = len(data)
    while True:
        if position >= end:  # the image data never started
            findings.warn("jpeg_truncated")
            break
        if data[position] != 0xFF:
            findings.warn("jpeg_malformed")
            break
        while position < end and data[position] == 0xFF:  # fill bytes may precede a marker
            position += 1
        if position >= end:
            findings.warn("jpeg_truncated")
            break
        marker = data[position]
        position += 1
        if marker in (_JPEG_SOS, _JPEG_EOI):
            break
        if marker in _JPEG_STANDALONE_MARKERS:
            continue
        if marker == 0x00 or position + 2 > end:
            findings.warn("jpeg_malformed" if marker == 0x00 else "jpeg_truncated")
            break
        length = int.from_bytes(data[position : position + 2], "big")
        if length < 2 or position + length > end:
            findings.warn("jpeg_malformed" if length < 2 else "jpeg_truncated")
            break
        payload = data[position + 2 : position + length]
        position += length
        if marker == _JPEG_APP1 and payload.startswith(_JPEG_XMP_HEADER):
            findings.add_xmp_packet(payload[len(_JPEG_XMP_HEADER) :])
        elif marker == _JPEG_APP13 and payload.startswith(_JPEG_PHOTOSHOP_HEADER):
            # Resource data too large for one segment continues in the next APP13.
            photoshop_resources += payload[len(_JPEG_PHOTOSHOP_HEADER) :]
    for stream in _photoshop_iptc_blocks(bytes(photoshop_resources), findings):
        findings.add_iptc_iim(stream)


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_XMP_KEYWORD = b"XML:com.adobe.xmp"
# ImageMagick and ExifTool store profiles as hex text under these keywords.
_PNG_RAW_PROFILE_XMP = b"Raw profile type xmp"
_PNG_RAW_PROFILE_IPTC = (b"Raw profile type iptc", b"Raw profile type 8bim")
_PNG_METADATA_KEYWORDS = frozenset({_PNG_XMP_KEYWORD, _PNG_RAW_PROFILE_XMP, *_PNG_RAW_PROFILE_IPTC})


def _read_png(data: bytes, findings: _Findings) -> None:
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
        if profile[:4] in _PHOTOSHOP_RESOURCE_SIGNATURES:
            for stream in _photoshop_iptc_blocks(profile, findings):
                findings.add_iptc_iim(stream)
        else:
            findings.add_iptc_iim(profile)


def _png_chunks(data: bytes, findings: _Findings) -> Iterator[tuple[bytes, bytes]]:
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
    chunk_type: bytes, rest: bytes, findings: _Findings, limit: int, too_large_warning: str
) -> bytes | None:
    """The text of a tEXt/zTXt/iTXt chunk after its keyword, decompressed (to at most ``limit``)."""
    if chunk_type == b"tEXt":
        return rest
    if chunk_type == b"zTXt":
        return _bounded_inflate(rest[1:], findings, limit, too_large_warning) if rest[:1] == b"\x00" else None
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
    return _bounded_inflate(text, findings, limit, too_large_warning) if method == 0 else None


def _bounded_inflate(compressed: bytes, findings: _Findings, limit: int, too_large_warning: str) -> bytes | None:
    """zlib-inflate at most ``limit`` bytes, so a decompression bomb costs next to nothing."""
    try:
        inflater = zlib.decompressobj()
        inflated = inflater.decompress(compressed, limit + 1)
    except zlib.error:
        findings.warn("compressed_metadata_corrupt")
        return None
    if len(inflated) > limit:
        findings.warn(too_large_warning)
        return None
    return inflated


def _decode_raw_profile(text: bytes, findings: _Findings) -> bytes | None:
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


def _read_webp(data: bytes, findings: _Findings) -> None:
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


def _read_gif(data: bytes, findings: _Findings) -> None:
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


_TIFF_TYPE_SIZES = {
    1: 1,
    2: 1,
    3: 2,
    4: 4,
    5: 8,
    6: 1,
    7: 1,
    8: 2,
    9: 4,
    10: 8,
    11: 4,
    12: 8,
    13: 4,
    16: 8,
    17: 8,
    18: 8,
}
_TIFF_TAG_XMP = 700
_TIFF_TAG_IPTC = 33723
_TIFF_TAG_PHOTOSHOP = 34377
_TIFF_MAX_ENTRIES = 4096


def _read_tiff(data: bytes, findings: _Findings) -> None:
    """XMP (tag 700) and IPTC (tags 33723 and 34377) from the first IFD of a TIFF or BigTIFF.

    Parsed directly rather than through Pillow so that no image decoding (or decompression-bomb
    check) is involved; only IFD0 is read, where these tags describe the main image.
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
        tag = int.from_bytes(entry[0:2], byteorder)
        if tag not in (_TIFF_TAG_XMP, _TIFF_TAG_IPTC, _TIFF_TAG_PHOTOSHOP):
            continue
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
                continue
        if tag == _TIFF_TAG_XMP:
            findings.add_xmp_packet(value)
        elif tag == _TIFF_TAG_IPTC:
            findings.add_iptc_iim(value)
        else:
            for stream in _photoshop_iptc_blocks(value, findings):
                findings.add_iptc_iim(stream)


def _read_xmpmeta_fragment(document: bytes, findings: _Findings) -> None:
    """Parse the first ``<x:xmpmeta>...</x:xmpmeta>`` span on its own (it declares its namespaces)."""
    start = document.find(b"<x:xmpmeta")
    end = document.find(b"</x:xmpmeta>", start) if start >= 0 else -1
    if end >= 0:
        findings.add_xmp_packet(document[start : end + len(b"</x:xmpmeta>")])


def _read_svg(data: bytes, findings: _Findings) -> None:
    """RDF (bare, or inside x:xmpmeta) from the SVG ``<metadata>`` element.

    SVG may legitimately carry a DOCTYPE, so DTDs are allowed here but entities and external
    references are not. When the document as a whole is refused or too large to parse, an
    embedded x:xmpmeta fragment is still tried on its own: a prohibition must not be missed just
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
        _read_xmpmeta_fragment(data, findings)
        return
    root = _parse_untrusted_xml(data, forbid_dtd=False, warning_prefix="svg", findings=findings)
    if root is None:
        _read_xmpmeta_fragment(data, findings)
        return
    for element in root.iter():
        if isinstance(element.tag, str) and element.tag.rpartition("}")[2] == "metadata":
            for rdf in element.iter(f"{{{RDF_NS}}}RDF"):
                findings.add_rdf(rdf)


_CONTAINER_READERS: dict[str, Callable[[bytes, _Findings], None]] = {
    "png": _read_png,
    "jpeg": _read_jpeg,
    "webp": _read_webp,
    "gif": _read_gif,
    "tiff": _read_tiff,
    "svg": _read_svg,
}
