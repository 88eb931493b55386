"""The training loop: one flat accelerate loop for the ``base``, ``finetune`` and ``lora`` recipes.

Shaped like diffusers' ``examples/text_to_image/train_text_to_image.py`` (micro-batches inside
``accelerator.accumulate``, bookkeeping when ``accelerator.sync_gradients``), with what a
production job needs on top:

* **License gate.** ``before_batch(example_ids)`` is called with the ids of every micro-batch
  before any of their images is read or a cached latent is used; if it raises, training stops at
  once, nothing more is consumed, and the exception propagates to the caller (in a multi-process
  run every process stops; the others raise :class:`StoppedByPeer`).
* **Exact resume.** Data order and all training noise are pure functions of (seed, micro-batch,
  process), so ``resume_from="latest"`` restores model, EMA, optimizer, LR schedule, RNG and LoRA
  state from ``accelerator.save_state`` and continues with the same batches and noise: the final
  weights equal an uninterrupted run's. Checkpoints are published atomically and pruned to
  ``checkpoints_total_limit``.
* **Speed.** Frozen VAE latents and frozen text embeddings are cached per item; AdamW is fused on
  CUDA (foreach elsewhere); attention runs through PyTorch SDPA (xformers when asked for and
  importable); optional gradient checkpointing, channels-last, torch.compile (regional or full), TF32, EMA.

Hooks: ``before_batch(ids: list[str])`` (every process, its own share of the batch),
``progress(step, total, loss, images_per_s, eta_s)`` (main process, after every optimizer step),
``should_cancel() -> bool`` (every process, before every optimizer step; any True stops all, saves a
checkpoint when checkpoints are enabled, and raises :class:`TrainingCancelled`),
``stage_progress(stage, done, total)`` (main process, during stages before the loop, e.g. the
``base`` recipe's text pre-training, whose images also pass ``before_batch`` first).

**Paired counterfactuals.** ``withheld`` names examples that keep their places in the data order but
are never read, gated or learnt from (their rows of each batch are zeros with loss weight 0; the
tokenizer and text pre-training never see them). Every other example meets the same batches, noise
and timesteps as in the run without ``withheld``, so the difference of the two models is what the
withheld examples did, not the noise of another data order: the ground truth of attribution benchmarks.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import json
import logging
import shutil
import time
from collections import deque
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import ProjectConfiguration, set_seed
from diffusers import DiffusionPipeline
from diffusers.models.attention_processor import AttnProcessor2_0
from diffusers.optimization import get_scheduler
from diffusers.training_utils import EMAModel
from diffusers.utils.import_utils import is_xformers_available
from peft import LoraConfig
from peft.utils import get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file
from transformers import CLIPTokenizer

from provenance.hashing import weights_digest
from recipes import Recipe
from training import checkpoints
from training.caches import TensorCache
from training.data import (
    ExampleLike,
    ExampleOrder,
    ImageTransform,
    caption_for_position,
    caption_forms,
    caption_vocabulary,
    flip_for_position,
    pixels_from_uint8,
    sampling_weights,
    stable_seed,
)
from training.losses import diffusion_loss
from training.pipelines import (
    CASCADE_FILE,
    LearnedTriggerRow,
    PipelineParts,
    add_trigger_token,
    build_base_parts,
    build_upscaler_parts,
    expected_pipeline_warnings_silenced,
    load_pipeline_parts,
    load_trigger_token,
    sample_grid,
    save_trigger_token,
)
from training.text_encoder import (
    encode_prompts,
    inherited_text_encoder_origin,
    module_parameters_sha256,
    save_tokenizer,
    scratch_text_encoder_origin,
    tokenize_prompts,
    train_caption_tokenizer,
    write_classic_vocab_files,
)
from training.text_pretraining import pretrain_text_encoder

logger = logging.getLogger(__name__)

BeforeBatch = Callable[[list[str]], None]
Progress = Callable[[int, int, float, float, float], None]
ShouldCancel = Callable[[], bool]
StageProgress = Callable[[str, int, int], None]

RECIPE_FILE = "recipe.json"
RESULT_FILE = "training_result.json"
STATE_DIR = "state"
SAMPLES_DIR = "samples"
WITHHELD_FILE = "withheld.json"
PIPELINE_DIR = "pipeline"
LORA_DIR = "lora"
LORA_CHECKPOINT_FILE = "unet_lora.safetensors"
TEXT_ORIGIN_FILE = "text_encoder_origin.json"
PRETRAINED_TEXT_FILE = "pretrained_text_encoder.safetensors"
TEXT_PRETRAINING_STAGE = "text_pretraining"
WEIGHT_DTYPES = {"no": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
BUDGET_MARGIN = 0.95
"""Share of a ``max_train_minutes`` budget the plan fills: checkpoints and the machine's noise take the rest."""


