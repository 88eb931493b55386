"""Pure rules for which assets a snapshot may take: the fixed held-out split of the catalog.

Quality is measured on images no measured model has seen. The split is a pure function of the
shared catalog (never of licence states or a snapshot's other filters), so a training snapshot
that excludes it and an evaluation snapshot that takes only it are disjoint by construction, and
anyone can recompute it:

* assets are grouped into *families* that must stay on one side: near-duplicates (the perceptual
  hash the catalog records) and assets sharing a ``family:`` tag (skin-tone variants of one
  drawing) are joined;
* families are stratified by the ``group:`` tag (assets without one form their own stratum);
* within a stratum, families are taken in the order of sha256(split name + the family's smallest
  asset sha256) until at least ``fraction`` of the stratum's assets are held out.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

HELDOUT_SPLIT = "quality-v1"
HELDOUT_FRACTION = 0.10
GROUP_TAG = "group:"
FAMILY_TAG = "family:"


@dataclass(frozen=True)
class SplitCandidate:
    """What the split needs to know of one catalog asset."""

    asset_id: uuid.UUID
    sha256: str
    tags: tuple[str, ...]
    near_duplicate_of: uuid.UUID | None = None

    @property
    def stratum(self) -> str:
        return next((t.removeprefix(GROUP_TAG) for t in self.tags if t.startswith(GROUP_TAG)), "")


class _Families:
    """Union-find over asset ids."""

    def __init__(self) -> None:
        self.parent: dict[uuid.UUID, uuid.UUID] = {}

    def find(self, item: uuid.UUID) -> uuid.UUID:
        self.parent.setdefault(item, item)
        while self.parent[item] != item:
            self.parent[item] = self.parent[self.parent[item]]
            item = self.parent[item]
        return item

    def join(self, a: uuid.UUID, b: uuid.UUID) -> None:
        root_a, root_b = self.find(a), self.find(b)
        if root_a != root_b:
            self.parent[max(root_a, root_b, key=str)] = min(root_a, root_b, key=str)


def heldout_asset_ids(candidates: Sequence[SplitCandidate], *, split: str = HELDOUT_SPLIT,
                      fraction: float = HELDOUT_FRACTION) -> frozenset[uuid.UUID]:
    """The held-out assets among ``candidates`` (the whole shared catalog)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError("the held-out fraction must be between 0 and 1")
    known = {c.asset_id: c for c in candidates}
    families = _Families()
    by_family_tag: dict[str, uuid.UUID] = {}
    for candidate in candidates:
        families.find(candidate.asset_id)
        if candidate.near_duplicate_of in known:
            families.join(candidate.asset_id, candidate.near_duplicate_of)
        for tag in candidate.tags:
            if tag.startswith(FAMILY_TAG):
                first = by_family_tag.setdefault(tag, candidate.asset_id)
                families.join(candidate.asset_id, first)
    members: dict[uuid.UUID, list[SplitCandidate]] = defaultdict(list)
    for candidate in candidates:
        members[families.find(candidate.asset_id)].append(candidate)

    # A family belongs to the stratum most of its members name (ties: the smallest name).
    strata: dict[str, list[list[SplitCandidate]]] = defaultdict(list)
    for family in members.values():
        counts: dict[str, int] = defaultdict(int)
        for candidate in family:
            counts[candidate.stratum] += 1
        stratum = min(counts, key=lambda name: (-counts[name], name))
        strata[stratum].append(family)

    heldout: set[uuid.UUID] = set()
    for stratum_families in strata.values():
        size = sum(len(f) for f in stratum_families)
        target = math.ceil(fraction * size)
        ranked = sorted(stratum_families, key=lambda f: _family_rank(split, f))
        taken = 0
        for family in ranked:
            if taken >= target:
                break
            heldout.update(c.asset_id for c in family)
            taken += len(family)
    return frozenset(heldout)


def _family_rank(split: str, family: Iterable[SplitCandidate]) -> str:
    anchor = min(c.sha256 for c in family)
    return hashlib.sha256(f"{split}:{anchor}".encode()).hexdigest()


__all__ = ["FAMILY_TAG", "GROUP_TAG", "HELDOUT_FRACTION", "HELDOUT_SPLIT", "SplitCandidate", "heldout_asset_ids"]
