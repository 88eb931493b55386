"""Pro-rata royalty policy.

The contributor pool of a charge is split over the contributors of the model's training
snapshot in proportion to how many of their assets it holds. A customer fine-tune layered on a
licensed base splits the pool first between the base model's contributors and the fine-tune
snapshot's licensors by a configured ratio. A tenant's own brand assets earn nothing: they are
left out of the counts, and a layer made only of them passes its share to the other layer.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction

from foundry.money import split_exact


@dataclass(frozen=True)
class Layer:
    """One snapshot's contributors and their asset counts (brand contributors already excluded)."""

    asset_counts: Mapping[uuid.UUID, int]


def pool_of(charge: int, pool_share: Fraction) -> int:
    """The contributor pool of a charge, rounded down: a fraction of a unit stays with the platform."""
    if not 0 <= pool_share <= 1:
        raise ValueError("the pool share is a fraction between 0 and 1")
    exact = charge * Fraction(pool_share)
    return exact.numerator // exact.denominator


def pro_rata_weights(base: Layer, finetune: Layer | None = None,
                     finetune_share: Fraction = Fraction(1, 2)) -> dict[uuid.UUID, Fraction]:
    """Each contributor's exact fraction of the pool; empty when nobody earns."""
    layers = [(base, Fraction(1) - Fraction(finetune_share)), (finetune, Fraction(finetune_share))]
    live = [(layer, share) for layer, share in layers if layer is not None and sum(layer.asset_counts.values()) > 0]
    if not live:
        return {}
    if sum(share for _, share in live) == 0:
        # the configured ratio gives everything to a layer nobody earns in: the live layers share it
        live = [(layer, Fraction(1)) for layer, _ in live]
    share_sum = sum(share for _, share in live)
    weights: dict[uuid.UUID, Fraction] = {}
    for layer, share in live:
        layer_total = sum(layer.asset_counts.values())
        for contributor, count in layer.asset_counts.items():
            if count:
                weights[contributor] = weights.get(contributor, Fraction(0)) + share / share_sum * count / layer_total
    return weights


def pro_rata(pool: int, base: Layer, finetune: Layer | None = None,
             finetune_share: Fraction = Fraction(1, 2)) -> dict[uuid.UUID, int]:
    """Each contributor's part of ``pool``; the parts sum to ``pool`` exactly (or it is empty when nobody earns)."""
    weights = pro_rata_weights(base, finetune, finetune_share)
    if not weights or pool == 0:
        return {}
    return split_exact(pool, weights)


@dataclass(frozen=True)
class Credit:
    """A fixed share of the pool for contributors the request itself names, whatever the model learnt
    from: a style the prompt names (``named_style``), a catalog image an edit starts from (``edit_source``)."""

    method: str
    contributor_ids: tuple[uuid.UUID, ...]
    share: Fraction

    def __post_init__(self) -> None:
        object.__setattr__(self, "contributor_ids", tuple(self.contributor_ids))
        if not 0 <= self.share <= 1:
            raise ValueError("a credited share is a fraction between 0 and 1")

    @property
    def effective(self) -> bool:
        return bool(self.contributor_ids) and self.share > 0

    def as_dict(self) -> dict:
        return {"method": self.method, "contributor_ids": [str(c) for c in self.contributor_ids],
                "share": f"{self.share.numerator}/{self.share.denominator}"}

    @classmethod
    def from_dict(cls, data: dict) -> Credit:
        return cls(data["method"], tuple(uuid.UUID(c) for c in data["contributor_ids"]), Fraction(data["share"]))


def recorded_credits(parameters: dict) -> list[Credit]:
    """The credits an attribution's recorded parameters name (generations before credits recorded only
    their named styles, under ``named_style``)."""
    if "credits" in parameters:
        return [Credit.from_dict(credit) for credit in parameters["credits"]]
    legacy = parameters.get("named_style")
    return [Credit("named_style", tuple(uuid.UUID(c) for c in legacy["contributor_ids"]),
                   Fraction(legacy["share"]))] if legacy else []


def with_credits(weights: dict, credits: Sequence[Credit]) -> dict:
    """``weights`` (summing to 1) with each credit in turn taking its share off the top, split equally
    over its contributors (its method, no asset). Without effective credits, ``weights`` unchanged."""
    for credit in credits:
        if not credit.effective:
            continue
        scaled = {key: weight * (1 - credit.share) for key, weight in weights.items()}
        for contributor in credit.contributor_ids:
            key = (credit.method, contributor, None)
            scaled[key] = scaled.get(key, Fraction(0)) + credit.share / len(credit.contributor_ids)
        weights = scaled
    return weights


def credited_remainder(credits: Sequence[Credit]) -> Fraction:
    """What the credits leave of the pool for the model's own methods."""
    remainder = Fraction(1)
    for credit in credits:
        if credit.effective:
            remainder *= 1 - credit.share
    return remainder
