"""CPU benchmark: the training engine against a bare diffusers + accelerate loop.

Both sides fine-tune the UNet of the same tiny Stable-Diffusion-format pipeline (random init,
with SD's 8× VAE) on the same synthetic images for the same number of steps and batch size, on
the same number of threads. The reference loop has the shape of diffusers'
``examples/text_to_image/train_text_to_image.py``: VAE encode and text encode every step and a
plain ``torch.optim.AdamW``. The engine caches the frozen VAE's latent distributions and the
frozen text embeddings, runs AdamW with foreach kernels and also pays for its license gate.

    python benchmarks/train.py [--steps 40] [--batch-size 8] [--images 16] [--repeats 3] [--threads 1]

Prints one JSON object: images/s of each side (median over repeats, cache fill included),
and ``ratio`` = engine / reference.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import torch
import torch.nn.functional as F
from accelerate import Accelerator
from accelerate.state import AcceleratorState, GradientState
from accelerate.utils import set_seed
from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
from diffusers.optimization import get_scheduler
from diffusers.utils import logging as diffusers_logging
from transformers import CLIPTextModel, CLIPTokenizer
from transformers.utils import logging as transformers_logging

from recipes import finetune_recipe
from training.data import ImageTransform
from training.engine import DiffusionTrainer
from training.pipelines import build_tiny_stable_diffusion
from training.synthetic import shape_examples


def reference_loop(
    model_dir: Path, examples, *, steps: int, batch_size: int, resolution: int, seed: int
) -> list[float]:
    """diffusers' train_text_to_image.py loop, reduced to what this benchmark exercises.

    Returns the wall-clock time at the end of each optimizer step (index 0: loop start).
    """
    accelerator = Accelerator(gradient_accumulation_steps=1, mixed_precision="no")
    set_seed(seed)
    noise_scheduler = DDPMScheduler.from_pretrained(model_dir, subfolder="scheduler")
    tokenizer = CLIPTokenizer.from_pretrained(model_dir, subfolder="tokenizer")
    text_encoder = CLIPTextModel.from_pretrained(model_dir, subfolder="text_encoder")
    vae = AutoencoderKL.from_pretrained(model_dir, subfolder="vae")
    unet = UNet2DConditionModel.from_pretrained(model_dir, subfolder="unet")
    vae.requires_grad_(False)
    text_encoder.requires_grad_(False)
    unet.train()
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-2, eps=1e-8)
    lr_scheduler = get_scheduler("constant", optimizer=optimizer, num_warmup_steps=0, num_training_steps=steps)
    unet, optimizer, lr_scheduler = accelerator.prepare(unet, optimizer, lr_scheduler)
    text_encoder.to(accelerator.device)
    vae.to(accelerator.device)
    transform = ImageTransform(resolution)

    def batches():
        order = torch.Generator().manual_seed(seed)
        while True:
            permutation = torch.randperm(len(examples), generator=order).tolist()
            for start in range(0, len(permutation) - batch_size + 1, batch_size):
                chosen = [examples[i] for i in permutation[start : start + batch_size]]
                pixels = torch.stack([transform(e.load_image()) for e in chosen])
                input_ids = tokenizer(
                    [e.caption for e in chosen],
                    max_length=tokenizer.model_max_length,
                    padding="max_length",
                    truncation=True,
                    return_tensors="pt",
                ).input_ids
                yield pixels, input_ids

    stamps = [time.perf_counter()]
    train_loss = 0.0
    for _, (pixel_values, input_ids) in zip(range(steps), batches()):
        with accelerator.accumulate(unet):
            latents = vae.encode(pixel_values.to(accelerator.device)).latent_dist.sample()
            latents = latents * vae.config.scaling_factor
            noise = torch.randn_like(latents)
            timesteps = torch.randint(0, noise_scheduler.config.num_train_timesteps, (latents.shape[0],))
            noisy_latents = noise_scheduler.add_noise(latents, noise, timesteps.long())
            encoder_hidden_states = text_encoder(input_ids.to(accelerator.device), return_dict=False)[0]
            model_pred = unet(noisy_latents, timesteps, encoder_hidden_states, return_dict=False)[0]
            loss = F.mse_loss(model_pred.float(), noise.float(), reduction="mean")
            avg_loss = accelerator.gather(loss.repeat(batch_size)).mean()
            train_loss += avg_loss.item()
            accelerator.backward(loss)
            if accelerator.sync_gradients:
                accelerator.clip_grad_norm_(unet.parameters(), 1.0)
            optimizer.step()
            lr_scheduler.step()
            optimizer.zero_grad()
        if accelerator.sync_gradients:
            stamps.append(time.perf_counter())
    accelerator.free_memory()
    _reset_accelerate()
    return stamps


def engine_loop(model_dir: Path, examples, *, steps: int, batch_size: int, seed: int, workdir: Path) -> list[float]:
    """The engine's fine-tune recipe, timed over ``fit`` only (setup and export excluded)."""
    recipe = finetune_recipe(
        str(model_dir),
        train_batch_size=batch_size,
        max_train_steps=steps,
        learning_rate=1e-4,
        use_ema=False,
        checkpoint_every=0,
        seed=seed,
    )
    permitted = {e.example_id for e in examples}

    def license_gate(ids: list[str]) -> None:
        missing = [i for i in ids if i not in permitted]
        if missing:
            raise PermissionError(missing)

    stamps: list[float] = []
    trainer = DiffusionTrainer(
        workdir, recipe, examples, before_batch=license_gate, progress=lambda *_: stamps.append(time.perf_counter())
    )
    try:
        trainer.prepare()
        stamps.append(time.perf_counter())
        trainer.fit()
    finally:
        trainer.close()
    return stamps  # the start stamp, then one per optimizer step


