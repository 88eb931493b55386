"""Pure rules for generation requests: what a model can do, whether a request fits it, how
it is served, and what makes two requests "the same" for idempotency."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace

from foundry.accounts.policy import Principal
from foundry.errors import InvalidInput
from recipes import DEFAULT_GUIDANCE_SCALE

# Scheduler names the API offers, by the noise schedules they need.
PIXEL_SCHEDULERS = ("ddpm", "dpmsolver++")
"""Pixel models with a learned variance (IF-style) need schedulers that read it or skip it."""
LATENT_SCHEDULERS = ("ddpm", "ddim", "euler", "euler_ancestral", "dpmsolver++", "pndm")


@dataclass(frozen=True)
class ModelCapabilities:
    """What a registered pipeline can generate, read from its stored config files."""

    pipeline_class: str
    native_size: int
    sizes: tuple[int, ...]
    schedulers: tuple[str, ...]
    default_scheduler: str
    default_guidance_scale: float = DEFAULT_GUIDANCE_SCALE
    """What its recipe says it draws best at (``recipes.serving_guidance``)."""


def capabilities_from_configs(model_index: dict, unet_config: dict, vae_config: dict | None,
                              scheduler_config: dict) -> ModelCapabilities:
    sample_size = unet_config.get("sample_size")
    if isinstance(sample_size, (list, tuple)):
        sample_size = sample_size[0]
    if not isinstance(sample_size, int) or sample_size <= 0:
        raise InvalidInput("the model's UNet config has no usable sample_size", code="model_not_servable")
    downsamples = 2 ** max(len(unet_config.get("block_out_channels", [1])) - 1, 0)
    if vae_config is None:
        native = sample_size
        sizes = (native,)  # a small pixel model is only trained at its native size
        schedulers = PIXEL_SCHEDULERS
    else:
        vae_factor = 2 ** (len(vae_config.get("block_out_channels", [1])) - 1)
        native = sample_size * vae_factor
        step = vae_factor * downsamples
        sizes = tuple(size for size in range(step, 2 * native + 1, step) if native // 2 <= size <= native * 3 // 2)
        schedulers = LATENT_SCHEDULERS
    default = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim", "EulerDiscreteScheduler": "euler",
               "EulerAncestralDiscreteScheduler": "euler_ancestral", "DPMSolverMultistepScheduler": "dpmsolver++",
               "PNDMScheduler": "pndm"}.get(scheduler_config.get("_class_name", ""), schedulers[0])
    return ModelCapabilities(pipeline_class=model_index.get("_class_name", "DiffusionPipeline"), native_size=native,
                             sizes=sizes, schedulers=schedulers, default_scheduler=default)


@dataclass(frozen=True)
class ResolvedRequest:
    """A request with every default filled in: exactly what the pipeline is asked to do."""

    prompt: str
    negative_prompt: str
    seed: int
    num_images: int
    steps: int
    guidance_scale: float
    width: int
    height: int
    scheduler: str
    edit: dict | None = None
    """An edit's plan (``editing.EditPlan.as_dict``); None for text-to-image."""

    def as_dict(self) -> dict:
        return {key: value for key, value in self.__dict__.items() if key != "edit" or value is not None}


def field_error(field: str, message: str) -> InvalidInput:
    return InvalidInput(f"{field}: {message}", code="validation_error",
                        details={"fields": [{"field": field, "message": message}]})


def resolve_request(*, prompt: str, negative_prompt: str, seed: int, num_images: int, steps: int,
                    guidance_scale: float | None, width: int | None, height: int | None, scheduler: str,
                    capabilities: ModelCapabilities) -> ResolvedRequest:
    """Fill defaults from the model; refuse what the model cannot do (never clamp)."""
    width = capabilities.native_size if width is None else width
    height = capabilities.native_size if height is None else height
    for field, value in (("width", width), ("height", height)):
        if value not in capabilities.sizes:
            raise field_error(field, f"{value} is not a supported size of this model; use one of "
                                     f"{list(capabilities.sizes)}")
    guidance_scale = capabilities.default_guidance_scale if guidance_scale is None else guidance_scale
    scheduler = capabilities.default_scheduler if scheduler == "default" else scheduler
    if scheduler not in capabilities.schedulers:
        raise field_error("scheduler", f"{scheduler!r} does not fit this model; use one of "
                                       f"{['default', *capabilities.schedulers]}")
    # a blank negative prompt means none, whatever whitespace it holds: the same request, the same pixels
    negative_prompt = negative_prompt if negative_prompt.strip() else ""
    return ResolvedRequest(prompt=prompt, negative_prompt=negative_prompt, seed=seed, num_images=num_images,
                           steps=steps, guidance_scale=guidance_scale, width=width, height=height,
                           scheduler=scheduler)


def work_units(request: ResolvedRequest, capabilities: ModelCapabilities) -> float:
    """Denoising work in native-size image-steps: what decides sync or queued service."""
    return request.num_images * request.steps * (request.width * request.height) / capabilities.native_size ** 2


def serving_mode(*, requested: str, request: ResolvedRequest, capabilities: ModelCapabilities,
                 sync_limit: float) -> str:
    if requested == "async" or work_units(request, capabilities) > sync_limit:
        return "async"
    return "sync"


def request_fingerprint(body: dict) -> str:
    """sha256 of the canonical JSON of the request body as the caller sent it (defaults included)."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(canonical.encode()).hexdigest()


def sees_generation(*, viewer: Principal, generation_tenant_id: uuid.UUID) -> bool:
    """A generation's record (id, time, refund) belongs to the tenant that made it; admins see every one."""
    return viewer.is_admin or (viewer.tenant_id is not None and viewer.tenant_id == generation_tenant_id)


def cascade_capabilities(base: ModelCapabilities, read_upscaler_json: Callable[[str], dict | None]) -> ModelCapabilities:
    """A cascade draws with its base stage's schedulers and delivers at its upscaler's size."""
    unet = read_upscaler_json("unet/config.json")
    cascade = read_upscaler_json("cascade.json")
    if unet is None or cascade is None or cascade.get("upscale_from") != base.native_size:
        raise InvalidInput("the upscaler does not enlarge what its parent draws", code="model_not_servable")
    size = unet.get("sample_size")
    if not isinstance(size, int) or size <= base.native_size:
        raise InvalidInput("the upscaler's UNet config has no usable sample_size", code="model_not_servable")
    return replace(base, pipeline_class=f"{base.pipeline_class}+{read_upscaler_json('model_index.json')['_class_name']}",
                   native_size=size, sizes=(size,))


def capabilities_of(read_json: Callable[[str], dict | None]) -> ModelCapabilities:
    """A model's capabilities from its stored config files (``read_json(relative path)``)."""
    model_index = read_json("model_index.json")
    unet = read_json("unet/config.json")
    scheduler = read_json("scheduler/scheduler_config.json")
    if model_index is None or unet is None or scheduler is None:
        raise InvalidInput("the model is not a text-to-image UNet pipeline", code="model_not_servable")
    return capabilities_from_configs(model_index, unet, read_json("vae/config.json"), scheduler)
