"""GPU benchmark: SD-1.5-sized fine-tuning through the engine against a bare diffusers loop.

Both sides train the same randomly initialised SD-1.5-sized UNet (320/640/1280/1280 channels,
cross-attention 768, 64×64 latents for 512 px images) next to an SD-VAE-sized AutoencoderKL and a
CLIP-L-sized text encoder, in bf16 mixed precision, on identical synthetic 512 px images.

* ``bare``: the shape of diffusers' ``train_text_to_image.py``: VAE encode and text encode on
  every step, plain ``torch.optim.AdamW``, no compile.
* ``ours``: ``training.engine.DiffusionTrainer`` with cached VAE latents and text embeddings,
  fused AdamW, SDPA attention, channels-last and ``torch.compile`` of the UNet (regional by
  default: the repeated transformer blocks, which keeps compilation to well under a minute;
  ``--compile full`` compiles the whole UNet).

Warm-up steps (compile, cache fill) are excluded from the timed steps; the compile/warm-up time
is reported separately. Peak GPU memory is measured per side.

    python benchmarks/gpu_train.py                 # one CUDA GPU, well under 4 minutes on an H100
    python benchmarks/gpu_train.py --smoke         # tiny sizes on CPU, to test the script itself

Needs only torch, transformers, accelerate, peft, safetensors, numpy, pillow and diffusers.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import sys
import tempfile
import time
import traceback
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed
from diffusers import DDPMScheduler
from diffusers.utils import logging as diffusers_logging
from transformers.utils import logging as transformers_logging

from recipes import finetune_recipe
from training.data import ImageTransform
from training.engine import DiffusionTrainer
from training.pipelines import LatentModelShape, PipelineParts, build_latent_parts
from training.synthetic import shape_examples
from training.text_encoder import TextEncoderShape, train_caption_tokenizer

SD15 = LatentModelShape(
    resolution=512,
    unet_block_out_channels=(320, 640, 1280, 1280), unet_layers_per_block=2, unet_norm_num_groups=32,
    unet_down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
    vae_block_out_channels=(128, 256, 512, 512), vae_layers_per_block=2, vae_norm_num_groups=32,
    text=TextEncoderShape(hidden_size=768, intermediate_size=3072, num_layers=12, num_heads=12),
    text_vocab_size=49408,  # CLIP-L's embedding table; the tokenizer learnt here has 1000 tokens
)
"""Stable Diffusion 1.5's UNet and VAE, CLIP ViT-L/14's text transformer: one line per model."""
SMOKE = LatentModelShape(unet_down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
                         vae_block_out_channels=(8, 16, 16, 16))
"""The engine's tiny test model with SD's layout: attention at every level but the coarsest."""


def build_parts(shape: LatentModelShape, tokenizer, device: torch.device, seed: int) -> PipelineParts:
    """Random-init UNet, VAE and text encoder straight on ``device`` (no CPU init of 1B params)."""
    torch.manual_seed(seed)
    with torch.device(device):
        return build_latent_parts(shape, tokenizer, sd_noise_scheduler())


def sd_noise_scheduler() -> DDPMScheduler:
    return DDPMScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", prediction_type="epsilon", clip_sample=False
    )


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2)


def _reset_accelerate() -> None:
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def run_bare(shape, examples, tokenizer, *, device, mixed_precision, batch_size, warmup, steps, seed) -> dict:
    """diffusers' train_text_to_image.py step: encode with VAE and text encoder every step."""
    reset_peak_memory(device)
    set_seed(seed)
    parts = build_parts(shape, tokenizer, device, seed)
    unet, vae, text_encoder = parts.unet, parts.vae, parts.text_encoder
    accelerator = Accelerator(mixed_precision=mixed_precision)
    weight_dtype = {"no": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[mixed_precision]
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    vae.to(device, dtype=weight_dtype)
    text_encoder.to(device, dtype=weight_dtype)
    unet.train()
    noise_scheduler = sd_noise_scheduler()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-5, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    unet, optimizer = accelerator.prepare(unet, optimizer)
    transform = ImageTransform(shape.resolution)

    def batch(step: int):
        chosen = [examples[(step * batch_size + i) % len(examples)] for i in range(batch_size)]
        pixels = torch.stack([transform(e.load_image()) for e in chosen])
        ids = tokenizer(
            [e.caption for e in chosen], max_length=77, padding="max_length", truncation=True, return_tensors="pt"
        ).input_ids
        return pixels, ids

    stamps = []
    synchronize(device)
    start = time.perf_counter()
    for step in range(warmup + steps):
        pixel_values, input_ids = batch(step)
        with accelerator.accumulate(unet):
            latents = vae.encode(pixel_values.to(device, dtype=weight_dtype)).latent_dist.sample()
            latents = latents * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],), device=device)
            noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps)
            encoder_hidden_states = text_encoder(input_ids.to(device), return_dict=False)[0]
            model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
            loss = F.mse_loss(model_pred.float(), noise.float(), reduction="mean")
            loss_value = accelerator.gather(loss.repeat(batch_size)).mean().item()
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
        stamps.append(time.perf_counter())
    synchronize(device)
    result = _timing(start, stamps, warmup, batch_size)
    result.update(
        peak_memory_gib=peak_memory_gib(device),
        final_loss=loss_value,
        unet_parameters_m=round(sum(p.numel() for p in unet.parameters()) / 1e6, 1),
    )
    accelerator.free_memory()
    del parts, unet, vae, text_encoder, optimizer, accelerator
    _reset_accelerate()
    reset_peak_memory(device)
    return result


