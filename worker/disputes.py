"""The check behind a disputed royalty split: unlearn the generation's outputs on a copy of its model and
rank the disputed contributor's images among the other contributors' by how much they were forgotten
with them (``training.unlearning``). Independent of the influence index that made the split.

Runs outside any transaction (minutes on a CPU); the result is written in one transaction at the end.
"""

from __future__ import annotations

import io
import random
import uuid
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from foundry.attribution import service as attribution_service
from foundry.attribution.models import AttributionDispute
from foundry.attribution.policy import dispute_verdict
from foundry.blobs import BlobStore
from foundry.datasets import service as dataset_service
from foundry.errors import Conflict
from foundry.generation import service as generation_service
from foundry.generation.models import GeneratedImage
from foundry.models_registry import service as registry_service
from foundry.usecases import disputes as dispute_usecases
from training.unlearning import UnlearningConfig, unlearn_outputs
from worker.attribution import load_attribution_pipeline

DISPUTED_IMAGES = 32
"""At most this many of the disputed contributor's images are probed (a seeded sample)."""
REFERENCE_CONTRIBUTORS = 24
REFERENCE_IMAGES = 8


def check_dispute(*, sessions, blob_store: BlobStore, dispute_id: uuid.UUID, cache_dir: Path,
                  config: UnlearningConfig | None = None, reference_contributors: int = REFERENCE_CONTRIBUTORS,
                  reference_images: int = REFERENCE_IMAGES) -> AttributionDispute:
    config = config or UnlearningConfig()
    with sessions() as session:
        dispute = attribution_service.get_dispute(session=session, dispute_id=dispute_id)
        if dispute.status != "open":
            raise Conflict(f"dispute {dispute_id} was already checked", code="dispute_already_checked")
        generation = generation_service.get_generation(session=session, generation_id=dispute.generation_id,
                                                       tenant_id=None)
        disputed = dispute.contributor_id
        model = registry_service.get_model(session=session, model_id=generation.model_id)
        pipeline = load_attribution_pipeline(session=session, model=model, blob_store=blob_store, cache_dir=cache_dir)
        outputs = [(Image.open(io.BytesIO(blob_store.get(image.raw_sha256))).convert("RGB"), generation.prompt)
                   for image in session.scalars(select(GeneratedImage).where(
                       GeneratedImage.generation_id == generation.id).order_by(GeneratedImage.index))]
        by_contributor = defaultdict(list)
        for entry in dispute_usecases.learnt_from(session=session, generation=generation):
            by_contributor[entry.contributor_id].append(entry)
        rng = random.Random(f"dispute:{dispute_id}")
        others = sorted((c for c in by_contributor if c != disputed), key=str)
        chosen = rng.sample(others, min(reference_contributors, len(others)))
        probes = [(disputed, entry) for entry in _sample(rng, by_contributor[disputed], DISPUTED_IMAGES)]
        probes += [(contributor, entry) for contributor in chosen
                   for entry in _sample(rng, by_contributor[contributor], reference_images)]
        examples = [(Image.open(io.BytesIO(dataset_service.load_rendition(blob_store=blob_store, entry=entry)))
                     .convert("RGB"), entry.caption) for _, entry in probes]
        paid_ppm = dispute_usecases.paid_share_ppm(session=session, generation_id=generation.id,
                                                   contributor_id=disputed)
    unlearnt = unlearn_outputs(pipeline, outputs, examples, config)
    rises: dict[uuid.UUID, list[float]] = defaultdict(list)
    for (contributor, _), rise in zip(probes, unlearnt.probe_rise, strict=True):
        rises[contributor].append(float(rise))
    disputed_rise = float(np.mean(rises[disputed]))
    others_rise = [float(np.mean(rises[c])) for c in chosen]
    rank, verdict = dispute_verdict(disputed_rise, others_rise)
    result = {
        "check": config.as_dict(), "unlearning_steps": unlearnt.steps,
        "output_loss_before": unlearnt.output_loss_before, "output_loss_after": unlearnt.output_loss_after,
        "paid_share_ppm": paid_ppm, "disputed_images": len(rises[disputed]), "disputed_mean_rise": disputed_rise,
        "reference_contributors": len(chosen), "reference_images": sum(len(rises[c]) for c in chosen),
        "reference_median_rise": float(np.median(others_rise)) if others_rise else None,
        "rank_among_contributors": rank,
    }
    with sessions() as session, session.begin():
        dispute = attribution_service.record_dispute_check(session=session, dispute_id=dispute_id, verdict=verdict,
                                                           result=result)
        session.expunge(dispute)
    return dispute


def _sample(rng: random.Random, entries: list, count: int) -> list:
    ordered = sorted(entries, key=lambda entry: str(entry.asset_id))
    return ordered if len(ordered) <= count else rng.sample(ordered, count)
