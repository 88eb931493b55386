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
* ``build_upscaler_parts`` creates an ``upscaler`` stage: a convolutional UNet that reads the noisy
  image and, beside it, the enlarged and noised low-resolution image (6 input channels) with the
  noise level as a class embedding, saved as an ``IFSuperResolutionPipeline`` folder that carries
  its parent's tokenizer and text encoder, plus ``cascade.json`` (what it enlarges, how it is served);
* ``load_pipeline`` opens a trained (or registered) pipeline folder for inference, LoRA adapters
  loaded onto it; ``Cascade`` renders a base stage and enlarges its images with an upscaler;
* ``sample_grid`` renders validation prompts side by side.

This is the one module that builds or loads pipelines, knows their quirks (``pipeline_call_kwargs``)
and silences the warnings diffusers logs for choices made here on purpose.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import (
    AutoencoderKL,
    AutoPipelineForImage2Image,
    AutoPipelineForInpainting,
    DDIMScheduler,
    DDPMScheduler,
    DiffusionPipeline,
    DPMSolverMultistepScheduler,
    IFPipeline,
    IFSuperResolutionPipeline,
    StableDiffusionPipeline,
    UNet2DConditionModel,
)
from diffusers.utils import logging as diffusers_logging
from diffusers.utils import make_image_grid
from PIL import Image
from safetensors import safe_open
from safetensors.torch import save_file
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

    The solver starts at the last training timestep ("trailing" spacing). With "leading" spacing
    25 steps start at t=950, where the cosine schedule still keeps 8 % of the image: pure noise
    there tells the model the picture is mid-grey, and OpenMoji's white backgrounds came out tinted
    (the demo preset's weights: KID 0.18 -> 0.11, recall 0.45 -> 0.65, balanced accuracy 0.215 ->
    0.229, ``benchmarks/results/sampling_ablation.json``). This solver reads no variance, so the
    speckle that trailing spacing gives the ``ddpm`` sampler (above) cannot happen here.
    """
    if sampler == "ddpm":
        return DDPMScheduler.from_config(noise_scheduler.config)
    if sampler == "dpmsolver++":
        # variance_type None: IFPipeline then drops the variance half before stepping.
        return DPMSolverMultistepScheduler.from_config(
            noise_scheduler.config, algorithm_type="dpmsolver++", solver_order=2, thresholding=True,
            dynamic_thresholding_ratio=0.995, sample_max_value=1.0, variance_type=None,
            timestep_spacing="trailing",
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
    return scratch_pixel_parts(IFPipeline, shape, unet, tokenizer, text_encoder)


def scratch_pixel_parts(pipeline_class: type[DiffusionPipeline], shape: BaseModelShape, unet: UNet2DConditionModel,
                        tokenizer: CLIPTokenizer, text_encoder: torch.nn.Module, **components: Any) -> PipelineParts:
    """Parts of a from-scratch pixel model: its shape's IF-style schedulers, and no third-party filters
    (DeepFloyd's safety checker and watermarker are for their weights; ours carry our own provenance)."""
    scheduler = base_noise_scheduler(shape)
    return PipelineParts(
        pipeline_class=pipeline_class,
        unet=unet,
        noise_scheduler=scheduler,
        sampling_scheduler=base_sampling_scheduler(scheduler, shape.default_sampler),
        tokenizer=tokenizer,
        text_encoder=text_encoder,
        vae=None,
        extra_components={**components, "safety_checker": None, "feature_extractor": None, "watermarker": None},
    )


CASCADE_FILE = "cascade.json"
"""Beside an upscaler's pipeline folder: the size it enlarges from and the noise level it is served at."""


def image_noising_scheduler(shape: BaseModelShape) -> DDPMScheduler:
    """How an upscaler's condition is noised (IF's noise augmentation), in training and when served."""
    return DDPMScheduler(num_train_timesteps=shape.num_train_timesteps, beta_schedule=shape.beta_schedule)


def build_upscaler_unet(shape: BaseModelShape, resolution: int, cross_attention_dim: int) -> UNet2DConditionModel:
    """No attention anywhere (mid block included), so a UNet trained on crops is the same function on full images."""
    return UNet2DConditionModel(
        sample_size=resolution,
        in_channels=6,  # the noisy image and the enlarged, noised condition
        out_channels=6,  # prediction + learned variance interpolation, per RGB channel
        mid_block_type="UNetMidBlock2D",
        cross_attention_dim=cross_attention_dim,
        class_embed_type="timestep",  # the condition's noise level, embedded like a timestep
        **unet_levels(shape),
    )


def build_upscaler_parts(shape: BaseModelShape, resolution: int, parent: PipelineParts) -> PipelineParts:
    """Random-init upscaler over its parent's frozen tokenizer and text encoder."""
    if parent.pipeline_class is not IFPipeline:
        raise ValueError(f"an upscaler follows a pixel-space IFPipeline, not a {parent.pipeline_class.__name__}")
    unet = build_upscaler_unet(shape, resolution, cross_attention_dim=parent.text_encoder.config.hidden_size)
    return scratch_pixel_parts(IFSuperResolutionPipeline, shape, unet, parent.tokenizer, parent.text_encoder,
                               image_noising_scheduler=image_noising_scheduler(shape))


def pipeline_call_kwargs(pipeline: Any) -> dict[str, Any]:
    """Arguments that make a pipeline preprocess prompts the way training did.

    IF-format pipelines must not re-clean captions (training only lower-cased and stripped them);
    recognised by class name, so that wrappers and test doubles of an ``IFPipeline`` match too.
    """
    return {"clean_caption": False} if type(pipeline).__name__.startswith("IF") else {}


TRIGGER_FILE = "trigger_token.safetensors"
"""Beside a custom LoRA's weights: its trigger word's own token and that token's embedding row."""


def add_trigger_token(tokenizer: Any, text_encoder: Any, trigger: str, seed: int) -> torch.Tensor:
    """Give a custom model's trigger word a token of its own, with a fixed random embedding row.

    Our tokenizers are trained on the catalog's captions, so a new name ("zorblax") is split into pieces that
    common words share ("bow and arrow" shares them): a concept bound to the pieces leaks into those words'
    prompts. One whole token, whose embedding (seeded, at the rows' mean norm) no catalog word has, binds the
    concept to the name alone (DreamBooth's rare identifier). The text encoder stays frozen."""
    weights = text_encoder.get_input_embeddings().weight
    generator = torch.Generator().manual_seed(seed)
    row = torch.randn(weights.shape[1], generator=generator)
    row = row / row.norm() * weights.detach().float().norm(dim=1).mean()
    install_trigger_token(tokenizer, text_encoder, trigger, row)
    return row


def install_trigger_token(tokenizer: Any, text_encoder: Any, trigger: str, row: torch.Tensor) -> None:
    if tokenizer.add_tokens([trigger]):
        text_encoder.resize_token_embeddings(len(tokenizer), mean_resizing=False)
    token_id = tokenizer.convert_tokens_to_ids(trigger)
    with torch.no_grad():
        weights = text_encoder.get_input_embeddings().weight
        weights[token_id] = row.to(weights.device, weights.dtype)


class LearnedTriggerRow(torch.nn.Module):
    """The trigger's embedding row as the one trainable parameter of a frozen text encoder (pivotal tuning).

    A forward hook on the encoder's input embeddings puts the row wherever the trigger's token appears, so the
    gradient reaches this row and nothing else: every catalog word keeps the embedding the base learnt."""

    def __init__(self, row: torch.Tensor, token_id: int) -> None:
        super().__init__()
        self.row = torch.nn.Parameter(row.detach().float().clone())
        self.token_id = token_id
        self._hook: Any = None

    def attach(self, text_encoder: Any) -> None:
        def substitute(_module: Any, inputs: tuple, output: torch.Tensor) -> torch.Tensor:
            at_trigger = (inputs[0] == self.token_id).unsqueeze(-1)
            return torch.where(at_trigger, self.row.to(output.dtype), output)

        self._hook = text_encoder.get_input_embeddings().register_forward_hook(substitute)

    def write_into(self, tokenizer: Any, text_encoder: Any, trigger: str) -> torch.Tensor:
        """Remove the hook and store the learnt row in the encoder's own table (what is saved and served)."""
        if self._hook is not None:
            self._hook.remove()
            self._hook = None
        row = self.row.detach().float().cpu()
        install_trigger_token(tokenizer, text_encoder, trigger, row)
        return row


def save_trigger_token(folder: Path, trigger: str, row: torch.Tensor) -> None:
    save_file({"embedding": row.detach().float().contiguous()}, str(Path(folder) / TRIGGER_FILE),
              metadata={"token": trigger})


def load_trigger_token(pipeline: Any, folder: Path) -> None:
    """A LoRA folder's trigger token, if it has one, added to the pipeline's tokenizer and text encoder."""
    path = Path(folder) / TRIGGER_FILE
    if not path.is_file():
        return
    with safe_open(str(path), framework="pt") as stored:
        trigger, row = stored.metadata()["token"], stored.get_tensor("embedding")
    install_trigger_token(pipeline.tokenizer, pipeline.text_encoder, trigger, row)


def load_pipeline(folder: Path, *, adapters: tuple[Path, ...] = (), device: str | None = None) -> DiffusionPipeline:
    """A pipeline folder ready to render: on the GPU in fp16 when there is one, LoRA adapters (and their
    trigger tokens) loaded onto it."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.float16 if device == "cuda" else torch.float32
    with expected_pipeline_warnings_silenced():
        pipeline = DiffusionPipeline.from_pretrained(str(folder), dtype=dtype)
        for adapter in adapters:
            pipeline.load_lora_weights(str(adapter))
            load_trigger_token(pipeline, adapter)
    for name in ("safety_checker", "watermarker"):
        # licensed-only models need no third-party filters; our own provenance marks every output
        if getattr(pipeline, name, None) is not None:
            setattr(pipeline, name, None)
    pipeline.set_progress_bar_config(disable=True)
    return pipeline.to(device)


class Cascade:
    """A base stage, then an upscaler: one call draws at the base's native size, then enlarges.

    It answers like a diffusers pipeline where serving needs one: ``scheduler`` is the base
    stage's (a request may swap it; the upscaler keeps its own), ``unet`` is the base stage's (the
    one that decides what is drawn), and ``__call__`` takes the usual arguments.
    """

    def __init__(self, base: DiffusionPipeline, upscaler: DiffusionPipeline, *, upscale_from: int, noise_level: int,
                 upscale_steps: int = 20) -> None:
        self.base, self.upscaler = base, upscaler
        self.upscale_from, self.noise_level, self.upscale_steps = upscale_from, noise_level, upscale_steps

    @property
    def scheduler(self) -> Any:
        return self.base.scheduler

    @scheduler.setter
    def scheduler(self, scheduler: Any) -> None:
        self.base.scheduler = scheduler

    @property
    def unet(self) -> UNet2DConditionModel:
        return self.base.unet

    def set_progress_bar_config(self, **settings: Any) -> None:
        self.base.set_progress_bar_config(**settings)
        self.upscaler.set_progress_bar_config(**settings)

    def to(self, device: str | torch.device) -> Cascade:
        self.base.to(device)
        self.upscaler.to(device)
        return self

    def editing(self, *, painting: bool) -> Cascade:
        """The same cascade whose base stage edits (image-to-image, or inpainting when ``painting``)."""
        return Cascade(editing_pipeline(self.base, painting=painting), self.upscaler, upscale_from=self.upscale_from,
                       noise_level=self.noise_level, upscale_steps=self.upscale_steps)

    @torch.no_grad()
    def __call__(self, prompt: str | list[str], *, negative_prompt: str | list[str] | None = None,
                 num_inference_steps: int = 25, guidance_scale: float = 5.0, num_images_per_prompt: int = 1,
                 height: int | None = None, width: int | None = None, generator: Any = None,
                 output_type: str = "pil", image: Image.Image | None = None, mask_image: Image.Image | None = None,
                 strength: float | None = None, **_ignored: Any) -> Any:
        prompts = [prompt] if isinstance(prompt, str) else list(prompt)
        # 1. draw (or edit) at the base stage's native size (pixels in [-1, 1])
        size = (self.upscale_from, self.upscale_from)
        stage = ({"height": self.upscale_from, "width": self.upscale_from} if image is None else
                 {"image": image.resize(size, Image.Resampling.LANCZOS), "strength": strength,
                  **({"mask_image": mask_image.resize(size, Image.Resampling.NEAREST)} if mask_image else {})})
        drawn = self.base(prompts, negative_prompt=negative_prompt, num_inference_steps=num_inference_steps,
                          guidance_scale=guidance_scale, num_images_per_prompt=num_images_per_prompt,
                          generator=generator, output_type="pt", clean_caption=False, **stage).images
        # 2. enlarge: the upscaler adds the detail (no guidance: it does not read the prompt)
        per_image = [p for p in prompts for _ in range(num_images_per_prompt)]
        return self.upscaler(per_image, image=drawn, height=height, width=width,
                             num_inference_steps=self.upscale_steps, guidance_scale=1.0,
                             noise_level=self.noise_level, generator=generator, output_type=output_type,
                             clean_caption=False)


def editing_pipeline(pipeline: Any, *, painting: bool) -> Any:
    """The pipeline that edits with ``pipeline``'s own components (no copy): diffusers' image-to-image, or
    its inpainting pipeline when ``painting``, for the model's family (IF for pixel models, Stable
    Diffusion for latent ones); a cascade edits with its base stage and enlarges as usual."""
    if isinstance(pipeline, Cascade):
        return pipeline.editing(painting=painting)
    factory = AutoPipelineForInpainting if painting else AutoPipelineForImage2Image
    with expected_pipeline_warnings_silenced():
        edited = factory.from_pipe(pipeline)
    edited.set_progress_bar_config(disable=True)
    return edited


def drawing_pipeline(pipeline: Any) -> Any:
    """The pipeline whose UNet decides what is drawn: a cascade's base stage, any other pipeline itself.
    Influence is taken through it (the upscaler only enlarges)."""
    return pipeline.base if isinstance(pipeline, Cascade) else pipeline


def load_cascade(base_folder: Path, upscaler_folder: Path, *, adapters: tuple[Path, ...] = (),
                 device: str | None = None) -> Cascade:
    """The base pipeline (with its adapters) and the upscaler that follows it, as one renderer."""
    settings = json.loads((upscaler_folder / CASCADE_FILE).read_text(encoding="utf-8"))
    base = load_pipeline(base_folder, adapters=adapters, device=device)
    upscaler = load_pipeline(upscaler_folder, device=device)
    return Cascade(base, upscaler, upscale_from=int(settings["upscale_from"]), noise_level=int(settings["noise_level"]))


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
    "CASCADE_FILE",
    "TINY_TEXT_ENCODER",
    "Cascade",
    "LatentModelShape",
    "PipelineParts",
    "base_noise_scheduler",
    "base_sampling_scheduler",
    "build_base_parts",
    "build_base_unet",
    "build_latent_parts",
    "build_tiny_stable_diffusion",
    "build_upscaler_parts",
    "build_upscaler_unet",
    "editing_pipeline",
    "expected_pipeline_warnings_silenced",
    "image_noising_scheduler",
    "load_cascade",
    "load_pipeline",
    "load_pipeline_parts",
    "pipeline_call_kwargs",
    "sample_grid",
    "unet_levels",
]
