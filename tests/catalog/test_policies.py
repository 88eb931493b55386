"""Pure rules: licensing permissions, license terms, paths, perceptual hashes, image checks."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from foundry.catalog.imaging import ImageLimits, ImageRejected, inspect_image, sniff_format
from foundry.catalog.sources import safe_relative_path
from foundry.licensing import service as licensing_service
from foundry.licensing.policy import GrantTerms, allowed_uses, judge_embedded_rights, permits, why_not_permitted
from foundry.licensing.terms import ALL_USES, Use, parse_uses
from provenance.hashing import NearDuplicateIndex, hamming, perceptual_hash
from tests.support import images

NOW = datetime(2026, 6, 1, tzinfo=UTC)


def terms(**overrides) -> GrantTerms:
    values = {"uses": ALL_USES, "valid_from": NOW - timedelta(days=1), "valid_until": None, "revoked_at": None}
    return GrantTerms(**{**values, **overrides})


@pytest.mark.parametrize("overrides, use, reason", [
    ({}, Use.BASE_TRAINING, None),
    ({"revoked_at": NOW - timedelta(seconds=1)}, Use.GENERATION, "revoked"),
    ({"revoked_at": NOW + timedelta(days=1)}, Use.GENERATION, None),
    ({"valid_from": NOW + timedelta(seconds=1)}, Use.BASE_TRAINING, "not_yet_valid"),
    ({"valid_until": NOW}, Use.BASE_TRAINING, "expired"),
    ({"valid_until": NOW + timedelta(seconds=1)}, Use.BASE_TRAINING, None),
    ({"uses": frozenset({Use.GENERATION})}, Use.CUSTOMER_FINETUNE, "use_not_granted"),
    ({"data_mining": "DMI-PROHIBITED-AIMLTRAINING"}, Use.BASE_TRAINING, "data_mining_prohibited"),
    ({"data_mining": "DMI-PROHIBITED-AIMLTRAINING"}, Use.GENERATION, None),
    ({"data_mining": "DMI-ALLOWED"}, Use.CUSTOMER_FINETUNE, None),
    # issue 11: one rule for stored grants too; SEELINKEDRIGHTSEXPR and unknown values block training
    ({"data_mining": "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"}, Use.BASE_TRAINING, "data_mining_prohibited"),
    ({"data_mining": "http://ns.useplus.org/ldf/vocab/DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"}, Use.CUSTOMER_FINETUNE,
     "data_mining_prohibited"),
    ({"data_mining": "no AI please"}, Use.BASE_TRAINING, "data_mining_unrecognised"),
    ({"data_mining": "no AI please"}, Use.GENERATION, None),
    ({"data_mining": " dmi-unspecified "}, Use.BASE_TRAINING, None),
])
def test_grant_permissions(overrides, use, reason):
    assert why_not_permitted(terms(**overrides), use, NOW) == reason
    assert permits(terms(**overrides), use, NOW) is (reason is None)


@pytest.mark.parametrize("values, unread, licence_is_the_grant, reason", [
    ([], [], True, None),
    ([], [], False, "data_mining_unspecified"),
    (["DMI-UNSPECIFIED"], [], True, None),
    (["DMI-UNSPECIFIED"], [], False, "data_mining_unspecified"),
    (["DMI-ALLOWED"], [], False, None),
    (["DMI-ALLOWED"], ["xmp_malformed"], True, "embedded_rights_unreadable"),
    ([], ["xmp_extra_blocks_ignored"], True, "embedded_rights_unreadable"),
    (["DMI-ALLOWED", "DMI-UNSPECIFIED"], [], True, "data_mining_conflict"),
    (["DMI-ALLOWED", "DMI-PROHIBITED"], [], False, "data_mining_prohibited"),
    (["DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"], [], True, "data_mining_prohibited"),
    (["DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"], [], True, "data_mining_prohibited"),
    (["maybe"], [], True, "data_mining_unrecognised"),
    (["DMI-ALLOWED", "maybe"], [], True, "data_mining_unrecognised"),
])
def test_one_rule_for_embedded_rights(values, unread, licence_is_the_grant, reason):
    verdict = judge_embedded_rights(values, unread=unread, licence_is_the_grant=licence_is_the_grant)
    assert (verdict.allows_training, verdict.reason) == (reason is None, reason)


def test_embedded_prohibition_strips_training_uses():
    prohibited = judge_embedded_rights(["DMI-PROHIBITED-GENAIMLTRAINING"], licence_is_the_grant=True)
    unspecified = judge_embedded_rights(["DMI-UNSPECIFIED"], licence_is_the_grant=True)
    assert allowed_uses(ALL_USES, prohibited) == {Use.GENERATION}
    assert allowed_uses(ALL_USES, unspecified) == ALL_USES


@pytest.mark.parametrize("text, code", [
    ("CC-BY-SA-4.0", "CC-BY-SA-4.0"), ("cc by-sa 4.0", "CC-BY-SA-4.0"),
    ("https://creativecommons.org/licenses/by/4.0/deed.de", "CC-BY-4.0"),
    ("http://creativecommons.org/publicdomain/zero/1.0", "CC0-1.0"), ("proprietary", None), ("", None),
])
def test_license_terms_resolve_by_code_name_or_url(sessions, text, code):
    with sessions() as session:
        resolved = licensing_service.license_catalogue(session=session).resolve(text)
    assert (resolved.code if resolved else None) == code


def test_parse_uses():
    assert parse_uses("base_training; generation") == {Use.BASE_TRAINING, Use.GENERATION}
    assert parse_uses(["all"]) == ALL_USES
    with pytest.raises(ValueError, match="unknown use"):
        parse_uses("base_training,painting")


@pytest.mark.parametrize("raw, expected", [
    ("a/b.png", "a/b.png"), ("./a//b.png", "a/b.png"), ("a\\b.png", "a/b.png"),
    ("../a.png", None), ("a/../../b.png", None), ("/etc/passwd", None), ("C:/x.png", None), ("a\x00.png", None),
    ("", None),
])
def test_safe_relative_path(raw, expected):
    assert safe_relative_path(raw) == expected


@given(st.text(max_size=40))
def test_safe_relative_path_never_escapes(raw):
    clean = safe_relative_path(raw)
    if clean is not None:
        assert not clean.startswith("/") and ".." not in clean.split("/")


def test_near_duplicate_index_agrees_with_brute_force():
    rng = random.Random(7)
    stored = [rng.getrandbits(64) for _ in range(400)]
    index = NearDuplicateIndex(4)
    for position, value in enumerate(stored):
        index.add(value, position)
    for _ in range(300):
        base = rng.choice(stored)
        query = base ^ sum(1 << rng.randrange(64) for _ in range(rng.randrange(7)))
        best = min((hamming(query, value), position) for position, value in enumerate(stored))
        found = index.nearest(query)
        if best[0] <= 4:
            assert found is not None and found[1] == best[0]
        else:
            assert found is None


def test_perceptual_hash_survives_reencoding_but_separates_pictures():
    picture = images.pattern_image(3, size=128)
    jpeg = images.encode(picture, "JPEG", quality=70)
    from io import BytesIO

    from PIL import Image

    same = hamming(perceptual_hash(picture), perceptual_hash(Image.open(BytesIO(jpeg))))
    other = hamming(perceptual_hash(picture), perceptual_hash(images.pattern_image(4, size=128)))
    assert same <= 2 and other > 10


def test_svg_rendition_is_white_flattened_and_sized():
    inspected = inspect_image(images.pattern_svg(1), ImageLimits(rendition_size=64))
    from io import BytesIO

    from PIL import Image

    rendition = Image.open(BytesIO(inspected.rendition))
    assert rendition.size == (64, 64) and inspected.format == "svg"


def test_large_rasters_are_downscaled_but_small_ones_kept():
    big = inspect_image(images.encode(images.pattern_image(1, size=600), "PNG"), ImageLimits(rendition_size=256))
    small = inspect_image(images.pattern_png(1, size=40), ImageLimits(rendition_size=256))
    from io import BytesIO

    from PIL import Image

    assert Image.open(BytesIO(big.rendition)).size == (256, 256) and (big.width, big.height) == (600, 600)
    assert Image.open(BytesIO(small.rendition)).size == (40, 40)


@pytest.mark.parametrize("data, code", [
    (b"", "empty_file"),
    (b"%PDF-1.7", "unsupported_format"),
    (images.png_header_only(20_000, 20_000), "decompression_bomb"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><rect/></svg>", "svg_invalid"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 1e9 1'/>", "svg_invalid"),
    (b"<svg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 10 10'><rect style='fill:url(http://x/y)'/></svg>",
     "svg_external_reference"),
    (b"<html><body/></html>", "unsupported_format"),
    (b"<svg", "image_corrupt"),
])
def test_image_rejections(data, code):
    with pytest.raises(ImageRejected) as caught:
        inspect_image(data, ImageLimits())
    assert caught.value.code == code


def test_size_limit_is_checked_before_decoding():
    with pytest.raises(ImageRejected) as caught:
        inspect_image(images.pattern_png(1), ImageLimits(max_bytes=100))
    assert caught.value.code == "file_too_large"


@hypothesis_settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash_inspection(data):
    for candidate in (data, b"\x89PNG\r\n\x1a\n" + data, b"<svg " + data):
        try:
            inspect_image(candidate, ImageLimits())
        except ImageRejected:
            pass


def test_format_sniffing():
    assert sniff_format(images.pattern_png(1)) == "png"
    assert sniff_format(images.pattern_jpeg(1)) == "jpeg"
    assert sniff_format(b"\xef\xbb\xbf  <svg/>") == "svg"
