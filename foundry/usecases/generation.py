"""Serving one generation, end to end: the use case the API (synchronous requests) and the
worker (queued ones) both run.

``GenerationRunner.__call__`` reads like a diffusers pipeline: claim -> prepare model ->
render -> score influence -> attribute the pool -> deliver (watermark, Content Credentials,
near-duplicate check) -> record. Rendering happens outside any transaction; everything the generation leaves behind
(images, attribution, ledger entries, status) is written in one transaction at the end, and
its image blobs are staged until that transaction commits.

Rendering needs diffusers, which the foundry does not import: the edge that runs generations
hands the runner its pipeline cache (``training.inference.PipelineCache``), seen here only as
``Pipelines``.
"""

from __future__ import annotations

import io
import logging
import math
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Protocol

import numpy as np
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import Session

from foundry import __version__
from foundry.attribution import service as attribution_service
from foundry.attribution.models import AttributionIndex
from foundry.attribution.policy import (
    INFLUENCE_MIN_SHARE,
    INFLUENCE_TOP_K,
    alpha_from_bps,
    mean_shares,
    output_evidence,
    per_output_shares,
)
from foundry.blobs import BlobStore, sha256_hex
from foundry.catalog.models import Asset
from foundry.config import Settings
from foundry.datasets.models import SnapshotEntry
from foundry.db import session_factory
from foundry.errors import Conflict, FoundryError
from foundry.generation import service as generation_service
from foundry.generation.editing import EditPlan, keep_unmasked
from foundry.generation.models import Generation
from foundry.generation.policy import ResolvedRequest
from foundry.generation.schemas import GenerationCreate
from foundry.generation.service import DeliveredImage
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from foundry.moderation import service as moderation_service
from foundry.moderation.service import PromptRefused
from foundry.pricing.models import PriceRule
from foundry.royalties import service as royalties_service
from foundry.royalties.service import Attribution
from foundry.usecases.editing import canvas_for, image_limits
from foundry.usecases.queue import TaskQueue
from provenance import watermark
from provenance.c2pa_manifest import ContentCredentials, Ingredient, SigningNotConfigured
from provenance.hashing import nearest_hash, perceptual_hash, phash_from_hex, phash_to_hex
from provenance.influence import METHOD, VERSION, InfluenceConfig, InfluenceIndex, uninformative
from provenance.influence_shares import InfluenceShares

logger = logging.getLogger(__name__)


class LoadedPipeline(Protocol):
    """One model's pipeline, loaded: it renders requests and scores outputs against an influence index."""

    def render(self, request: ResolvedRequest, canvas: Image.Image | None = None,
               mask: Image.Image | None = None) -> list[Image.Image]: ...

    def influence_scores(self, index: InfluenceIndex, config: InfluenceConfig, images: list[Image.Image],
                         prompt: str) -> list: ...


class Pipelines(Protocol):
    """Loaded pipelines by key; ``folders()`` gives (pipeline folder, adapter folders, upscaler folder or None)
    when one must be loaded."""

    def get(self, model_key: str, folders: Callable[[], tuple]) -> LoadedPipeline: ...


