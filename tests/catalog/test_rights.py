"""Reading embedded rights metadata (XMP, IPTC IIM) from real image bytes of every accepted format."""

from __future__ import annotations

import ast
import gzip
import io
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from foundry.catalog import rights
from foundry.catalog.rights import EmbeddedRights, read_embedded_rights, readers
from tests.support import rights_images as images
from tests.support.rights_images import PLUS_VOCAB

FULL_RIGHTS = {
    "creator": ["Ada Lovelace", "Charles Babbage"],
    "rights": "© 2024 Ada Lovelace. All rights reserved.",
    "web_statement": "https://example.com/licences/1234",
    "usage_terms": "Licensed to Foundry Ltd for model training.",
    "license_url": "https://creativecommons.org/licenses/by/4.0/",
    "data_mining": PLUS_VOCAB + "DMI-PROHIBITED-GENAIMLTRAINING",
    "other_constraints": "Contact the agency for generative uses.",
}

EXPECTED_FULL_RIGHTS = EmbeddedRights(
    creator="Ada Lovelace",
    copyright_notice="© 2024 Ada Lovelace. All rights reserved.",
    web_statement="https://example.com/licences/1234",
    usage_terms="Licensed to Foundry Ltd for model training.",
    license_url="https://creativecommons.org/licenses/by/4.0/",
    data_mining="DMI-PROHIBITED-GENAIMLTRAINING",
    other_constraints="Contact the agency for generative uses.",
    data_mining_values=("DMI-PROHIBITED-GENAIMLTRAINING",),
)


ALL_FORMATS = ["png", "jpeg", "webp", "gif", "tiff", "svg"]


def make_image(image_format: str, xmp: bytes | None) -> bytes:
    """A real file of ``image_format`` holding ``xmp`` where that format keeps XMP (or none)."""
    if image_format == "svg":
        return images.svg_with_metadata(xmp)
    maker = {
        "png": images.make_png,
        "jpeg": images.make_jpeg,
        "webp": images.make_webp,
        "gif": images.make_gif,
        "tiff": images.make_tiff,
    }[image_format]
    return maker(xmp=xmp)


# ------------------------------------------------------------------------------------------------
# Vocabulary and namespaces


def test_plus_namespace_and_vocabulary_uris_match_the_plus_ldf_spec():
    assert rights.PLUS_NS == "http://ns.useplus.org/ldf/xmp/1.0/"
    assert rights.PLUS_VOCAB_PREFIX == "http://ns.useplus.org/ldf/vocab/"
    assert rights.DC_NS == "http://purl.org/dc/elements/1.1/"
    assert rights.XMP_RIGHTS_NS == "http://ns.adobe.com/xap/1.0/rights/"
    assert rights.CC_NS == "http://creativecommons.org/ns#"
    assert rights.DATA_MINING_CODES == {
        "DMI-UNSPECIFIED",
        "DMI-ALLOWED",
        "DMI-PROHIBITED-AIMLTRAINING",
        "DMI-PROHIBITED-GENAIMLTRAINING",
        "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
        "DMI-PROHIBITED",
        "DMI-PROHIBITED-SEECONSTRAINT",
        "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR",
        "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR",
    }


def test_data_mining_in_a_look_alike_namespace_is_not_read():
    near_miss = images.wrap_xmp(
        f'<rdf:RDF xmlns:rdf="{images.RDF_NS}"><rdf:Description rdf:about=""'
        ' xmlns:plus="http://ns.useplus.org/ldf/xmp/1.0"'
        f' plus:DataMining="{PLUS_VOCAB}DMI-PROHIBITED"/></rdf:RDF>'
    )
    assert read_embedded_rights(images.make_png(xmp=near_miss), "png").data_mining is None


DMI_TRAINING_VERDICTS = [
    ("DMI-UNSPECIFIED", False),
    ("DMI-ALLOWED", False),
    ("DMI-PROHIBITED-AIMLTRAINING", True),
    ("DMI-PROHIBITED-GENAIMLTRAINING", True),
    ("DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING", True),
    ("DMI-PROHIBITED", True),
    ("DMI-PROHIBITED-SEECONSTRAINT", True),
    ("DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR", True),
    ("DMI-PROHIBITED-SEELINKEDRIGHTSEXPR", True),
]


