"""Inference: one loaded pipeline per model per process, and deterministic renders.

Pipelines are expensive to load and cheap to reuse, so each worker (or API) process keeps a
small LRU of them keyed by model id and weights digest. A pipeline is used by one request at a
time (its scheduler is swapped per request), guarded by its own lock.

Determinism: image *i* of a request is drawn from its own CPU generator seeded with
``seed + i``, so the same request and seed give the same pixels -- and the same PNG bytes --
on the same machine, whatever the batch size or which other images were asked for.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import diffusers
import torch
from PIL import Image

from provenance.influence import InfluenceConfig, InfluenceIndex
from training.attribution_features import Attributor
from training.pipelines import editing_pipeline, load_cascade, load_pipeline, pipeline_call_kwargs

logger = logging.getLogger(__name__)

_SCHEDULER_CLASSES = {
    "ddpm": "DDPMScheduler",
    "ddim": "DDIMScheduler",
    "euler": "EulerDiscreteScheduler",
    "euler_ancestral": "EulerAncestralDiscreteScheduler",
    "dpmsolver++": "DPMSolverMultistepScheduler",
    "pndm": "PNDMScheduler",
}


@dataclass
class LoadedPipeline:
    model_key: str
    pipeline: Any
    default_scheduler: Any
    lock: threading.Lock
    attributors: dict = field(default_factory=dict)
    editors: dict = field(default_factory=dict)
    """Edit pipelines over the same components, by whether they paint a mask."""

    def render(self, request, canvas: Image.Image | None = None, mask: Image.Image | None = None) -> list[Image.Image]:
        """The images ``request`` (a resolved generation request: prompt, seed, size, steps...) asks for;
        with a ``canvas`` it is an edit of it (image-to-image; inpainting where ``mask`` is white)."""
        with self.lock:
            if request.scheduler == "default":
                scheduler = self.default_scheduler
            else:
                scheduler_class = getattr(diffusers, _SCHEDULER_CLASSES[request.scheduler])
                scheduler = scheduler_class.from_config(self.default_scheduler.config)
            pipeline, inputs = self.pipeline, {"height": request.height, "width": request.width}
            if canvas is not None:
                painting = mask is not None
                if painting not in self.editors:
                    self.editors[painting] = editing_pipeline(self.pipeline, painting=painting)
                pipeline = self.editors[painting]
                inputs = {"image": canvas, "strength": request.edit["strength"],
                          **({"mask_image": mask} if painting else {})}
            pipeline.scheduler = scheduler
            generators = [torch.Generator("cpu").manual_seed(request.seed + index)
                          for index in range(request.num_images)]
            with torch.inference_mode():
                output = pipeline(
                    request.prompt,
                    negative_prompt=request.negative_prompt or None,
                    num_inference_steps=request.steps,
                    guidance_scale=request.guidance_scale,
                    num_images_per_prompt=request.num_images,
                    generator=generators,
                    output_type="pil",
                    **inputs,
                    **pipeline_call_kwargs(self.pipeline),
                )
            return [image.convert("RGB") for image in output.images]

    def influence_scores(self, index: InfluenceIndex, config: InfluenceConfig, images: list[Image.Image],
                         prompt: str) -> list:
        """Each output's scored candidate rows of ``index``, for evidence and for payment (``OutputScores``;
        gradients through this pipeline's UNet)."""
        with self.lock:
            key = repr(sorted(config.as_dict().items()))
            attributor = self.attributors.get(key)
            if attributor is None:
                attributor = Attributor(self.pipeline, config, scheduler_config=self.default_scheduler.config)
                self.attributors[key] = attributor
            return [attributor.score(index, image, prompt) for image in images]


class ModelFolders(NamedTuple):
    """A model as folders on disk: the pipeline it renders with, the adapters (LoRA) loaded onto it,
    and the upscaler that enlarges its images when the model is a cascade."""

    pipeline: Path
    adapters: tuple[Path, ...] = ()
    upscaler: Path | None = None


def load_model(folders: tuple) -> Any:
    model = ModelFolders(*folders)
    if model.upscaler is not None:
        return load_cascade(model.pipeline, model.upscaler, adapters=model.adapters)
    return load_pipeline(model.pipeline, adapters=model.adapters)


class PipelineCache:
    """At most ``capacity`` pipelines per process, least recently used evicted first."""

    def __init__(self, capacity: int = 2, loader: Callable[[Any], Any] = load_model):
        if capacity < 1:
            raise ValueError("the pipeline cache holds at least one pipeline")
        self.capacity = capacity
        self._loader = loader
        self._entries: OrderedDict[str, LoadedPipeline] = OrderedDict()
        self._lock = threading.Lock()
        self.loads = 0

    def get(self, model_key: str, folder_factory: Callable[[], Any]) -> LoadedPipeline:
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
