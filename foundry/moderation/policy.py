"""Pure rules of safe prompts: how text is compared, which phrases match, and what names a style.

Text is compared after Unicode compatibility folding, case folding and collapsing everything that is
not a letter or digit to single spaces, so ``M1CKEY`` is not ``mickey`` but ``Mickey-Mouse`` and
``mickey  mouse`` are the same phrase. A phrase matches only as whole words.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

RULE_KINDS = ("public_figure", "trademark", "term")
NAMED_STYLE_RULE = "named_style_without_consent"
"""The built-in rule: "in the style of NAME" needs NAME to be a contributor who agreed to be named."""

_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)
_STYLE_OF = re.compile(r"\b(?:in the style of|in the manner of|style of|styled after|in the style by)\s+"
                       r"([^,.;:!?()\[\]{}\n]+)", re.IGNORECASE)
STYLE_NAME_MODES = ("strict", "contributors")
"""``strict``: every "in the style of ..." must name a contributor who agreed to be named; ``contributors``:
only references to contributors are checked (other styles, "in the style of watercolor", pass)."""


def normalize(text: str) -> str:
    """The form every comparison uses: folded, lower case, words separated by single spaces."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_NOT_WORD.sub(" ", folded).split())


def contains_phrase(text: str, phrase: str, *, text_normalized: bool = False) -> bool:
    """Whether ``phrase`` occurs in ``text`` as whole words (both compared as :func:`normalize` makes them;
    ``text_normalized``: ``text`` already is, when one text is checked against many phrases)."""
    wanted = normalize(phrase)
    return bool(wanted) and f" {wanted} " in f" {text if text_normalized else normalize(text)} "


def style_names(text: str) -> list[str]:
    """What each "in the style of ..." (and its variants) names, up to the next punctuation."""
    return [name.strip() for name in _STYLE_OF.findall(text) if name.strip()]


@dataclass(frozen=True)
class NamedStyle:
    """A style request, resolved: the name as written and the contributor it names (None: nobody who
    agreed to be named)."""

    name: str
    contributor_id: object | None


def resolve_style(name: str, consenting: dict[str, object]) -> NamedStyle:
    """``consenting`` maps normalised display names of consenting contributors to their ids. The words
    after "style of" name a contributor when they start with that contributor's whole name."""
    written = normalize(name)
    for display, contributor_id in sorted(consenting.items(), key=lambda item: -len(item[0])):
        if written == display or written.startswith(display + " "):
            return NamedStyle(name, contributor_id)
    return NamedStyle(name, None)