@pytest.mark.parametrize(("code", "prohibited"), DMI_TRAINING_VERDICTS)
@pytest.mark.parametrize("form", ["attribute", "element", "resource"])
def test_each_data_mining_value_is_normalised_and_judged(code, prohibited, form):
    packet = images.xmp_packet(
        data_mining=PLUS_VOCAB + code,
        attribute_form=form == "attribute",
        data_mining_as_resource=form == "resource",
    )
    read = read_embedded_rights(images.make_jpeg(xmp=packet), "jpeg")
    assert read.data_mining == code
    assert read.prohibits_ai_training is prohibited
    assert read.warnings == ()


@pytest.mark.parametrize(
    "written",
    ["dmi-prohibited-aimltraining", "  DMI-PROHIBITED-AIMLTRAINING\n", PLUS_VOCAB + "dmi-prohibited-aimltraining"],
)
def test_data_mining_spellings_normalise_to_the_vocabulary_code(written):
    read = read_embedded_rights(images.make_png(xmp=images.xmp_packet(data_mining=written)), "png")
    assert read.data_mining == "DMI-PROHIBITED-AIMLTRAINING"
    assert read.warnings == ()


def test_unrecognised_data_mining_value_is_kept_flagged_and_blocks_training():
    read = read_embedded_rights(images.make_png(xmp=images.xmp_packet(data_mining="no AI please")), "png")
    assert read.data_mining == "no AI please"
    assert read.prohibits_ai_training is True
    assert "data_mining_unrecognised" in read.warnings


def test_conflicting_data_mining_values_resolve_to_the_prohibition():
    info = PngInfo()
    allowed = images.xmp_packet(creator="First Packet", data_mining=PLUS_VOCAB + "DMI-ALLOWED")
    prohibited = images.xmp_packet(creator="Second Packet", data_mining=PLUS_VOCAB + "DMI-PROHIBITED-AIMLTRAINING")
    info.add_itxt("XML:com.adobe.xmp", allowed.decode())
    info.add_itxt("XML:com.adobe.xmp", prohibited.decode())
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    read = read_embedded_rights(buffer.getvalue(), "png")
    assert read.creator == "First Packet"
    assert read.data_mining == "DMI-PROHIBITED-AIMLTRAINING"
    assert read.warnings == ("data_mining_conflict",)


def test_repeating_the_same_data_mining_value_is_not_a_conflict():
    packet = images.wrap_xmp(
        f'<rdf:RDF xmlns:rdf="{images.RDF_NS}">'
        f'<rdf:Description xmlns:plus="{images.PLUS_NS}" plus:DataMining="{PLUS_VOCAB}DMI-ALLOWED"/>'
        f'<rdf:Description xmlns:plus="{images.PLUS_NS}" plus:DataMining="DMI-ALLOWED"/>'
        "</rdf:RDF>"
    )
    read = read_embedded_rights(images.make_png(xmp=packet), "png")
    assert (read.data_mining, read.warnings) == ("DMI-ALLOWED", ())


def test_without_data_mining_value_training_is_not_prohibited():
    assert EmbeddedRights(creator="Someone").prohibits_ai_training is False


# ------------------------------------------------------------------------------------------------
# Every container, both XMP serialisations


@pytest.mark.parametrize("attribute_form", [False, True], ids=["element-form", "attribute-form"])
@pytest.mark.parametrize("image_format", ALL_FORMATS)
def test_full_rights_are_read_from_every_format(image_format, attribute_form):
    packet = images.xmp_packet(attribute_form=attribute_form, **FULL_RIGHTS)
    read = read_embedded_rights(make_image(image_format, packet), image_format)
    assert read == EXPECTED_FULL_RIGHTS
    assert read.prohibits_ai_training is True


