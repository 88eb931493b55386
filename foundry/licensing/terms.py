"""License terms: what they are called and which uses they can grant.

Onboarding accepts a grant only under registered terms (the ``license_terms`` table; an admin
adds terms with ``foundry licenses add`` or ``POST /v1/license-terms``): an unknown license
string is rejected rather than guessed at. Terms are matched by SPDX code, by canonical URL or by
full name; the matching itself is pure, over the terms the caller loaded.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum


class Use(StrEnum):
    """What a grant may permit. Training uses are separate so a contributor can allow one only."""

    BASE_TRAINING = "base_training"
    CUSTOMER_FINETUNE = "customer_finetune"
    GENERATION = "generation"


TRAINING_USES = frozenset({Use.BASE_TRAINING, Use.CUSTOMER_FINETUNE})
BRAND_LICENSE = "TENANT-BRAND-1.0"
ALL_USES = frozenset(Use)


@dataclass(frozen=True)
class LicenseTerms:
    code: str
    name: str
    url: str
    requires_attribution: bool
    share_alike: bool
    grantable_uses: frozenset[Use] = field(default=ALL_USES)
    """The uses a grant under these terms may carry; requested uses beyond them are dropped."""


_URL_PREFIX = re.compile(r"^https?://(www\.)?")
_DEED_SUFFIX = re.compile(r"(/(deed|legalcode)(\.[a-z-]+)?)?/?$", re.IGNORECASE)
_SEPARATORS = re.compile(r"[\s_-]+")


def normalise_url(url: str) -> str:
    """A licence URL without scheme, ``www.``, deed/legalcode suffix or trailing slash."""
    return _DEED_SUFFIX.sub("", _URL_PREFIX.sub("", url.strip().lower()))


def normalise_name(text: str) -> str:
    """A code or name compared without case and with - _ and spaces alike ("cc by-sa 4.0" = "CC-BY-SA-4.0")."""
    return _SEPARATORS.sub(" ", text.strip().lower()).strip()


def _looks_like_url(text: str) -> bool:
    key = text.strip().lower()
    return "://" in key or key.startswith(("creativecommons.org", "www."))


class LicenseCatalogue:
    """The registered terms, indexed for matching a manifest's license text."""

    def __init__(self, terms: Iterable[LicenseTerms]):
        self.terms = sorted(terms, key=lambda t: t.code.lower())
        self._by_name: dict[str, LicenseTerms] = {}
        self._by_url: dict[str, LicenseTerms] = {}
        for item in self.terms:
            self._by_name.setdefault(normalise_name(item.code), item)
            self._by_url.setdefault(normalise_url(item.url), item)
        for item in self.terms:  # codes win over names when they collide
            self._by_name.setdefault(normalise_name(item.name), item)

    @property
    def codes(self) -> list[str]:
        return [item.code for item in self.terms]

    def resolve(self, text: str | None) -> LicenseTerms | None:
        """The terms that ``text`` (code, name or URL) names, or None."""
        if not text or not text.strip():
            return None
        if _looks_like_url(text):
            return self._by_url.get(normalise_url(text))
        return self._by_name.get(normalise_name(text))

    def clash(self, candidate: LicenseTerms) -> LicenseTerms | None:
        """Registered terms that ``candidate``'s code, name or URL would be confused with, if any."""
        for key in (candidate.code, candidate.name):
            found = self._by_name.get(normalise_name(key))
            if found is not None:
                return found
        return self._by_url.get(normalise_url(candidate.url))

    def unknown_message(self, text: str | None) -> str:
        """Why ``text`` was refused, what is accepted, and how an admin adds terms."""
        accepted = ", ".join(self.codes) or "none"
        return (f"unknown license terms {text!r}; accepted terms: {accepted} (code, name or URL). "
                "An admin registers other terms that grant AI uses with 'foundry licenses add' "
                "or POST /v1/license-terms")


def parse_uses(value: object) -> frozenset[Use]:
    """Uses from a manifest cell: a list, or text separated by ; , | or spaces. Raises ValueError."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [str(item) for item in value]
    elif isinstance(value, str):
        items = re.split(r"[;,|\s]+", value)
    else:
        raise ValueError(f"permitted uses must be text or a list, not {type(value).__name__}")  # noqa: TRY004
    uses = set()
    for item in (i.strip().lower().replace("-", "_") for i in items):
        if not item:
            continue
        if item == "all":
            uses |= ALL_USES
            continue
        try:
            uses.add(Use(item))
        except ValueError:
            known = ", ".join(u.value for u in Use)
            raise ValueError(f"unknown use {item!r} (known: {known}, all)") from None
    return frozenset(uses)