def run_ours(
    shape, examples, tokenizer, *, device, mixed_precision, batch_size, warmup, steps, seed, compile_mode, workdir
) -> dict:
    """The engine's fine-tune path with caches, fused AdamW, SDPA, channels-last and torch.compile."""
    reset_peak_memory(device)
    set_seed(seed)
    parts = build_parts(shape, tokenizer, device, seed)
    recipe = finetune_recipe(
        "random-init SD-1.5-sized pipeline",
        resolution=shape.resolution,
        train_batch_size=batch_size,
        max_train_steps=warmup + steps,
        learning_rate=1e-5,
        mixed_precision=mixed_precision,
        use_ema=False,
        checkpoint_every=0,
        channels_last=True,
        torch_compile=compile_mode,
        attention="sdpa",
        seed=seed,
    )
    stamps: list[float] = []
    trainer = DiffusionTrainer(
        workdir, recipe, examples, parts=parts, progress=lambda *_: stamps.append(time.perf_counter())
    )
    try:
        trainer.prepare()
        synchronize(device)
        start = time.perf_counter()
        trainer.fit()
        synchronize(device)
        result = _timing(start, stamps, warmup, batch_size)
        result.update(
            peak_memory_gib=peak_memory_gib(device),
            final_loss=trainer.last_loss,
            attention=trainer.attention_backend,
            torch_compile=compile_mode,
            cached_latents=len(trainer.latent_cache) if trainer.latent_cache is not None else 0,
            cached_text_embeddings=len(trainer.text_cache) if trainer.text_cache is not None else 0,
        )
        return result
    finally:
        trainer.close()
        del trainer, parts
        reset_peak_memory(device)


def _timing(start: float, stamps: list[float], warmup: int, batch_size: int) -> dict:
    """Throughput over the steps after ``warmup`` (stamps: end time of every optimizer step)."""
    timed = stamps[warmup - 1 :]
    measured_steps = len(timed) - 1
    seconds = timed[-1] - timed[0]
    first_step_s = stamps[0] - start
    step_s = seconds / measured_steps
    return {
        "images_per_s": round(measured_steps * batch_size / seconds, 2),
        "step_s": round(step_s, 4),
        "measured_steps": measured_steps,
        "warmup_steps": warmup,
        "warmup_s": round(stamps[warmup - 1] - start, 2),
        # The first step carries compilation (and, for ours, its share of the cache fill).
        "first_step_overhead_s": round(first_step_s - step_s, 2),
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes on CPU, float32, no compile")
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None, help="timed steps per side")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps per side (compile, cache fill)")
    parser.add_argument(
        "--compile",
        choices=("off", "regional", "full"),
        default=None,
        help="torch.compile scope for the engine's UNet (default: regional on GPU, off for --smoke); "
        "full compiles the whole SD-sized UNet, which alone can take minutes",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.warmup is not None and args.warmup < 1:
        parser.error("--warmup must be at least 1 (the first step carries compilation)")
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()

    if args.smoke:
        shape, device, mixed_precision = SMOKE, torch.device("cpu"), "no"
        batch_size, steps, warmup = args.batch_size or 2, args.steps or 2, args.warmup or 1
        compile_mode = args.compile or "off"
    else:
        if not torch.cuda.is_available():
            parser.error("needs a CUDA GPU; use --smoke to exercise the script on CPU")
        shape, device, mixed_precision = SD15, torch.device("cuda"), "bf16"
        batch_size, steps, warmup = args.batch_size or 8, args.steps or 20, args.warmup or 3
        compile_mode = args.compile or "regional"

    # Every image is seen during warm-up, so the timed steps show the engine's steady state.
    examples = shape_examples(batch_size * max(1, warmup), size=shape.resolution, seed=args.seed)
    tokenizer = train_caption_tokenizer([e.caption for e in examples], vocab_size=shape.tokenizer_vocab_size)
    common = {
        "device": device,
        "mixed_precision": mixed_precision,
        "batch_size": batch_size,
        "warmup": warmup,
        "steps": steps,
        "seed": args.seed,
    }

    report: dict = {
        "benchmark": "SD-1.5-sized UNet fine-tune" if not args.smoke else "smoke (tiny sizes, CPU)",
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "torch": torch.__version__,
        "resolution": shape.resolution,
        "batch_size": batch_size,
        "mixed_precision": mixed_precision,
    }
    started = time.perf_counter()
    report["bare"] = run_bare(shape, examples, tokenizer, **common)
    with tempfile.TemporaryDirectory(prefix="gpu-train-") as workdir:
        ours = None
        try:
            ours = run_ours(
                shape, examples, tokenizer, compile_mode=compile_mode, workdir=Path(workdir) / "a", **common
            )
        except Exception:  # a compile failure must not hide the uncompiled comparison
            if compile_mode == "off":
                raise
            report["compile_error"] = traceback.format_exc(limit=3)
        if ours is None:  # retried outside the except block, so the failed attempt's tensors are freed
            reset_peak_memory(device)
            ours = run_ours(shape, examples, tokenizer, compile_mode="off", workdir=Path(workdir) / "b", **common)
        report["ours"] = ours
    report["ratio"] = round(report["ours"]["images_per_s"] / report["bare"]["images_per_s"], 3)
    report["compile_and_warmup_s"] = report["ours"]["warmup_s"]
    report["total_wall_s"] = round(time.perf_counter() - started, 1)
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
