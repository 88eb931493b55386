"""The one rule for embedded rights, tried on generated files: no training unless explicitly allowed.

Hypothesis writes real image files of every format carrying 1 to 12 XMP packets (UTF-8 or UTF-16,
some malformed) and, where the format has one, an IPTC IIM block, with PLUS Data Mining values
drawn from the vocabulary, its URIs, case and whitespace variants and random strings. The oracle
below is written from the rule's definition, not from the code: training may be granted only
when every statement the file makes is readable and they all say the same allowing thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from foundry.catalog.rights import read_embedded_rights
from foundry.licensing.policy import judge_embedded_rights
from tests.support import rights_images as images

VOCABULARY = [
    "DMI-UNSPECIFIED", "DMI-ALLOWED", "DMI-PROHIBITED-AIMLTRAINING", "DMI-PROHIBITED-GENAIMLTRAINING",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING", "DMI-PROHIBITED", "DMI-PROHIBITED-SEECONSTRAINT",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR", "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR",
]
VOCAB_URIS = ("http://ns.useplus.org/ldf/vocab/", "https://ns.useplus.org/ldf/vocab/")
PACKET_FORMATS = {
    "jpeg": images.jpeg_with_packets,
    "png": images.png_with_packets,
    "webp": images.webp_with_packets,
    "gif": images.gif_with_packets,
    "tiff": images.tiff_with_packets,
    "svg": images.svg_with_packets,
}
IPTC_FORMATS = {"jpeg", "png", "tiff"}
UTF16_FORMATS = {"jpeg", "png", "webp", "gif", "tiff"}  # an SVG's packets share the document's encoding


def oracle_code(value: str) -> str | None:
    """What a written value means: a vocabulary code, something else (kept), or nothing (blank)."""
    text = value.strip()
    if not text:
        return None
    for prefix in VOCAB_URIS:
        if text.lower().startswith(prefix):
            text = text[len(prefix):]
            break
    return text.upper() if text.upper() in VOCABULARY else f"other:{value.strip()}"


xml_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Cn")), max_size=24)
vocabulary_variant = st.builds(
    lambda code, uri, case, before, after: before + uri + case(code) + after,
    st.sampled_from(VOCABULARY),
    st.sampled_from(("", *VOCAB_URIS)),
    st.sampled_from((str, str.lower, str.title)),
    st.sampled_from(("", " ", "\n  ", "\t")),
    st.sampled_from(("", " ", "\n")),
)
data_mining_value = st.one_of(vocabulary_variant, vocabulary_variant, xml_text)
# IIM has no Data Mining dataset: the code travels as a token in Special Instructions.
iim_token = st.one_of(
    st.builds(lambda code, case: case(code), st.sampled_from(VOCABULARY), st.sampled_from((str, str.lower))),
    st.builds(lambda letters: "DMI-" + letters, st.text(alphabet="ABCXYZ", min_size=1, max_size=6)),
)


@dataclass(frozen=True)
class Packet:
    data_mining: str | None
    malformed: bool
    utf16: bool


packet = st.builds(Packet, st.one_of(st.none(), data_mining_value), st.sampled_from((False, False, False, True)),
                   st.booleans())


@st.composite
def rights_file(draw):
    image_format = draw(st.sampled_from(sorted(PACKET_FORMATS)))
    packets = draw(st.lists(packet, min_size=1, max_size=12))
    iim = draw(st.one_of(st.none(), iim_token)) if image_format in IPTC_FORMATS else None
    return image_format, packets, iim


def encode(item: Packet, image_format: str) -> bytes:
    data = images.xmp_packet(creator="Generated", data_mining=item.data_mining)
    if item.malformed:
        data = images.malformed_xmp(data)
    if item.utf16 and image_format in UTF16_FORMATS:
        data = data.decode("utf-8").encode("utf-16")
    return data


def build(image_format: str, packets: list[Packet], iim: str | None) -> bytes:
    encoded = [encode(item, image_format) for item in packets]
    maker = PACKET_FORMATS[image_format]
    if image_format in IPTC_FORMATS:
        iptc = images.iptc_iim(by_line="Generated") + (
            images.iim_dataset(2, 40, f"Data mining: {iim}".encode()) if iim is not None else b"")
        return maker(encoded, iptc=iptc)
    return maker(encoded)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rights_file())
def test_training_only_where_everything_readable_explicitly_allows(generated):
    image_format, packets, iim = generated
    statements = {oracle_code(item.data_mining) for item in packets if item.data_mining is not None}
    if iim is not None:
        statements.add(oracle_code(iim))
    statements.discard(None)
    readable = not any(item.malformed for item in packets)
    rights = read_embedded_rights(build(image_format, packets, iim), image_format)

    # The file itself as the grant (embedded imports): DMI-ALLOWED, said by everything that speaks.
    own = rights.training_verdict(licence_is_the_grant=False)
    assert own.allows_training is (readable and statements == {"DMI-ALLOWED"}), (statements, rights)
    # A licence from outside as the grant (manifest, OpenMoji): the file may say nothing, or allow.
    outside = rights.training_verdict(licence_is_the_grant=True)
    assert outside.allows_training is (readable and statements in (set(), {"DMI-ALLOWED"}, {"DMI-UNSPECIFIED"})), (
        statements, rights)
    if not outside.allows_training:
        assert outside.reason and outside.explanation
    if readable:  # every statement was read, each once
        assert len(rights.data_mining_values) == len(statements), (statements, rights)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.none(), data_mining_value), max_size=6), st.lists(st.text(max_size=12), max_size=3),
       st.booleans())
def test_the_rule_itself_fails_closed(values, unread, licence_is_the_grant):
    statements = {oracle_code(v) for v in values if v is not None} - {None}
    codes = [code if not code.startswith("other:") else code[len("other:"):] for code in statements]
    verdict = judge_embedded_rights(codes, unread=unread, licence_is_the_grant=licence_is_the_grant)
    allowing = {"DMI-ALLOWED"} | ({"DMI-UNSPECIFIED"} if licence_is_the_grant else set())
    expected = not unread and len(statements) <= 1 and statements <= allowing and (
        licence_is_the_grant or statements == {"DMI-ALLOWED"})
    assert verdict.allows_training is expected
    assert (verdict.reason is None) is expected
