"""The license terms the foundry knows how to honour.

Onboarding accepts a grant only under known terms: an unknown license string is rejected
rather than guessed at. Terms are matched by code, by canonical URL or by full name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
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


KNOWN_LICENSES: dict[str, LicenseTerms] = {
    terms.code: terms
    for terms in (
        LicenseTerms("CC0-1.0", "Creative Commons Zero v1.0 Universal",
                     "https://creativecommons.org/publicdomain/zero/1.0/", False, False),
        LicenseTerms("CC-BY-4.0", "Creative Commons Attribution 4.0 International",
                     "https://creativecommons.org/licenses/by/4.0/", True, False),
        LicenseTerms("CC-BY-SA-4.0", "Creative Commons Attribution Share Alike 4.0 International",
                     "https://creativecommons.org/licenses/by-sa/4.0/", True, True),
        LicenseTerms("FOUNDRY-CONTRIBUTOR-1.0", "Foundry Contributor AI Licence 1.0",
                     "https://foundry.invalid/licenses/contributor-1.0", True, False),
        LicenseTerms(BRAND_LICENSE, "Tenant brand material, for the tenant's own fine-tunes only",
                     "https://foundry.invalid/licenses/tenant-brand-1.0", False, False),
    )
}

_URL_PREFIX = re.compile(r"^https?://(www\.)?")
_DEED_SUFFIX = re.compile(r"(/(deed|legalcode)(\.[a-z-]+)?)?/?$", re.IGNORECASE)


def _normalise_url(url: str) -> str:
    return _DEED_SUFFIX.sub("", _URL_PREFIX.sub("", url.strip().lower()))


_BY_KEY: dict[str, LicenseTerms] = {}
for _terms in KNOWN_LICENSES.values():
    _BY_KEY[_terms.code.lower()] = _terms
    _BY_KEY[_terms.name.lower()] = _terms
    _BY_KEY[_normalise_url(_terms.url)] = _terms
    _BY_KEY[_terms.code.lower().replace("-", " ")] = _terms
_BY_KEY["cc by-sa 4.0"] = KNOWN_LICENSES["CC-BY-SA-4.0"]
_BY_KEY["cc by 4.0"] = KNOWN_LICENSES["CC-BY-4.0"]


def resolve_license(text: str | None) -> LicenseTerms | None:
    """The known terms that ``text`` (code, name or URL) names, or None."""
    if not text or not text.strip():
        return None
    key = text.strip().lower()
    if key in _BY_KEY:
        return _BY_KEY[key]
    if "://" in key or key.startswith("creativecommons.org"):
        return _BY_KEY.get(_normalise_url(key))
    return None


def parse_uses(value: object) -> frozenset[Use]:
    """Uses from a manifest cell: a list, or text separated by ; , | or spaces. Raises ValueError."""
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [str(item) for item in value]
    elif isinstance(value, str):
        items = re.split(r"[;,|\s]+", value)
    else:
        raise ValueError(f"permitted uses must be text or a list, not {type(value).__name__}")
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
