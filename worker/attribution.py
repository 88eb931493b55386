"""Influence attribution work that takes gradients: building a model's index, auditing a generation.

Building an index: features of every training example (both views of a split, version-3 config from one
pass: evidence and payment), then of a few calibration outputs the model draws for its own training captions
when a view's normalisation uses them (``provenance.influence``: ``calibrated`` standardises each row on them,
``centered`` -- the payment view's -- takes their mean from every feature), then each view's kernel. Long work (one gradient
per training image), so it runs outside any transaction, reports progress through a callback,
and writes one row at the end -- refused if the model's weights or snapshot changed meanwhile.

Auditing: re-deriving a generation's royalty split from what was recorded (by the payment view's scores
under version 3), to show it was computed as stated. Everything needed is stored: the raw output PNGs, the prompt, the index
blob and its method config, top-k and threshold, alpha and the price rule. Recomputing features
on the same machine type gives the same scores, hence the same exact split.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image
from sqlalchemy import select

from foundry.attribution import service as attribution_service
from foundry.attribution.models import AttributionIndex
from foundry.attribution.policy import outputs_influence
from foundry.blobs import BlobStore
from foundry.datasets import service as dataset_service
from foundry.db import session_factory
from foundry.errors import Conflict, InvalidInput
from foundry.generation import service as generation_service
from foundry.generation.models import GeneratedImage
from foundry.ledger import service as ledger_service
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.pricing.models import PriceRule
from foundry.royalties import service as royalties_service
from foundry.royalties.policy import recorded_credits
from foundry.training_jobs.policy import builds_attribution_index
from provenance.influence import InfluenceConfig, InfluenceIndex, uninformative
from training.attribution_features import Attributor
from training.influence_preconditioner import block_arrays, preconditioner_sample
from training.pipelines import load_pipeline

IndexProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class IndexInput:
    asset_id: uuid.UUID
    contributor_id: uuid.UUID
    caption: str
    entry: object


def load_attribution_pipeline(*, session, model: RegisteredModel, blob_store: BlobStore, cache_dir: Path):
    """The model as a pipeline on which gradients can be taken; a LoRA sits on its parent's pipeline."""
    pipeline, adapters = registry_service.serving_chain(session=session, model=model)

    def folder(of: RegisteredModel) -> Path:
        return registry_service.materialize(model=of, blob_store=blob_store, cache_dir=cache_dir)

    return load_pipeline(folder(pipeline), adapters=tuple(folder(adapter) for adapter in adapters))


