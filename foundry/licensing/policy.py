"""Pure licensing rules: may this grant be used for that purpose at that moment?

Plain functions over plain values so every caller (onboarding, snapshots, the training data
loader, generation) asks the same question the same way, and tests can enumerate the cases.

Embedded rights (the PLUS "Data Mining" property, wherever a file states it) are judged by one
function, :func:`judge_embedded_rights`: the import of every format and layout, and the gate of
every existing grant, ask it. It fails closed: training is granted only when nothing in the file
prohibits it, contradicts itself or could not be read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from foundry.licensing.terms import TRAINING_USES, Use

# The PLUS Data Mining vocabulary (http://ns.useplus.org/ldf/vocab/DMI-...).
DMI_UNSPECIFIED = "DMI-UNSPECIFIED"
DMI_ALLOWED = "DMI-ALLOWED"
DMI_PROHIBITED_AIML_TRAINING = "DMI-PROHIBITED-AIMLTRAINING"
DMI_PROHIBITED_GENAIML_TRAINING = "DMI-PROHIBITED-GENAIMLTRAINING"
DMI_PROHIBITED_EXCEPT_SEARCH_ENGINE_INDEXING = "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING"
DMI_PROHIBITED = "DMI-PROHIBITED"
DMI_PROHIBITED_SEE_CONSTRAINT = "DMI-PROHIBITED-SEECONSTRAINT"
DMI_PROHIBITED_SEE_EMBEDDED_RIGHTS_EXPR = "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR"
DMI_PROHIBITED_SEE_LINKED_RIGHTS_EXPR = "DMI-PROHIBITED-SEELINKEDRIGHTSEXPR"

DATA_MINING_CODES: frozenset[str] = frozenset({
    DMI_UNSPECIFIED,
    DMI_ALLOWED,
    DMI_PROHIBITED_AIML_TRAINING,
    DMI_PROHIBITED_GENAIML_TRAINING,
    DMI_PROHIBITED_EXCEPT_SEARCH_ENGINE_INDEXING,
    DMI_PROHIBITED,
    DMI_PROHIBITED_SEE_CONSTRAINT,
    DMI_PROHIBITED_SEE_EMBEDDED_RIGHTS_EXPR,
    DMI_PROHIBITED_SEE_LINKED_RIGHTS_EXPR,
})
# Every DMI-PROHIBITED variant blocks training: EXCEPTSEARCHENGINEINDEXING allows nothing but
# search indexing, and SEECONSTRAINT / SEE*RIGHTSEXPR defer to terms no machine can evaluate.
DATA_MINING_CODES_PROHIBITING_TRAINING: frozenset[str] = DATA_MINING_CODES - {DMI_ALLOWED, DMI_UNSPECIFIED}
PLUS_VOCAB_PREFIX = "http://ns.useplus.org/ldf/vocab/"
_PLUS_VOCAB_PREFIXES = (PLUS_VOCAB_PREFIX, "https://ns.useplus.org/ldf/vocab/")

# Reasons (stable codes, in import reports and gate violations) why training may not be granted.
DATA_MINING_PROHIBITED = "data_mining_prohibited"
DATA_MINING_UNRECOGNISED = "data_mining_unrecognised"
DATA_MINING_CONFLICT = "data_mining_conflict"
EMBEDDED_RIGHTS_UNREADABLE = "embedded_rights_unreadable"
DATA_MINING_UNSPECIFIED = "data_mining_unspecified"


def normalise_data_mining(value: str | None) -> str | None:
    """Reduce a PLUS Data Mining value (vocabulary URI or bare code) to its vocabulary code.

    Case and surrounding whitespace do not matter. Returns ``None`` for a blank value.
    Unrecognised values come back stripped but otherwise as written, so that they stay visible
    (and block training).
    """
    text = (value or "").strip()
    if not text:
        return None
    candidate = text
    for prefix in _PLUS_VOCAB_PREFIXES:
        if text.lower().startswith(prefix):
            candidate = text[len(prefix):]
            break
    code = candidate.upper()
    return code if code in DATA_MINING_CODES else text


@dataclass(frozen=True)
class TrainingVerdict:
    """Whether embedded rights let a grant carry the training uses, and if not, why."""

    allows_training: bool
    reason: str | None = None
    explanation: str = ""


def judge_embedded_rights(data_mining: Iterable[str], *, unread: Iterable[str] = (),
                          licence_is_the_grant: bool) -> TrainingVerdict:
    """The one rule for embedded rights: may training uses be granted?

    ``data_mining``: every PLUS Data Mining value the file states, from every packet and every
    carrier (XMP, IPTC IIM), normalised to a vocabulary code where it is one and kept as written
    otherwise. ``unread``: codes of metadata that could not be read completely (malformed or
    oversized packets, a packet limit reached); such a file might hold a prohibition we did not
    see. ``licence_is_the_grant``: True when a licence from outside the file (a manifest row, the
    OpenMoji package) grants the uses; False when the file itself must grant them.

    Explicit allow means: the file states ``DMI-ALLOWED`` and nothing else. Where a licence from
    outside the file is the grant, a file that says nothing (no value, or ``DMI-UNSPECIFIED``) does
    not take training away. Anything else fails closed: any prohibition, any value outside the
    vocabulary, two different values, or metadata that could not be read.
    """
    values = list(dict.fromkeys(data_mining))
    unread = list(dict.fromkeys(unread))
    prohibiting = [value for value in values if value in DATA_MINING_CODES_PROHIBITING_TRAINING]
    if prohibiting:
        return TrainingVerdict(False, DATA_MINING_PROHIBITED,
                               f"the file's PLUS Data Mining value is {prohibiting[0]}")
    unrecognised = [value for value in values if value not in DATA_MINING_CODES]
    if unrecognised:
        return TrainingVerdict(False, DATA_MINING_UNRECOGNISED,
                               f"the file's PLUS Data Mining value {unrecognised[0][:80]!r} is not in the vocabulary")
    if len(values) > 1:
        return TrainingVerdict(False, DATA_MINING_CONFLICT,
                               f"the file states different PLUS Data Mining values: {', '.join(values)}")
    if unread:
        return TrainingVerdict(False, EMBEDDED_RIGHTS_UNREADABLE,
                               f"the file's rights metadata could not be read completely ({', '.join(unread)})")
    if values == [DMI_ALLOWED] or licence_is_the_grant:
        return TrainingVerdict(True)
    return TrainingVerdict(False, DATA_MINING_UNSPECIFIED,
                           "the file does not state PLUS Data Mining = DMI-ALLOWED")


@dataclass(frozen=True)
class GrantTerms:
    """The facts of a grant that decide whether it permits a use."""

    uses: frozenset[Use]
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None
    data_mining: str | None = None


def allowed_uses(requested: frozenset[Use], verdict: TrainingVerdict) -> frozenset[Use]:
    """The uses a new grant may carry: embedded rights that do not allow AI training always win."""
    return requested if verdict.allows_training else requested - TRAINING_USES


def grant_training_verdict(data_mining: str | None) -> TrainingVerdict:
    """The embedded-rights verdict for a stored grant, whose licence is the grant."""
    code = normalise_data_mining(data_mining)
    return judge_embedded_rights([code] if code else [], licence_is_the_grant=True)


def why_not_permitted(terms: GrantTerms, use: Use, at: datetime, *,
                      opted_out_at: datetime | None = None) -> str | None:
    """The reason ``terms`` do not permit ``use`` at ``at``, or None when they do.

    ``opted_out_at``: when the contributor opted out of ``use`` for all their assets, if they did.
    """
    if terms.revoked_at is not None and terms.revoked_at <= at:
        return "revoked"
    if opted_out_at is not None and opted_out_at <= at:
        return "opted_out"
    if at < terms.valid_from:
        return "not_yet_valid"
    if terms.valid_until is not None and at >= terms.valid_until:
        return "expired"
    if use not in terms.uses:
        return "use_not_granted"
    if use in TRAINING_USES:
        verdict = grant_training_verdict(terms.data_mining)
        if not verdict.allows_training:
            return verdict.reason
    return None


def permits(terms: GrantTerms, use: Use, at: datetime) -> bool:
    return why_not_permitted(terms, use, at) is None