@pytest.mark.parametrize(("chunk", "compressed"), [("iTXt", False), ("iTXt", True), ("tEXt", False), ("zTXt", True)])
def test_png_xmp_in_every_text_chunk_kind(chunk, compressed):
    packet = images.xmp_packet(creator="Grace Hopper", data_mining=PLUS_VOCAB + "DMI-ALLOWED")
    png = images.make_png(xmp=packet, chunk=chunk, compressed=compressed)
    assert chunk.encode() + b"XML:com.adobe.xmp" in png
    read = read_embedded_rights(png, "png")
    assert (read.creator, read.data_mining, read.warnings) == ("Grace Hopper", "DMI-ALLOWED", ())


def test_png_itxt_takes_precedence_over_text_fallback():
    info = PngInfo()
    info.add_text("XML:com.adobe.xmp", images.xmp_packet(creator="From tEXt").decode("latin-1"))
    info.add_itxt("XML:com.adobe.xmp", images.xmp_packet(creator="From iTXt").decode())
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    assert read_embedded_rights(buffer.getvalue(), "png").creator == "From iTXt"


def test_png_imagemagick_raw_profiles():
    packet = images.xmp_packet(creator="Raw XMP")
    assert read_embedded_rights(images.make_png_with_raw_profile("xmp", packet), "png").creator == "Raw XMP"
    iim = images.iptc_iim(by_line="Raw IPTC")
    assert read_embedded_rights(images.make_png_with_raw_profile("iptc", iim), "png").creator == "Raw IPTC"
    resources = images.photoshop_resources(iim)
    assert read_embedded_rights(images.make_png_with_raw_profile("8bim", resources), "png").creator == "Raw IPTC"


def test_tiff_iptc_and_bigtiff():
    iim = images.iptc_iim(by_line="Tiff Photographer", copyright_notice="(c) Tiff")
    read = read_embedded_rights(images.make_tiff(iptc=iim), "tiff")
    assert (read.creator, read.copyright_notice) == ("Tiff Photographer", "(c) Tiff")

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "TIFF", big_tiff=True, tiffinfo={700: images.xmp_packet(creator="Big")})
    assert buffer.getvalue()[:4] == b"II+\x00"
    assert read_embedded_rights(buffer.getvalue(), "tiff").creator == "Big"


def test_svg_with_bare_rdf_namespaces_on_root_and_inkscape_work():
    read = read_embedded_rights(
        images.inkscape_svg(
            creator="Ink Scape", rights="Ink Scape 2023", license_url="http://creativecommons.org/licenses/by-sa/4.0/"
        ),
        "svg",
    )
    assert (read.creator, read.copyright_notice, read.license_url) == (
        "Ink Scape",
        "Ink Scape 2023",
        "http://creativecommons.org/licenses/by-sa/4.0/",
    )


def test_svg_with_public_doctype_and_gzip_compression():
    doctype = '<!DOCTYPE svg PUBLIC "-//W3C//DTD SVG 1.1//EN" "http://www.w3.org/Graphics/SVG/1.1/DTD/svg11.dtd">\n'
    svg = images.svg_with_metadata(images.xmp_packet(creator="Doc Type"), prolog=doctype)
    assert read_embedded_rights(svg, "svg").creator == "Doc Type"
    assert read_embedded_rights(gzip.compress(svg), "svgz").creator == "Doc Type"


def test_generated_images_are_real_and_carry_xmp_where_pillow_looks():
    packet = images.xmp_packet(creator="Checked")
    for image_format in ("png", "jpeg", "webp", "tiff", "gif"):
        image = Image.open(io.BytesIO(make_image(image_format, packet)))
        image.load()
        if image_format != "gif":  # Pillow does not read GIF XMP
            assert image.info["xmp"] == packet


@pytest.mark.parametrize("alias", ["JPEG", "jpg", "MPO", " Jpeg "])
def test_format_names_are_case_insensitive_with_aliases(alias):
    read = read_embedded_rights(images.make_jpeg(xmp=images.xmp_packet(creator="Alias")), alias)
    assert read.creator == "Alias"


# ------------------------------------------------------------------------------------------------
# RDF shapes