def budget_probe(max_train_steps: int) -> tuple[int, int]:
    """(first, last) step of the loop a budgeted job times its steps between: after the first few (allocator,
    first reads), to a tenth of the run (at least step 20, at most step 100), while the learning rate is still
    warming up in the presets, so a shorter plan changes nothing already applied."""
    last = max(20, min(max_train_steps // 10, 100))
    return 5, last


def planned_steps(max_train_steps: int, budget_s: float, spent_s: float, probe_step: int,
                  seconds_per_step: float) -> int:
    """The steps that fit: the probe's step, plus whole tens of steps the rest of the budget (less the
    margin) allows at the probe's pace; never more than ``max_train_steps``."""
    left = max(0.0, budget_s * BUDGET_MARGIN - spent_s)
    fits = probe_step + int(left / max(seconds_per_step, 1e-9)) // 10 * 10
    return min(max_train_steps, max(probe_step, fits))


class TrainingCancelled(Exception):
    """``should_cancel()`` asked to stop; ``checkpoint`` is where to resume from, if one was saved."""

    def __init__(self, step: int, checkpoint: Path | None) -> None:
        super().__init__(f"training cancelled at step {step}")
        self.step = step
        self.checkpoint = checkpoint


class StoppedByPeer(RuntimeError):
    """Another process of a multi-process run stopped the job (its before_batch hook raised)."""


def effective_precision(requested: str) -> str:
    """The recipe's mixed precision where the hardware runs it natively, else float32 ("no").

    bfloat16 autocast on a CPU without AVX-512 BF16/AMX is emulated: about 20x slower than float32
    (the demo preset's 650 steps took over an hour instead of 5 minutes on an AVX2-only EPYC). The
    master weights are float32 either way, so checkpoints and results keep their meaning."""
    if requested == "no" or torch.cuda.is_available():
        return requested
    if requested == "bf16" and native_cpu_bf16():
        return requested
    return "no"


def native_cpu_bf16() -> bool:
    """Whether this CPU computes bfloat16 in hardware (oneDNN's own check: AVX-512 BF16 or AMX)."""
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@dataclass(frozen=True)
class TrainingResult:
    output_dir: Path
    model_path: Path
    """A diffusers pipeline folder (``base``/``finetune``) or a LoRA weights folder (``lora``)."""
    model_format: str
    """``"diffusers_pipeline"`` or ``"diffusers_lora"``."""
    weights_sha256: str
    """Digest over every saved ``*.safetensors`` file, in sorted relative-path order."""
    weight_files: dict[str, str]
    """Relative path -> sha256 of each saved safetensors file."""
    final_loss: float
    steps_done: int
    resumed_from_step: int | None
    recipe: dict[str, Any]
    text_encoder_origin: dict[str, Any]
    sample_grids: tuple[Path, ...]
    budget: dict[str, Any] | None = None
    """With ``max_train_minutes``: the plan (``seconds_per_step`` at the probe, ``planned_steps``)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "output_dir": str(self.output_dir),
            "model_path": str(self.model_path),
            "model_format": self.model_format,
            "weights_sha256": self.weights_sha256,
            "weight_files": dict(self.weight_files),
            "final_loss": self.final_loss,
            "steps_done": self.steps_done,
            "resumed_from_step": self.resumed_from_step,
            "recipe": self.recipe,
            "text_encoder_origin": self.text_encoder_origin,
            "sample_grids": [str(p) for p in self.sample_grids],
            "budget": self.budget,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingResult:
        return cls(
            output_dir=Path(data["output_dir"]),
            model_path=Path(data["model_path"]),
            model_format=data["model_format"],
            weights_sha256=data["weights_sha256"],
            weight_files=dict(data["weight_files"]),
            final_loss=float(data["final_loss"]),
            steps_done=int(data["steps_done"]),
            resumed_from_step=data["resumed_from_step"],
            recipe=data["recipe"],
            text_encoder_origin=data["text_encoder_origin"],
            sample_grids=tuple(Path(p) for p in data["sample_grids"]),
            budget=data.get("budget"),
        )


def make_adamw(params: Sequence[torch.nn.Parameter], recipe: Recipe,
               extra_groups: Sequence[dict[str, Any]] = ()) -> torch.optim.AdamW:
    """AdamW with the fused kernel on CUDA (one launch for all tensors) and foreach elsewhere.
    ``extra_groups`` are parameter groups with their own settings (a learnt trigger row)."""
    options: dict[str, Any] = {
        "lr": recipe.learning_rate,
        "betas": (recipe.adam_beta1, recipe.adam_beta2),
        "weight_decay": recipe.adam_weight_decay,
        "eps": recipe.adam_epsilon,
    }
    everything = [*params, *(p for group in extra_groups for p in group["params"])]
    if everything and all(p.device.type == "cuda" for p in everything):
        options["fused"] = True
    else:
        options["foreach"] = True
    return torch.optim.AdamW([{"params": list(params)}, *extra_groups], **options)


def configure_attention(unet: torch.nn.Module, backend: str) -> str:
    """Route attention through xformers when requested and importable, else PyTorch SDPA."""
    if backend == "xformers":
        if is_xformers_available():
            unet.enable_xformers_memory_efficient_attention()
            return "xformers"
        logger.warning("xformers requested but not importable; using PyTorch SDPA attention")
    unet.set_attn_processor(AttnProcessor2_0())
    return "sdpa"


def _enable_activation_checkpointing(model: torch.nn.Module) -> None:
    """Non-reentrant checkpointing for a transformers model, under its newer or older method name."""
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # transformers >= 5.2x
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)


def _move(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> None:
    """Move a frozen module; the dtype is only named when it changes (diffusers warns otherwise)."""
    if dtype == torch.float32:
        module.to(device)
    else:
        module.to(device, dtype=dtype)


def compile_unet(unet: torch.nn.Module, mode: str) -> None:
    """torch.compile in place; ``Module.compile`` keeps parameter names, so checkpoints are unaffected."""
    if mode == "full":
        unet.compile()
    elif mode == "regional":
        unet.compile_repeated_blocks()


@dataclass
class _Batch:
    micro_batch: int
    positions: list[int]
    examples: list[ExampleLike]
    flips: list[bool]
    learnt: list[bool]
    """False for a ``withheld`` example: its slot stays (the others' noise is unchanged), its image is not read."""

    @property
    def learnt_ids(self) -> list[str]:
        """The ids whose images this batch reads: what the license gate must clear."""
        return [e.example_id for e, learnt in zip(self.examples, self.learnt) if learnt]


def _with_withheld_rows(learnt_rows: torch.Tensor, learnt: list[bool]) -> torch.Tensor:
    """The batch with a zero row in each withheld example's slot (same shape, hence the same noise draws)."""
    if all(learnt):
        return learnt_rows
    rows = learnt_rows.new_zeros((len(learnt), *learnt_rows.shape[1:]))
    rows[torch.tensor(learnt, device=rows.device)] = learnt_rows
    return rows


@dataclass
class _Throughput:
    """Images/s and ETA over the last few optimizer steps (checkpoint and sample pauses included)."""

    images_per_step: int
    window: deque = field(default_factory=lambda: deque(maxlen=21))

    def record(self, step: int) -> None:
        self.window.append((time.perf_counter(), step))

    def rates(self, step: int, total: int) -> tuple[float, float]:
        if len(self.window) < 2:
            return 0.0, float("nan")
        (t0, s0), (t1, s1) = self.window[0], self.window[-1]
        if t1 <= t0 or s1 <= s0:
            return 0.0, float("nan")
        steps_per_s = (s1 - s0) / (t1 - t0)
        return steps_per_s * self.images_per_step, (total - step) / steps_per_s


class DiffusionTrainer:
    """One training job. ``train()`` is the usual entry; benchmarks drive the phases directly.

    ``parts`` lets a caller hand over already-built models instead of reading ``base_model`` or
    building the ``base`` models; everything else is unchanged.
    """

    def __init__(
        self,
        output_dir: str | Path,
        recipe: Recipe,
        examples: Sequence[ExampleLike],
        *,
        before_batch: BeforeBatch | None = None,
        progress: Progress | None = None,
        should_cancel: ShouldCancel | None = None,
        stage_progress: StageProgress | None = None,
        parts: PipelineParts | None = None,
        withheld: Collection[str] = (),
    ) -> None:
        self.output_dir = Path(output_dir)
        self.recipe = recipe
        self.examples = list(examples)
        if not self.examples:
            raise ValueError("no training examples")
        ids = [e.example_id for e in self.examples]
        if len(set(ids)) != len(ids):
            raise ValueError("example ids must be unique")
        self._by_id = {e.example_id: e for e in self.examples}
        self.withheld = frozenset(withheld)
        """Examples that keep their places in the data order but are never read or learnt from."""
        if self.withheld - set(ids):
            raise ValueError("withheld examples must be among the training examples")
        if self.withheld and recipe.kind == "upscaler":
            raise ValueError("withheld examples apply to the base, finetune and lora recipes")
        self.learnt = [e for e in self.examples if e.example_id not in self.withheld]
        """The examples that shape the model: all of them unless some are ``withheld``."""
        if not self.learnt:
            raise ValueError("every training example is withheld")
        self.trigger_context = (caption_vocabulary(self.learnt, recipe.brand_trigger)
                                if recipe.brand_trigger is not None and recipe.brand_trigger_context else ())
        """Catalog words a brand trigger is trained among (``training.data.triggered_caption``)."""
        self.before_batch = before_batch
        self.progress = progress
        self.should_cancel = should_cancel
        self.stage_progress = stage_progress
        self.parts = parts
        self.accelerator: Accelerator | None = None
        self.global_step = 0
        self.micro_batch = 0
        self.resumed_from_step: int | None = None
        self.last_loss = float("nan")
        self.text_encoder_origin: dict[str, Any] = {}
        self.attention_backend = ""
        self.precision = recipe.mixed_precision
        """The precision actually trained in (``effective_precision`` of the recipe's)."""
        self.trigger_row: torch.Tensor | None = None
        """The trigger word's token embedding (custom models with ``brand_trigger``), saved with the weights."""
        self.learned_trigger: LearnedTriggerRow | None = None
        """The trigger's row while it is learnt (``trigger_embedding_lr``)."""
        self._last_checkpoint_step: int | None = None
        self.planned_steps = recipe.max_train_steps
        """``max_train_steps``, or fewer once a ``max_train_minutes`` budget has planned them."""
        self.budget: dict[str, Any] | None = None
        self._clock_started = time.monotonic()
        self._probe_started: float | None = None

    # ------------------------------------------------------------------ setup

    def prepare(self, resume_from: str | Path | None = None) -> None:
        recipe = self.recipe
        self._clock_started = time.monotonic()  # a budget counts this attempt's tokenizer and text pre-training
        self.precision = effective_precision(recipe.mixed_precision)
        if self.precision != recipe.mixed_precision:
            logger.warning("mixed precision %s has no native support on this CPU (%s): training in float32",
                           recipe.mixed_precision, torch.backends.cpu.get_cpu_capability())
        self.accelerator = accelerator = Accelerator(
            gradient_accumulation_steps=recipe.gradient_accumulation_steps,
            mixed_precision=self.precision,
            project_config=ProjectConfiguration(project_dir=str(self.output_dir)),
        )
        self.device = accelerator.device
        self.weight_dtype = WEIGHT_DTYPES[self.precision]
        checkpoint = checkpoints.resolve_checkpoint(self.output_dir, resume_from)
        if checkpoint is None and checkpoints.list_checkpoints(self.output_dir):
            raise FileExistsError(
                f"{self.output_dir} already holds checkpoints: pass resume_from='latest' or use an empty folder"
            )
        if accelerator.is_main_process:
            self.output_dir.mkdir(parents=True, exist_ok=True)
            checkpoints.remove_partials(self.output_dir)
            if checkpoint is None:
                # Grids of an earlier attempt that never checkpointed describe no weights we keep.
                shutil.rmtree(self.output_dir / SAMPLES_DIR, ignore_errors=True)
            self._record_recipe(resuming=checkpoint is not None)
        accelerator.wait_for_everyone()

        if self.device.type == "cuda" and recipe.allow_tf32:
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True

        set_seed(recipe.seed)
        if self.parts is None:
            self.parts = self._load_or_build_parts(resuming=checkpoint is not None)
        elif not self.text_encoder_origin:
            self.text_encoder_origin = inherited_text_encoder_origin(
                recipe.base_model or "in-memory", self.parts.text_encoder, recipe.train_text_encoder
            )
        parts = self.parts
        self.resolution = recipe.resolution or parts.native_resolution
        self._check_resolution()
        self._configure_models()

        trained = [self.unet] + ([self.text_encoder] if recipe.train_text_encoder else [])
        self._trained_params = [p for module in trained for p in module.parameters() if p.requires_grad]
        self.emas: list[tuple[EMAModel, list[torch.nn.Parameter]]] = []
        if recipe.use_ema:
            for module in trained:
                params = [p for p in module.parameters() if p.requires_grad]
                warmup = recipe.ema_warmup_power
                ema = EMAModel(params, decay=recipe.ema_decay, foreach=True, use_ema_warmup=warmup is not None,
                               power=warmup if warmup is not None else 2 / 3)
                ema.to(self.device)
                self.emas.append((ema, params))

        extra_groups = []
        if recipe.trigger_embedding_lr and self.trigger_row is not None:
            self.learned_trigger = LearnedTriggerRow(
                self.trigger_row, parts.tokenizer.convert_tokens_to_ids(recipe.brand_trigger)).to(self.device)
            self.learned_trigger.attach(self.text_encoder)
            extra_groups.append({"params": [self.learned_trigger.row], "lr": recipe.trigger_embedding_lr,
                                 "weight_decay": 0.0})
        optimizer = make_adamw(self._trained_params, recipe, extra_groups)
        lr_scheduler = get_scheduler(
            recipe.lr_scheduler,
            optimizer=optimizer,
            num_warmup_steps=recipe.lr_warmup_steps * accelerator.num_processes,
            num_training_steps=recipe.max_train_steps * accelerator.num_processes,
        )
        if recipe.train_text_encoder:
            self.unet, self.text_encoder, self.optimizer, self.lr_scheduler = accelerator.prepare(
                self.unet, self.text_encoder, optimizer, lr_scheduler
            )
            self._trained_models = [self.unet, self.text_encoder]
        else:
            self.unet, self.optimizer, self.lr_scheduler = accelerator.prepare(self.unet, optimizer, lr_scheduler)
            self._trained_models = [self.unet]
        for ema, _ in self.emas:
            accelerator.register_for_checkpointing(ema)
        if self.learned_trigger is not None:
            accelerator.register_for_checkpointing(self.learned_trigger)
        if recipe.trains_lora:
            accelerator.register_save_state_pre_hook(self._save_lora_state)
            accelerator.register_load_state_pre_hook(self._load_lora_state)
        compile_unet(accelerator.unwrap_model(self.unet), recipe.torch_compile)

        if checkpoint is not None:
            self._restore(checkpoint)

        self.order = ExampleOrder(len(self.examples), recipe.seed,
                                  sampling_weights(self.examples, group_balance=recipe.group_balance,
                                                   brand_share=recipe.brand_share))
        self.transform = ImageTransform(self.resolution, recipe.center_crop)
        self.latent_cache = (
            TensorCache(self._encode_one_latent) if parts.vae is not None and recipe.cache_latents else None
        )
        # Pixel-space models read the same few thousand small images every epoch: decoding and
        # resizing each one per step cost more than the UNet at 32 px. Kept as uint8, the exact
        # values the transform produced (a uint8 image / 127.5 - 1), so cached and fresh batches match.
        self.pixel_cache = TensorCache(functools.partial(self._image_bytes, self.transform)) if parts.vae is None else None
        # An upscaler's condition is the catalog image as its parent learnt it: the same transform at
        # the parent's size, not a resize of the large copy.
        self.condition_transform = ImageTransform(recipe.upscale_from, recipe.center_crop) if recipe.upscale_from else None
        self.condition_cache = (TensorCache(functools.partial(self._image_bytes, self.condition_transform))
                                if recipe.upscale_from else None)
        self.text_cache = (
            TensorCache(self._encode_one_caption)
            if not recipe.train_text_encoder and recipe.cache_text_embeddings and self.learned_trigger is None
            else None
        )

    def _record_recipe(self, resuming: bool) -> None:
        path = self.output_dir / RECIPE_FILE
        if resuming and path.is_file():
            saved = json.loads(path.read_text(encoding="utf-8"))
            if saved != self.recipe.to_dict():
                raise ValueError(f"cannot resume: {path} differs from the recipe given")
        path.write_text(self.recipe.to_json(), encoding="utf-8")
        withheld_path = self.output_dir / WITHHELD_FILE
        withheld = sorted(self.withheld)
        if resuming and withheld != (json.loads(withheld_path.read_text(encoding="utf-8"))
                                     if withheld_path.is_file() else []):
            raise ValueError("cannot resume: the run withheld other examples")
        if withheld:
            withheld_path.write_text(json.dumps(withheld), encoding="utf-8")

    def _load_or_build_parts(self, resuming: bool) -> PipelineParts:
        recipe = self.recipe
        if recipe.kind == "upscaler":
            parent = load_pipeline_parts(recipe.base_model)
            if parent.native_resolution != recipe.upscale_from:
                raise ValueError(f"upscale_from is {recipe.upscale_from} px but the parent draws at "
                                 f"{parent.native_resolution} px")
            self.text_encoder_origin = inherited_text_encoder_origin(recipe.base_model, parent.text_encoder, False)
            return build_upscaler_parts(recipe.model_shape, recipe.resolution, parent)
        if recipe.kind != "base":
            parts = load_pipeline_parts(recipe.base_model)
            self.text_encoder_origin = inherited_text_encoder_origin(
                recipe.base_model, parts.text_encoder, recipe.train_text_encoder
            )
            if recipe.brand_trigger is not None:
                self.trigger_row = add_trigger_token(parts.tokenizer, parts.text_encoder, recipe.brand_trigger,
                                                     stable_seed("trigger", recipe.seed, recipe.brand_trigger))
            return parts
        tokenizer = self._scratch_tokenizer(resuming)
        parts = build_base_parts(recipe.model_shape, recipe.resolution, tokenizer)
        origin_path = self.output_dir / STATE_DIR / TEXT_ORIGIN_FILE
        if resuming and origin_path.is_file():
            self.text_encoder_origin = json.loads(origin_path.read_text(encoding="utf-8"))
        else:
            captions = self._all_caption_forms()
            self.text_encoder_origin = scratch_text_encoder_origin(captions, tokenizer, parts.text_encoder, recipe.seed)
        if recipe.text_pretraining is not None:
            self._pretrained_text_encoder(parts, resuming)
        if self.accelerator.is_main_process:
            origin_path.write_text(json.dumps(self.text_encoder_origin, indent=2), encoding="utf-8")
        self.accelerator.wait_for_everyone()
        return parts

    def _text_pretraining_progress(self, done: int, total: int, _loss: float) -> None:
        if self.stage_progress is not None:
            self.stage_progress(TEXT_PRETRAINING_STAGE, done, total)

    def _all_caption_forms(self) -> list[str]:
        return [form for e in self.learnt for form in caption_forms(e, self.recipe.caption_mode)]

    def _pretrained_text_encoder(self, parts: PipelineParts, resuming: bool) -> None:
        """Pre-train the text encoder once (main process), keep it in the state folder, load it everywhere.

        A resumed job loads the saved encoder instead of pre-training again, so it continues with
        exactly the text space the interrupted run used.
        """
        recipe = self.recipe
        saved = self.output_dir / STATE_DIR / PRETRAINED_TEXT_FILE
        pretrain_now = not (resuming and saved.is_file())
        if pretrain_now:
            # Pre-training reads every image: each passes the license gate first, batch by batch.
            ids = [e.example_id for e in self.learnt]
            for start in range(0, len(ids), recipe.text_pretraining.batch_size):
                self._gate(ids[start:start + recipe.text_pretraining.batch_size])
        if pretrain_now and self.accelerator.is_main_process:
            settings = recipe.text_pretraining
            transform = ImageTransform(settings.resolution, recipe.center_crop)
            pixels = torch.stack([transform(e.load_image()) for e in self.learnt])
            forms = [caption_forms(e, recipe.caption_mode) for e in self.learnt]
            report = pretrain_text_encoder(parts.text_encoder, parts.tokenizer, pixels, forms, settings,
                                           seed=recipe.seed, progress=self._text_pretraining_progress)
            staging = saved.with_suffix(".partial")
            save_file({k: v.contiguous() for k, v in parts.text_encoder.state_dict().items()}, staging)
            staging.replace(saved)
            (saved.with_suffix(".json")).write_text(json.dumps(report, indent=2), encoding="utf-8")
        self.accelerator.wait_for_everyone()
        parts.text_encoder.load_state_dict(load_file(saved))
        parts.text_encoder.eval().requires_grad_(False)
        report = json.loads(saved.with_suffix(".json").read_text(encoding="utf-8"))
        self.text_encoder_origin = {**self.text_encoder_origin, "trained_jointly_with_unet": False,
                                    "pretraining": report, "parameters_sha256": module_parameters_sha256(parts.text_encoder)}

    def _scratch_tokenizer(self, resuming: bool) -> CLIPTokenizer:
        """Learned once by the main process and saved, so every process and every resume uses it."""
        folder = self.output_dir / STATE_DIR / "tokenizer"
        learn_now = not (resuming and folder.is_dir())
        if learn_now and self.accelerator.is_main_process:
            tokenizer = train_caption_tokenizer(self._all_caption_forms(), self.recipe.model_shape.tokenizer_vocab_size)
            save_tokenizer(tokenizer, folder)
        self.accelerator.wait_for_everyone()
        return CLIPTokenizer.from_pretrained(folder)

    def _check_resolution(self) -> None:
        parts = self.parts
        if self.resolution % parts.vae_scale_factor:
            raise ValueError(
                f"resolution {self.resolution} is not a multiple of the VAE factor {parts.vae_scale_factor}"
            )
        sample = self.resolution // parts.vae_scale_factor
        levels = len(parts.unet.config.block_out_channels)
        if sample % 2 ** (levels - 1):
            raise ValueError(f"resolution {self.resolution} does not divide through the UNet's {levels} levels")

    def _configure_models(self) -> None:
        recipe, parts = self.recipe, self.parts
        device, weight_dtype = self.device, self.weight_dtype
        self.noise_scheduler = parts.noise_scheduler
        self.image_noising_scheduler = parts.extra_components.get("image_noising_scheduler")
        self.vae = parts.vae
        if self.vae is not None:
            self.vae.requires_grad_(False)
            self.vae.eval()
            _move(self.vae, device, weight_dtype)

        self.text_encoder = parts.text_encoder
        if recipe.train_text_encoder:
            self.text_encoder.requires_grad_(True)
            self.text_encoder.train()
            self.text_encoder.to(device)
            if recipe.gradient_checkpointing:
                _enable_activation_checkpointing(self.text_encoder)
        else:
            self.text_encoder.requires_grad_(False)
            self.text_encoder.eval()
            _move(self.text_encoder, device, weight_dtype)

        unet = parts.unet
        self.attention_backend = configure_attention(unet, recipe.attention)
        if recipe.trains_lora:
            unet.requires_grad_(False)
            _move(unet, device, weight_dtype)
            unet.add_adapter(
                LoraConfig(
                    r=recipe.lora_rank,
                    lora_alpha=recipe.lora_alpha,
                    init_lora_weights="gaussian",
                    target_modules=list(recipe.lora_target_modules),
                )
            )
            # Adapters train in float32 even when the frozen UNet runs in half precision.
            for param in unet.parameters():
                if param.requires_grad:
                    param.data = param.data.to(torch.float32)
        else:
            unet.requires_grad_(True)
            unet.to(device)
        unet.train()
        if recipe.gradient_checkpointing:
            unet.enable_gradient_checkpointing()
        if recipe.channels_last:
            unet.to(memory_format=torch.channels_last)
        self.unet = unet

    # ------------------------------------------------------------- checkpoints

    def _unwrapped_unet(self) -> torch.nn.Module:
        return self.accelerator.unwrap_model(self.unet)

    def _save_lora_state(self, models: list[torch.nn.Module], weights: list[dict], output_dir: str) -> None:
        """Checkpoint only the adapter weights instead of the whole frozen UNet."""
        for index, model in enumerate(models):
            if self.accelerator.unwrap_model(model) is self._unwrapped_unet():
                if self.accelerator.is_main_process:
                    adapter = get_peft_model_state_dict(self._unwrapped_unet())
                    save_file(
                        {k: v.detach().contiguous() for k, v in adapter.items()},
                        Path(output_dir) / LORA_CHECKPOINT_FILE,
                    )
                if weights:
                    weights.pop(index)
                return

    def _load_lora_state(self, models: list[torch.nn.Module], input_dir: str) -> None:
        for index, model in enumerate(models):
            if self.accelerator.unwrap_model(model) is self._unwrapped_unet():
                models.pop(index)
                adapter = load_file(Path(input_dir) / LORA_CHECKPOINT_FILE, device=str(self.device))
                result = set_peft_model_state_dict(self._unwrapped_unet(), adapter, adapter_name="default")
                unexpected = getattr(result, "unexpected_keys", None)
                if unexpected:
                    raise RuntimeError(f"LoRA checkpoint has unexpected keys: {unexpected[:5]}")
                return

    def _restore(self, checkpoint: checkpoints.Checkpoint) -> None:
        state = checkpoint.state()
        if state.get("recipe") != self.recipe.to_dict():
            raise ValueError(f"cannot resume from {checkpoint.path}: it was written by a different recipe")
        if state.get("num_processes") != self.accelerator.num_processes:
            logger.warning(
                "resuming with %s processes after %s: batches will differ from an uninterrupted run",
                self.accelerator.num_processes,
                state.get("num_processes"),
            )
        self.accelerator.load_state(str(checkpoint.path))
        for ema, _ in self.emas:
            ema.to(self.device)
        if state.get("budget"):  # the interrupted run's plan holds: same steps, same schedule
            self.budget = dict(state["budget"])
            self._end_schedule_at(int(self.budget["planned_steps"]))
        self.global_step = int(state["step"])
        self.micro_batch = self.global_step * self.recipe.gradient_accumulation_steps
        self.last_loss = float(state.get("loss", float("nan")))
        self.resumed_from_step = self.global_step
        self._last_checkpoint_step = self.global_step
        logger.info("resumed from %s at step %s", checkpoint.path, self.global_step)

    def save_checkpoint(self) -> Path | None:
        """Save everything needed to resume at the current step; every process must call this."""
        accelerator = self.accelerator
        step = self.global_step
        staging = checkpoints.partial_dir(self.output_dir, step)
        if accelerator.is_main_process:
            checkpoints.remove_partials(self.output_dir)
            staging.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(staging))
        accelerator.wait_for_everyone()
        published = None
        if accelerator.is_main_process:
            state = {
                "step": step,
                "loss": self.last_loss,
                "recipe": self.recipe.to_dict(),
                "num_processes": accelerator.num_processes,
            }
            if self.budget is not None:
                state["budget"] = self.budget
            published = checkpoints.publish(self.output_dir, step, state).path
            checkpoints.prune(self.output_dir, self.recipe.checkpoints_total_limit)
        accelerator.wait_for_everyone()
        self._last_checkpoint_step = step
        return published or checkpoints.final_dir(self.output_dir, step)

    # ------------------------------------------------------------------ loop

    def fit(self, until_step: int | None = None) -> None:
        """Train until the planned optimizer steps are done (``max_train_steps``, or what fits a
        ``max_train_minutes`` budget), or ``until_step`` to measure on the way."""
        recipe, accelerator = self.recipe, self.accelerator
        accumulation = recipe.gradient_accumulation_steps
        throughput = _Throughput(recipe.train_batch_size * accumulation * accelerator.num_processes)
        throughput.record(self.global_step)
        step_losses: list[torch.Tensor] = []
        while self.global_step < (self.planned_steps if until_step is None else min(until_step, self.planned_steps)):
            if self.micro_batch % accumulation == 0:
                self._stop_if_cancelled()
            batch = self._next_batch(self.micro_batch)
            with accelerator.accumulate(*self._trained_models):
                loss = self._batch_loss(batch)
                accelerator.backward(loss)
                if self.learned_trigger is not None and accelerator.sync_gradients:
                    self._share_trigger_gradient()
                if accelerator.sync_gradients and recipe.max_grad_norm > 0:
                    accelerator.clip_grad_norm_(self._trained_params, recipe.max_grad_norm)
                self.optimizer.step()
                self.lr_scheduler.step()
                self.optimizer.zero_grad(set_to_none=True)
            step_losses.append(loss.detach())
            self.micro_batch += 1

            if accelerator.sync_gradients:
                for ema, params in self.emas:
                    ema.step(params)
                self.global_step += 1
                self.last_loss = self._mean_loss(step_losses)
                step_losses = []
                throughput.record(self.global_step)
                self._plan_within_budget()
                total = self.planned_steps
                if recipe.checkpoint_every and self.global_step % recipe.checkpoint_every == 0:
                    self.save_checkpoint()
                if recipe.validation_every and self.global_step % recipe.validation_every == 0:
                    self.write_sample_grid(f"step-{self.global_step:06d}")
                if accelerator.is_main_process and self.progress is not None:
                    images_per_s, eta_s = throughput.rates(self.global_step, total)
                    self.progress(self.global_step, total, self.last_loss, images_per_s, eta_s)

    def _plan_within_budget(self) -> None:
        """With ``max_train_minutes``: time the probe's steps, then plan once how many steps fit."""
        recipe = self.recipe
        if recipe.max_train_minutes is None or self.budget is not None:
            return
        first, last = budget_probe(recipe.max_train_steps)
        if self.global_step == first:
            self._probe_started = time.monotonic()
        if self.global_step != last or self._probe_started is None:
            return  # (a run resumed between the probe's steps plans nothing: max_train_steps stands)
        now = time.monotonic()
        seconds_per_step = (now - self._probe_started) / (last - first)
        spent = now - self._clock_started
        planned = planned_steps(recipe.max_train_steps, recipe.max_train_minutes * 60, spent, last, seconds_per_step)
        if self.accelerator.num_processes > 1:  # every process must stop at the same step: the slowest's plan
            planned = int(self.accelerator.gather(torch.tensor([planned], device=self.device)).min().item())
        self.budget = {"max_train_minutes": recipe.max_train_minutes, "probe_steps": [first, last],
                       "seconds_per_step": round(seconds_per_step, 4), "minutes_at_probe": round(spent / 60, 3),
                       "planned_steps": planned}
        if planned < recipe.max_train_steps:
            logger.warning("%.1f minutes allow %s of the recipe's %s steps at %.3f s a step: training %s",
                           recipe.max_train_minutes, planned, recipe.max_train_steps, seconds_per_step, planned)
            self._end_schedule_at(planned)

    def _end_schedule_at(self, steps: int) -> None:
        """Train ``steps`` steps, the learning rate schedule ending there (its warm-up unchanged)."""
        recipe, processes = self.recipe, self.accelerator.num_processes
        self.planned_steps = steps
        shortened = get_scheduler(recipe.lr_scheduler, optimizer=torch.optim.SGD([torch.zeros(1, requires_grad=True)]),
                                  num_warmup_steps=recipe.lr_warmup_steps * processes,
                                  num_training_steps=steps * processes)
        scheduler = getattr(self.lr_scheduler, "scheduler", self.lr_scheduler)  # accelerate's wrapper, or the bare one
        scheduler.lr_lambdas = [shortened.lr_lambdas[0]] * len(scheduler.lr_lambdas)

    def _stop_if_cancelled(self) -> None:
        wants_stop = bool(self.should_cancel()) if self.should_cancel is not None else False
        if not self._any_process(wants_stop):
            return
        saved = None
        if self.recipe.checkpoint_every and self.global_step > 0:
            if self._last_checkpoint_step == self.global_step:
                saved = checkpoints.final_dir(self.output_dir, self.global_step)
            else:
                saved = self.save_checkpoint()
        raise TrainingCancelled(self.global_step, saved)

    def _any_process(self, flag: bool) -> bool:
        if self.accelerator.num_processes == 1:
            return flag
        votes = torch.tensor([1.0 if flag else 0.0], device=self.device)
        return bool(self.accelerator.reduce(votes, reduction="sum").item() > 0)

    def _mean_loss(self, losses: list[torch.Tensor]) -> float:
        local = torch.stack(losses).float().mean().reshape(1)
        return float(self.accelerator.gather(local).mean().item())

    def _next_batch(self, micro_batch: int) -> _Batch:
        """This process's share of a micro-batch, cleared by the license gate before any image is read."""
        accelerator, recipe = self.accelerator, self.recipe
        positions = list(
            self.order.batch_positions(
                micro_batch, accelerator.process_index, accelerator.num_processes, recipe.train_batch_size
            )
        )
        examples = [self.examples[self.order.index_at(p)] for p in positions]
        flips = [recipe.random_flip and flip_for_position(recipe.seed, p) for p in positions]
        batch = _Batch(micro_batch, positions, examples, flips,
                       [e.example_id not in self.withheld for e in examples])
        self._gate(batch.learnt_ids)
        return batch

    def _gate(self, example_ids: list[str]) -> None:
        failure: Exception | None = None
        if self.before_batch is not None:
            try:
                self.before_batch(list(example_ids))
            except Exception as error:  # noqa: BLE001 - any refusal stops all processes, then is re-raised
                failure = error
        if self._any_process(failure is not None):
            if failure is not None:
                raise failure
            raise StoppedByPeer("another training process's before_batch hook stopped the job")

    # ------------------------------------------------------------ batch maths

    def _share_trigger_gradient(self) -> None:
        """The trigger's row sits outside the prepared (data-parallel) models: average its gradient by hand."""
        row = self.learned_trigger.row
        if self.accelerator.num_processes > 1 and row.grad is not None:
            row.grad = self.accelerator.reduce(row.grad, reduction="mean")

    def _batch_loss(self, batch: _Batch) -> torch.Tensor:
        recipe, device = self.recipe, self.device
        generator = torch.Generator(device=device).manual_seed(
            stable_seed("noise", recipe.seed, batch.micro_batch, self.accelerator.process_index)
        )
        clean = self._clean_inputs(batch, generator)
        condition = levels = None
        if recipe.kind == "upscaler":
            clean, condition, levels = self._upscaling_inputs(batch, clean, generator)
        dropped = torch.rand(len(batch.examples), generator=generator, device=device) < recipe.caption_dropout
        captions = ["" if drop else caption_for_position(e, recipe.caption_mode, recipe.seed, position,
                                                         recipe.brand_trigger, self.trigger_context)
                    for e, drop, position in zip(batch.examples, dropped.tolist(), batch.positions)]
        embeddings = self._embed(captions)
        noise = torch.randn(clean.shape, generator=generator, device=device, dtype=clean.dtype)
        timesteps = torch.randint(
            0, self.noise_scheduler.config.num_train_timesteps, (clean.shape[0],), generator=generator, device=device
        )
        noisy = self.noise_scheduler.add_noise(clean, noise, timesteps)
        if recipe.channels_last:
            noisy = noisy.contiguous(memory_format=torch.channels_last)
        model_input = noisy if condition is None else torch.cat([noisy, condition], dim=1)
        model_output = self.unet(model_input, timesteps, encoder_hidden_states=embeddings, class_labels=levels,
                                 return_dict=False)[0]
        weights = None if all(batch.learnt) else torch.tensor(batch.learnt, dtype=torch.float32, device=device)
        return diffusion_loss(model_output, scheduler=self.noise_scheduler, clean=clean, noise=noise, noisy=noisy,
                              timesteps=timesteps, snr_gamma=recipe.snr_gamma,
                              learned_variance_weight=recipe.learned_variance_weight,
                              pixel_space=self.parts.pixel_space, sample_weights=weights)

    def _pixels(self, example: ExampleLike, flip: bool) -> torch.Tensor:
        return self.transform(example.load_image(), flip=flip)

    def _clean_inputs(self, batch: _Batch, generator: torch.Generator) -> torch.Tensor:
        """Pixels in [-1, 1], or VAE latents sampled from the (cached) latent distribution."""
        device = self.device
        keys = [(e.example_id, f) for e, f, learnt in zip(batch.examples, batch.flips, batch.learnt) if learnt]
        if not keys:  # every slot withheld: zeros of the batch's shape, nothing read
            size = self.resolution // self.parts.vae_scale_factor
            channels = 3 if self.vae is None else 2 * self.vae.config.latent_channels
            moments = torch.zeros((len(batch.learnt), channels, size, size), device=device)
            if self.vae is None:
                return moments
        elif self.vae is None:
            return _with_withheld_rows(pixels_from_uint8(self.pixel_cache.get_batch(keys, device)), batch.learnt)
        elif self.latent_cache is not None:
            moments = self.latent_cache.get_batch(keys, device)
        else:
            pixels = torch.stack([self._pixels(self._by_id[example_id], flip) for example_id, flip in keys])
            moments = self._latent_moments(pixels.to(device))
        if keys:
            moments = _with_withheld_rows(moments, batch.learnt)
        mean, std = moments.float().chunk(2, dim=1)
        latents = mean + std * torch.randn(mean.shape, generator=generator, device=device, dtype=mean.dtype)
        config = self.vae.config
        shift = getattr(config, "shift_factor", None)
        if shift is not None:
            latents = latents - shift
        return latents * config.scaling_factor

    @torch.no_grad()
    def _latent_moments(self, pixels: torch.Tensor) -> torch.Tensor:
        distribution = self.vae.encode(pixels.to(dtype=self.weight_dtype)).latent_dist
        return torch.cat([distribution.mean, distribution.std], dim=1)

    def _image_bytes(self, transform: ImageTransform, key: tuple[str, bool]) -> torch.Tensor:
        example_id, flip = key
        return transform.to_uint8(self._by_id[example_id].load_image(), flip=flip)

    def _upscaling_inputs(self, batch: _Batch, clean: torch.Tensor,
                          generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(target crops, condition crops, noise levels): the condition made as IFSuperResolutionPipeline
        makes it when served -- bilinear enlargement (align_corners), then noise at a random level."""
        recipe, device = self.recipe, self.device
        keys = [(e.example_id, f) for e, f in zip(batch.examples, batch.flips)]
        small = pixels_from_uint8(self.condition_cache.get_batch(keys, device))
        enlarged = F.interpolate(small, size=clean.shape[-2:], mode="bilinear", align_corners=True)
        levels = torch.randint(0, recipe.noise_augmentation_max, (len(keys),), generator=generator, device=device)
        augmentation = torch.randn(enlarged.shape, generator=generator, device=device, dtype=enlarged.dtype)
        condition = self.image_noising_scheduler.add_noise(enlarged, augmentation, levels)
        crop = recipe.train_crop or clean.shape[-1]
        if crop < clean.shape[-1]:
            corners = torch.randint(0, clean.shape[-1] - crop + 1, (len(keys), 2), generator=generator, device=device)
            windows = [(slice(None), slice(y, y + crop), slice(x, x + crop)) for y, x in corners.tolist()]
            clean = torch.stack([image[w] for image, w in zip(clean, windows)])
            condition = torch.stack([image[w] for image, w in zip(condition, windows)])
        return clean, condition, levels

    def _encode_one_latent(self, key: tuple[str, bool]) -> torch.Tensor:
        example_id, flip = key
        pixels = self._pixels(self._by_id[example_id], flip).unsqueeze(0).to(self.device)
        return self._latent_moments(pixels)[0]

    def _embed(self, captions: list[str]) -> torch.Tensor:
        if self.text_cache is not None:
            return self.text_cache.get_batch(captions, self.device)
        tokens = tokenize_prompts(self.parts.tokenizer, captions, self.parts.prompt_style)
        return encode_prompts(self.text_encoder, tokens, self.parts.prompt_style, self.device)

    @torch.no_grad()
    def _encode_one_caption(self, caption: str) -> torch.Tensor:
        tokens = tokenize_prompts(self.parts.tokenizer, [caption], self.parts.prompt_style)
        return encode_prompts(self.text_encoder, tokens, self.parts.prompt_style, self.device)[0]

    # --------------------------------------------------------------- samples

    @contextlib.contextmanager
    def ema_weights(self):
        """Temporarily swap the EMA weights in (validation, measurement and export use them)."""
        for ema, params in self.emas:
            ema.store(params)
            ema.copy_to(params)
        try:
            yield
        finally:
            for ema, params in self.emas:
                ema.restore(params)

    @contextlib.contextmanager
    def current_pipeline(self):
        """A pipeline over the current (EMA) weights in eval mode, for samples and measurements.

        Training resumes unchanged afterwards: weights are swapped back and no random state the
        loop uses is touched (its noise comes from per-batch generators).
        """
        recipe, accelerator = self.recipe, self.accelerator
        unet = self._unwrapped_unet()
        text_encoder = accelerator.unwrap_model(self.text_encoder)
        with self.ema_weights(), accelerator.autocast():
            unet.eval()
            text_encoder.eval()
            try:
                yield self.parts.assemble(unet=unet, text_encoder=text_encoder)
            finally:
                unet.train()
                if recipe.train_text_encoder:
                    text_encoder.train()

    def write_sample_grid(self, name: str) -> Path | None:
        """Render the validation prompts with the current (EMA) weights; main process only writes."""
        recipe, accelerator = self.recipe, self.accelerator
        path = None
        if accelerator.is_main_process and recipe.validation_prompts:
            with self.current_pipeline() as pipeline:
                path = self._save_grid(pipeline, name)
        accelerator.wait_for_everyone()
        return path

    def _save_grid(self, pipeline: DiffusionPipeline, name: str) -> Path:
        recipe = self.recipe
        grid = sample_grid(pipeline, recipe.validation_prompts, resolution=self.resolution,
                           num_inference_steps=recipe.validation_inference_steps,
                           guidance_scale=recipe.validation_guidance_scale, seed=recipe.seed)
        path = self.output_dir / SAMPLES_DIR / f"{name}.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        grid.save(path)
        return path

    # ---------------------------------------------------------------- export

    def export(self) -> TrainingResult:
        """Write the trained model (EMA weights when used) and return the result on every process."""
        accelerator = self.accelerator
        accelerator.wait_for_everyone()
        if accelerator.is_main_process:
            if self.learned_trigger is not None:
                self.trigger_row = self.learned_trigger.write_into(
                    self.parts.tokenizer, self.accelerator.unwrap_model(self.text_encoder), self.recipe.brand_trigger)
            with self.ema_weights():
                model_path, model_format = self._save_model()
            if self.recipe.validation_prompts:
                self._write_final_grid(model_path)
            weights_sha256, weight_files = weights_digest(model_path)
            result = TrainingResult(
                output_dir=self.output_dir, model_path=model_path, model_format=model_format,
                weights_sha256=weights_sha256, weight_files=weight_files, final_loss=self.last_loss,
                steps_done=self.global_step, resumed_from_step=self.resumed_from_step, recipe=self.recipe.to_dict(),
                text_encoder_origin=self.text_encoder_origin,
                sample_grids=tuple(sorted((self.output_dir / SAMPLES_DIR).glob("*.png"))), budget=self.budget)
            (self.output_dir / RESULT_FILE).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")
        accelerator.wait_for_everyone()
        return TrainingResult.from_dict(json.loads((self.output_dir / RESULT_FILE).read_text(encoding="utf-8")))

    def _save_model(self) -> tuple[Path, str]:
        recipe, parts = self.recipe, self.parts
        unet = self._unwrapped_unet()
        unet.to(memory_format=torch.contiguous_format)
        if recipe.trains_lora:
            target = self.output_dir / LORA_DIR
            # PEFT's own key names: converted to the older diffusers names, the attention layers' keys
            # (``lora.down``) no longer matched the ResNets' (``lora_A``) and were dropped when loaded.
            adapter = get_peft_model_state_dict(unet)
            parts.pipeline_class.save_lora_weights(target, unet_lora_layers=adapter, safe_serialization=True)
            if self.trigger_row is not None:
                save_trigger_token(target, recipe.brand_trigger, self.trigger_row)
            return target, "diffusers_lora"
        target = self.output_dir / PIPELINE_DIR
        trained: dict[str, Any] = {"unet": unet}
        if recipe.train_text_encoder:
            trained["text_encoder"] = self.accelerator.unwrap_model(self.text_encoder)
        if recipe.kind in ("base", "upscaler") or recipe.base_model is None:
            if not recipe.train_text_encoder and self.weight_dtype != torch.float32:
                # The frozen encoder ran in the training dtype (its cached embeddings too); saved as float32
                # with those rounded weights, so a float32 pipeline sees the prompts the UNet learnt from.
                trained["text_encoder"] = copy.deepcopy(self.text_encoder).to(torch.float32)
            pipeline = parts.assemble(**trained)
        else:
            # Frozen parts come from disk in their stored precision, not the training dtype copies.
            if self.trigger_row is not None:  # the trigger's token travels in the fine-tuned pipeline's own files
                trained.update(tokenizer=parts.tokenizer, text_encoder=parts.text_encoder)
            with expected_pipeline_warnings_silenced():
                pipeline = parts.pipeline_class.from_pretrained(recipe.base_model, **trained)
        pipeline.save_pretrained(target, safe_serialization=True)
        write_classic_vocab_files(parts.tokenizer, target / "tokenizer")
        if recipe.kind == "upscaler":
            (target / CASCADE_FILE).write_text(json.dumps(
                {"upscale_from": recipe.upscale_from, "noise_level": recipe.serving_noise_level}, indent=2),
                encoding="utf-8")
        return target, "diffusers_pipeline"

    def _write_final_grid(self, model_path: Path) -> None:
        """Render from the saved files, which also proves the export loads."""
        recipe = self.recipe
        with expected_pipeline_warnings_silenced():
            if recipe.trains_lora:
                pipeline = DiffusionPipeline.from_pretrained(recipe.base_model)
                pipeline.load_lora_weights(str(model_path))
                load_trigger_token(pipeline, model_path)
            else:
                pipeline = DiffusionPipeline.from_pretrained(str(model_path))
        pipeline.to(self.device)
        self._save_grid(pipeline, "final")
        del pipeline

    def close(self) -> None:
        """Release models and let the next job in this process pick its own precision settings."""
        accelerator = self.accelerator
        if accelerator is None:
            return
        accelerator.free_memory()
        self.accelerator = None
        if not accelerator.state.use_distributed:
            AcceleratorState._reset_state(reset_partial_state=False)
            GradientState._reset_state()


def train(output_dir: str | Path, recipe: Recipe, examples: Sequence[ExampleLike], *,
          resume_from: str | Path | None = None, **hooks: Any) -> TrainingResult:
    """Train ``recipe`` on ``examples`` into ``output_dir`` and return what was produced.

    ``hooks`` are :class:`DiffusionTrainer`'s keywords (``before_batch``, ``progress``,
    ``should_cancel``, ``stage_progress``). ``resume_from``: ``None`` for a fresh run (refused if the
    folder already has checkpoints), ``"latest"`` to continue from the newest complete checkpoint (or
    start fresh if none), or a checkpoint folder. Exceptions from the hooks propagate unchanged.
    """
    trainer = DiffusionTrainer(output_dir, recipe, examples, **hooks)
    try:
        trainer.prepare(resume_from=resume_from)
        trainer.fit()
        return trainer.export()
    finally:
        trainer.close()


__all__ = [
    "DiffusionTrainer",
    "StoppedByPeer",
    "TrainingCancelled",
    "TrainingResult",
    "compile_unet",
    "configure_attention",
    "make_adamw",
    "train",
    "weights_digest",
]
