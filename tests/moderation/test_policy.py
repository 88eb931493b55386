"""The pure rules of safe prompts: how phrases match and what a style names."""

from __future__ import annotations

import uuid

import pytest

from foundry.moderation.policy import contains_phrase, normalize, resolve_style, style_names
from foundry.royalties.policy import Credit, with_credits


@pytest.mark.parametrize(("text", "phrase", "matched"), [
    ("a portrait of Mickey-Mouse waving", "mickey mouse", True),
    ("MICKEY   MOUSE!", "Mickey Mouse", True),
    ("ｍｉｃｋｅｙ mouse", "mickey mouse", True),  # full-width letters fold to the same words
    ("mickeymouse", "mickey mouse", False),
    ("a bunch of grapes", "ape", False),  # whole words only
    ("an ape", "ape", True),
    ("anything", "!!!", False),  # a phrase without words matches nothing
])
def test_phrases_match_as_whole_words_in_any_case(text, phrase, matched):
    assert contains_phrase(text, phrase) is matched


def test_styles_are_read_up_to_the_next_punctuation():
    assert style_names("a cat in the style of Alice Smith, on a beach") == ["Alice Smith"]
    assert style_names("a cat, In The Manner Of bob jones. Also styled after Carol") == ["bob jones", "Carol"]
    assert style_names("a red heart") == [] and normalize("  Émile—Zola ") == "émile zola"


def test_a_style_names_a_contributor_by_their_whole_name():
    alice, al = uuid.uuid4(), uuid.uuid4()
    consenting = {"alice smith": alice, "al": al}
    assert resolve_style("Alice Smith on a beach", consenting).contributor_id == alice
    assert resolve_style("al", consenting).contributor_id == al
    assert resolve_style("Alice Smithson", consenting).contributor_id is None
    assert resolve_style("alfred", consenting).contributor_id is None


def test_named_styles_take_their_share_before_the_other_methods():
    from fractions import Fraction

    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    weights = {("pro_rata", a, None): Fraction(3, 4), ("influence", b, uuid.uuid4()): Fraction(1, 4)}
    assert with_credits(weights, [Credit("named_style", (), Fraction(1, 5))]) is weights
    styled = with_credits(weights, [Credit("named_style", (c, a), Fraction(1, 5))])
    assert sum(styled.values()) == 1
    assert styled[("named_style", c, None)] == styled[("named_style", a, None)] == Fraction(1, 10)
    assert styled[("pro_rata", a, None)] == Fraction(3, 5)
    with pytest.raises(ValueError):
        Credit("named_style", (c,), Fraction(3, 2))
    # an edit of a catalog image credits its contributor after the named styles, off what they left
    both = with_credits(weights, [Credit("named_style", (c,), Fraction(1, 5)), Credit("edit_source", (b,), Fraction(1, 2))])
    assert sum(both.values()) == 1
    assert both[("edit_source", b, None)] == Fraction(1, 2) and both[("named_style", c, None)] == Fraction(1, 10)


def test_the_command_line_denies_reports_and_records_consent(settings):
    from foundry import migrate
    from foundry.catalog.models import Contributor
    from foundry.db import session_factory
    from tests.test_cli_and_migrations import cli

    migrate.upgrade(settings.resolved_database_url)
    with session_factory(settings.resolved_database_url)() as session, session.begin():
        contributor = Contributor(display_name="Alice Smith", external_ref="alice")
        session.add(contributor)
        session.flush()
        contributor_id = str(contributor.id)
    denied = cli(settings, "moderation", "deny", "Jane Celebrity", "--kind", "public_figure").stdout
    rule_id = denied.split()[1].rstrip(":")
    assert "Jane Celebrity" in cli(settings, "moderation", "rules").stdout
    refused = cli(settings, "moderation", "deny", "jane celebrity", check=False)
    assert refused.returncode != 0 and "moderation_rule_exists" in refused.stdout + refused.stderr
    assert '"refusals": 0' in cli(settings, "moderation", "report").stdout
    assert "allowed" in cli(settings, "moderation", "consent", contributor_id, "--allow").stdout
    assert "retired" in cli(settings, "moderation", "allow", rule_id).stdout
    assert "Jane Celebrity" not in cli(settings, "moderation", "rules").stdout