def _reset_accelerate() -> None:
    AcceleratorState._reset_state(reset_partial_state=False)
    GradientState._reset_state()


def images_per_second(stamps: list[float], batch_size: int) -> float:
    return (len(stamps) - 1) * batch_size / (stamps[-1] - stamps[0])


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--images", type=int, default=16, help="distinct training images (reused every epoch)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads (0: torch's choice). One by default: on a shared box OpenMP threads "
        "spin-waiting for a busy core make multi-threaded timings swing several-fold between runs",
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    diffusers_logging.set_verbosity_error()
    diffusers_logging.disable_progress_bar()
    transformers_logging.set_verbosity_error()
    transformers_logging.disable_progress_bar()

    resolution = 64
    examples = shape_examples(args.images, size=resolution, seed=args.seed)
    reference_rates, engine_rates = [], []
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        model_dir = build_tiny_stable_diffusion(Path(tmp) / "tiny-sd", [e.caption for e in examples], seed=args.seed)
        for repeat in range(args.repeats):
            stamps = reference_loop(
                model_dir, examples, steps=args.steps, batch_size=args.batch_size, resolution=resolution, seed=args.seed
            )
            reference_rates.append(images_per_second(stamps, args.batch_size))
            stamps = engine_loop(
                model_dir,
                examples,
                steps=args.steps,
                batch_size=args.batch_size,
                seed=args.seed,
                workdir=Path(tmp) / f"engine-{repeat}",
            )
            engine_rates.append(images_per_second(stamps, args.batch_size))

    reference = statistics.median(reference_rates)
    engine = statistics.median(engine_rates)
    report = {
        "benchmark": "tiny SD-format fine-tune on CPU",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "distinct_images": args.images,
        "resolution": resolution,
        "threads": torch.get_num_threads(),
        "repeats": args.repeats,
        "reference_images_per_s": round(reference, 2),
        "engine_images_per_s": round(engine, 2),
        "ratio": round(engine / reference, 3),
        "reference_runs": [round(r, 2) for r in reference_rates],
        "engine_runs": [round(r, 2) for r in engine_rates],
    }
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
