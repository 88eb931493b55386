"""Re-deriving a generation's royalty split from what was recorded, to show it was computed as stated.

Everything needed is stored: the raw output PNGs, the prompt, the index blob and its method
config, top-k and threshold, alpha and the price rule. Recomputing features on the same machine
type gives the same scores, hence the same exact split.
"""

from __future__ import annotations

import io
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from PIL import Image
from sqlalchemy import select

from foundry.attribution import service as attribution_service
from foundry.attribution.indexing import load_attribution_pipeline
from foundry.attribution.models import AttributionIndex
from foundry.attribution.policy import outputs_influence
from foundry.blobs import BlobStore
from foundry.errors import Conflict
from foundry.generation import service as generation_service
from foundry.generation.models import GeneratedImage
from foundry.models_registry.models import RegisteredModel
from foundry.pricing.models import PriceRule
from foundry.royalties import service as royalties_service
from provenance.influence import Attributor, InfluenceConfig

Part = tuple[str, uuid.UUID, uuid.UUID | None, int]


@dataclass(frozen=True)
class AttributionAudit:
    generation_id: uuid.UUID
    method: str
    posted: list[Part]
    recomputed: list[Part]

    @property
    def matches(self) -> bool:
        return self.posted == self.recomputed


def audit_generation(*, sessions, blob_store: BlobStore, generation_id: uuid.UUID, cache_dir: Path) -> AttributionAudit:
    with sessions() as session:
        generation = generation_service.get_generation(session=session, generation_id=generation_id, tenant_id=None)
        if generation.status != "succeeded":
            raise Conflict(f"generation {generation_id} is {generation.status}: nothing was attributed",
                           code="generation_not_attributed")
        model = session.get(RegisteredModel, generation.model_id)
        rule = session.get(PriceRule, generation.price_rule_id)
        recorded = generation.attribution.get("parameters", {})
        influence = None
        if "influence" in recorded:
            row = session.get(AttributionIndex, uuid.UUID(recorded["influence"]["index_id"]))
            index = attribution_service.load_index(blob_store=blob_store, row=row)
            raws = [blob_store.get(image.raw_sha256) for image in session.scalars(
                select(GeneratedImage).where(GeneratedImage.generation_id == generation_id)
                .order_by(GeneratedImage.index))]
            pipeline = load_attribution_pipeline(session=session, model=model, blob_store=blob_store,
                                                 cache_dir=cache_dir)
            attributor = Attributor(pipeline, InfluenceConfig.from_dict(recorded["influence"]["config"]))
            influence = outputs_influence(
                [index.scores(attributor.features(Image.open(io.BytesIO(raw)), generation.prompt)) for raw in raws],
                asset_ids=index.asset_ids, contributor_ids=index.contributor_ids,
                top_k=recorded["influence"]["top_k"], min_share=Fraction(recorded["influence"]["min_share"]))
        again = royalties_service.attribute_pool(
            session=session, model=model, charge=generation.unit_price * generation.num_images,
            currency=generation.currency, pool_share=Fraction(rule.pool_share_bps, 10_000),
            finetune_share=Fraction(rule.finetune_share_bps, 10_000), influence=influence,
            alpha=Fraction(recorded.get("alpha", "0/1")))
        posted = [(e.method, e.contributor_id, e.asset_id, e.amount)
                  for e in royalties_service.entries_for(session=session, generation_id=generation_id, limit=100_000)
                  if e.kind == "royalty"]
    recomputed = [(p.method, p.contributor_id, p.asset_id, p.amount) for p in again.postings]
    return AttributionAudit(generation_id, generation.attribution.get("method", "pro_rata"),
                            sorted(posted, key=_part_order), sorted(recomputed, key=_part_order))


def _part_order(part: Part) -> tuple:
    return part[0], str(part[1]), str(part[2]), part[3]
