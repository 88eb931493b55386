"""Image edits, end to end: check the inputs, record the edit, serve it like any generation.

An edit is a generation that starts from an image: image-to-image and variations redraw it partly,
inpainting repaints a masked region, outpainting extends it. It goes through the same screening,
pricing, queue, ledger, attribution, watermark and Content Credentials as text-to-image; its inputs
become C2PA ingredients of every output. Uploads are decoded like catalog images (size, bombs,
corruption) before anything is written, and are kept only for the deployment's retention.

The input is also held against the licensed catalog, like every output: an edit of a catalog image
credits that image's contributor (``edit_source``) or is refused, as the deployment chooses.
"""

from __future__ import annotations

import io
import threading
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Protocol

import numpy as np
from PIL import Image
from sqlalchemy.orm import Session

from foundry.blobs import BlobStore
from foundry.catalog import service as catalog_service
from foundry.catalog.imaging import ImageLimits, ImageRejected, inspect_image, open_raster, sniff_format
from foundry.config import Settings
from foundry.errors import InvalidInput
from foundry.generation import service as generation_service
from foundry.generation.editing import (
    EditPlan,
    EditSource,
    EditSubmission,
    Padding,
    check_mask_size,
    edit_canvas,
    plan_edit,
)
from foundry.generation.models import EditInput, Generation
from foundry.generation.schemas import EditCreate, GenerationCreate, VariationCreate
from foundry.moderation import service as moderation_service
from foundry.moderation.service import PromptRefused
from foundry.usecases.queue import TaskQueue


class Runner(Protocol):
    """What an edit needs of ``generation.GenerationRunner`` (which renders edits with ``canvas_for``)."""

    settings: Settings

    def ensure_signing(self) -> object: ...

    def __call__(self, generation_id: uuid.UUID) -> Generation: ...
from provenance.hashing import nearest_hash, perceptual_hash, phash_from_hex, phash_to_hex
from provenance.hashing import sha256_hex as digest


def image_limits(settings: Settings) -> ImageLimits:
    """The deployment's limits on any image it decodes (catalog onboarding, edit inputs)."""
    return ImageLimits(max_bytes=settings.max_image_bytes, max_pixels=settings.max_image_pixels,
                       rendition_size=settings.rendition_size)


def _rejected(field: str, rejected: ImageRejected) -> InvalidInput:
    return InvalidInput(f"{field}: {rejected.message}", code="edit_input_rejected",
                        details={"field": field, "reason": rejected.code})


def uploaded_image(data: bytes, limits: ImageLimits) -> EditSource:
    """An uploaded image to edit, decoded completely within the limits (any format the catalog takes)."""
    try:
        inspected = inspect_image(data, limits)
    except ImageRejected as rejected:
        raise _rejected("image", rejected) from None
    return EditSource(role="init", sha256=inspected.sha256, format=inspected.format, width=inspected.width,
                      height=inspected.height, perceptual_hash=inspected.phash, uploaded=True)


def uploaded_mask(data: bytes, limits: ImageLimits) -> EditSource:
    """An uploaded mask: a raster image, white (or transparent) where to paint, of any single colour too."""
    if len(data) > limits.max_bytes:
        raise _rejected("mask", ImageRejected("file_too_large", f"{len(data)} bytes exceeds {limits.max_bytes}"))
    try:
        mask = open_raster(data, limits)
    except ImageRejected as rejected:
        raise _rejected("mask", rejected) from None
    return EditSource(role="mask", sha256=digest(data), format=sniff_format(data) or "png",
                      width=mask.width, height=mask.height, perceptual_hash=phash_to_hex(perceptual_hash(mask)),
                      uploaded=True)


