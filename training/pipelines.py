"""Diffusers pipeline folders: what training reads from them, builds for them, and writes to them.

* ``load_pipeline_parts`` opens an existing pipeline folder (Stable-Diffusion-style latent models
  with a VAE, or IF-style pixel models such as this engine's own ``base`` output);
* ``build_base_parts`` creates the from-scratch ``base`` model: a pixel-space
  ``UNet2DConditionModel`` with twice as many output as input channels, a ``DDPMScheduler`` with
  v-prediction and ``variance_type="learned_range"``, and a caption-trained CLIP text side, saved
  as an ``IFPipeline`` folder. IFPipeline works with a CLIP tokenizer/text encoder: it only needs
  ``tokenizer(...)`` and ``text_encoder(ids, attention_mask=...)[0]``; diffusers logs that it
  expected T5 types, which is harmless. Generate with ``clean_caption=False`` (the lower-case/strip
  preprocessing training used) and no safety checker or watermarker;
* ``load_pipeline`` opens a trained (or registered) pipeline folder for inference, LoRA adapters
  loaded onto it;
* ``sample_grid`` renders validation prompts side by side.

This is the one module that builds or loads pipelines, knows their quirks (``pipeline_call_kwargs``)
and silences the warnings diffusers logs for choices made here on purpose.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    IFPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.utils import logging as diffusers_logging
from diffusers.utils import make_image_grid
from PIL import Image
from transformers import CLIPTokenizer
from transformers.utils import logging as transformers_logging

from recipes import BaseModelShape
from training.text_encoder import (
    PromptStyle,
    TextEncoderShape,
    build_text_encoder,
    train_caption_tokenizer,
    write_classic_vocab_files,
)

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def expected_pipeline_warnings_silenced() -> Iterator[None]:
    """Hide the warnings diffusers logs for choices made here on purpose.

    Building or loading the ``base`` IFPipeline logs that the safety checker is disabled (it is
    DeepFloyd's filter for their own weights; these models are trained from scratch and sampled
    only for validation) and that a T5 text encoder was expected (a CLIP one is used). Progress
    bars of loading are switched off for good: workers and the API log, they do not draw.
    """
    previous = diffusers_logging.get_verbosity()
    diffusers_logging.set_verbosity(diffusers_logging.ERROR)
    diffusers_logging.disable_progress_bar()
    transformers_logging.disable_progress_bar()
    try:
        yield
    finally:
        diffusers_logging.set_verbosity(previous)


@dataclass
class PipelineParts:
    """The modules training touches, plus what is needed to write the pipeline back out."""

    pipeline_class: type[DiffusionPipeline]
    unet: UNet2DConditionModel
    noise_scheduler: DDPMScheduler
    """Forward-process scheduler used by training (a DDPMScheduler on the pipeline's betas)."""
    sampling_scheduler: Any
    """The pipeline's own scheduler, saved with it and used for validation samples."""
    tokenizer: CLIPTokenizer
    text_encoder: torch.nn.Module
    vae: AutoencoderKL | None = None
    extra_components: dict[str, Any] = field(default_factory=dict)
    """Other pipeline components (safety checker, feature extractor ...), passed through untouched."""

    @property
    def prompt_style(self) -> PromptStyle:
        return PromptStyle.for_pipeline_class(self.pipeline_class.__name__)

    @property
    def pixel_space(self) -> bool:
        return self.vae is None

    @property
    def vae_scale_factor(self) -> int:
        return 1 if self.vae is None else 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def native_resolution(self) -> int:
        sample_size = self.unet.config.sample_size
        if isinstance(sample_size, (list, tuple)):
            sample_size = sample_size[0]
        return int(sample_size) * self.vae_scale_factor

    @classmethod
    def from_components(cls, pipeline_class: type[DiffusionPipeline], components: dict[str, Any]) -> PipelineParts:
        """Parts from a pipeline's components (its ``scheduler`` samples); the other components pass through.

        Training's forward process is a DDPMScheduler on the sampler's betas, with the learned variance
        of an IF-style UNet (twice as many output as input channels), whatever sampler was saved.
        """
        components = dict(components)
        unet = components.pop("unet")
        sampling_scheduler = components.pop("scheduler")
        noise_scheduler = DDPMScheduler.from_config(sampling_scheduler.config)
        if unet.config.out_channels == 2 * unet.config.in_channels:
            noise_scheduler = DDPMScheduler.from_config(noise_scheduler.config, variance_type="learned_range")
        return cls(
            pipeline_class=pipeline_class,
            unet=unet,
            noise_scheduler=noise_scheduler,
            sampling_scheduler=sampling_scheduler,
            tokenizer=components.pop("tokenizer"),
            text_encoder=components.pop("text_encoder"),
            vae=components.pop("vae", None),
            extra_components=components,
        )

    def assemble(self, **overrides: Any) -> DiffusionPipeline:
        """A pipeline object from the current modules (used for validation samples and export)."""
        components: dict[str, Any] = dict(self.extra_components)
        components.update(
            unet=self.unet, scheduler=self.sampling_scheduler, tokenizer=self.tokenizer, text_encoder=self.text_encoder
        )
        if self.vae is not None:
            components["vae"] = self.vae
        components.update(overrides)
        with expected_pipeline_warnings_silenced():
            return self.pipeline_class(**components)


def load_pipeline_parts(path: str | Path) -> PipelineParts:
    """Open a diffusers pipeline folder whose model is a text-conditioned UNet2DConditionModel."""
    with expected_pipeline_warnings_silenced():
        pipeline = DiffusionPipeline.from_pretrained(str(path))
    components = dict(pipeline.components)
    missing = [name for name in ("unet", "scheduler", "tokenizer", "text_encoder") if components.get(name) is None]
    if missing:
        raise ValueError(f"{path} is not a text-to-image UNet pipeline: missing {missing}")
    if not isinstance(components["unet"], UNet2DConditionModel):
        raise TypeError(f"{path}: the UNet is a {type(components['unet']).__name__}, not a UNet2DConditionModel")
    return PipelineParts.from_components(type(pipeline), components)


def base_noise_scheduler(shape: BaseModelShape) -> DDPMScheduler:
    """IF-style forward/reverse process: v-prediction, learned variance range, pixels clipped to [-1, 1]."""
    return DDPMScheduler(
        num_train_timesteps=shape.num_train_timesteps,
        beta_schedule=shape.beta_schedule,
        prediction_type="v_prediction",
        variance_type="learned_range",
        clip_sample=True,
        clip_sample_range=1.0,
        # "leading" ends sampling on t=0, which adds no noise. With "trailing" the last step
        # jumps from t>0 to before t=0, where diffusers' learned-range variance interpolates
        # against log(1e-20) and any predicted fraction above 1 explodes into speckle noise.
        timestep_spacing="leading",
    )


def base_sampling_scheduler(noise_scheduler: DDPMScheduler, sampler: str) -> Any:
    """The scheduler saved with a ``base`` model, used by default when it generates.

    ``ddpm`` reads the learned variance (ancestral, many steps). ``dpmsolver++`` is a second-order
    solver that ignores the variance half of the output and makes clean images in 20-30 steps;
    dynamic thresholding keeps each predicted clean image inside the pixel range.
    """
    if sampler == "ddpm":
        return DDPMScheduler.from_config(noise_scheduler.config)
    if sampler == "dpmsolver++":
        # variance_type None: IFPipeline then drops the variance half before stepping.
        return DPMSolverMultistepScheduler.from_config(
            noise_scheduler.config, algorithm_type="dpmsolver++", solver_order=2, thresholding=True,
            dynamic_thresholding_ratio=0.995, sample_max_value=1.0, variance_type=None,
        )
    raise ValueError(f"unknown sampler {sampler!r}")


def unet_levels(shape: BaseModelShape | LatentModelShape) -> dict[str, Any]:
    """The UNet2DConditionModel arguments both model shapes name alike: its levels, their blocks and attention."""
    return {
        "block_out_channels": shape.unet_block_out_channels,
        "down_block_types": shape.unet_down_block_types,
        "up_block_types": shape.unet_up_block_types,
        "layers_per_block": shape.unet_layers_per_block,
        "attention_head_dim": shape.unet_attention_head_dim,
        "norm_num_groups": shape.unet_norm_num_groups,
    }


def build_base_unet(shape: BaseModelShape, resolution: int, cross_attention_dim: int) -> UNet2DConditionModel:
    return UNet2DConditionModel(
        sample_size=resolution,
        in_channels=3,
        out_channels=6,  # prediction + learned variance interpolation, per RGB channel
        cross_attention_dim=cross_attention_dim,
        addition_embed_type="text" if shape.unet_pooled_text else None,
        addition_embed_type_num_heads=shape.text_num_heads,
        **unet_levels(shape),
    )


def build_base_parts(shape: BaseModelShape, resolution: int, tokenizer: CLIPTokenizer) -> PipelineParts:
    """Random-init models of the ``base`` recipe; seed torch before calling for reproducibility."""
    text_encoder = build_text_encoder(
        tokenizer,
        TextEncoderShape(
            hidden_size=shape.text_hidden_size,
            intermediate_size=shape.text_intermediate_size,
            num_layers=shape.text_num_layers,
            num_heads=shape.text_num_heads,
        ),
    )
    unet = build_base_unet(shape, resolution, cross_attention_dim=shape.text_hidden_size)
    scheduler = base_noise_scheduler(shape)
    return PipelineParts(
        pipeline_class=IFPipeline,
        unet=unet,
        noise_scheduler=scheduler,
        sampling_scheduler=base_sampling_scheduler(scheduler, shape.default_sampler),
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=None,
        extra_components={"safety_checker": None, "feature_extractor": None, "watermarker": None},
    )


def pipeline_call_kwargs(pipeline: Any) -> dict[str, Any]:
    """Arguments that make a pipeline preprocess prompts the way training did.

    IF-format pipelines must not re-clean captions (training only lower-cased and stripped them);
    recognised by class name, so that wrappers and test doubles of an ``IFPipeline`` match too.
    """
    return {"clean_caption": False} if type(pipeline).__name__.startswith("IF") else {}


def load_pipeline(folder: Path, *, adapters: tuple[Path, ...] = (), device: str | None = None) -> DiffusionPipeline:
    """A pipeline folder ready to render: on the GPU in fp16 when there is one, LoRA adapters loaded onto it."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device == "cuda" else torch.float32
    with expected_pipeline_warnings_silenced():
        pipeline = DiffusionPipeline.from_pretrained(str(folder), dtype=dtype)
        for adapter in adapters:
            pipeline.load_lora_weights(str(adapter))
    for name in ("safety_checker", "watermarker"):
        # licensed-only models need no third-party filters; our own provenance marks every output
        if getattr(pipeline, name, None) is not None:
            setattr(pipeline, name, None)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


@torch.no_grad()
def sample_grid(
    pipeline: DiffusionPipeline,
    prompts: tuple[str, ...] | list[str],
    *,
    resolution: int,
    num_inference_steps: int,
    guidance_scale: float,
    seed: int,
) -> Image.Image:
    """One image per prompt, each from its own seeded generator, laid out in a row."""
    pipeline.set_progress_bar_config(disable=True)
    images = []
    for number, prompt in enumerate(prompts):
        generator = torch.Generator().manual_seed(seed + number)
        output = pipeline(
            prompt,
            height=resolution,
            width=resolution,
            num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
            generator=generator,
            output_type="pil",
            **pipeline_call_kwargs(pipeline),
        )
        images.append(output.images[0])
    return make_image_grid(images, rows=1, cols=len(images))


TINY_TEXT_ENCODER = TextEncoderShape(hidden_size=32, intermediate_size=64, num_layers=2, num_heads=4)
"""A CLIP text transformer small enough for CPU tests."""


@dataclass(frozen=True)
class LatentModelShape:
    """Sizes of a Stable-Diffusion-format model: a UNet on an SD-style VAE's latents, a CLIP text side.

    The defaults are small enough for CPU tests, with SD's 8× VAE downsampling.
    """

    resolution: int = 64
    unet_block_out_channels: tuple[int, ...] = (32, 64)
    unet_down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D")
    """One per level, finest first; the decoder mirrors them (SD 1.5 attends at all but the coarsest level)."""
    unet_layers_per_block: int = 1
    unet_attention_head_dim: int = 8
    unet_norm_num_groups: int = 8
    vae_block_out_channels: tuple[int, ...] = (16, 32, 32, 32)
    vae_layers_per_block: int = 1
    vae_norm_num_groups: int = 8
    latent_channels: int = 4
    text: TextEncoderShape = TINY_TEXT_ENCODER
    """The CLIP text transformer; its width is also the UNet's cross-attention width."""
    tokenizer_vocab_size: int = 1000
    text_vocab_size: int | None = None
    """Rows of the text encoder's token embedding; ``None`` takes the tokenizer's size (benchmarks set
    CLIP's 49408 to be CLIP-sized)."""

    def __post_init__(self) -> None:
        if len(self.unet_block_out_channels) != len(self.unet_down_block_types):
            raise ValueError("unet_block_out_channels and unet_down_block_types must have the same length")

    @property
    def unet_up_block_types(self) -> tuple[str, ...]:
        return tuple(t.replace("Down", "Up") for t in reversed(self.unet_down_block_types))


def build_latent_parts(shape: LatentModelShape, tokenizer: CLIPTokenizer, sampling_scheduler: Any) -> PipelineParts:
    """Random-init parts of a StableDiffusionPipeline (CLIP text side, AutoencoderKL, UNet); seed torch first."""
    text_encoder = build_text_encoder(tokenizer, shape.text, vocab_size=shape.text_vocab_size)
    down_levels = len(shape.vae_block_out_channels)
    vae = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * down_levels,
        up_block_types=("UpDecoderBlock2D",) * down_levels,
        block_out_channels=shape.vae_block_out_channels,
        layers_per_block=shape.vae_layers_per_block,
        latent_channels=shape.latent_channels,
        norm_num_groups=shape.vae_norm_num_groups,
        sample_size=shape.resolution,
    )
    unet = UNet2DConditionModel(
        sample_size=shape.resolution // 2 ** (down_levels - 1),
        in_channels=shape.latent_channels,
        out_channels=shape.latent_channels,
        cross_attention_dim=shape.text.hidden_size,
        **unet_levels(shape),
    )
    components = {"unet": unet, "scheduler": sampling_scheduler, "tokenizer": tokenizer, "text_encoder": text_encoder,
                  "vae": vae, "safety_checker": None, "feature_extractor": None}
    return PipelineParts.from_components(StableDiffusionPipeline, components)


