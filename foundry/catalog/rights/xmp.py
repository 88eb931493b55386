"""XMP and IPTC IIM: parsing rights statements and reducing them to one ``EmbeddedRights`` record.

The container readers (``readers.py``) find the metadata blocks in a file and hand each one to a
:class:`RightsFindings`; this module parses them and applies the precedence rules.

The input is untrusted: XML is parsed with defusedxml only (no DTDs, entities or external
references), every length read from the file is bounds-checked, and sizes are capped. Whatever
cannot be read becomes a short code in ``EmbeddedRights.warnings`` instead of an exception. A
warning that means some metadata went unread (anything outside :data:`ADVISORY_WARNINGS`) takes
training away, because the unread part could have prohibited it.

Precedence, when a file says the same thing more than once:

* XMP wins over IPTC IIM, field by field; IIM only fills fields XMP leaves empty. When both are
  present and disagree, a ``creator_conflict`` / ``copyright_conflict`` warning is added.
* Within XMP, the first non-empty value in document order wins, and packets are tried in their
  container's precedence order (for PNG: iTXt, then tEXt/zTXt, then ImageMagick raw profiles).
* Except for Data Mining: every value stated anywhere counts. That is every ``plus:DataMining``
  property in every packet (every item of an array, nested or not), and every PLUS Data Mining
  code written in IIM Special Instructions (2:40), the field writers use because IIM has no Data
  Mining dataset. :func:`foundry.licensing.policy.judge_embedded_rights` decides what they mean;
  ``data_mining`` keeps the decisive one (the first prohibition, else the first unrecognised
  value, else the first).
* ``dc:creator`` takes the first entry of its Seq; language alternatives take ``x-default``,
  otherwise their first entry.
* ``license_url`` is ``cc:license`` when present, else a Creative Commons URL found in the web
  statement.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException, DTDForbidden, EntitiesForbidden, ExternalReferenceForbidden
from defusedxml.ElementTree import fromstring as defused_fromstring

from foundry.licensing.policy import (
    DATA_MINING_CODES,
    DATA_MINING_CODES_PROHIBITING_TRAINING,
    TrainingVerdict,
    judge_embedded_rights,
    normalise_data_mining,
)

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS_NS = "http://ns.adobe.com/xap/1.0/rights/"
CC_NS = "http://creativecommons.org/ns#"
LEGACY_CC_NS = "http://web.resource.org/cc/"
PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
XML_NS = "http://www.w3.org/XML/1998/namespace"

MAX_XMP_PACKET_BYTES = 4 * 1024 * 1024
MAX_IPTC_BYTES = 4 * 1024 * 1024
# Every metadata block is read, up to this many of each kind per file: a hard limit so crafted
# files cannot multiply the (decompression and parsing) work per byte. A file past it has
# metadata we did not read, so it gets no training permission (the warning says why).
MAX_METADATA_BLOCKS = 64
# And all of a file's metadata together (decompressed, parsed) may cost at most this many bytes.
MAX_METADATA_BYTES = 32 * 1024 * 1024
_MAX_RDF_NESTING = 8

# Warnings that leave nothing unread: the statements were all seen and judged.
ADVISORY_WARNINGS: frozenset[str] = frozenset({
    "creator_conflict",
    "copyright_conflict",
    "xmp_without_rdf",
    "data_mining_unrecognised",
    "data_mining_conflict",
})


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
    data_mining_values: tuple[str, ...] = field(default=())
    """Every Data Mining value the file states, in the order found (``data_mining`` is the decisive one)."""
    warnings: tuple[str, ...] = field(default=())

    @property
    def unread(self) -> tuple[str, ...]:
        """Warnings that mean some rights metadata could not be read."""
        return tuple(code for code in self.warnings if code not in ADVISORY_WARNINGS)

    def training_verdict(self, *, licence_is_the_grant: bool) -> TrainingVerdict:
        """What the file's rights say about training, judged by the one licensing rule."""
        values = self.data_mining_values or ((self.data_mining,) if self.data_mining else ())
        return judge_embedded_rights(values, unread=self.unread, licence_is_the_grant=licence_is_the_grant)

    @property
    def prohibits_ai_training(self) -> bool:
        """Whether the file keeps training away even where a licence from outside it grants it."""
        return not self.training_verdict(licence_is_the_grant=True).allows_training

    @property
    def is_empty(self) -> bool:
        """True when no rights field was found (warnings alone do not count as rights)."""
        return all(getattr(self, name) is None for name in _RIGHTS_FIELD_NAMES)

    def as_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable form, for storing alongside the catalogued image."""
        data = asdict(self)
        data["data_mining_values"] = list(self.data_mining_values)
        data["warnings"] = list(self.warnings)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmbeddedRights:
        """Inverse of :meth:`as_dict`, so stored records can be re-evaluated under current rules."""
        values = {name: data.get(name) for name in _RIGHTS_FIELD_NAMES}
        return cls(**values, data_mining_values=tuple(data.get("data_mining_values") or ()),
                   warnings=tuple(data.get("warnings") or ()))


_RIGHTS_FIELD_NAMES: tuple[str, ...] = tuple(
    f.name for f in fields(EmbeddedRights) if f.name not in ("warnings", "data_mining_values"))


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
_WANTED_XMP_PROPERTIES = frozenset({
    _DC_CREATOR,
    _DC_RIGHTS,
    _XMP_RIGHTS_WEB_STATEMENT,
    _XMP_RIGHTS_USAGE_TERMS,
    _CC_LICENSE,
    _LEGACY_CC_LICENSE,
    _PLUS_OTHER_CONSTRAINTS,
})
_IIM_SPECIAL_INSTRUCTIONS = (2, 40)
# A PLUS Data Mining code as IIM free text carries it (bare, or at the end of its vocabulary URI).
_DATA_MINING_TOKEN = re.compile(r"(?<![A-Za-z0-9])DMI(?:-[A-Za-z]+)+(?![A-Za-z0-9])", re.IGNORECASE)


@dataclass
class RightsFindings:
    """What the container readers collected, before precedence rules turn it into EmbeddedRights."""

    xmp_properties: dict[str, str] = field(default_factory=dict)
    data_mining_codes: list[str] = field(default_factory=list)
    iptc_values: dict[tuple[int, int], bytes] = field(default_factory=dict)
    iptc_charset: bytes | None = None
    warnings: list[str] = field(default_factory=list)
    blocks_seen: dict[str, int] = field(default_factory=dict)
    bytes_parsed: int = 0

    def warn(self, code: str) -> None:
        if code not in self.warnings:
            self.warnings.append(code)

    @property
    def bytes_left(self) -> int:
        return max(0, MAX_METADATA_BYTES - self.bytes_parsed)

    def spend(self, size: int) -> bool:
        """Account for parsing ``size`` more bytes; False (with a warning) once the file's budget is spent."""
        if size > self.bytes_left:
            self.warn("metadata_too_large")
            return False
        self.bytes_parsed += size
        return True

    def admit_block(self, kind: str) -> bool:
        """Count one more metadata block of ``kind``; False (with a warning) past the hard limit."""
        seen = self.blocks_seen.get(kind, 0)
        if seen >= MAX_METADATA_BLOCKS:
            self.warn(f"{kind}_extra_blocks_ignored")
            return False
        self.blocks_seen[kind] = seen + 1
        return True

    def add_xmp_packet(self, packet: bytes) -> bool:
        """Parse one serialised XMP packet; its properties fill only what earlier packets left empty.

        Returns False once the block limit is reached, so a reader can stop looking for more.
        """
        if not self.admit_block("xmp"):
            return False
        if len(packet) > MAX_XMP_PACKET_BYTES:
            self.warn("xmp_too_large")
            return True
        if not self.spend(len(packet)):
            return False
        root = parse_untrusted_xml(trim_packet(packet), forbid_dtd=True, warning_prefix="xmp", findings=self)
        if root is None:
            return True
        rdf_roots = list(root.iter(f"{{{RDF_NS}}}RDF"))
        if not rdf_roots:
            self.warn("xmp_without_rdf")
        for rdf in rdf_roots:
            self.add_rdf(rdf)
        return True

    def add_rdf(self, rdf: Element) -> None:
        for name, value in _rdf_properties(rdf):
            self.xmp_properties.setdefault(name, value)
        for value in _data_mining_values(rdf):
            self.add_data_mining(value)

    def add_data_mining(self, value: str) -> None:
        code = normalise_data_mining(value)
        if code is not None and code not in self.data_mining_codes:
            self.data_mining_codes.append(code)

    def add_iptc_iim(self, stream: bytes) -> None:
        """Parse one IPTC IIM dataset stream; values already seen are kept (first wins)."""
        if not self.admit_block("iptc"):
            return
        if len(stream) > MAX_IPTC_BYTES:
            self.warn("iptc_too_large")
            return
        if not self.spend(len(stream)):
            return
        for record, dataset, value in _iim_datasets(stream, self):
            if (record, dataset) == (1, 90):
                self.iptc_charset = self.iptc_charset or value
                continue
            self.iptc_values.setdefault((record, dataset), value)
            if (record, dataset) == _IIM_SPECIAL_INSTRUCTIONS:
                for token in _DATA_MINING_TOKEN.findall(value.decode("latin-1")):
                    self.add_data_mining(token)

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
            data_mining_values=tuple(self.data_mining_codes),
            warnings=tuple(self.warnings),
        )

    def _decisive_data_mining_code(self) -> str | None:
        """The value that explains the verdict: a prohibition, else an unrecognised value, else the first."""
        codes = self.data_mining_codes
        if not codes:
            return None
        unrecognised = [code for code in codes if code not in DATA_MINING_CODES]
        if unrecognised:
            self.warn("data_mining_unrecognised")
        if len(codes) > 1:
            self.warn("data_mining_conflict")
        prohibiting = [code for code in codes if code in DATA_MINING_CODES_PROHIBITING_TRAINING]
        return (prohibiting or unrecognised or codes)[0]

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