def build_index(*, sessions, blob_store: BlobStore, model_id: uuid.UUID, cache_dir: Path,
                config: InfluenceConfig | None = None, built_by: str, training_job_id: uuid.UUID | None = None,
                progress: IndexProgress | None = None) -> AttributionIndex:
    config = config or InfluenceConfig()
    started = time.perf_counter()
    with sessions() as session:
        model = registry_service.get_model(session=session, model_id=model_id)
        if not builds_attribution_index(model.kind):
            raise InvalidInput(f"model {model_id} is an {model.kind}: influence is scored through the stage that "
                               "draws, its parent", code="model_not_indexable")
        if model.snapshot_id is None:
            raise InvalidInput(f"model {model_id} was not trained on a snapshot: nothing to attribute to",
                               code="model_not_indexable")
        inputs = [IndexInput(e.asset_id, e.contributor_id, e.caption, e)
                  for e in dataset_service.snapshot_entries(session=session, snapshot_id=model.snapshot_id)]
        fingerprint = attribution_service.fingerprint_of(model)
        pipeline = load_attribution_pipeline(session=session, model=model, blob_store=blob_store,
                                             cache_dir=cache_dir)
        guidance_scale = registry_service.served_guidance(session=session, model=model)
    attributor = Attributor(pipeline, config)
    total = len(inputs)
    pixels = []  # each training image's pixel codes, taken as the feature pass reads it (a blended config only)

    def image_of(item: IndexInput) -> Image.Image:
        return Image.open(io.BytesIO(dataset_service.load_rendition(blob_store=blob_store, entry=item.entry))).convert(
            "RGB")

    preconditioner = None
    if config.preconditioner != "none":  # fitted on a seeded sample before any feature is taken through it
        chosen = preconditioner_sample(total, examples=config.preconditioner_examples, seed=config.noise_seed)
        preconditioner = block_arrays(attributor.fit_preconditioner(
            [(image_of(inputs[position]), inputs[position].caption) for position in chosen]))

    def examples():
        for item in inputs:
            image = image_of(item)
            if config.blends_pixels:
                pixels.append(attributor.pixel_codes(image))
            yield image, item.caption

    if progress is not None:
        progress(0, total)
    features, residuals = attributor.index_rows_of_many(examples(), progress=(lambda done: progress(done, total))
                                                        if progress is not None else None)
    calibration = attributor.calibration_features((item.caption for item in inputs), guidance_scale=guidance_scale)
    index = InfluenceIndex.build(features, asset_ids=[i.asset_id for i in inputs],
                                 contributor_ids=[i.contributor_id for i in inputs], config=config,
                                 fingerprint=fingerprint, calibration=calibration,
                                 pixels=np.stack(pixels) if pixels else np.zeros((0, 3 * config.pixel_size ** 2), np.uint8)
                                 if config.blends_pixels else None, residuals=residuals,
                                 preconditioner=preconditioner)
    blob_sha256 = attribution_service.store_index(blob_store=blob_store, index=index)
    with sessions() as session, session.begin():
        row = attribution_service.record_index(session=session, model_id=model_id, index=index,
                                               blob_sha256=blob_sha256, build_seconds=time.perf_counter() - started,
                                               built_by=built_by, training_job_id=training_job_id)
        session.expunge(row)
    return row


def build_index_unless_current(settings, *, blob_store: BlobStore, model_id: uuid.UUID, built_by: str,
                               force: bool = False, progress: IndexProgress | None = None) -> AttributionIndex:
    """The model's valid index: the current one, or a fresh build (always a fresh build with ``force``)."""
    sessions = session_factory(settings.resolved_database_url)
    if not force:
        with sessions() as session:
            model = registry_service.get_model(session=session, model_id=model_id)
            current = attribution_service.active_index(session=session, model=model)
            if current is not None:
                session.expunge(current)
                return current
    return build_index(sessions=sessions, blob_store=blob_store, model_id=model_id,
                       cache_dir=settings.var_dir / "models", built_by=built_by, progress=progress,
                       config=InfluenceConfig(calibration_outputs=settings.influence_calibration_outputs))


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
            outputs = [Image.open(io.BytesIO(raw)).convert("RGB") for raw in raws]
            influence = outputs_influence(
                [attributor.score(index, image, generation.prompt).payment for image in outputs
                 if uninformative(np.asarray(image)) is None],
                asset_ids=index.asset_ids, contributor_ids=index.contributor_ids,
                top_k=recorded["influence"]["top_k"], min_share=Fraction(recorded["influence"]["min_share"]))
        again = royalties_service.attribute_pool(
            session=session, model=model, charge=generation.unit_price * generation.num_images,
            currency=generation.currency, pool_share=Fraction(rule.pool_share_bps, 10_000),
            finetune_share=Fraction(rule.finetune_share_bps, 10_000), influence=influence,
            alpha=Fraction(recorded.get("alpha", "0/1")),
            credits=recorded_credits(recorded))
        posted = [(e.method, e.contributor_id, e.asset_id, e.amount)
                  for e in ledger_service.entries_for(session=session, generation_id=generation_id, limit=100_000)
                  if e.kind == "royalty"]
    recomputed = [(p.method, p.contributor_id, p.asset_id, p.amount) for p in again.postings]
    return AttributionAudit(generation_id, generation.attribution.get("method", "pro_rata"),
                            sorted(posted, key=_part_order), sorted(recomputed, key=_part_order))


def _part_order(part: Part) -> tuple:
    return part[0], str(part[1]), str(part[2]), part[3]
