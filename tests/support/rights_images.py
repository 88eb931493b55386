"""Real image files carrying XMP and IPTC IIM rights metadata, for testing the rights reader.

Pixels are encoded by Pillow. Metadata goes where real writers put it: through Pillow's own
PNG/WebP/TIFF metadata support where it has one, otherwise spliced in by the container's rules
(APP1/APP13 segments for JPEG, the XMP application extension for GIF). Namespace URIs are spelled
out here rather than imported from the code under test, so that a wrong URI there fails the tests.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Mapping, Sequence
from typing import Literal
from xml.sax.saxutils import escape, quoteattr

from PIL import Image
from PIL.PngImagePlugin import PngInfo

RDF_NS = "http://www.w3.org/1999/02/22-rdf-syntax-ns#"
DC_NS = "http://purl.org/dc/elements/1.1/"
XMP_RIGHTS_NS = "http://ns.adobe.com/xap/1.0/rights/"
CC_NS = "http://creativecommons.org/ns#"
PLUS_NS = "http://ns.useplus.org/ldf/xmp/1.0/"
PLUS_VOCAB = "http://ns.useplus.org/ldf/vocab/"

JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
PHOTOSHOP_HEADER = b"Photoshop 3.0\x00"
IIM_UTF8_DECLARATION = b"\x1b%G"
GIF_XMP_MAGIC_TRAILER = bytes([0x01]) + bytes(range(0xFF, -1, -1)) + b"\x00"

# A language alternative: plain text (written as x-default) or language -> text, in document order.
LangAlt = str | Mapping[str, str]


def xmp_packet(
    *,
    creator: str | Sequence[str] | None = None,
    rights: LangAlt | None = None,
    web_statement: str | None = None,
    usage_terms: LangAlt | None = None,
    license_url: str | None = None,
    data_mining: str | None = None,
    other_constraints: LangAlt | None = None,
    attribute_form: bool = False,
    data_mining_as_resource: bool = False,
) -> bytes:
    """A complete XMP packet (xpacket wrapper, x:xmpmeta, rdf:RDF) holding the given properties.

    ``attribute_form`` writes the simple-valued properties as attributes of rdf:Description, the
    compact serialisation Adobe's toolkit and ExifTool produce; arrays and language alternatives
    are always elements, as XMP requires. ``data_mining`` is written verbatim, so pass the full
    vocabulary URI (``PLUS_VOCAB + "DMI-..."``) unless the test is about other spellings.
    """
    simple = {
        "xmpRights:WebStatement": web_statement,
        "cc:license": license_url,
        "plus:DataMining": data_mining,
    }
    attributes = []
    elements = []
    if creator is not None:
        names = [creator] if isinstance(creator, str) else list(creator)
        elements.append(_rdf_array("dc:creator", "rdf:Seq", [("", name) for name in names]))
    if rights is not None:
        elements.append(_lang_alt("dc:rights", rights))
    if usage_terms is not None:
        elements.append(_lang_alt("xmpRights:UsageTerms", usage_terms))
    if other_constraints is not None:
        elements.append(_lang_alt("plus:OtherConstraints", other_constraints))
    for name, value in simple.items():
        if value is None:
            continue
        if name == "plus:DataMining" and data_mining_as_resource:
            elements.append(f"<{name} rdf:resource={quoteattr(value)}/>")
        elif attribute_form:
            attributes.append(f"{name}={quoteattr(value)}")
        else:
            elements.append(f"<{name}>{escape(value)}</{name}>")
    description = (
        f'<rdf:Description rdf:about=""\n'
        f'    xmlns:dc="{DC_NS}"\n'
        f'    xmlns:xmpRights="{XMP_RIGHTS_NS}"\n'
        f'    xmlns:cc="{CC_NS}"\n'
        f'    xmlns:plus="{PLUS_NS}"'
        + "".join(f"\n    {attribute}" for attribute in attributes)
        + ">\n"
        + "".join(f"   {element}\n" for element in elements)
        + "  </rdf:Description>"
    )
    return wrap_xmp(f'<rdf:RDF xmlns:rdf="{RDF_NS}">\n  {description}\n </rdf:RDF>')


def wrap_xmp(rdf: str) -> bytes:
    """Wrap RDF in x:xmpmeta and the xpacket processing instructions, with writer-style padding."""
    return (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        f" {rdf}\n"
        "</x:xmpmeta>\n" + " " * 200 + "\n"
        '<?xpacket end="w"?>'
    ).encode("utf-8")


def _rdf_array(name: str, container: str, items: Sequence[tuple[str, str]]) -> str:
    lis = "".join(
        f"<rdf:li{f' xml:lang={quoteattr(language)}' if language else ''}>{escape(text)}</rdf:li>"
        for language, text in items
    )
    return f"<{name}><{container}>{lis}</{container}></{name}>"


def _lang_alt(name: str, value: LangAlt) -> str:
    items = [("x-default", value)] if isinstance(value, str) else list(value.items())
    return _rdf_array(name, "rdf:Alt", items)


def iptc_iim(
    *,
    by_line: str | None = None,
    copyright_notice: str | None = None,
    encoding: Literal["latin-1", "utf-8"] = "latin-1",
) -> bytes:
    """An IPTC IIM dataset stream; UTF-8 is declared in 1:90 as ESC % G, Latin-1 is left implicit."""
    datasets = []
    if encoding == "utf-8":
        datasets += [iim_dataset(1, 0, b"\x00\x04"), iim_dataset(1, 90, IIM_UTF8_DECLARATION)]
    datasets.append(iim_dataset(2, 0, b"\x00\x04"))
    if by_line is not None:
        datasets.append(iim_dataset(2, 80, by_line.encode(encoding)))
    if copyright_notice is not None:
        datasets.append(iim_dataset(2, 116, copyright_notice.encode(encoding)))
    return b"".join(datasets)


def iim_dataset(record: int, dataset: int, value: bytes) -> bytes:
    """One IIM dataset; values of 32 KiB and more use the extended (length-of-length) form."""
    if len(value) < 0x8000:
        return struct.pack(">BBBH", 0x1C, record, dataset, len(value)) + value
    return struct.pack(">BBBHI", 0x1C, record, dataset, 0x8004, len(value)) + value


def photoshop_resources(iim: bytes, *, resource_id: int = 0x0404, name: bytes = b"") -> bytes:
    """A Photoshop image resource block ("8BIM", id, padded Pascal name, size, padded data)."""
    pascal_name = bytes([len(name)]) + name
    if len(pascal_name) % 2:
        pascal_name += b"\x00"
    padding = b"\x00" if len(iim) % 2 else b""
    return b"8BIM" + struct.pack(">H", resource_id) + pascal_name + struct.pack(">I", len(iim)) + iim + padding


def jpeg_segment(marker: int, payload: bytes) -> bytes:
    return bytes([0xFF, marker]) + struct.pack(">H", len(payload) + 2) + payload


def make_jpeg(*, xmp: bytes | None = None, iptc: bytes | None = None, size: tuple[int, int] = (16, 16)) -> bytes:
    """A JPEG with XMP in APP1 and IPTC IIM (wrapped in Photoshop resources) in APP13, after SOI."""
    segments = []
    if xmp is not None:
        segments.append(jpeg_segment(0xE1, JPEG_XMP_HEADER + xmp))
    if iptc is not None:
        segments.append(jpeg_segment(0xED, PHOTOSHOP_HEADER + photoshop_resources(iptc)))
    return insert_after_soi(_encode("JPEG", size), b"".join(segments))


def insert_after_soi(jpeg: bytes, segments: bytes) -> bytes:
    assert jpeg[:2] == b"\xff\xd8", "not a JPEG"
    return jpeg[:2] + segments + jpeg[2:]


def make_png(
    *,
    xmp: bytes | None = None,
    chunk: Literal["iTXt", "tEXt", "zTXt"] = "iTXt",
    compressed: bool = False,
    size: tuple[int, int] = (16, 16),
) -> bytes:
    """A PNG with XMP under the "XML:com.adobe.xmp" keyword, in the chosen text chunk type.

    ``compressed`` applies to iTXt only (zTXt is always compressed, tEXt never). tEXt and zTXt
    are Latin-1 chunks: the packet's UTF-8 bytes go in verbatim, as XMP writers do (Pillow would
    otherwise switch to iTXt for text outside Latin-1, such as the xpacket BOM).
    """
    info = PngInfo()
    if xmp is not None:
        if chunk == "iTXt":
            info.add_itxt("XML:com.adobe.xmp", xmp.decode("utf-8"), zip=compressed)
        else:
            info.add_text("XML:com.adobe.xmp", xmp.decode("latin-1"), zip=chunk == "zTXt")
    return _encode("PNG", size, pnginfo=info)


def make_png_with_raw_profile(profile_type: str, profile: bytes) -> bytes:
    """A PNG with an ImageMagick-style "Raw profile type <type>" zTXt chunk (hex-encoded payload)."""
    hex_text = profile.hex()
    lines = "\n".join(hex_text[i : i + 72] for i in range(0, len(hex_text), 72))
    info = PngInfo()
    info.add_text(f"Raw profile type {profile_type}", f"\n{profile_type}\n{len(profile):8d}\n{lines}\n", zip=True)
    return _encode("PNG", (16, 16), pnginfo=info)


def make_webp(*, xmp: bytes | None = None, size: tuple[int, int] = (16, 16)) -> bytes:
    """A WebP; with XMP, Pillow (libwebp mux) writes an extended VP8X file with an "XMP " chunk."""
    return _encode("WEBP", size, **({"xmp": xmp} if xmp is not None else {}))


def make_gif(*, xmp: bytes | None = None, size: tuple[int, int] = (16, 16)) -> bytes:
    """A GIF89a with XMP in the "XMP DataXMP" application extension, before the first image.

    The packet is stored raw followed by the magic trailer, as the XMP specification (part 3)
    describes; Pillow has no GIF XMP writer, so the extension is spliced in after the global
    colour table.
    """
    gif = _encode("GIF", size)
    if xmp is None:
        return gif
    packed = gif[10]
    header_end = 13 + (3 * (2 << (packed & 0x07)) if packed & 0x80 else 0)
    extension = b"\x21\xff\x0bXMP DataXMP" + xmp + GIF_XMP_MAGIC_TRAILER
    return b"GIF89a" + gif[6:header_end] + extension + gif[header_end:]


def make_tiff(*, xmp: bytes | None = None, iptc: bytes | None = None, size: tuple[int, int] = (16, 16)) -> bytes:
    """A TIFF with XMP in tag 700 (XMLPacket) and IPTC IIM in tag 33723 (IPTC-NAA)."""
    tags: dict[int, bytes] = {}
    if xmp is not None:
        tags[700] = xmp
    if iptc is not None:
        tags[33723] = iptc
    return _encode("TIFF", size, tiffinfo=tags)


def svg_with_metadata(metadata: bytes | str | None = None, *, prolog: str = "", root_attributes: str = "") -> bytes:
    """A small SVG whose ``<metadata>`` holds the given XML (an XMP packet or bare rdf:RDF)."""
    if isinstance(metadata, bytes):
        metadata = metadata.decode("utf-8")
    metadata_element = f"  <metadata>\n{metadata}\n  </metadata>\n" if metadata is not None else ""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"{prolog}"
        f'<svg xmlns="http://www.w3.org/2000/svg" width="16" height="16" viewBox="0 0 16 16"{root_attributes}>\n'
        f"{metadata_element}"
        '  <rect width="16" height="16" fill="#c83232"/>\n'
        '  <rect width="8" height="16" fill="#2858c8"/>\n'
        "</svg>\n"
    ).encode()


def inkscape_svg(*, creator: str, rights: str, license_url: str) -> bytes:
    """An SVG with the cc:Work metadata Inkscape writes (namespaces declared on the root element)."""
    rdf = (
        "    <rdf:RDF>\n"
        '      <cc:Work rdf:about="">\n'
        "        <dc:format>image/svg+xml</dc:format>\n"
        '        <dc:type rdf:resource="http://purl.org/dc/dcmitype/StillImage"/>\n'
        f"        <dc:creator><cc:Agent><dc:title>{escape(creator)}</dc:title></cc:Agent></dc:creator>\n"
        f"        <dc:rights><cc:Agent><dc:title>{escape(rights)}</dc:title></cc:Agent></dc:rights>\n"
        f"        <cc:license rdf:resource={quoteattr(license_url)}/>\n"
        "      </cc:Work>\n"
        f"      <cc:License rdf:about={quoteattr(license_url)}>\n"
        '        <cc:permits rdf:resource="http://creativecommons.org/ns#Reproduction"/>\n'
        "      </cc:License>\n"
        "    </rdf:RDF>"
    )
    namespaces = f' xmlns:rdf="{RDF_NS}" xmlns:dc="{DC_NS}" xmlns:cc="{CC_NS}"'
    return svg_with_metadata(rdf, root_attributes=namespaces)


def _picture(size: tuple[int, int], shade: int = 0) -> Image.Image:
    """Two colours, so that the picture is not blank (onboarding refuses single-colour renditions)."""
    image = Image.new("RGB", size, (200, 50, 50 + shade))
    image.paste((40, 90, 200), (0, 0, size[0] // 2, size[1]))
    return image


def _encode(image_format: str, size: tuple[int, int], **save_options: object) -> bytes:
    image = _picture(size)
    if image_format == "GIF":
        image = image.convert("P")
    buffer = io.BytesIO()
    image.save(buffer, image_format, **save_options)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------------------
# Several packets per file (every container that can hold more than one), for the one-rule tests


def malformed_xmp(packet: bytes) -> bytes:
    """``packet`` made unparseable the way hand-written XMP usually is: an unescaped ampersand."""
    return packet.replace(b"</rdf:Description>", b"<dc:title>Tom & Jerry</dc:title></rdf:Description>", 1)


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def jpeg_with_packets(packets: Sequence[bytes], *, iptc: bytes | None = None,
                      size: tuple[int, int] = (16, 16)) -> bytes:
    """A JPEG with one APP1 XMP segment per packet (and IPTC IIM in APP13), in order."""
    segments = b"".join(jpeg_segment(0xE1, JPEG_XMP_HEADER + packet) for packet in packets)
    if iptc is not None:
        segments += jpeg_segment(0xED, PHOTOSHOP_HEADER + photoshop_resources(iptc))
    return insert_after_soi(_encode("JPEG", size), segments)


def png_with_packets(packets: Sequence[bytes], *, iptc: bytes | None = None) -> bytes:
    """A PNG with one "XML:com.adobe.xmp" tEXt chunk per packet (bytes verbatim) before IEND."""
    png = _encode("PNG", (16, 16))
    chunks = b"".join(png_chunk(b"tEXt", b"XML:com.adobe.xmp\x00" + packet) for packet in packets)
    if iptc is not None:
        hex_text = iptc.hex()
        chunks += png_chunk(b"tEXt", b"Raw profile type iptc\x00" + f"\niptc\n{len(iptc):8d}\n{hex_text}\n".encode())
    iend = png.rindex(b"IEND") - 4
    return png[:iend] + chunks + png[iend:]


def webp_with_packets(packets: Sequence[bytes]) -> bytes:
    """An extended WebP whose first packet Pillow wrote; the others follow as further "XMP " chunks."""
    webp = make_webp(xmp=packets[0])
    extra = b"".join(b"XMP " + struct.pack("<I", len(p)) + p + (b"\x00" if len(p) % 2 else b"") for p in packets[1:])
    body = webp[8:] + extra
    return b"RIFF" + struct.pack("<I", len(body)) + body


def gif_with_packets(packets: Sequence[bytes]) -> bytes:
    """A GIF89a with one "XMP DataXMP" application extension per packet before the image."""
    gif = _encode("GIF", (16, 16))
    packed = gif[10]
    header_end = 13 + (3 * (2 << (packed & 0x07)) if packed & 0x80 else 0)
    extensions = b"".join(b"\x21\xff\x0bXMP DataXMP" + packet + GIF_XMP_MAGIC_TRAILER for packet in packets)
    return b"GIF89a" + gif[6:header_end] + extensions + gif[header_end:]


def tiff_with_packets(packets: Sequence[bytes], *, iptc: bytes | None = None) -> bytes:
    """A multi-page TIFF, one page per packet, each page's IFD holding its packet in tag 700."""
    pages = [_picture((16, 16), shade=index) for index in range(len(packets))]
    for page, packet in zip(pages[1:], packets[1:], strict=True):
        page.encoderinfo = {"tiffinfo": {700: packet}}
    first = {700: packets[0], **({33723: iptc} if iptc is not None else {})}
    buffer = io.BytesIO()
    pages[0].save(buffer, "TIFF", save_all=True, append_images=pages[1:], tiffinfo=first)
    return buffer.getvalue()


def svg_with_packets(packets: Sequence[bytes]) -> bytes:
    """An SVG whose <metadata> holds every packet (UTF-8) one after the other."""
    return svg_with_metadata("\n".join(packet.decode("utf-8") for packet in packets))