def test_language_alternative_prefers_x_default_wherever_it_appears():
    packet = images.xmp_packet(rights={"de": "Alle Rechte vorbehalten", "x-default": "All rights reserved"})
    assert read_embedded_rights(images.make_png(xmp=packet), "png").copyright_notice == "All rights reserved"


def test_language_alternative_without_x_default_takes_the_first_entry():
    packet = images.xmp_packet(usage_terms={"fr": "Tous droits réservés", "en": "All rights reserved"})
    assert read_embedded_rights(images.make_png(xmp=packet), "png").usage_terms == "Tous droits réservés"


def test_properties_split_over_several_descriptions_and_creator_as_attribute():
    packet = images.wrap_xmp(
        f'<rdf:RDF xmlns:rdf="{images.RDF_NS}">'
        f'<rdf:Description rdf:about="" xmlns:dc="{images.DC_NS}" dc:creator="Attribute Creator"/>'
        f'<rdf:Description rdf:about="" xmlns:plus="{images.PLUS_NS}">'
        f'<plus:DataMining rdf:resource="{PLUS_VOCAB}DMI-PROHIBITED"/></rdf:Description>'
        "</rdf:RDF>"
    )
    read = read_embedded_rights(images.make_webp(xmp=packet), "webp")
    assert (read.creator, read.data_mining) == ("Attribute Creator", "DMI-PROHIBITED")


def test_qualified_value_in_parse_type_resource():
    packet = images.wrap_xmp(
        f'<rdf:RDF xmlns:rdf="{images.RDF_NS}"><rdf:Description rdf:about="" xmlns:xmpRights="{images.XMP_RIGHTS_NS}">'
        '<xmpRights:WebStatement rdf:parseType="Resource"><rdf:value>https://example.com/terms</rdf:value>'
        "</xmpRights:WebStatement></rdf:Description></rdf:RDF>"
    )
    assert read_embedded_rights(images.make_png(xmp=packet), "png").web_statement == "https://example.com/terms"


def test_license_url_prefers_cc_license_then_a_creative_commons_web_statement():
    both = images.xmp_packet(
        license_url="https://creativecommons.org/licenses/by/4.0/",
        web_statement="https://creativecommons.org/licenses/by-nc/4.0/",
    )
    assert read_embedded_rights(images.make_png(xmp=both), "png").license_url == (
        "https://creativecommons.org/licenses/by/4.0/"
    )
    statement_only = images.xmp_packet(
        web_statement="Licensed under https://creativecommons.org/publicdomain/zero/1.0/."
    )
    assert read_embedded_rights(images.make_png(xmp=statement_only), "png").license_url == (
        "https://creativecommons.org/publicdomain/zero/1.0/"
    )
    other = images.xmp_packet(web_statement="https://example.com/licences/1234")
    assert read_embedded_rights(images.make_png(xmp=other), "png").license_url is None


# ------------------------------------------------------------------------------------------------
# IPTC IIM, and its precedence against XMP


def test_iptc_only_jpeg_latin1_by_default():
    iim = images.iptc_iim(by_line="Zoë Müller", copyright_notice="© 2021 Zoë Müller")
    read = read_embedded_rights(images.make_jpeg(iptc=iim), "jpeg")
    assert read == EmbeddedRights(creator="Zoë Müller", copyright_notice="© 2021 Zoë Müller")


def test_iptc_only_jpeg_utf8_declared_by_coded_character_set():
    iim = images.iptc_iim(by_line="Łukasz Żółć", copyright_notice="© 2022 写真家", encoding="utf-8")
    read = read_embedded_rights(images.make_jpeg(iptc=iim), "jpeg")
    assert read == EmbeddedRights(creator="Łukasz Żółć", copyright_notice="© 2022 写真家")


def test_iptc_extended_length_dataset_and_named_resource():
    long_notice = "© " + "x" * 40_000
    iim = images.iptc_iim(copyright_notice=long_notice)
    resource = images.photoshop_resources(iim, name=b"IPTC")
    jpeg = images.insert_after_soi(images.make_jpeg(), images.jpeg_segment(0xED, images.PHOTOSHOP_HEADER + resource))
    assert read_embedded_rights(jpeg, "jpeg").copyright_notice == long_notice


