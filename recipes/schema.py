"""Training recipes: frozen, JSON-serialisable descriptions of one training job.

A recipe is everything that decides the trained weights apart from the data, so it is stored next
to every checkpoint and model; resuming with a different recipe is refused. Four kinds exist:

* ``base``     - a text-to-image model trained from scratch in pixel space (IF-style pipeline),
                 with its own BPE tokenizer and CLIP text encoder trained on the captions;
* ``finetune`` - full fine-tune of the UNet of an existing diffusers pipeline folder;
* ``lora``     - LoRA adapters on the UNet attention projections of an existing pipeline folder;
* ``upscaler`` - a super-resolution stage from scratch (IF stage II): a UNet conditioned on a
                 noised, enlarged low-resolution image, sharing its parent ``base`` model's frozen
                 tokenizer and text encoder; served as a cascade after its parent.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

MixedPrecision = Literal["no", "fp16", "bf16"]
AttentionBackend = Literal["sdpa", "xformers"]
TorchCompile = Literal["off", "regional", "full"]

RecipeKind = Literal["base", "finetune", "lora", "upscaler"]
DEFAULT_GUIDANCE_SCALE = 9.0
"""Guidance for a model whose recipe names none (outside models, models trained before recipes did)."""
RECIPE_KINDS: tuple[str, ...] = get_args(RecipeKind)
MAX_TRAIN_STEPS = 2**31 - 1
"""A job's step counters are 32-bit integer columns."""
LR_SCHEDULERS: tuple[str, ...] = (
    "constant",
    "constant_with_warmup",
    "linear",
    "cosine",
    "cosine_with_restarts",
    "polynomial",
)


@dataclass(frozen=True)
class BaseModelShape:
    """Sizes of the from-scratch models of the ``base`` recipe.

    The defaults are small enough to learn coloured shapes in a few CPU minutes at 32×32 px.
    """

    unet_block_out_channels: tuple[int, ...] = (32, 64, 128)
    unet_down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    unet_layers_per_block: int = 1
    unet_attention_head_dim: int = 8
    unet_norm_num_groups: int = 32
    unet_pooled_text: bool = False
    """Also add an attention-pooled prompt embedding to the timestep embedding (IF's ``text``
    addition embedding), so every ResNet block sees the prompt, not only the attention levels."""
    text_hidden_size: int = 128
    text_intermediate_size: int = 512
    text_num_layers: int = 2
    text_num_heads: int = 4
    tokenizer_vocab_size: int = 2048
    num_train_timesteps: int = 1000
    beta_schedule: str = "squaredcos_cap_v2"
    default_sampler: str = "ddpm"
    """The scheduler saved with the model: ``ddpm`` (ancestral, reads the learned variance) or
    ``dpmsolver++`` (second order, clean images in 20-30 steps)."""

    def __post_init__(self) -> None:
        for name in ("unet_block_out_channels", "unet_down_block_types"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        if len(self.unet_block_out_channels) != len(self.unet_down_block_types):
            raise ValueError("unet_block_out_channels and unet_down_block_types must have the same length")
        if any(c % self.unet_norm_num_groups for c in self.unet_block_out_channels):
            raise ValueError("every UNet channel count must be divisible by unet_norm_num_groups")
        if self.text_hidden_size % self.text_num_heads:
            raise ValueError("text_hidden_size must be divisible by text_num_heads")
        if self.default_sampler not in ("ddpm", "dpmsolver++"):
            raise ValueError("default_sampler must be 'ddpm' or 'dpmsolver++'")
        if self.tokenizer_vocab_size < 600:
            raise ValueError("tokenizer_vocab_size must leave room above the 514 byte-level base symbols")

    @property
    def unet_up_block_types(self) -> tuple[str, ...]:
        """The decoder mirrors the encoder: attention where the encoder had it, at the same resolution."""
        return tuple(t.replace("Down", "Up") for t in reversed(self.unet_down_block_types))


@dataclass(frozen=True)
class TextPretraining:
    """Contrastive pre-training of the ``base`` text encoder on the snapshot's own image-caption pairs.

    A small image tower and the text encoder learn to match each training image with its caption
    (CLIP's objective, on the licensed snapshot only); the image tower is then discarded and the
    text encoder is frozen, so its embeddings are cached and the UNet learns against a text space
    that already groups captions by what their images look like.
    """

    epochs: int = 12
    batch_size: int = 256
    learning_rate: float = 1e-3
    image_width: int = 16
    resolution: int = 16
    """The image tower looks at 16 px copies: enough to tell what a picture shows, cheap on a CPU."""

    def __post_init__(self) -> None:
        if self.epochs <= 0 or self.batch_size < 2 or self.learning_rate <= 0 or self.image_width % 8:
            raise ValueError("text pre-training needs epochs > 0, batch_size >= 2, learning_rate > 0 and an "
                             "image_width divisible by 8")


CAPTION_MODES: tuple[str, ...] = ("caption", "caption_or_tags")
TRIGGER_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,39}")
"""A custom model's trigger word: one lowercase word, so it is tokenized the same in every prompt."""


