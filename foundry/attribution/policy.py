"""Pure rules of influence attribution: which index is valid, how scores become a pool split."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Protocol

from provenance.influence_shares import AssetShare, InfluenceShares, influence_shares

DEFAULT_ALPHA_BPS = 5000
"""Half of each pool by per-output influence, half pro rata: influence is measured (see
``benchmarks/attribution.py``) but noisy on small models, and the pro-rata half keeps paying
every contributor whose images are in the weights."""


INFLUENCE_TOP_K = 50
"""Training images kept per output: past the first few dozen, D-TRAK scores are mostly noise."""
INFLUENCE_MIN_SHARE = Fraction(1, 100)
"""Contributors under 1 % of an output's influence are dropped (their part goes to the rest)."""


def index_fingerprint(*, snapshot_merkle_root: str | None, weights_sha256: str) -> dict[str, str]:
    """What an index must match to describe a model: its training snapshot and its exact weights."""
    return {"snapshot_merkle_root": snapshot_merkle_root or "", "weights_sha256": weights_sha256}


def alpha_from_bps(bps: int) -> Fraction:
    if not 0 <= bps <= 10_000:
        raise ValueError("alpha is between 0 and 10000 basis points")
    return Fraction(bps, 10_000)


class ScoredRows(Protocol):
    """Exact scores of some of an index's rows (``provenance.influence.Scored``)."""

    positions: Sequence[int]
    scores: Sequence[float]


def outputs_influence(per_image_scores: Sequence[ScoredRows], *, asset_ids: Sequence[uuid.UUID],
                      contributor_ids: Sequence[uuid.UUID], top_k: int = INFLUENCE_TOP_K,
                      min_share: Fraction = INFLUENCE_MIN_SHARE) -> InfluenceShares | None:
    """A generation's influence from each output's scored rows (every row, or a search's candidates):
    shares per output, then their mean."""
    per_image = per_output_shares(per_image_scores, asset_ids=asset_ids, contributor_ids=contributor_ids,
                                  top_k=top_k, min_share=min_share)
    return mean_shares(per_image) if per_image else None


def per_output_shares(per_image_scores: Sequence[ScoredRows], *, asset_ids: Sequence[uuid.UUID],
                      contributor_ids: Sequence[uuid.UUID], top_k: int = INFLUENCE_TOP_K,
                      min_share: Fraction = INFLUENCE_MIN_SHARE) -> list[InfluenceShares]:
    """Each output's own influence shares, in the outputs' order."""
    return [influence_shares(scored.scores, [asset_ids[p] for p in scored.positions],
                             [contributor_ids[p] for p in scored.positions], top_k=top_k, min_share=min_share)
            for scored in per_image_scores]


class ScoredOutput(Protocol):
    """One output's scores for evidence and for payment (``provenance.influence.OutputScores``)."""

    evidence: ScoredRows
    payment: ScoredRows


EVIDENCE_ASSETS = 10
"""Training images kept per output as its evidence (what a contributor is shown beside the output), and as
many of those it paid most."""


def output_evidence(scored: ScoredOutput, shares: InfluenceShares, *, asset_ids: Sequence[uuid.UUID],
                    contributor_ids: Sequence[uuid.UUID], top: int = EVIDENCE_ASSETS) -> list[dict]:
    """One output's training images as recorded with the image: its ``top`` most influential by the evidence
    score (``role`` evidence), then the ``top`` best-paid of those that are not among them (``role`` paid).
    Each with its contributor, its part of this output's influence pool (ppm, 0 when not paid), its evidence
    score (None when the evidence search did not score it) and the score that paid it."""
    evidence_score = {int(p): float(s) for p, s in zip(scored.evidence.positions, scored.evidence.scores, strict=True)}
    payment_score = {int(p): float(s) for p, s in zip(scored.payment.positions, scored.payment.scores, strict=True)}
    position_of = {asset_ids[p]: p for p in payment_score}
    paid = {item.asset_id: item.share for item in shares.assets}
    ranked = sorted((p for p, s in evidence_score.items() if s > 0), key=lambda p: (-evidence_score[p], p))[:top]
    shown = [(p, "evidence") for p in ranked]
    among = set(ranked)
    shown += [(position, "paid") for position in (position_of[item.asset_id] for item in shares.assets)
              if position not in among][:top]
    return [{"asset_id": str(asset_ids[p]), "contributor_id": str(contributor_ids[p]), "role": role,
             "share_ppm": int(paid.get(asset_ids[p], 0) * 1_000_000), "score": evidence_score.get(p),
             "payment_score": payment_score.get(p)} for p, role in shown]