def test_photoshop_resources_split_over_two_app13_segments_are_joined():
    resource = images.photoshop_resources(images.iptc_iim(by_line="Split Across Segments"))
    first, second = resource[:10], resource[10:]
    segments = images.jpeg_segment(0xED, images.PHOTOSHOP_HEADER + first) + images.jpeg_segment(
        0xED, images.PHOTOSHOP_HEADER + second
    )
    jpeg = images.insert_after_soi(images.make_jpeg(), segments)
    assert read_embedded_rights(jpeg, "jpeg").creator == "Split Across Segments"


def test_xmp_wins_over_iptc_and_disagreement_is_flagged():
    packet = images.xmp_packet(creator="XMP Creator", rights="© XMP")
    iim = images.iptc_iim(by_line="IIM Creator", copyright_notice="© IIM")
    read = read_embedded_rights(images.make_jpeg(xmp=packet, iptc=iim), "jpeg")
    assert (read.creator, read.copyright_notice) == ("XMP Creator", "© XMP")
    assert read.warnings == ("creator_conflict", "copyright_conflict")


def test_iptc_fills_fields_that_xmp_leaves_empty_without_conflict():
    packet = images.xmp_packet(creator="Same Person", data_mining=PLUS_VOCAB + "DMI-ALLOWED")
    iim = images.iptc_iim(by_line="Same Person", copyright_notice="© From IIM")
    read = read_embedded_rights(images.make_jpeg(xmp=packet, iptc=iim), "jpeg")
    assert (read.creator, read.copyright_notice, read.data_mining) == ("Same Person", "© From IIM", "DMI-ALLOWED")
    assert read.warnings == ()


# ------------------------------------------------------------------------------------------------
# Damaged and hostile input


def test_malformed_xmp_is_reported_and_iptc_is_still_read():
    broken = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF><rdf:Description dc:creator="unterminated'
    read = read_embedded_rights(images.make_jpeg(xmp=broken, iptc=images.iptc_iim(by_line="IIM Survivor")), "jpeg")
    assert read.creator == "IIM Survivor"
    assert read.warnings == ("xmp_malformed",)


def test_xmp_without_rdf_is_reported():
    read = read_embedded_rights(images.make_png(xmp=b'<x:xmpmeta xmlns:x="adobe:ns:meta/"/>'), "png")
    assert read.is_empty
    assert read.warnings == ("xmp_without_rdf",)


def billion_laughs_doctype(root: str) -> str:
    """The classic entity-expansion bomb: &lol9; would expand to 10**9 "lol"s."""
    levels = "".join(
        f' <!ENTITY lol{level} "{(f"&lol{level - 1};" if level > 1 else "&lol;") * 10}">\n' for level in range(1, 10)
    )
    return f'<!DOCTYPE {root} [\n <!ENTITY lol "lol">\n{levels}]>\n'


def xmp_with_creator_markup(creator_markup: str) -> str:
    return (
        f'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="{images.RDF_NS}">'
        f'<rdf:Description rdf:about="" xmlns:dc="{images.DC_NS}"><dc:creator>{creator_markup}</dc:creator>'
        "</rdf:Description></rdf:RDF></x:xmpmeta>"
    )


BILLION_LAUGHS_XMP = (billion_laughs_doctype("x:xmpmeta") + xmp_with_creator_markup("&lol9;")).encode()
EXTERNAL_ENTITY_XMP = (
    '<!DOCTYPE x:xmpmeta [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>\n' + xmp_with_creator_markup("&xxe;")
).encode()


@pytest.mark.parametrize("hostile", [BILLION_LAUGHS_XMP, EXTERNAL_ENTITY_XMP], ids=["billion-laughs", "xxe"])
@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp", "gif", "tiff"])
def test_xmp_with_a_dtd_is_refused_without_expanding_anything(hostile, image_format):
    read = read_embedded_rights(make_image(image_format, hostile), image_format)
    assert read == EmbeddedRights(warnings=("xmp_forbidden_dtd",))