def build_tiny_stable_diffusion(
    output_dir: str | Path,
    captions: list[str] | tuple[str, ...],
    *,
    seed: int = 0,
    shape: LatentModelShape = LatentModelShape(),
) -> Path:
    """Save a random-init StableDiffusionPipeline folder (UNet, AutoencoderKL, CLIP text side, DDIM).

    The tokenizer is learned from ``captions``; nothing is downloaded. Used as the starting point
    for ``finetune`` and ``lora`` in tests and benchmarks.
    """
    torch.manual_seed(seed)
    tokenizer = train_caption_tokenizer(captions, shape.tokenizer_vocab_size)
    scheduler = DDIMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        set_alpha_to_one=False,
        steps_offset=1,
        prediction_type="epsilon",
    )
    pipeline = build_latent_parts(shape, tokenizer, scheduler).assemble(requires_safety_checker=False)
    output_dir = Path(output_dir)
    pipeline.save_pretrained(output_dir)
    write_classic_vocab_files(tokenizer, output_dir / "tokenizer")
    return output_dir


__all__ = [
    "TINY_TEXT_ENCODER",
    "LatentModelShape",
    "PipelineParts",
    "base_noise_scheduler",
    "base_sampling_scheduler",
    "build_base_parts",
    "build_base_unet",
    "build_latent_parts",
    "build_tiny_stable_diffusion",
    "expected_pipeline_warnings_silenced",
    "load_pipeline",
    "load_pipeline_parts",
    "pipeline_call_kwargs",
    "sample_grid",
    "unet_levels",
]