def png_bytes(image: Image.Image) -> bytes:
    """PNG with no metadata and fixed settings, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()

GENERATOR = {"name": "licensed-image-foundry", "version": __version__}
DELIVERY_MIN_SIDE = 256
"""The invisible watermark needs at least 256 px; smaller outputs are delivered upscaled."""


class TrainingHashes:
    """Perceptual hashes of every asset a model learned from, for the near-duplicate guard."""

    def __init__(self, asset_ids: list[uuid.UUID], hashes: list[int]):
        self.asset_ids = asset_ids
        self.hashes = np.array(hashes, dtype=np.uint64)

    def nearest(self, value: int) -> tuple[uuid.UUID, int] | None:
        found = nearest_hash(self.hashes, value)
        return (self.asset_ids[found[0]], found[1]) if found else None


def training_hashes(*, session: Session, model: RegisteredModel) -> TrainingHashes:
    snapshot_ids = [m.snapshot_id for m in registry_service.lineage(session=session, model_id=model.id)
                    if m.snapshot_id]
    rows = session.execute(select(Asset.id, Asset.phash).join(
        SnapshotEntry, SnapshotEntry.asset_id == Asset.id).where(SnapshotEntry.snapshot_id.in_(snapshot_ids))
        .distinct()).all() if snapshot_ids else []
    return TrainingHashes([row[0] for row in rows], [phash_from_hex(row[1]) for row in rows])


def lineage_record(*, session: Session, model: RegisteredModel) -> list[dict]:
    """Every stage behind an output -- the model, its parents (a cascade's base, a fine-tune's base) --
    with the snapshot each learnt from, for the signed manifest."""
    return [{"model_id": str(m.id), "kind": m.kind, "weights_sha256": m.weights_sha256,
             "snapshot_id": str(m.snapshot_id) if m.snapshot_id else None,
             "snapshot_merkle_root": m.snapshot_merkle_root, "licensed_only": m.licensed_only}
            for m in registry_service.lineage(session=session, model_id=model.id)]


def delivery_rendition(image: Image.Image) -> Image.Image:
    """The delivered pixels: at least 256 px on the short side, upscaled by a whole factor.

    Nearest-neighbour keeps every source pixel a flat block: crisp for small outputs, and the
    watermark's luma embedding then never overflows at smooth edges (it does after LANCZOS).
    """
    factor = max(1, math.ceil(DELIVERY_MIN_SIDE / min(image.size)))
    if factor == 1:
        return image
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


@dataclass(frozen=True)
class LoadedIndex:
    row_id: uuid.UUID
    blob_sha256: str
    index: InfluenceIndex


@dataclass(frozen=True)
class Influence:
    shares: InfluenceShares | None
    parameters: dict
    """Everything needed to recompute the shares: index, method config, top-k, threshold."""
    evidence: tuple[list[dict] | None, ...] = ()
    """Per output (in order): its most influential training images, or None when it was not scored."""


@dataclass
class RenderedOutput:
    raw_png: bytes
    delivery_png: bytes
    record: DeliveredImage


class GenerationRunner:
    """Runs generations in this process, with its own pipeline cache and signing material."""

    def __init__(self, settings: Settings, *, blob_store: BlobStore, pipelines: Pipelines):
        self.settings = settings
        self.blob_store = blob_store
        self.pipelines = pipelines
        self._sessions = session_factory(settings.resolved_database_url)
        self._credentials: ContentCredentials | None = None
        self._hashes: dict[uuid.UUID, TrainingHashes] = {}
        self._lineages: dict[uuid.UUID, list[dict]] = {}
        self._indexes: dict[uuid.UUID, LoadedIndex] = {}
        self._lock = threading.Lock()

    def ensure_signing(self) -> ContentCredentials:
        """This process's signing material (SigningNotConfigured when init-ca has not been run)."""
        if self._credentials is None:
            self._credentials = ContentCredentials(self.settings.resolved_signing_dir)
        return self._credentials

    def __call__(self, generation_id: uuid.UUID) -> Generation:
        # 1. claim: exactly one runner serves a generation; anyone else just reads it
        if not self.claim(generation_id):
            return self.load(generation_id)
        return self.serve(generation_id)

    def serve_next(self) -> Generation | None:
        """Claim and serve the generation the fair rotation across tenants says is next (what a queue
        message asks a worker to do); None when nothing can be served now."""
        with self._sessions() as session, session.begin():
            generation_id = generation_service.claim_next(
                session=session, concurrency=self.settings.generation_tenant_concurrency)
        return self.serve(generation_id) if generation_id is not None else None

    def serve(self, generation_id: uuid.UUID) -> Generation:
        """Serve a generation this runner has claimed."""
        try:
            started = time.perf_counter()
            # 2. re-check the world and get the model's pipeline
            model, folders, request, index = self.prepare(generation_id)
            loaded = self.pipelines.get(f"{model.id}:{model.weights_sha256}", folders)
            # 3. render (an edit: on the canvas its inputs make), outside any transaction
            rendered_at = time.perf_counter()
            if request.edit is None:
                images = loaded.render(request)
            else:
                canvas = self.edit_canvas(generation_id, request)
                images = loaded.render(request, canvas.image, canvas.mask)
                if canvas.mask is not None:  # a repaint changes only the masked region
                    images = [keep_unmasked(image, canvas.image, canvas.mask) for image in images]
            render_s = time.perf_counter() - rendered_at
            # 4. which training images shaped these outputs (the model's influence index, if it has one)
            influence = self.score_influence(loaded, index, images, request.prompt)
            # 5-7. attribute the pool, deliver and record in one transaction
            return self.record(generation_id, images, influence, timings={
                "prepare_s": rendered_at - started, "render_s": render_s,
                "attribution_s": time.perf_counter() - rendered_at - render_s})
        except Exception as exc:
            if isinstance(exc, Conflict) and exc.code == "generation_not_running":
                return self.load(generation_id)  # re-queued as stale meanwhile: its new runner owns it now
            code = exc.code if isinstance(exc, FoundryError) else (
                "provenance_not_configured" if isinstance(exc, SigningNotConfigured) else "generation_failed")
            logger.exception("generation %s failed", generation_id)
            with self._sessions() as session, session.begin():
                generation_service.fail_generation(session=session, generation_id=generation_id, code=code,
                                                   message=str(exc))
            return self.load(generation_id)

    def claim(self, generation_id: uuid.UUID) -> bool:
        with self._sessions() as session, session.begin():
            return generation_service.claim_generation(session=session, generation_id=generation_id)

    def load(self, generation_id: uuid.UUID) -> Generation:
        with self._sessions() as session:
            return generation_service.get_generation(session=session, generation_id=generation_id, tenant_id=None)

    def prepare(self, generation_id: uuid.UUID) -> tuple[RegisteredModel, Callable[[], tuple],
                                                          ResolvedRequest, LoadedIndex | None]:
        with self._sessions() as session:
            generation = generation_service.get_generation(session=session, generation_id=generation_id,
                                                           tenant_id=None)
            model = generation_service.servable_model(session=session, model_id=generation.model_id,
                                                      tenant_id=generation.tenant_id)
            pipeline, adapters = registry_service.serving_chain(session=session, model=model)
            upscaler = registry_service.upscaling_stage(model)
            row = attribution_service.scoring_index(session=session, model=model)
            with self._lock:
                if model.id not in self._hashes:
                    self._hashes[model.id] = training_hashes(session=session, model=model)
                    self._lineages[model.id] = lineage_record(session=session, model=model)
                index = self._index_for(row) if row is not None else None

            def folders() -> tuple[Path, tuple[Path, ...], Path | None]:
                return (self.materialize(pipeline), tuple(self.materialize(a) for a in adapters),
                        self.materialize(upscaler) if upscaler is not None else None)

            return model, folders, ResolvedRequest(**generation.request), index

    def edit_canvas(self, generation_id: uuid.UUID, request: ResolvedRequest):
        """The canvas (and mask) an edit's stored inputs make at the size the model draws."""
        with self._sessions() as session:
            inputs = generation_service.edit_inputs(session=session, generation_id=generation_id)
        if any(row.purged_at is not None for row in inputs):
            raise Conflict("the edit's uploaded inputs were purged before it ran", code="edit_input_purged")
        return canvas_for(plan=EditPlan.from_dict(request.edit), inputs=inputs, blob_store=self.blob_store,
                          limits=image_limits(self.settings), size=request.width)

    def _index_for(self, row: AttributionIndex) -> LoadedIndex:
        loaded = self._indexes.pop(row.id, None) or LoadedIndex(
            row.id, row.blob_sha256, attribution_service.load_index(blob_store=self.blob_store, row=row))
        self._indexes[row.id] = loaded  # most recently used last
        while len(self._indexes) > self.settings.pipeline_cache_size:
            self._indexes.pop(next(iter(self._indexes)))
        return loaded

    def score_influence(self, loaded: LoadedPipeline, index: LoadedIndex | None, images: list[Image.Image],
                        prompt: str) -> Influence | None:
        """Each output's influence shares over the model's training images, averaged over the outputs.

        A blank or pure-noise output resembles no training image: it is left out, and when every output
        is, nobody is paid by influence (the pool goes pro rata)."""
        if index is None:
            return None
        reasons = [uninformative(np.asarray(image.convert("RGB"))) for image in images]
        informative = [image for image, reason in zip(images, reasons, strict=True) if reason is None]
        if not informative:
            return Influence(None, {"unavailable": f"uninformative outputs ({', '.join(sorted(set(reasons)))}): "
                                                  "the pool is split pro rata", "uninformative": reasons,
                                    "index_id": str(index.row_id)})
        try:
            config = InfluenceConfig.from_dict(index.index.config)
            scored = loaded.influence_scores(index.index, config, informative, prompt)
            per_output = per_output_shares([output.payment for output in scored], asset_ids=index.index.asset_ids,
                                           contributor_ids=index.index.contributor_ids)
            shares = mean_shares(per_output)
            found = iter([output_evidence(scores, output, asset_ids=index.index.asset_ids,
                                          contributor_ids=index.index.contributor_ids)
                          for scores, output in zip(scored, per_output, strict=True)])
            evidence = tuple(next(found) if reason is None else None for reason in reasons)
        except Exception as exc:  # the customer still gets images; contributors get pro rata
            logger.exception("influence scoring with index %s failed", index.row_id)
            return Influence(None, {"unavailable": f"{type(exc).__name__}: {exc}"[:500],
                                    "index_id": str(index.row_id)})
        parameters = {"method": METHOD, "version": str(index.index.config.get("version", VERSION)),
                      "index_id": str(index.row_id),
                      "index_blob_sha256": index.blob_sha256, "config": index.index.config,
                      "top_k": INFLUENCE_TOP_K, "clip": "negative",
                      "min_share": f"{INFLUENCE_MIN_SHARE.numerator}/{INFLUENCE_MIN_SHARE.denominator}",
                      **({"uninformative": reasons} if len(informative) < len(images) else {}),
                      **({"search": index.index.search.settings()} if index.index.search is not None else {}),
                      **({"payment_search": index.index.payment.search.settings()}
                         if index.index.payment is not None and index.index.payment.search is not None else {})}
        return Influence(shares, parameters, evidence)

    def materialize(self, model: RegisteredModel) -> Path:
        return registry_service.materialize(model=model, blob_store=self.blob_store,
                                            cache_dir=self.settings.var_dir / "models")

    def attribute(self, session: Session, generation: Generation, model: RegisteredModel,
                  influence: Influence | None) -> Attribution:
        rule = session.get(PriceRule, generation.price_rule_id)
        return royalties_service.attribute_pool(
            session=session, model=model, charge=generation.unit_price * generation.num_images,
            currency=generation.currency, pool_share=Fraction(rule.pool_share_bps, 10_000),
            finetune_share=Fraction(rule.finetune_share_bps, 10_000),
            influence=influence.shares if influence else None, alpha=alpha_from_bps(model.influence_alpha_bps),
            credits=generation_service.pool_credits(
                session=session, generation=generation,
                named_style_share=Fraction(self.settings.named_style_share_bps, 10_000),
                edit_source_share=Fraction(self.settings.edit_source_share_bps, 10_000)),
            parameters=({"influence": influence.parameters} if influence.shares is not None
                        else {"influence_unavailable": influence.parameters}) if influence else {})

    def ingredients(self, session: Session, generation: Generation) -> tuple[Ingredient, ...]:
        """An edit's inputs, for every output's manifest (none for text-to-image)."""
        return tuple(Ingredient(title=f"{row.role}.{row.format}", relationship=row.relationship, sha256=row.sha256,
                                format=row.format, data=self.blob_store.get(row.sha256))
                     for row in generation_service.edit_inputs(session=session, generation_id=generation.id))

    def deliver(self, image: Image.Image, index: int, generation: Generation, model: RegisteredModel,
                attribution: Attribution, ingredients: tuple[Ingredient, ...] = (),
                evidence: list[dict] | None = None) -> RenderedOutput:
        raw_png = png_bytes(image)
        phash = perceptual_hash(image, opaque=True)
        nearest = self._hashes[model.id].nearest(phash)
        near_duplicate = nearest is not None and nearest[1] <= self.settings.output_near_duplicate_distance
        payload = watermark.payload_for(generation.id, index)
        marked = watermark.embed(delivery_rendition(image), payload)
        record = {
            "generation_id": str(generation.id), "image_index": index, "model_id": str(model.id),
            "model_name": model.name, "weights_sha256": model.weights_sha256,
            "snapshot_id": str(model.snapshot_id) if model.snapshot_id else None,
            "snapshot_merkle_root": model.snapshot_merkle_root, "licensed_only": model.licensed_only,
            "lineage": self._lineages[model.id],
            "raw_sha256": sha256_hex(raw_png), "near_duplicate": near_duplicate,
            "attribution": {"method": attribution.method, "currency": attribution.currency,
                            "influence": ({"method": METHOD,
                                           "version": attribution.parameters["influence"].get("version", VERSION),
                                           "alpha": attribution.parameters["alpha"],
                                           "index_id": attribution.parameters["influence"]["index_id"]}
                                          if attribution.method == "blend" else None),
                            "pool": attribution.pool, "contributors": len(attribution.shares),
                            "top": [{"contributor_id": str(s.contributor_id), "amount": s.amount}
                                    for s in attribution.shares[:5]]},
            "watermark": watermark.DESCRIPTION,
            **({"edit": {**generation.request["edit"], "inputs": [
                {"relationship": i.relationship, "sha256": i.sha256, "format": i.format}
                for i in ingredients]}} if ingredients else {}),
        }
        delivery_png = self.ensure_signing().sign_png(png_bytes(marked), title=f"{generation.id}-{index}.png",
                                                 generator=GENERATOR, generation=record, ingredients=ingredients)
        return RenderedOutput(raw_png=raw_png, delivery_png=delivery_png, record=DeliveredImage(
            index=index, raw_sha256=sha256_hex(raw_png), delivery_sha256=sha256_hex(delivery_png),
            width=image.width, height=image.height, delivery_width=marked.width, delivery_height=marked.height,
            perceptual_hash=phash_to_hex(phash), watermark_id=payload.hex(),
            nearest_asset_id=nearest[0] if nearest else None, nearest_distance=nearest[1] if nearest else None,
            near_duplicate=near_duplicate, influence=evidence))

    def record(self, generation_id: uuid.UUID, images: list[Image.Image], influence: Influence | None, *,
               timings: dict) -> Generation:
        stage_id = f"generation-{generation_id}"
        try:
            with self._sessions() as session, session.begin():
                generation = generation_service.get_generation(session=session, generation_id=generation_id,
                                                               tenant_id=None)
                model = session.get(RegisteredModel, generation.model_id)
                attribution = self.attribute(session, generation, model, influence)
                provenance_started = time.perf_counter()
                ingredients = self.ingredients(session, generation)
                evidence = influence.evidence if influence is not None else ()
                outputs = [self.deliver(image, index, generation, model, attribution, ingredients,
                                        evidence=evidence[index] if index < len(evidence) else None)
                           for index, image in enumerate(images)]
                timings["provenance_s"] = time.perf_counter() - provenance_started
                for output in outputs:
                    self.blob_store.stage(stage_id, output.raw_png)
                    self.blob_store.stage(stage_id, output.delivery_png)
                generation_service.finish_generation(session=session, generation=generation, model=model,
                                                     images=[output.record for output in outputs],
                                                     attribution=attribution, timings=timings)
        except BaseException:
            self.blob_store.discard(stage_id)
            raise
        self.blob_store.promote(stage_id)
        return self.load(generation_id)