@dataclass(frozen=True)
class Recipe:
    """One training job's settings. Build with :func:`base_recipe`, :func:`finetune_recipe`, :func:`lora_recipe`."""

    kind: RecipeKind
    base_model: str | None = None
    """Diffusers pipeline folder to start from (``finetune`` and ``lora`` only)."""

    resolution: int | None = None
    """Training image size in pixels; ``None`` takes the base model's native size."""
    center_crop: bool = True
    random_flip: bool = False

    train_batch_size: int = 8
    """Images per process per micro-batch."""
    gradient_accumulation_steps: int = 1
    max_train_steps: int = 500
    """Optimizer steps."""
    max_train_minutes: float | None = None
    """A wall-clock cap on the job's training (tokenizer, text pre-training and the loop; not the export).
    Once, early in the loop (``training.engine.BUDGET_PROBE``), the steps are planned from the time spent
    and the seconds a step has taken: ``max_train_steps``, or fewer when those would not fit. The learning
    rate schedule then ends at the planned step. The plan is kept in every checkpoint, so a resumed job
    keeps it; it is recorded with the result (``TrainingResult.budget``). A preset's promise ("5 minutes on
    a 2-core CPU") then holds on a CPU without native bfloat16, which trains about 2x slower; where the
    steps fit, the model is the one ``max_train_steps`` alone gives. ``None``: no cap."""
    learning_rate: float = 1e-4
    lr_scheduler: str = "constant"
    lr_warmup_steps: int = 0
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    seed: int = 0

    mixed_precision: MixedPrecision = "no"
    allow_tf32: bool = True
    gradient_checkpointing: bool = False
    attention: AttentionBackend = "sdpa"
    """``xformers`` is used only when importable; otherwise PyTorch SDPA."""
    channels_last: bool = False
    torch_compile: TorchCompile = "off"
    """``regional`` compiles the UNet's repeated transformer blocks (seconds to compile, most of the
    gain); ``full`` compiles the whole UNet (largest gain, minutes to compile for SD-sized models)."""

    use_ema: bool = False
    ema_decay: float = 0.9999
    ema_warmup_power: float | None = None
    """How the average's decay rises to ``ema_decay``. ``None``: diffusers' ramp ``(1 + step) / (10 + step)``
    (0.9 at step 80, 0.99 at 890). A power ``p``: ``1 - (1 + step) ** -p`` (diffusers' EMA warm-up; with
    ``p = 1`` the plain mean of every step's weights, with ``3/4`` 0.99 at step 460 and 0.998 at 4,000)."""

    train_text_encoder: bool = False
    cache_latents: bool = True
    """Cache the frozen VAE's latent distribution per image instead of encoding every step."""
    cache_text_embeddings: bool = True
    """Cache the frozen text encoder's output per caption instead of encoding every step."""
    caption_dropout: float = 0.0
    """Share of captions replaced by "" so the model also learns the unconditional branch for CFG."""
    caption_mode: str = "caption"
    """``caption``: every example's caption as catalogued; ``caption_or_tags``: each time an image is
    seen, either that caption or the caption enriched with the example's catalog tags (half each,
    decided by seed and stream position), so prompts in either form work."""
    text_pretraining: TextPretraining | None = None
    """``base`` only: pre-train the text encoder on the snapshot's pairs, then freeze it."""
    group_balance: float = 0.0
    """Even out the catalog's groups when sampling examples: each is drawn in proportion to
    ``(size of its group) ** -group_balance`` (0: the catalog's own mix; 1: every group equally often).
    OpenMoji is 54 % people; a customer asking for a flag wants one as much as one asking for a face."""
    brand_share: float = 0.0
    """When a customer's snapshot mixes its brand images with licensed catalog images: the share of draws
    given to the brand images (0: no special weight). Half brand, half catalog is DreamBooth's prior
    preservation: the model learns the brand while it keeps rehearsing what the base could draw."""
    brand_trigger: str | None = None
    """The word a custom model is prompted with (its concept's name, e.g. a mascot's). Each draw of a brand
    image is then captioned with the trigger and a random part of the rest of its caption, shuffled (the
    trigger alone a third of the time), so the name carries the concept in any position and company, not
    only inside the exact caption it was uploaded with (kohya's caption shuffling and word dropout, keyed on
    a trigger like DreamBooth's identifier)."""
    brand_trigger_context: bool = False
    """With ``brand_trigger``: a third of the brand images' draws put the trigger among one to three words of
    the mixed-in catalog images' captions, so the name keeps its concept in a prompt's company ("a happy
    zorblax"). A customer's triggered LoRA turns it on (``CUSTOM_TRIGGER_SETTINGS``)."""
    trigger_embedding_lr: float = 0.0
    """With ``brand_trigger``: the learning rate at which the trigger's own embedding row is learnt beside the
    adapters (pivotal tuning: textual inversion and LoRA together). 0 keeps the fixed seeded row. The text
    encoder stays frozen; only the one row moves, so every catalog word keeps its meaning."""
    snr_gamma: float | None = None
    """Min-SNR loss weighting (Hang et al. 2023); ``None`` keeps the plain MSE."""
    learned_variance_weight: float = 1.0
    """Weight of the variational-bound term that trains learned variances (Nichol & Dhariwal 2021)."""

    checkpoint_every: int = 0
    """Save a resumable checkpoint every N optimizer steps; 0 disables checkpoints."""
    checkpoints_total_limit: int | None = 2
    validation_every: int = 0
    """Write a sample grid every N optimizer steps; 0 leaves only the final grid."""
    validation_prompts: tuple[str, ...] = ()
    validation_inference_steps: int = 25
    validation_guidance_scale: float = 4.0
    serving_guidance_scale: float | None = None
    """Classifier-free guidance the trained model is served and measured at when a request names
    none (saved with the pipeline); ``None`` leaves the API's default. Better-trained models want
    less guidance than barely trained ones (``benchmarks/results/quality_cpu.json``)."""

    lora_rank: int = 4
    lora_alpha: int = 4
    lora_target_modules: tuple[str, ...] = ("to_q", "to_k", "to_v", "to_out.0")

    model_shape: BaseModelShape | None = None
    """Sizes of the from-scratch models (``base``; ``upscaler``: its UNet, the text side is its parent's)."""

    upscale_from: int | None = None
    """``upscaler`` only: the size of the images it enlarges (its parent's native size)."""
    train_crop: int | None = None
    """``upscaler`` only: train on random square crops of this size, the same window of the image and
    of its condition; the UNet has no attention, so it applies to the full image when served."""
    noise_augmentation_max: int = 250
    """``upscaler`` only: each condition is noised at a random level below this (IF's noise
    augmentation), so the stage learns to forgive what its parent draws imperfectly."""
    serving_noise_level: int = 100
    """``upscaler`` only: the level the condition is noised at when served."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "validation_prompts", tuple(self.validation_prompts))
        object.__setattr__(self, "lora_target_modules", tuple(self.lora_target_modules))
        if isinstance(self.model_shape, dict):
            object.__setattr__(self, "model_shape", BaseModelShape(**self.model_shape))
        if isinstance(self.text_pretraining, dict):
            object.__setattr__(self, "text_pretraining", TextPretraining(**self.text_pretraining))
        self._validate()

    def _validate(self) -> None:
        if self.kind not in RECIPE_KINDS:
            raise ValueError(f"unknown recipe kind {self.kind!r}; expected one of {RECIPE_KINDS}")
        if self.kind == "upscaler":
            self._validate_upscaler()
        elif self.kind == "base":
            if self.base_model is not None:
                raise ValueError("the base recipe trains from scratch and takes no base_model")
            if self.model_shape is None:
                raise ValueError("the base recipe needs a model_shape")
            if self.resolution is None:
                raise ValueError("the base recipe needs an explicit resolution")
            if self.train_text_encoder == (self.text_pretraining is not None):
                raise ValueError("the base recipe learns its text encoder either jointly with the UNet "
                                 "(train_text_encoder=True) or first, then frozen (text_pretraining)")
        else:
            if not self.base_model:
                raise ValueError(f"the {self.kind} recipe needs base_model, a diffusers pipeline folder")
            if self.model_shape is not None:
                raise ValueError("model_shape only applies to the base and upscaler recipes")
            if self.text_pretraining is not None:
                raise ValueError("text_pretraining only applies to the base recipe")
        if self.kind != "upscaler" and (self.upscale_from is not None or self.train_crop is not None):
            raise ValueError("upscale_from and train_crop only apply to the upscaler recipe")
        if self.caption_mode not in CAPTION_MODES:
            raise ValueError(f"caption_mode must be one of {CAPTION_MODES}")
        if self.kind == "lora" and self.train_text_encoder:
            raise ValueError("the lora recipe adapts the UNet only; train_text_encoder must be False")
        if self.resolution is not None and (self.resolution <= 0 or self.resolution % 8):
            raise ValueError("resolution must be a positive multiple of 8")
        positive = ("train_batch_size", "gradient_accumulation_steps", "max_train_steps", "lora_rank")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_train_minutes is not None and not self.max_train_minutes > 0:
            raise ValueError("max_train_minutes must be positive or None")
        if self.max_train_steps > MAX_TRAIN_STEPS:
            raise ValueError(f"max_train_steps must be at most {MAX_TRAIN_STEPS} (jobs count steps in 32 bits)")
        if self.learning_rate <= 0:
            raise ValueError("learning_rate must be positive")
        if self.lr_scheduler not in LR_SCHEDULERS:
            raise ValueError(f"lr_scheduler must be one of {LR_SCHEDULERS}")
        if self.mixed_precision not in ("no", "fp16", "bf16"):
            raise ValueError("mixed_precision must be 'no', 'fp16' or 'bf16'")
        if self.attention not in ("sdpa", "xformers"):
            raise ValueError("attention must be 'sdpa' or 'xformers'")
        if self.torch_compile not in ("off", "regional", "full"):
            raise ValueError("torch_compile must be 'off', 'regional' or 'full'")
        if not 0.0 <= self.caption_dropout < 1.0:
            raise ValueError("caption_dropout must be in [0, 1)")
        if not 0.0 < self.ema_decay < 1.0:
            raise ValueError("ema_decay must be in (0, 1)")
        if self.ema_warmup_power is not None and not 0.0 < self.ema_warmup_power <= 1.0:
            raise ValueError("ema_warmup_power must be in (0, 1] or None")
        if self.serving_guidance_scale is not None and not 1.0 <= self.serving_guidance_scale <= 30.0:
            raise ValueError("serving_guidance_scale must be in [1, 30] or None")
        if not 0.0 <= self.group_balance <= 1.0:
            raise ValueError("group_balance must be in [0, 1]")
        if not 0.0 <= self.brand_share < 1.0:
            raise ValueError("brand_share must be in [0, 1)")
        if self.brand_trigger is not None and not TRIGGER_PATTERN.fullmatch(self.brand_trigger):
            raise ValueError("brand_trigger must be one lowercase word (letters, digits, '-'), 2-40 characters")
        if self.trigger_embedding_lr < 0:
            raise ValueError("trigger_embedding_lr must not be negative")
        if self.trigger_embedding_lr and (self.brand_trigger is None or self.train_text_encoder):
            raise ValueError("trigger_embedding_lr needs a brand_trigger and a frozen text encoder")
        if self.snr_gamma is not None and self.snr_gamma <= 0:
            raise ValueError("snr_gamma must be positive or None")
        if min(self.checkpoint_every, self.validation_every, self.lr_warmup_steps) < 0:
            raise ValueError("checkpoint_every, validation_every and lr_warmup_steps must not be negative")
        if self.checkpoints_total_limit is not None and self.checkpoints_total_limit < 1:
            raise ValueError("checkpoints_total_limit must be at least 1 or None")
        if self.validation_every and not self.validation_prompts:
            raise ValueError("validation_every needs validation_prompts")

    def _validate_upscaler(self) -> None:
        if not self.base_model:
            raise ValueError("the upscaler recipe needs base_model, the pipeline folder of the model it follows")
        if self.model_shape is None or self.resolution is None or self.upscale_from is None:
            raise ValueError("the upscaler recipe needs a model_shape, a resolution and upscale_from")
        if any(t != "DownBlock2D" for t in self.model_shape.unet_down_block_types):
            raise ValueError("the upscaler's UNet is convolutional (DownBlock2D only), so crops train it for full images")
        if not 0 < self.upscale_from < self.resolution or self.resolution % self.upscale_from:
            raise ValueError("upscale_from must be a proper divisor of resolution")
        crop = self.train_crop or self.resolution
        levels = 2 ** (len(self.model_shape.unet_block_out_channels) - 1)
        if crop > self.resolution or crop % levels or crop % 8:
            raise ValueError(f"train_crop must be at most resolution and a multiple of 8 and of {levels}")
        if self.train_text_encoder or self.text_pretraining is not None:
            raise ValueError("the upscaler uses its parent's frozen text encoder")
        if not 0 <= self.serving_noise_level < self.noise_augmentation_max <= 1000:
            raise ValueError("need 0 <= serving_noise_level < noise_augmentation_max <= 1000")

    @property
    def trains_lora(self) -> bool:
        return self.kind == "lora"

    def replace(self, **changes: Any) -> Recipe:
        """A copy with some fields changed (recipes are immutable)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON types only: tuples become lists. ``max_train_minutes`` is left out when unset, so a
        recipe recorded before the field existed (a checkpoint, a registered model) still reads as equal."""
        data = json.loads(json.dumps(dataclasses.asdict(self)))
        if data["max_train_minutes"] is None:
            del data["max_train_minutes"]
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, indent=2)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Recipe:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown recipe fields: {unknown}")
        return cls(**data)

    @classmethod
    def from_json(cls, text: str) -> Recipe:
        return cls.from_dict(json.loads(text))


def base_recipe(**overrides: Any) -> Recipe:
    """Text-to-image from scratch: 32×32 RGB pixels, v-prediction with learned variances (IF-style)."""
    settings: dict[str, Any] = {
        "kind": "base",
        "resolution": 32,
        "train_batch_size": 16,
        "max_train_steps": 300,
        "learning_rate": 1e-3,
        "lr_scheduler": "cosine",
        "lr_warmup_steps": 20,
        "adam_weight_decay": 0.0,
        "train_text_encoder": True,
        "caption_dropout": 0.1,
        "snr_gamma": 5.0,
        "use_ema": True,
        "ema_decay": 0.999,
        "checkpoint_every": 100,
        "checkpoints_total_limit": 2,
        "validation_every": 100,
        "validation_prompts": ("a red circle on a white background", "a blue square on a black background"),
        "validation_inference_steps": 25,
        "validation_guidance_scale": 3.0,
        "model_shape": BaseModelShape(),
    }
    settings.update(overrides)
    return Recipe(**settings)


def finetune_recipe(base_model: str, **overrides: Any) -> Recipe:
    """Full fine-tune of the UNet of an existing pipeline; VAE and text encoder stay frozen and cached."""
    return Recipe(**{"kind": "finetune", "base_model": str(base_model), "train_batch_size": 4, "max_train_steps": 1000,
                     "learning_rate": 1e-5, "lr_scheduler": "constant", "use_ema": True, "ema_decay": 0.9999,
                     "checkpoint_every": 250, "checkpoints_total_limit": 2, **overrides})


def lora_recipe(base_model: str, **overrides: Any) -> Recipe:
    """LoRA adapters on the UNet attention projections; everything else frozen."""
    return Recipe(**{"kind": "lora", "base_model": str(base_model), "train_batch_size": 4, "max_train_steps": 500,
                     "learning_rate": 1e-4, "lr_scheduler": "constant", "lora_rank": 4, "lora_alpha": 4,
                     "checkpoint_every": 100, "checkpoints_total_limit": 2, **overrides})


UPSCALER_SHAPE = BaseModelShape(
    unet_block_out_channels=(32, 64, 128),
    unet_down_block_types=("DownBlock2D", "DownBlock2D", "DownBlock2D"),
    default_sampler="dpmsolver++",
)
"""A convolutional UNet: enlarging a drawing needs local detail, not the prompt (its text fields are unused)."""


def upscaler_recipe(base_model: str, **overrides: Any) -> Recipe:
    """A 32 -> 128 px super-resolution stage after ``base_model``, trained on 64 px crops."""
    return Recipe(**{"kind": "upscaler", "base_model": str(base_model), "resolution": 128, "upscale_from": 32,
                     "train_crop": 64, "train_batch_size": 16, "max_train_steps": 1500, "learning_rate": 5e-4,
                     "lr_scheduler": "cosine", "lr_warmup_steps": 100, "adam_weight_decay": 0.0, "snr_gamma": 5.0,
                     "use_ema": True, "ema_decay": 0.999, "checkpoint_every": 150, "checkpoints_total_limit": 2,
                     "model_shape": UPSCALER_SHAPE, **overrides})


CUSTOM_MODEL_SETTINGS: dict[str, dict[str, Any]] = {
    # A brand concept on a small from-scratch base needs adapters at every resolution, not only on its few
    # attention layers: rank 32 on attention, ResNet convolutions and projections at 2e-3 (cosine) drew the
    # benchmark's mascot where rank 4 on attention at 1e-4 learnt nothing (benchmarks/results/custom_model.json).
    # With catalog images mixed in (``catalog`` on the request), half the draws rehearse them.
    # One caption in ten dropped, as the base learnt: classifier-free guidance subtracts the adapted
    # model's prediction for an empty prompt, which drifts unseen if only captioned images train it
    # (catalog prompts then kept the base's accuracy: base_quality_ratio 1.00, where the run before,
    # without it and on another machine's demo base, lost a fifth, 0.80;
    # benchmarks/results/custom_model_ablation.json).
    "lora": {"learning_rate": 2e-3, "lr_scheduler": "cosine", "lr_warmup_steps": 50, "lora_rank": 32,
             "lora_alpha": 32, "lora_target_modules": ("to_q", "to_k", "to_v", "to_out.0", "conv1", "conv2",
                                                       "conv_shortcut", "proj_in", "proj_out"),
             "brand_share": 0.5, "caption_dropout": 0.1,
             # served at 5, not the demo base's 9: at 9 about half the mascot outputs carried a tinted,
             # speckled background and were read as catalog images. Chosen on seed 7's outputs (0.50 at 9,
             # 0.80 at 5), then measured on seed 8's: 0.85 at 5 against 0.55 at 9
             # (benchmarks/results/custom_model.json, custom_model_ablation.json)
             "serving_guidance_scale": 5.0},
    "finetune": {"brand_share": 0.5, "caption_dropout": 0.1},
}
"""What a customer's self-served custom model trains with, beside its steps (``POST /v1/custom-models``)."""
CUSTOM_TRIGGER_SETTINGS: dict[str, dict[str, Any]] = {
    # The trigger's row learnt beside the adapters, among catalog words: every one of the benchmark's five
    # mascot prompts drew the mascot ("a happy zorblax" included), against four of five with the fixed row
    # (benchmarks/results/custom_model.json and custom_model_ablation.json).
    "lora": {"brand_trigger_context": True, "trigger_embedding_lr": 2e-3},
    "finetune": {},
}
"""Added to ``CUSTOM_MODEL_SETTINGS`` when the request names a ``trigger_word``."""