def trim_packet(packet: bytes) -> bytes:
    """Drop writers' padding; expat rejects trailing NULs.

    UTF-16 packets (rare, but allowed outside JPEG) contain NULs of their own, so only their
    trailing whole NUL code units are dropped.
    """
    if packet.startswith((b"\xff\xfe", b"\xfe\xff")):
        while packet.endswith(b"\x00\x00"):
            packet = packet[:-2]
        return packet
    return packet.strip(b"\x00 \t\r\n")


def parse_untrusted_xml(
    document: bytes, *, forbid_dtd: bool, warning_prefix: str, findings: RightsFindings
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


def _data_mining_values(rdf: Element) -> Iterator[str]:
    """Every non-blank value of every plus:DataMining property anywhere under ``rdf``.

    Unlike the other properties, nothing is skipped: a property nested in a struct, every item
    of an array, a qualifier's rdf:value and the compact attribute form all count, so that no
    way of writing a prohibition hides it behind a permission.
    """
    for element in rdf.iter():
        attribute = _clean_text(element.get(_PLUS_DATA_MINING))
        if attribute is not None:
            yield attribute
        if element.tag != _PLUS_DATA_MINING:
            continue
        for node in element.iter():
            for text in (node.get(_RDF_RESOURCE), node.get(_RDF_VALUE), node.text,
                         node.tail if node is not element else None):
                value = _clean_text(text)
                if value is not None:
                    yield value


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
PHOTOSHOP_RESOURCE_SIGNATURES = frozenset({b"8BIM", b"PHUT", b"AgHg", b"DCSR", b"MeSa"})


def _iim_datasets(stream: bytes, findings: RightsFindings) -> Iterator[tuple[int, int, bytes]]:
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


def photoshop_iptc_blocks(resources: bytes, findings: RightsFindings) -> Iterator[bytes]:
    """Yield the IPTC IIM stream(s) held in Photoshop image resource blocks (resource 0x0404)."""
    position = 0
    end = len(resources)
    while position < end:
        if position + 7 > end or resources[position : position + 4] not in PHOTOSHOP_RESOURCE_SIGNATURES:
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