def start_generation(*, session: Session, runner: GenerationRunner, queue: TaskQueue, blob_store: BlobStore,
                     tenant_id: uuid.UUID, api_key_id: uuid.UUID | None, body: GenerationCreate,
                     idempotency_key: str | None, sync_limit: int) -> Generation:
    """Record a customer's request; small ones are served at once by ``runner``, the rest go to ``queue``.

    Refused before anything is written when this deployment cannot sign outputs
    (``SigningNotConfigured``). A replayed Idempotency-Key returns the generation it made first.
    """
    runner.ensure_signing()
    try:
        with session.begin():
            generation, created = generation_service.submit_generation(
                session=session, blob_store=blob_store, tenant_id=tenant_id, api_key_id=api_key_id,
                body=body, idempotency_key=idempotency_key, sync_limit=sync_limit,
                style_mode=runner.settings.style_names)
    except PromptRefused as refused:  # nothing of the request was written; the refusal is counted
        with session.begin():
            moderation_service.record_refusal(session=session, refused=refused, tenant_id=tenant_id,
                                              api_key_id=api_key_id)
        raise
    if created and generation.mode == "sync":
        generation = runner(generation.id)
    elif created:
        queue.generation(generation.id)  # after the commit: the worker must find the row
    session.expire_all()
    return generation
