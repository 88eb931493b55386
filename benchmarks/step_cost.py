"""What does one training step of a base UNet shape cost on this machine? Prints JSON.

Before a 30-minute ablation, a minute here says how many steps a wider or deeper UNet gets in the
same budget. Each shape runs the preset's step: batch 16 at 32 px, bfloat16 autocast where the CPU
has it, forward and backward through the UNet (prediction and learned variance) and an AdamW update,
with random pixels and prompt states (the cost does not depend on the values).

    python benchmarks/step_cost.py --shapes preset,wide,deep --steps 20

``--loop`` also times each shape inside the real training loop (the ``quality`` preset's recipe on synthetic
images: batches, cached pixels and prompts, loss with learned variances, EMA), which the bare step leaves out.
``--compile off,full`` times each shape under each ``torch.compile`` mode of the recipe (the compile itself
falls in the warm-up steps and is reported apart as ``compile_seconds``).
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from benchmarks.reporting import chosen_names, publish
from recipes import PRESETS, BaseModelShape
from training.engine import compile_unet, native_cpu_bf16
from training.pipelines import build_base_unet

PRESET_SHAPE: BaseModelShape = PRESETS["quality"]["model_shape"]
SHAPES: dict[str, BaseModelShape] = {
    # the presets' UNet; before stop 30 it did not pool the prompt, and result files of then name this
    # ``pooled`` and the unpooled one ``preset``
    "preset": PRESET_SHAPE,
    "unpooled": dataclasses.replace(PRESET_SHAPE, unet_pooled_text=False),
    "wide": dataclasses.replace(PRESET_SHAPE, unet_block_out_channels=(64, 128, 192)),
    "wide-deep-end": dataclasses.replace(PRESET_SHAPE, unet_block_out_channels=(32, 64, 256)),
    "mid": dataclasses.replace(PRESET_SHAPE, unet_block_out_channels=(32, 96, 192)),
    "deep": dataclasses.replace(PRESET_SHAPE, unet_layers_per_block=2),
    "attn16": dataclasses.replace(PRESET_SHAPE, unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D",
                                                                       "CrossAttnDownBlock2D")),
}
"""The presets' UNets and the candidates an ablation may try instead."""


COMPILE_MODES = ("off", "regional", "full")


def seconds_per_step(shape: BaseModelShape, steps: int, batch: int, resolution: int, bf16: bool,
                     compile_mode: str = "off") -> dict:
    torch.manual_seed(0)
    unet = build_base_unet(shape, resolution, cross_attention_dim=shape.text_hidden_size)
    compile_unet(unet, compile_mode)
    optimizer = torch.optim.AdamW(unet.parameters(), lr=1e-4)
    pixels = torch.randn(batch, 3, resolution, resolution)
    states = torch.randn(batch, 16, shape.text_hidden_size)
    timesteps = torch.randint(0, 1000, (batch,))

    def step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            output = unet(pixels, timesteps, encoder_hidden_states=states, return_dict=False)[0]
        loss = output.float().pow(2).mean()
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    warm_started = time.perf_counter()
    for _ in range(3):  # warm-up: allocator, kernel choice and any compilation
        step()
    warm_up = time.perf_counter() - warm_started
    started = time.perf_counter()
    for _ in range(steps):
        step()
    elapsed = (time.perf_counter() - started) / steps
    return {"seconds_per_step": round(elapsed, 4), "compile_seconds": round(max(0.0, warm_up - 3 * elapsed), 1),
            "parameters_m": round(sum(p.numel() for p in unet.parameters()) / 1e6, 3)}


def seconds_per_loop_step(shape: BaseModelShape, steps: int, work: Path, compile_mode: str = "off") -> float:
    """Seconds per optimizer step of ``train`` with the quality preset's recipe, after a few warm-up steps."""
    from recipes import TextPretraining, preset_recipe
    from training.engine import train
    from training.synthetic import shape_examples

    recipe = preset_recipe("quality", model_shape=shape, max_train_steps=steps, checkpoint_every=0,
                           text_pretraining=TextPretraining(epochs=1), torch_compile=compile_mode)
    times: dict[int, float] = {}
    train(work, recipe, shape_examples(256, size=32, seed=0),
          progress=lambda step, *_: times.setdefault(step, time.perf_counter()))
    warm = min(10, steps // 4)
    return (times[steps] - times[warm]) / (steps - warm)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=",".join(SHAPES), help=f"comma-separated, of {sorted(SHAPES)}")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--loop", type=int, default=0, metavar="STEPS",
                        help="also time this many steps of the real training loop per shape")
    parser.add_argument("--compile", default="off", help=f"comma-separated torch.compile modes, of {COMPILE_MODES}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "step_cost.json")
    args = parser.parse_args(argv)
    names = chosen_names(args.shapes, SHAPES, "shapes")
    modes = chosen_names(args.compile, dict.fromkeys(COMPILE_MODES), "compile modes")
    torch.set_num_threads(args.threads)
    bf16 = native_cpu_bf16()
    shapes = {}
    for name in names:
        for mode in modes:
            key = name if mode == "off" else f"{name}+compile_{mode}"
            shapes[key] = seconds_per_step(SHAPES[name], args.steps, args.batch, 32, bf16, mode)
            if args.loop:
                with tempfile.TemporaryDirectory() as work:
                    shapes[key]["loop_seconds_per_step"] = round(
                        seconds_per_loop_step(SHAPES[name], args.loop, Path(work), mode), 4)
            print(f"{key}: {shapes[key]}", file=sys.stderr)
    baseline = shapes.get("preset", {}).get("seconds_per_step")
    for cost in shapes.values():
        if baseline:
            cost["relative_to_preset"] = round(cost["seconds_per_step"] / baseline, 3)
    return publish({"benchmark": "step_cost", "batch": args.batch, "resolution": 32, "bf16": bf16,
                    "threads": args.threads, "machine": platform.processor() or platform.machine(),
                    "shapes": shapes}, args.out)


if __name__ == "__main__":
    main()
