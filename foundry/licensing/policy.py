"""Pure licensing rules: may this grant be used for that purpose at that moment?

Plain functions over plain values so every caller (onboarding, snapshots, the training data
loader, generation) asks the same question the same way, and tests can enumerate the cases.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from foundry.licensing.terms import TRAINING_USES, Use

# PLUS Data Mining values under which AI/ML training is not allowed. The "see constraint"
# values need a human to read free text, so they count as prohibited until someone has.
_DATA_MINING_PROHIBITING_TRAINING = frozenset({
    "DMI-PROHIBITED",
    "DMI-PROHIBITED-AIMLTRAINING",
    "DMI-PROHIBITED-GENAIMLTRAINING",
    "DMI-PROHIBITED-EXCEPTSEARCHENGINEINDEXING",
    "DMI-PROHIBITED-SEECONSTRAINT",
    "DMI-PROHIBITED-SEEEMBEDDEDRIGHTSEXPR",
})


@dataclass(frozen=True)
class GrantTerms:
    """The facts of a grant that decide whether it permits a use."""

    uses: frozenset[Use]
    valid_from: datetime
    valid_until: datetime | None
    revoked_at: datetime | None
    data_mining: str | None = None


def data_mining_prohibits_training(data_mining: str | None) -> bool:
    return (data_mining or "").upper() in _DATA_MINING_PROHIBITING_TRAINING


def allowed_uses(requested: frozenset[Use], data_mining: str | None) -> frozenset[Use]:
    """The uses a new grant may carry: embedded rights that forbid AI training always win."""
    if data_mining_prohibits_training(data_mining):
        return requested - TRAINING_USES
    return requested


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
    if use in TRAINING_USES and data_mining_prohibits_training(terms.data_mining):
        return "data_mining_prohibited"
    return None


def permits(terms: GrantTerms, use: Use, at: datetime) -> bool:
    return why_not_permitted(terms, use, at) is None