def test_svg_with_entities_is_refused_but_its_self_contained_xmp_is_still_read():
    svg = images.svg_with_metadata(images.xmp_packet(creator="Fragment Creator"), prolog=billion_laughs_doctype("svg"))
    read = read_embedded_rights(svg, "svg")
    assert read.creator == "Fragment Creator"
    assert read.warnings == ("svg_forbidden_entity",)


def test_svg_billion_laughs_inside_metadata_never_expands():
    svg = images.svg_with_metadata(
        f'<rdf:RDF xmlns:rdf="{images.RDF_NS}"><rdf:Description xmlns:dc="{images.DC_NS}" dc:creator="&lol9;"/>'
        "</rdf:RDF>",
        prolog=billion_laughs_doctype("svg"),
    )
    assert read_embedded_rights(svg, "svg") == EmbeddedRights(warnings=("svg_forbidden_entity",))


def test_svg_too_large_to_parse_still_yields_its_xmp(monkeypatch):
    svg = images.svg_with_metadata(images.xmp_packet(creator="Big Drawing", data_mining=PLUS_VOCAB + "DMI-PROHIBITED"))
    monkeypatch.setattr(readers, "MAX_SVG_BYTES", len(svg) - 1)
    read = read_embedded_rights(svg, "svg")
    assert (read.creator, read.data_mining) == ("Big Drawing", "DMI-PROHIBITED")
    assert read.warnings == ("svg_too_large",)


def test_oversized_xmp_is_ignored_with_a_warning():
    huge = images.xmp_packet(creator="Too Big", usage_terms="x" * (rights.MAX_XMP_PACKET_BYTES + 1))
    assert read_embedded_rights(images.make_png(xmp=huge), "png") == EmbeddedRights(warnings=("xmp_too_large",))
    # Compressed, it is small on disk; inflation must stop at the cap rather than run to the end.
    assert read_embedded_rights(images.make_png(xmp=huge, compressed=True), "png") == EmbeddedRights(
        warnings=("xmp_too_large",)
    )


def test_corrupt_compressed_xmp_is_reported():
    png = images.make_png(xmp=images.xmp_packet(creator="Zipped"), compressed=True)
    start = png.index(b"iTXtXML:com.adobe.xmp") + len(b"iTXtXML:com.adobe.xmp\x00\x01\x00\x00\x00")
    corrupted = png[:start] + b"\x00\x00\x00\x00" + png[start + 4 :]
    assert "compressed_metadata_corrupt" in read_embedded_rights(corrupted, "png").warnings


def test_too_many_metadata_blocks_stop_being_parsed():
    info = PngInfo()
    for index in range(rights.MAX_METADATA_BLOCKS + 3):
        info.add_itxt("XML:com.adobe.xmp", images.xmp_packet(creator=f"Creator {index}").decode())
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    read = read_embedded_rights(buffer.getvalue(), "png")
    assert read.creator == "Creator 0"
    assert read.warnings == ("png_extra_metadata_chunks_ignored",)


def test_too_many_xmp_segments_stop_being_parsed():
    segments = b"".join(
        images.jpeg_segment(0xE1, images.JPEG_XMP_HEADER + images.xmp_packet(creator=f"Creator {index}"))
        for index in range(rights.MAX_METADATA_BLOCKS + 3)
    )
    read = read_embedded_rights(images.insert_after_soi(images.make_jpeg(), segments), "jpeg")
    assert read.creator == "Creator 0"
    assert read.warnings == ("xmp_extra_blocks_ignored",)


def test_jpeg_truncated_inside_a_later_segment_keeps_what_came_before():
    packet = images.xmp_packet(creator="Before The Cut")
    jpeg = images.make_jpeg(xmp=packet, iptc=images.iptc_iim(by_line="Lost"))
    cut = jpeg.index(images.PHOTOSHOP_HEADER) + 20
    read = read_embedded_rights(jpeg[:cut], "jpeg")
    assert read.creator == "Before The Cut"
    assert read.warnings == ("jpeg_truncated",)


