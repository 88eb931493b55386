"""Registering models (trained here or brought in), storing their files, and materialising them.

Model folders are stored file by file in the content-addressed blob store; a model row maps
each relative path to its sha256, so a worker can rebuild the exact folder anywhere and prove
it is the one that was registered.
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

from sqlalchemy.orm import Session

from foundry import __version__
from foundry.blobs import BlobStore, sha256_hex
from foundry.db import flushed, get_or_raise, newest_first
from foundry.errors import InvalidInput
from foundry.models_registry.models import RegisteredModel
from foundry.models_registry.policy import REVOCATION_POLICIES, is_licensed_only
from provenance.hashing import combined_weights_digest
from recipes import serving_guidance

_MAX_MODEL_FILE = 20 * 1024 ** 3
ADAPTER_FORMAT = "diffusers_lora"
UPSCALER_KIND = "upscaler"
"""A super-resolution stage: served after its parent, never alone."""
"""Weights that only adapt their parent's pipeline (LoRA); every other format is a whole pipeline folder."""


def code_version() -> str:
    """The foundry version, plus the git commit when running from a checkout."""
    head = Path(__file__).resolve().parents[2] / ".git" / "HEAD"
    try:
        ref = head.read_text().strip()
        if ref.startswith("ref: "):
            ref = (head.parent / ref[5:]).read_text().strip()
        return f"{__version__}+{ref[:12]}"
    except OSError:
        return __version__


def folder_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def weights_sha256(files: dict[str, str]) -> str:
    """One digest over the weight files (safetensors/bin): the same function the training engine reports with."""
    return combined_weights_digest(files)


def store_folder(*, blob_store: BlobStore, folder: Path) -> dict[str, str]:
    files = {}
    for path in folder_files(folder):
        if path.stat().st_size > _MAX_MODEL_FILE:
            raise InvalidInput(f"{path} is larger than {_MAX_MODEL_FILE} bytes", code="model_file_too_large")
        files[path.relative_to(folder).as_posix()] = blob_store.put(path.read_bytes())
    return files


def get_model(*, session: Session, model_id: uuid.UUID) -> RegisteredModel:
    return get_or_raise(session, RegisteredModel, model_id, code="model_not_found", what="model")


def list_models(*, session: Session, limit: int = 50, offset: int = 0) -> list[RegisteredModel]:
    return newest_first(session, RegisteredModel, order_by=RegisteredModel.created_at, limit=limit, offset=offset)


def lineage(*, session: Session, model_id: uuid.UUID) -> list[RegisteredModel]:
    """The model and its ancestors, newest first."""
    chain = []
    current = get_model(session=session, model_id=model_id)
    while current is not None:
        chain.append(current)
        current = session.get(RegisteredModel, current.parent_id) if current.parent_id else None
        if len(chain) > 64:
            raise InvalidInput("model lineage is cyclic or absurdly deep", code="lineage_invalid")
    return chain


def serving_chain(*, session: Session, model: RegisteredModel) -> tuple[RegisteredModel, list[RegisteredModel]]:
    """What renders ``model``: the full pipeline it rests on, and the adapters (LoRA) to load onto it, in order.

    A pipeline model is its own pipeline with no adapters; a LoRA is its parent's pipeline plus itself;
    an upscaler draws with its parent's chain, then enlarges (:func:`upscaling_stage`).
    """
    adapters: list[RegisteredModel] = []
    current = drawing_stage(session=session, model=model)
    while current.model_format == ADAPTER_FORMAT:
        adapters.insert(0, current)
        if current.parent_id is None:
            raise InvalidInput(f"adapter model {current.id} has no parent pipeline to load onto",
                               code="model_not_servable")
        current = get_model(session=session, model_id=current.parent_id)
        if len(adapters) > 64:
            raise InvalidInput("model lineage is cyclic or absurdly deep", code="lineage_invalid")
    return current, adapters


def served_guidance(*, session: Session, model: RegisteredModel) -> float:
    """The guidance ``model`` is served and measured at when a request names none: the last adapter's of its
    chain that names one, else its pipeline's recipe's, else the default (:func:`recipes.serving_guidance`)."""
    pipeline, adapters = serving_chain(session=session, model=model)
    return serving_guidance(pipeline.recipe, *(adapter.recipe for adapter in adapters))


