"""The inference engine: one loaded pipeline per model per process, and deterministic renders.

Pipelines are expensive to load and cheap to reuse, so each worker (or API) process keeps a
small LRU of them keyed by model id and weights digest. A pipeline is used by one request at a
time (its scheduler is swapped per request), guarded by its own lock.

Determinism: image *i* of a request is drawn from its own CPU generator seeded with
``seed + i``, so the same request and seed give the same pixels -- and the same PNG bytes --
on the same machine, whatever the batch size or which other images were asked for.
"""

from __future__ import annotations

import contextlib
import io
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from foundry.errors import InvalidInput
from foundry.generation.policy import ModelCapabilities, ResolvedRequest, capabilities_from_configs

logger = logging.getLogger(__name__)

_SCHEDULER_CLASSES = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpmsolver++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
}


@contextlib.contextmanager
def _quiet_diffusers() -> Iterator[None]:
    """IF-format base models log a T5/safety-checker notice on load; it is expected here."""
    from diffusers.utils import logging as diffusers_logging
    from transformers.utils import logging as transformers_logging

    previous = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(diffusers_logging.ERROR)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(previous)


def png_bytes(image: Image.Image) -> bytes:
    """PNG with no metadata and fixed settings, so equal pixels give equal bytes."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=False, compress_level=6)
    return buffer.getvalue()


@dataclass
class LoadedPipeline:
    model_key: str
    pipeline: Any
    default_scheduler: Any
    lock: threading.Lock
    attributors: dict = field(default_factory=dict)

    def render(self, request: ResolvedRequest) -> list[Image.Image]:
        import diffusers
        import torch

        with self.lock:
            if request.scheduler == "default":
                scheduler = self.default_scheduler
            else:
                scheduler_class = getattr(diffusers, _SCHEDULER_CLASSES[request.scheduler])
                scheduler = scheduler_class.from_config(self.default_scheduler.config)
            self.pipeline.scheduler = scheduler
            generators = [torch.Generator("cpu").manual_seed(request.seed + index)
                          for index in range(request.num_images)]
            kwargs = {"clean_caption": False} if type(self.pipeline).__name__ == "IFPipeline" else {}
            with torch.inference_mode():
                output = self.pipeline(
                    request.prompt,
                    negative_prompt=request.negative_prompt or None,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance_scale,
                    num_images_per_prompt=request.num_images,
                    height=request.height,
                    width=request.width,
                    generator=generators,
                    output_type="pil",
                    **kwargs,
                )
            return [image.convert("RGB") for image in output.images]

    def influence_scores(self, index, config, images: list[Image.Image], prompt: str) -> list:
        """Each output's influence scores against ``index`` (gradients through this pipeline's UNet)."""
        from provenance.influence import Attributor

        with self.lock:
            key = repr(sorted(config.as_dict().items()))
            attributor = self.attributors.get(key)
            if attributor is None:
                attributor = Attributor(self.pipeline, config, scheduler_config=self.default_scheduler.config)
                self.attributors[key] = attributor
            return [index.scores(attributor.features(image, prompt)) for image in images]


@dataclass(frozen=True)
class ModelFolders:
    """A model as folders on disk: the pipeline it renders with, and the adapters (LoRA) loaded onto it."""

    pipeline: Path
    adapters: tuple[Path, ...] = ()


def load_pipeline(folder: Path, *, adapters: tuple[Path, ...] = (), device: str | None = None) -> Any:
    import torch
    from diffusers import DiffusionPipeline

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device == "cuda" else torch.float32
    with _quiet_diffusers():
        pipeline = DiffusionPipeline.from_pretrained(str(folder), dtype=dtype)
        for adapter in adapters:
            pipeline.load_lora_weights(str(adapter))
    for name in ("safety_checker", "watermarker"):
        # licensed-only models need no third-party filters; our own provenance marks every output
        if getattr(pipeline, name, None) is not None:
            setattr(pipeline, name, None)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


def load_model(folders: ModelFolders) -> Any:
    return load_pipeline(folders.pipeline, adapters=folders.adapters)


class PipelineCache:
    """At most ``capacity`` pipelines per process, least recently used evicted first."""

    def __init__(self, capacity: int = 2, loader: Callable[[ModelFolders], Any] = load_model):
        if capacity < 1:
            raise ValueError("the pipeline cache holds at least one pipeline")
        self.capacity = capacity
        self._loader = loader
        self._entries: OrderedDict[str, LoadedPipeline] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, model_key: str, folder_factory: Callable[[], ModelFolders]) -> LoadedPipeline:
        with self._lock:
            entry = self._entries.get(model_key)
            if entry is not None:
                self._entries.move_to_end(model_key)
                return entry
            pipeline = self._loader(folder_factory())
            self.loads += 1
            entry = LoadedPipeline(model_key=model_key, pipeline=pipeline, default_scheduler=pipeline.scheduler,
                                   lock=threading.Lock())
            self._entries[model_key] = entry
            while len(self._entries) > self.capacity:
                evicted, _ = self._entries.popitem(last=False)
                logger.info("pipeline cache evicted model %s", evicted)
            return entry

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._entries)


def capabilities_of(read_json: Callable[[str], dict | None]) -> ModelCapabilities:
    """A model's capabilities from its stored config files (``read_json(relative path)``)."""
    model_index = read_json("model_index.json")
    unet = read_json("unet/config.json")
    scheduler = read_json("scheduler/scheduler_config.json")
    if model_index is None or unet is None or scheduler is None:
        raise InvalidInput("the model is not a text-to-image UNet pipeline", code="model_not_servable")
    return capabilities_from_configs(model_index, unet, read_json("vae/config.json"), scheduler)
