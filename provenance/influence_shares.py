"""From influence scores to exact shares: clipping, top-k, small-share threshold, and the blend.

Pure and torch-free, so the royalty code can use it without loading a model.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction


@dataclass(frozen=True)
class AssetShare:
    asset_id: uuid.UUID
    contributor_id: uuid.UUID
    share: Fraction
    """Exact share of the influence part; the kept assets' shares sum to 1."""


@dataclass(frozen=True)
class InfluenceShares:
    contributors: dict[uuid.UUID, Fraction]
    """Each contributor's exact share of the influence part (sums to 1, or empty)."""
    assets: list[AssetShare]
    """The kept assets, largest share first; per contributor they sum to its share."""
    parameters: dict


def influence_shares(scores: Sequence[float], asset_ids: Sequence[uuid.UUID], contributor_ids: Sequence[uuid.UUID],
                     *, top_k: int = 50, min_share: Fraction = Fraction(1, 100), power: int = 1) -> InfluenceShares:
    """Negative scores clipped, the top ``top_k`` assets kept, contributors under ``min_share`` of
    the kept scores dropped (their part goes to the rest). Shares are exact fractions of the
    float scores, so the same scores always give the same split.

    ``power``: each kept score is raised to it before the split (1: shares in proportion to the
    scores). A higher power pays more of an output to its closest images, so a near-copy pays
    its source's author most rather than whoever owns many loosely similar images."""
    if power < 1:
        raise ValueError("power is a whole number of at least 1")
    parameters = {"top_k": top_k, "min_share": f"{min_share.numerator}/{min_share.denominator}", "clip": "negative"}
    if power != 1:
        parameters["power"] = power
    ranked = sorted(((float(s), a, c) for s, a, c in zip(scores, asset_ids, contributor_ids, strict=True)
                     if float(s) > 0), key=lambda item: (-item[0], str(item[1])))[:top_k]
    if power != 1 and ranked:
        # relative to the top score, so the power neither overflows nor depends on the scores' scale
        top = ranked[0][0]
        ranked = [(score, asset, contributor) for score, asset, contributor in
                  (((s / top) ** power, a, c) for s, a, c in ranked) if score > 0]
    total = sum(Fraction(score) for score, _, _ in ranked)
    if total == 0:
        return InfluenceShares({}, [], parameters)
    raw: dict[uuid.UUID, Fraction] = {}
    for score, _, contributor in ranked:
        raw[contributor] = raw.get(contributor, Fraction(0)) + Fraction(score) / total
    kept = [(score, asset, contributor) for score, asset, contributor in ranked if raw[contributor] >= min_share]
    kept_total = sum(Fraction(score) for score, _, _ in kept)
    assets = [AssetShare(asset, contributor, Fraction(score) / kept_total) for score, asset, contributor in kept]
    contributors: dict[uuid.UUID, Fraction] = {}
    for item in assets:
        contributors[item.contributor_id] = contributors.get(item.contributor_id, Fraction(0)) + item.share
    return InfluenceShares(contributors, assets, parameters)


def blend(pro_rata: Mapping[uuid.UUID, Fraction], influence: Mapping[uuid.UUID, Fraction],
          alpha: Fraction) -> dict[uuid.UUID, Fraction]:
    """alpha of the pool by influence, the rest pro rata; all influence to pro rata when there is none."""
    if not 0 <= alpha <= 1:
        raise ValueError("alpha is a fraction between 0 and 1")
    if not influence:
        alpha = Fraction(0)
    pro_total, influence_total = sum(pro_rata.values()), sum(influence.values())
    weights: dict[uuid.UUID, Fraction] = {}
    if pro_total:
        for contributor, weight in pro_rata.items():
            weights[contributor] = weights.get(contributor, Fraction(0)) + (1 - alpha) * weight / pro_total
    if influence_total and alpha:
        for contributor, weight in influence.items():
            weights[contributor] = weights.get(contributor, Fraction(0)) + alpha * weight / influence_total
    return {c: w for c, w in weights.items() if w > 0}
