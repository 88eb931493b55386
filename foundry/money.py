"""Money in integer minor units, and exact splits.

Every split hands out exactly the total: the largest-remainder method gives each part the floor
of its exact share, then the leftover units one by one to the largest fractional remainders,
ties broken by a caller-supplied stable key. No floats touch an amount.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class Money:
    amount: int
    currency: str

    def __post_init__(self) -> None:
        if not isinstance(self.amount, int) or isinstance(self.amount, bool):
            raise TypeError("amounts are integers in minor units")
        if len(self.currency) != 3 or not self.currency.isalpha() or not self.currency.isupper():
            raise ValueError(f"{self.currency!r} is not an ISO 4217 code")


def split_exact(total: int, weights: Mapping[Hashable, int | Fraction], *, tie_key=str) -> dict[Hashable, int]:
    """Split ``total`` minor units in proportion to ``weights``; the parts sum to ``total`` exactly.

    Weights must be non-negative with a positive sum; a zero weight always gets zero. Ties in the
    fractional remainders go to the smaller ``tie_key`` so the result never depends on dict order.
    """
    if not isinstance(total, int) or isinstance(total, bool) or total < 0:
        raise ValueError("the total must be a non-negative integer of minor units")
    if not weights:
        raise ValueError("nothing to split between")
    exact_weights = {key: Fraction(weight) for key, weight in weights.items()}
    if any(weight < 0 for weight in exact_weights.values()):
        raise ValueError("weights must be non-negative")
    weight_sum = sum(exact_weights.values())
    if weight_sum <= 0:
        raise ValueError("weights must not all be zero")
    shares = {key: total * weight / weight_sum for key, weight in exact_weights.items()}
    parts = {key: share.numerator // share.denominator for key, share in shares.items()}
    leftover = total - sum(parts.values())
    order = sorted(shares, key=lambda key: (-(shares[key] - parts[key]), tie_key(key)))
    for key in order[:leftover]:
        parts[key] += 1
    return parts