@pytest.mark.parametrize("keep", [2, 3, 4, 5, 40, 200])
def test_jpeg_truncated_inside_the_xmp_segment_is_empty_with_a_warning(keep):
    jpeg = images.make_jpeg(xmp=images.xmp_packet(creator="Never Seen"))
    assert read_embedded_rights(jpeg[:keep], "jpeg") == EmbeddedRights(warnings=("jpeg_truncated",))


def test_jpeg_segment_length_below_two_is_rejected():
    jpeg = images.insert_after_soi(images.make_jpeg(), b"\xff\xe1\x00\x01")
    assert read_embedded_rights(jpeg, "jpeg").warnings == ("jpeg_malformed",)


def test_xmp_looking_bytes_inside_the_image_data_are_not_metadata():
    """Entropy-coded data holds no markers (0xFF is stuffed), so text in it is never read as a segment."""
    jpeg = images.make_jpeg()
    end_of_image = jpeg.rindex(b"\xff\xd9")
    smuggled = images.JPEG_XMP_HEADER + images.xmp_packet(creator="Inside The Scan")
    assert b"\xff" not in smuggled
    tampered = jpeg[:end_of_image] + smuggled + jpeg[end_of_image:]
    assert read_embedded_rights(tampered, "jpeg") == EmbeddedRights()


def test_segments_after_a_scan_are_read():
    """A marker segment after the scan data (progressive files put tables there) is still metadata."""
    late_xmp = images.jpeg_segment(0xE1, images.JPEG_XMP_HEADER + images.xmp_packet(
        creator="After SOS", data_mining=PLUS_VOCAB + "DMI-PROHIBITED"))
    jpeg = images.make_jpeg(xmp=images.xmp_packet(data_mining=PLUS_VOCAB + "DMI-ALLOWED"))
    end_of_image = jpeg.rindex(b"\xff\xd9")
    read = read_embedded_rights(jpeg[:end_of_image] + late_xmp + jpeg[end_of_image:], "jpeg")
    assert (read.creator, read.data_mining) == ("After SOS", "DMI-PROHIBITED")
    assert read.prohibits_ai_training


def test_truncated_iptc_dataset_keeps_earlier_datasets():
    iim = images.iptc_iim(by_line="Whole", copyright_notice="Cut short")[:-3]
    read = read_embedded_rights(images.make_jpeg(iptc=iim), "jpeg")
    assert read.creator == "Whole"
    assert read.copyright_notice is None
    assert read.warnings == ("iptc_truncated",)


@pytest.mark.parametrize(
    ("image_format", "marker"),
    [("png", b"iTXt"), ("webp", b"XMP "), ("gif", b"XMP DataXMP"), ("tiff", b"<?xpacket")],
)
def test_containers_truncated_inside_the_xmp_warn_instead_of_raising(image_format, marker):
    whole = make_image(image_format, images.xmp_packet(creator="Cut"))
    truncated = whole[: whole.index(marker) + 8]
    read = read_embedded_rights(truncated, image_format)
    assert read.creator is None
    assert f"{image_format}_truncated" in read.warnings


@pytest.mark.parametrize("image_format", ALL_FORMATS)
def test_wrong_container_for_the_declared_format_is_a_warning(image_format):
    other = images.make_jpeg() if image_format != "jpeg" else images.make_png()
    read = read_embedded_rights(other, image_format)
    assert read.is_empty
    assert len(read.warnings) == 1


@pytest.mark.parametrize("image_format", ALL_FORMATS)
def test_image_without_metadata_gives_empty_rights(image_format):
    read = read_embedded_rights(make_image(image_format, None), image_format)
    assert read == EmbeddedRights()
    assert read.is_empty
    assert read.prohibits_ai_training is False


FUZZ_PREFIXES = {
    "png": b"\x89PNG\r\n\x1a\n",
    "jpeg": b"\xff\xd8",
    "webp": b"RIFF\xff\xff\x00\x00WEBP",
    "gif": b"GIF89a",
    "tiff": b"II*\x00",
    "svg": b"<svg xmlns='http://www.w3.org/2000/svg'><metadata>",
}


