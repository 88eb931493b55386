"""Building a model's attribution index: features of every training example, then the kernel.

Long work (one gradient per training image), so it runs outside any transaction, reports
progress through a callback, and writes one row at the end -- refused if the model's weights or
snapshot changed meanwhile.
"""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from foundry.attribution import service as attribution_service
from foundry.attribution.models import AttributionIndex
from foundry.blobs import BlobStore
from foundry.datasets import service as dataset_service
from foundry.errors import InvalidInput
from foundry.models_registry import service as registry_service
from foundry.models_registry.models import RegisteredModel
from provenance.influence import Attributor, InfluenceConfig, InfluenceIndex

IndexProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class IndexInput:
    asset_id: uuid.UUID
    contributor_id: uuid.UUID
    caption: str
    entry: object


def load_attribution_pipeline(*, session, model: RegisteredModel, blob_store: BlobStore, cache_dir: Path):
    """The model as a pipeline on which gradients can be taken; a LoRA sits on its parent's pipeline."""
    from foundry.generation.engine import load_pipeline

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
        if model.snapshot_id is None:
            raise InvalidInput(f"model {model_id} was not trained on a snapshot: nothing to attribute to",
                               code="model_not_indexable")
        inputs = [IndexInput(e.asset_id, e.contributor_id, e.caption, e)
                  for e in dataset_service.snapshot_entries(session=session, snapshot_id=model.snapshot_id)]
        fingerprint = attribution_service.fingerprint_of(model)
        pipeline = load_attribution_pipeline(session=session, model=model, blob_store=blob_store,
                                             cache_dir=cache_dir)
    attributor = Attributor(pipeline, config)
    total = len(inputs)

    def examples():
        for item in inputs:
            data = dataset_service.load_rendition(blob_store=blob_store, entry=item.entry)
            yield Image.open(io.BytesIO(data)).convert("RGB"), item.caption

    if progress is not None:
        progress(0, total)
    features = attributor.features_of_many(examples(), progress=(lambda done: progress(done, total))
                                           if progress is not None else None)
    index = InfluenceIndex.build(features, asset_ids=[i.asset_id for i in inputs],
                                 contributor_ids=[i.contributor_id for i in inputs], config=config,
                                 fingerprint=fingerprint)
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
    from foundry.db import session_factory

    sessions = session_factory(settings.resolved_database_url)
    if not force:
        with sessions() as session:
            model = registry_service.get_model(session=session, model_id=model_id)
            current = attribution_service.active_index(session=session, model=model)
            if current is not None:
                session.expunge(current)
                return current
    return build_index(sessions=sessions, blob_store=blob_store, model_id=model_id,
                       cache_dir=settings.var_dir / "models", built_by=built_by, progress=progress)
