"""Why a generation paid whom: each output beside the training images that shaped it most.

One read model for the three places that show it: ``GET /v1/generations/{id}/attribution`` (the
customer who paid, or an admin), the artist page (a contributor sees only outputs that paid them, and
only their own images among the evidence) and ``foundry generations explain``.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry.catalog.models import Asset, Contributor
from foundry.errors import NotFound
from foundry.generation import service as generation_service
from foundry.generation.models import Generation
from foundry.royalties import service as royalties_service


@dataclass(frozen=True)
class EvidenceAsset:
    asset_id: uuid.UUID
    contributor_id: uuid.UUID
    display_name: str
    caption: str
    role: str
    """``evidence``: among the output's most influential images by the evidence score; ``paid``: not among
    them, but among the images its influence pool paid most."""
    share_ppm: int
    """The asset's part of this output's influence pool, in millionths (0: not paid by influence)."""
    score: float | None
    """The evidence score (the method's units: a kernel score, or from method version 4 a blend of the gradient
    score and pixel similarity, each standardised over the index; comparable within one model's index); None
    when the evidence search did not score the image."""
    payment_score: float | None
    """The score that split the pool (the evidence score itself before method version 3)."""


@dataclass(frozen=True)
class OutputEvidence:
    index: int
    scored: bool
    """False when the output was not scored (no index, or blank or noise: its pool went pro rata)."""
    assets: list[EvidenceAsset]


@dataclass(frozen=True)
class PaidLine:
    contributor_id: uuid.UUID
    display_name: str
    method: str
    share_ppm: int
    amount: int


@dataclass(frozen=True)
class GenerationEvidence:
    generation: Generation
    method: str
    """How the pool was split: ``pro_rata`` or ``blend`` (influence and pro rata)."""
    influence: dict | None
    """The recorded influence method, version and index (None without influence)."""
    outputs: list[OutputEvidence]
    paid: list[PaidLine]


def generation_evidence(*, session: Session, generation_id: uuid.UUID, tenant_id: uuid.UUID | None = None,
                        contributor_id: uuid.UUID | None = None) -> GenerationEvidence:
    """A succeeded generation's evidence. ``tenant_id``: only that tenant's generation; ``contributor_id``:
    only a generation that paid this contributor, and only their images among each output's evidence."""
    generation = generation_service.get_generation(session=session, generation_id=generation_id, tenant_id=tenant_id)
    lines = royalties_service.attribution_lines(session=session, generation_id=generation.id)
    if generation.status != "succeeded" or (
            contributor_id is not None and all(line.contributor_id != contributor_id for line, _ in lines)):
        raise NotFound(f"generation {generation_id} has no attribution to show", code="generation_not_found")
    images = generation_service.images_of(session=session, generation_id=generation.id)
    recorded = [[item for item in (image.influence or [])
                 if contributor_id is None or item["contributor_id"] == str(contributor_id)] for image in images]
    asset_ids = {uuid.UUID(item["asset_id"]) for items in recorded for item in items}
    described = {asset.id: (asset.caption, name) for asset, name in session.execute(
        select(Asset, Contributor.display_name).join(Contributor, Contributor.id == Asset.contributor_id)
        .where(Asset.id.in_(asset_ids)))} if asset_ids else {}
    outputs = [OutputEvidence(index=image.index, scored=image.influence is not None,
                              assets=[_asset(item, described) for item in items])
               for image, items in zip(images, recorded, strict=True)]
    paid = [PaidLine(contributor_id=line.contributor_id, display_name=name, method=line.method,
                     share_ppm=line.share_ppm, amount=line.amount)
            for line, name in lines if contributor_id is None or line.contributor_id == contributor_id]
    attribution = generation.attribution or {}
    influence = (attribution.get("parameters") or {}).get("influence")
    return GenerationEvidence(generation=generation, method=attribution.get("method", "pro_rata"),
                              influence={k: influence.get(k) for k in ("method", "version", "index_id")}
                              if influence else None, outputs=outputs, paid=paid)


def _asset(item: dict, described: dict[uuid.UUID, tuple[str, str]]) -> EvidenceAsset:
    asset_id = uuid.UUID(item["asset_id"])
    caption, display_name = described.get(asset_id, ("", ""))
    score = item.get("score")
    payment_score = item.get("payment_score", score)  # one score both ranked and paid before version 3
    return EvidenceAsset(asset_id=asset_id, contributor_id=uuid.UUID(item["contributor_id"]), caption=caption,
                         display_name=display_name, role=item.get("role", "evidence"), share_ppm=int(item["share_ppm"]),
                         score=None if score is None else float(score),
                         payment_score=None if payment_score is None else float(payment_score))