def drawing_stage(*, session: Session, model: RegisteredModel) -> RegisteredModel:
    """The model whose weights decide what ``model``'s outputs show: a cascade's parent (the upscaler only
    enlarges), any other model itself. Its attribution index scores the outputs."""
    if model.kind != UPSCALER_KIND:
        return model
    if model.parent_id is None:
        raise InvalidInput(f"upscaler {model.id} has no parent model to enlarge", code="model_not_servable")
    return get_model(session=session, model_id=model.parent_id)


def upscaling_stage(model: RegisteredModel) -> RegisteredModel | None:
    """The stage that enlarges what ``model``'s chain draws: the model itself when it is an upscaler."""
    return model if model.kind == UPSCALER_KIND else None


def register_external(*, session: Session, blob_store: BlobStore, folder: Path, name: str,
                      note: str | None = None) -> RegisteredModel:
    """Bring in a diffusers folder trained elsewhere (e.g. Stable Diffusion 1.5): never licensed-only."""
    if not (folder / "model_index.json").is_file():
        raise InvalidInput(f"{folder} is not a diffusers pipeline folder (no model_index.json)",
                           code="model_folder_invalid")
    try:
        json.loads((folder / "model_index.json").read_text())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(f"{folder}/model_index.json is not valid JSON", code="model_folder_invalid") from None
    files = store_folder(blob_store=blob_store, folder=folder)
    model = RegisteredModel(
        name=name, kind="external", model_format="diffusers_pipeline", recipe={}, code_version=code_version(),
        weights_sha256=weights_sha256(files), files=files, text_encoder_origin={"kind": "external"},
        licensed_only=False, source_path=str(folder.resolve()),
        lineage_note=note or "registered from a folder; its training data is not known to the foundry",
    )
    return flushed(session, model)


def register_trained(*, session: Session, blob_store: BlobStore, folder: Path, name: str, kind: str,
                     model_format: str, snapshot_id: uuid.UUID, snapshot_merkle_root: str, recipe: dict,
                     text_encoder_origin: dict, parent: RegisteredModel | None, training_job_id: uuid.UUID,
                     metrics: dict, owner_tenant_id: uuid.UUID | None = None) -> RegisteredModel:
    files = store_folder(blob_store=blob_store, folder=folder)
    model = RegisteredModel(
        name=name, kind=kind, model_format=model_format, parent_id=parent.id if parent else None,
        snapshot_id=snapshot_id, snapshot_merkle_root=snapshot_merkle_root, recipe=recipe,
        code_version=code_version(), weights_sha256=weights_sha256(files), files=files,
        text_encoder_origin=text_encoder_origin, owner_tenant_id=owner_tenant_id,
        licensed_only=is_licensed_only(kind=kind, trained_on_snapshot=True,
                                       parent_licensed_only=parent.licensed_only if parent else None),
        training_job_id=training_job_id, metrics=metrics,
    )
    return flushed(session, model)


def materialize(*, model: RegisteredModel, blob_store: BlobStore, cache_dir: Path) -> Path:
    """The model's folder on local disk, rebuilt from blobs and verified file by file."""
    target = cache_dir / str(model.id)
    marker = target / ".complete"
    if marker.is_file():
        return target
    staging = cache_dir / f".{model.id}.{os.getpid()}.partial"
    for relative, digest in sorted(model.files.items()):
        data = blob_store.get(digest)
        if sha256_hex(data) != digest:
            raise InvalidInput(f"stored file {relative} of model {model.id} is corrupt", code="model_corrupt")
        path = staging / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    (staging / ".complete").write_text(model.weights_sha256)
    if target.exists():
        import shutil

        shutil.rmtree(staging, ignore_errors=True)
        return target
    os.replace(staging, target)
    return target


def set_revocation_policy(*, session: Session, model_id: uuid.UUID, policy: str, grace_days: int) -> RegisteredModel:
    if policy not in REVOCATION_POLICIES:
        raise InvalidInput(f"unknown policy {policy!r}; one of {list(REVOCATION_POLICIES)}", code="invalid_policy")
    if not 0 <= grace_days <= 3650:
        raise InvalidInput("grace_days is between 0 and 3650", code="invalid_policy")
    model = get_model(session=session, model_id=model_id)
    model.revocation_policy, model.grace_days = policy, grace_days
    session.flush()
    return model