@settings(max_examples=300, deadline=None)
@given(
    image_format=st.sampled_from(ALL_FORMATS),
    with_signature=st.booleans(),
    tail=st.binary(max_size=1024),
)
def test_random_bytes_never_raise(image_format, with_signature, tail):
    data = (FUZZ_PREFIXES[image_format] if with_signature else b"") + tail
    assert isinstance(read_embedded_rights(data, image_format), EmbeddedRights)


_FUZZ_SEEDS = {image_format: make_image(image_format, images.xmp_packet(**FULL_RIGHTS)) for image_format in ALL_FORMATS}
_FUZZ_SEEDS["jpeg"] = images.make_jpeg(
    xmp=images.xmp_packet(**FULL_RIGHTS), iptc=images.iptc_iim(by_line="Seed", encoding="utf-8")
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    image_format=st.sampled_from(ALL_FORMATS),
    edits=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), max_size=8),
    keep=st.floats(0, 1),
)
def test_damaged_real_files_never_raise(image_format, edits, keep):
    data = bytearray(_FUZZ_SEEDS[image_format])
    for where, value in edits:
        data[int(where * len(data))] = value
    damaged = bytes(data[: int(keep * len(data))])
    assert isinstance(read_embedded_rights(damaged, image_format), EmbeddedRights)


# ------------------------------------------------------------------------------------------------
# The record itself, and misuse


def test_as_dict_is_json_ready_and_round_trips():
    read = read_embedded_rights(
        images.make_jpeg(xmp=images.xmp_packet(**FULL_RIGHTS), iptc=images.iptc_iim(by_line="Other")), "jpeg"
    )
    stored = json.loads(json.dumps(read.as_dict()))
    assert stored["creator"] == "Ada Lovelace"
    assert stored["warnings"] == ["creator_conflict"]
    assert EmbeddedRights.from_dict(stored) == read


def test_is_empty_ignores_warnings():
    assert EmbeddedRights(warnings=("xmp_malformed",)).is_empty
    assert not EmbeddedRights(data_mining="DMI-ALLOWED").is_empty


def test_programmer_errors_raise():
    with pytest.raises(ValueError, match="unsupported image format"):
        read_embedded_rights(images.make_png(), "bmp")
    with pytest.raises(TypeError):
        read_embedded_rights("not bytes", "png")  # type: ignore[arg-type]


def test_bytes_like_inputs_are_accepted():
    png = images.make_png(xmp=images.xmp_packet(creator="Viewed"))
    assert read_embedded_rights(memoryview(png), "png").creator == "Viewed"
    assert read_embedded_rights(bytearray(png), "png").creator == "Viewed"


def test_svgz_bomb_is_capped():
    bomb = gzip.compress(b"<svg>" + b" " * (rights.MAX_SVG_BYTES + 10), compresslevel=9)
    assert read_embedded_rights(bomb, "svg").warnings == ("svg_too_large",)


def test_rights_modules_share_no_private_names():
    """The reader is split by concern (XMP/IPTC parsing, container readers); what crosses files is public."""
    package = Path(rights.__file__).parent
    for module in package.glob("*.py"):
        tree = ast.parse(module.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("foundry."):
                private = [alias.name for alias in node.names if alias.name.startswith("_")]
                assert not private, f"{module.name} imports private {private} from {node.module}"


def test_a_files_metadata_has_one_budget_and_past_it_nothing_trains():
    """Many packets each under the per-packet cap cannot add up to unbounded parsing work."""
    padding = "x" * (rights.MAX_XMP_PACKET_BYTES - 4096)
    count = rights.MAX_METADATA_BYTES // len(padding) + 2
    info = PngInfo()
    for _ in range(count):
        info.add_itxt("XML:com.adobe.xmp", images.xmp_packet(creator="Padded", usage_terms=padding).decode(), zip=True)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4)).save(buffer, "PNG", pnginfo=info)
    read = read_embedded_rights(buffer.getvalue(), "png")
    assert read.creator == "Padded" and read.warnings == ("metadata_too_large",)
    assert read.prohibits_ai_training