def mean_shares(per_image: Sequence[InfluenceShares], eligible: set[uuid.UUID] | None = None) -> InfluenceShares | None:
    """One generation's influence: each image counts equally; assets of ineligible contributors
    (a tenant's own brand images) are dropped and the rest renormalised. None if nothing is left."""
    asset_weights: dict[tuple[uuid.UUID, uuid.UUID], Fraction] = {}
    counted = [shares for shares in per_image if shares.assets]
    for shares in counted:
        for item in shares.assets:
            if eligible is None or item.contributor_id in eligible:
                key = (item.asset_id, item.contributor_id)
                asset_weights[key] = asset_weights.get(key, Fraction(0)) + item.share / len(counted)
    total = sum(asset_weights.values())
    if not total:
        return None
    assets = sorted((AssetShare(asset, contributor, weight / total)
                     for (asset, contributor), weight in asset_weights.items()),
                    key=lambda item: (-item.share, str(item.asset_id)))
    contributors: dict[uuid.UUID, Fraction] = {}
    for item in assets:
        contributors[item.contributor_id] = contributors.get(item.contributor_id, Fraction(0)) + item.share
    return InfluenceShares(contributors, assets, dict(per_image[0].parameters))


def blended_weights(pro_rata: Mapping[uuid.UUID, Fraction], influence: InfluenceShares | None,
                    alpha: Fraction) -> dict[tuple[str, uuid.UUID, uuid.UUID | None], Fraction]:
    """Exact pool weights per (method, contributor, asset): ``alpha`` by influence, split over the
    influential assets, and ``1 - alpha`` pro rata per contributor. Without influence, all pro rata."""
    if not 0 <= alpha <= 1:
        raise ValueError("alpha is a fraction between 0 and 1")
    if influence is None or not influence.assets:
        alpha = Fraction(0)
    if not pro_rata:
        alpha = Fraction(1) if alpha else Fraction(0)
    weights: dict[tuple[str, uuid.UUID, uuid.UUID | None], Fraction] = {}
    pro_total = sum(pro_rata.values())
    if alpha < 1 and pro_total:
        for contributor, weight in pro_rata.items():
            if weight:
                weights[("pro_rata", contributor, None)] = (1 - alpha) * weight / pro_total
    if alpha and influence is not None:
        for item in influence.assets:
            if item.share:
                weights[("influence", item.contributor_id, item.asset_id)] = alpha * item.share
    return weights


DISPUTE_SUPPORTED_RANK = 0.8
"""A disputed contributor whose images were forgotten with the output more than 80 % of the other
contributors' were: the output depends on them (the split is supported)."""
DISPUTE_UNSUPPORTED_RANK = 0.5
"""At or below the median contributor: the output owes them no more than a typical contributor."""


def dispute_verdict(disputed_rise: float, others_rise: Sequence[float]) -> tuple[float, str]:
    """(the disputed contributor's rank among the others, 0-1, and the verdict) from their images' mean loss
    rise when the output is unlearnt. Ties count half, so identical rises rank 0.5."""
    if not others_rise:
        return 0.5, "inconclusive"
    rank = (sum(rise < disputed_rise for rise in others_rise)
            + 0.5 * sum(rise == disputed_rise for rise in others_rise)) / len(others_rise)
    if rank >= DISPUTE_SUPPORTED_RANK:
        return rank, "supported"
    if rank <= DISPUTE_UNSUPPORTED_RANK:
        return rank, "not_supported"
    return rank, "inconclusive"