class CatalogHashes:
    """The licensed catalog's perceptual hashes, kept per process and read again only when the catalog
    changes (one count query per edit instead of every hash: 20 ms a request at OpenMoji's size)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loaded: dict[str, tuple[tuple, list[uuid.UUID], np.ndarray]] = {}

    def nearest(self, *, session: Session, phash: str, within: int) -> tuple[uuid.UUID, int] | None:
        """(asset id, Hamming distance) of the closest catalog image, if it is ``within`` bits."""
        version = catalog_service.catalog_version(session=session)
        with self._lock:
            loaded = self._loaded.get(version[0])
            if loaded is None or loaded[0] != version:
                loaded = self._loaded[version[0]] = catalog_service.asset_hashes(session=session)
        _, asset_ids, hashes = loaded
        found = nearest_hash(hashes, phash_from_hex(phash))
        return (asset_ids[found[0]], found[1]) if found is not None and found[1] <= within else None


CATALOG_HASHES = CatalogHashes()


def catalog_checked(settings: Settings, *, session: Session, source: EditSource) -> EditSource:
    """The input held against the licensed catalog, as outputs are: a near-duplicate of a catalog image
    is credited to its contributor, or refused (``FOUNDRY_EDIT_CATALOG_INPUTS``)."""
    found = CATALOG_HASHES.nearest(session=session, phash=source.perceptual_hash,
                                   within=settings.output_near_duplicate_distance)
    if found is None:
        return source
    if settings.edit_catalog_inputs == "refuse":
        raise InvalidInput("the image to edit is a near-duplicate of a licensed catalog image, and this deployment "
                           "does not edit catalog images", code="edit_input_in_catalog",
                           details={"asset_id": str(found[0]), "distance": found[1]})
    return EditSource(**{**source.__dict__, "catalog_asset_id": found[0], "catalog_distance": found[1]})


def _submit(*, session: Session, runner: Runner, queue: TaskQueue, blob_store: BlobStore,
            tenant_id: uuid.UUID, api_key_id: uuid.UUID | None, body: GenerationCreate, edit: EditSubmission,
            uploads: dict[str, bytes], idempotency_key: str | None, sync_limit: int) -> Generation:
    """Record the edit with its staged uploads (promoted only once the row is committed), then serve or queue it."""
    settings = runner.settings
    stage_id = f"edit-{uuid.uuid4()}"
    try:
        with session.begin():
            for data in uploads.values():
                blob_store.stage(stage_id, data)
            generation, created = generation_service.submit_generation(
                session=session, blob_store=blob_store, tenant_id=tenant_id, api_key_id=api_key_id, body=body,
                idempotency_key=idempotency_key, sync_limit=sync_limit, style_mode=settings.style_names,
                edit=edit, input_retention=timedelta(days=settings.edit_input_retention_days))
    except PromptRefused as refused:  # nothing of the request was written; the refusal is counted
        blob_store.discard(stage_id)
        with session.begin():
            moderation_service.record_refusal(session=session, refused=refused, tenant_id=tenant_id,
                                              api_key_id=api_key_id)
        raise
    except BaseException:
        blob_store.discard(stage_id)
        raise
    blob_store.promote(stage_id)
    if created and generation.mode == "sync":
        generation = runner(generation.id)
    elif created:
        queue.generation(generation.id)
    session.expire_all()
    return generation


def start_edit(*, session: Session, runner: Runner, queue: TaskQueue, blob_store: BlobStore,
               tenant_id: uuid.UUID, api_key_id: uuid.UUID | None, body: EditCreate, image: bytes,
               mask: bytes | None, idempotency_key: str | None, sync_limit: int) -> Generation:
    """Check an uploaded edit (operation, image, mask), record it and serve or queue it. Raises InvalidInput
    (nothing written) for an unreadable or oversized upload, a mask that does not fit, a refused catalog image."""
    runner.ensure_signing()
    plan = plan_edit(operation=body.operation, strength=body.strength, has_mask=mask is not None,
                     padding=Padding(body.pad_left, body.pad_top, body.pad_right, body.pad_bottom))
    limits = image_limits(runner.settings)
    init = uploaded_image(image, limits)
    sources = [init]
    uploads = {"init": image}
    if mask is not None:
        mask_source = uploaded_mask(mask, limits)
        check_mask_size((init.width, init.height), (mask_source.width, mask_source.height))
        sources.append(mask_source)
        uploads["mask"] = mask
    sources[0] = catalog_checked(runner.settings, session=session, source=init)
    session.rollback()  # the catalog read ends here; the submission opens its own transaction
    text_fields = GenerationCreate.model_fields
    generation_body = GenerationCreate(**{name: getattr(body, name) for name in text_fields})
    return _submit(session=session, runner=runner, queue=queue, blob_store=blob_store, tenant_id=tenant_id,
                   api_key_id=api_key_id, body=generation_body, edit=EditSubmission(plan, tuple(sources)),
                   uploads=uploads, idempotency_key=idempotency_key, sync_limit=sync_limit)


def start_variation(*, session: Session, runner: Runner, queue: TaskQueue, blob_store: BlobStore,
                    tenant_id: uuid.UUID, api_key_id: uuid.UUID | None, body: VariationCreate,
                    idempotency_key: str | None, sync_limit: int) -> Generation:
    """Variations of one of the tenant's own outputs (another tenant's is 'not found'): image-to-image from
    its raw pixels, with its prompt and model unless the request names others."""
    runner.ensure_signing()
    plan = plan_edit(operation="variation", strength=body.strength, padding=Padding(), has_mask=False)
    source_generation = generation_service.get_generation(session=session, generation_id=body.generation_id,
                                                          tenant_id=tenant_id)
    image = generation_service.get_image(session=session, generation_id=source_generation.id,
                                         index=body.image_index, tenant_id=tenant_id)
    init = catalog_checked(runner.settings, session=session, source=EditSource(
        role="init", sha256=image.raw_sha256, format="png", width=image.width, height=image.height,
        perceptual_hash=image.perceptual_hash, uploaded=False, source_generation_id=source_generation.id,
        source_image_index=image.index))
    generation_body = GenerationCreate(
        model_id=body.model_id or source_generation.model_id, prompt=body.prompt or source_generation.prompt,
        negative_prompt=body.negative_prompt, seed=body.seed, num_images=body.num_images, steps=body.steps,
        guidance_scale=body.guidance_scale, scheduler=body.scheduler, mode=body.mode)
    session.rollback()
    return _submit(session=session, runner=runner, queue=queue, blob_store=blob_store, tenant_id=tenant_id,
                   api_key_id=api_key_id, body=generation_body, edit=EditSubmission(plan, (init,)), uploads={},
                   idempotency_key=idempotency_key, sync_limit=sync_limit)


@dataclass(frozen=True)
class EditCanvas:
    """What the model is handed for an edit: the square canvas, and its mask when it paints."""

    image: Image.Image
    mask: Image.Image | None


def canvas_for(*, plan: EditPlan, inputs: list[EditInput], blob_store: BlobStore, limits: ImageLimits,
               size: int) -> EditCanvas:
    """Decode an edit's stored inputs (as they were checked) and lay them on the model's canvas."""
    by_role = {row.role: row for row in inputs}
    init = by_role["init"]
    data = blob_store.get(init.sha256)
    picture = Image.open(io.BytesIO(inspect_image(data, limits).rendition)).convert("RGB")
    mask = None
    if "mask" in by_role:
        mask = open_raster(blob_store.get(by_role["mask"].sha256), limits).convert("L")
        mask = mask.resize(picture.size, Image.Resampling.NEAREST)
    scale = picture.width / init.width  # the rendition may be smaller than the upload: so is the padding
    padding = Padding(*(round(value * scale) for value in plan.padding.as_dict().values()))
    canvas, canvas_mask = edit_canvas(EditPlan(plan.operation, plan.strength, padding), picture, mask, size)
    return EditCanvas(canvas, canvas_mask)


__all__ = ["EditCanvas", "canvas_for", "image_limits", "start_edit", "start_variation"]