RECIPE_FACTORIES = {"base": base_recipe, "finetune": finetune_recipe, "lora": lora_recipe,
                    "upscaler": upscaler_recipe}
REGISTERED_BASE_PLACEHOLDER = "<registered model>"

PRESET_SHAPE = BaseModelShape(
    unet_block_out_channels=(32, 64, 128),
    # Attention only at the coarsest level: at 16x16 it doubled the cost of a step on CPU.
    unet_down_block_types=("DownBlock2D", "DownBlock2D", "CrossAttnDownBlock2D"),
    # The prompt, attention-pooled, also shifts every ResNet block (as a class label does). On all 452
    # held-out prompts (``benchmarks/results/quality_ablation.json``, stop 30): quality 0.321 [0.275, 0.370]
    # against stop 26's 0.298, KID 0.05 against 0.17; demo 0.293 against 0.228 in the same session, KID 0.31
    # against 0.55; at about the same cost a step.
    unet_pooled_text=True,
    default_sampler="dpmsolver++",
)
GPU_PRESET_SHAPE = BaseModelShape(
    unet_block_out_channels=(64, 128, 256, 256),
    unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    unet_layers_per_block=2,
    text_hidden_size=256,
    text_intermediate_size=1024,
    text_num_layers=4,
    text_num_heads=8,
    tokenizer_vocab_size=4096,
    default_sampler="dpmsolver++",
)


def _preset_settings(max_train_steps: int, pretraining_epochs: int, guidance: float, minutes: float,
                     group_balance: float = 0.0) -> dict[str, Any]:
    """What the presets share: the licensed-only recipe the quality benchmark supports.

    Batch 16 in bfloat16 autocast: at the demo's budget, 650 steps of 16 images beat 300 of 32
    (balanced accuracy 0.167 against 0.104, ``benchmarks/results/quality_ablation.json``): updates, not
    images per update, limit a short run; bfloat16 runs about 1.35x faster on CPUs with AVX-512 BF16.
    """
    return {
        "resolution": 32,
        "train_batch_size": 16,
        "mixed_precision": "bf16",
        "max_train_steps": max_train_steps,
        # The preset's promise in minutes: on a CPU without native bfloat16 (float32, about 2x slower a
        # step) the steps are cut to what fits; where they fit, nothing changes.
        "max_train_minutes": minutes,
        "learning_rate": 1e-3,
        "lr_scheduler": "cosine",
        "lr_warmup_steps": 100,
        "train_text_encoder": False,
        "text_pretraining": TextPretraining(epochs=pretraining_epochs),
        "caption_mode": "caption_or_tags",
        "group_balance": group_balance,
        "checkpoint_every": max(50, max_train_steps // 10),
        "validation_every": 0,
        "validation_guidance_scale": guidance,
        "serving_guidance_scale": guidance,
        "model_shape": PRESET_SHAPE,
    }


PRESETS: dict[str, dict[str, Any]] = {
    # <= 5 minutes of training on a 2-core CPU: what `make demo` trains.
    # Guidance by the sweeps of each preset's weights: demo 0.17 at 5, 0.29 at 9; quality 0.30 at 5, 0.22 at 9.
    "demo": _preset_settings(max_train_steps=650, pretraining_epochs=6, guidance=9.0, minutes=5.0),
    # <= 30 minutes on a 2-core CPU.
    # Every group drawn equally often: 0.266 against 0.260, KID 0.49 against 0.50, 19 minutes
    # (`quality+balance1` in benchmarks/results/quality_ablation.json).
    # 5,400 steps instead (35 % more, 23.7 minutes here) drew no better: 0.308 [0.262, 0.357] against 0.327, held-out
    # loss 0.053 against 0.058 (benchmarks/results/quality_cpu_steps5400.json): prompt-following levels off.
    "quality": _preset_settings(max_train_steps=4000, pretraining_epochs=20, guidance=5.0, minutes=30.0,
                                group_balance=1.0),
    # 64 px on one H100/H200 in <= 10 minutes (bf16).
    "gpu": {
        **_preset_settings(max_train_steps=8000, pretraining_epochs=60, guidance=5.0, minutes=10.0),
        "resolution": 64,
        "train_batch_size": 128,
        "learning_rate": 5e-4,
        "lr_warmup_steps": 500,
        "mixed_precision": "bf16",
        "text_pretraining": TextPretraining(epochs=60, batch_size=512, image_width=32, resolution=32),
        "model_shape": GPU_PRESET_SHAPE,
    },
}


def serving_guidance(*recipes: dict[str, Any]) -> float:
    """The guidance a model is served and measured at when a request names none.

    ``recipes``: what draws it, in order (a pipeline's, then its adapters'). The last that names a
    ``serving_guidance_scale`` decides: a custom model's adapter may draw its concept best at another
    scale than its base; none named gives the default.
    """
    for recipe in reversed(recipes):
        scale = recipe.get("serving_guidance_scale")
        if isinstance(scale, (int, float)) and not isinstance(scale, bool):
            return float(scale)
    return DEFAULT_GUIDANCE_SCALE


def preset_recipe(preset: str, **overrides: Any) -> Recipe:
    """The ``base`` recipe of a named preset (``demo``, ``quality``, ``gpu``), with optional overrides."""
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; choose one of {sorted(PRESETS)}")
    return base_recipe(**{**PRESETS[preset], **overrides})


def recipe_for_job(kind: str, overrides: dict[str, Any], preset: str | None = None) -> Recipe:
    """A validated recipe for a queued job; the worker fills in the base model's folder later.

    ``preset`` names a ``base`` preset whose settings ``overrides`` then adjust.
    Raises ValueError for an unknown kind or preset, or invalid settings.
    """
    if kind not in RECIPE_FACTORIES:
        raise ValueError(f"unknown recipe {kind!r}; choose one of {', '.join(RECIPE_FACTORIES)}")
    if preset is not None and kind != "base":
        raise ValueError("presets are for the base recipe")
    factory = RECIPE_FACTORIES[kind]
    try:
        if preset is not None:
            return preset_recipe(preset, **overrides)
        return factory(**overrides) if kind == "base" else factory(REGISTERED_BASE_PLACEHOLDER, **overrides)
    except TypeError as exc:
        raise ValueError(str(exc)) from None
