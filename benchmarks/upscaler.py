"""Does the learned upscaler add detail that enlarging alone cannot? Measured against nearest and bicubic. Prints JSON.

1. The training snapshot of ``benchmarks/quality.py`` (held-out split excluded, reused from
   ``--work``) trains an ``upscaler`` stage (32 -> 128 px) with the training engine, after the base
   model ``--base`` (a pipeline folder: the upscaler shares its frozen tokenizer and text encoder).
2. On held-out renditions the real 128 px image is the truth, and its 32 px copy (made exactly as
   the base model's training images were) is enlarged three ways: nearest neighbour (what deliveries
   were before the cascade), bicubic, and the upscaler at its serving noise level. Reported: PSNR
   and SSIM against the truth, and the share of the truth's fine detail (energy of the Laplacian)
   each enlargement has -- nearest and bicubic cannot invent what the 32 px copy lost.
3. A cascade sheet: held-out prompts drawn by the base at 32 px (shown enlarged by nearest
   neighbour) beside the same seeds through the cascade at 128 px, and the seconds each takes.

    python benchmarks/upscaler.py --base var/bench-quality/runs/quality/pipeline --threads 2

Writes ``benchmarks/results/upscaler_cpu.json`` and ``benchmarks/results/cascade_sheet.png``.
"""

from __future__ import annotations

import argparse
import io
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from benchmarks.quality import examples_of, labelled_images, prepare_snapshots
from benchmarks.reporting import publish
from recipes import upscaler_recipe
from training.data import ImageTransform
from training.engine import train
from training.pipelines import load_cascade, load_pipeline
from training.quality import round_floats, sheet_prompt_indices


def truth_and_small(items: list[dict], resolution: int, small: int) -> tuple[np.ndarray, np.ndarray]:
    """The held-out renditions at the delivered size and at the base model's size, uint8 N x 3 x H x W."""
    large, little = ImageTransform(resolution), ImageTransform(small)
    images = [Image.open(io.BytesIO(i["png"])) for i in items]
    return (np.stack([large.to_uint8(image).numpy() for image in images]),
            np.stack([little.to_uint8(image).numpy() for image in images]))


def enlarge(small: np.ndarray, size: int, mode: str) -> np.ndarray:
    pixels = torch.from_numpy(small).float()
    enlarged = F.interpolate(pixels, size=(size, size), mode=mode, **({} if mode == "nearest" else
                                                                     {"align_corners": False}))
    return enlarged.round().clamp(0, 255).to(torch.uint8).numpy()


@torch.no_grad()
def learned(upscaler, small: np.ndarray, captions: list[str], size: int, *, noise_level: int, steps: int,
            batch: int = 16) -> np.ndarray:
    out = []
    for start in range(0, len(small), batch):
        chunk = torch.from_numpy(small[start:start + batch]).float() / 127.5 - 1.0
        generators = [torch.Generator().manual_seed(start + i) for i in range(len(chunk))]
        images = upscaler(captions[start:start + batch], image=chunk, height=size, width=size,
                          num_inference_steps=steps, guidance_scale=1.0, noise_level=noise_level,
                          generator=generators, output_type="np", clean_caption=False).images
        out.append(np.clip(np.round(np.asarray(images) * 255.0), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2))
    return np.concatenate(out)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean(axis=(1, 2, 3))
    return float(np.mean(10 * np.log10(255.0 ** 2 / np.maximum(mse, 1e-10))))


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM over images and channels, 7x7 uniform windows (Wang et al. 2004 constants)."""
    x, y = (torch.from_numpy(v).double() / 255.0 for v in (a, b))

    def mean(v):
        return F.avg_pool2d(v, 7, stride=1)

    mx, my = mean(x), mean(y)
    vx, vy, cov = mean(x * x) - mx ** 2, mean(y * y) - my ** 2, mean(x * y) - mx * my
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    value = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return float(value.mean())


def detail_energy(images: np.ndarray) -> float:
    """Mean squared Laplacian: how much fine structure (edges, strokes) an image set has."""
    kernel = torch.tensor([[0.0, 1.0, 0.0], [1.0, -4.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    pixels = torch.from_numpy(images).double() / 255.0
    channels = pixels.shape[1]
    response = F.conv2d(pixels, kernel.expand(channels, 1, 3, 3), groups=channels)
    return float((response ** 2).mean())


def cascade_sheet(rows: list[tuple[str, list[Image.Image], list[Image.Image]]], size: int) -> Image.Image:
    """One row per prompt: the base's drawings enlarged by nearest neighbour, then the cascade's."""
    label, gap = 18, 8
    seeds = len(rows[0][1])
    sheet = Image.new("RGB", (gap + 2 * seeds * (size + gap) + gap, len(rows) * (label + size + gap) + gap),
                      (240, 240, 240))
    draw = ImageDraw.Draw(sheet)
    for number, (prompt, base, cascade) in enumerate(rows):
        top = gap + number * (label + size + gap)
        draw.text((gap, top + 2), f"{prompt[:90]}   (left: base, enlarged; right: cascade)", fill=(20, 20, 20))
        for column, image in enumerate(base + cascade):
            left = gap + column * (size + gap) + (gap if column >= seeds else 0)
            sheet.paste(image.resize((size, size), Image.Resampling.NEAREST), (left, top + label))
    return sheet


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the base pipeline folder the upscaler follows")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-train-steps", type=int, default=600)
    parser.add_argument("--mixed-precision", default="bf16", choices=("no", "bf16", "fp16"))
    parser.add_argument("--measured", type=int, default=96, help="held-out renditions measured")
    parser.add_argument("--upscale-steps", type=int, default=20)
    parser.add_argument("--base-steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "upscaler_cpu.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    snapshots = prepare_snapshots(args.work, args.catalog)
    recipe = upscaler_recipe(str(args.base), max_train_steps=args.max_train_steps,
                             checkpoint_every=max(50, args.max_train_steps // 4),
                             mixed_precision=args.mixed_precision)
    output = args.work / "runs" / "upscaler"
    started = time.perf_counter()
    result = train(output, recipe, examples_of(snapshots["training"]["items"]), resume_from="latest")
    train_minutes = (time.perf_counter() - started) / 60

    heldout_items = snapshots["evaluation"]["items"][: args.measured]
    truth, small = truth_and_small(heldout_items, recipe.resolution, recipe.upscale_from)
    upscaler = load_pipeline(result.model_path, device="cpu")
    started = time.perf_counter()
    enlargements = {
        "nearest": enlarge(small, recipe.resolution, "nearest"),
        "bicubic": enlarge(small, recipe.resolution, "bicubic"),
        "upscaler": learned(upscaler, small, [i["caption"] for i in heldout_items], recipe.resolution,
                            noise_level=recipe.serving_noise_level, steps=args.upscale_steps),
    }
    upscale_seconds = (time.perf_counter() - started) / len(small)
    truth_detail = detail_energy(truth)
    methods = {name: {"psnr_db": psnr(images, truth), "ssim": ssim(images, truth),
                      "detail_share": detail_energy(images) / truth_detail}
               for name, images in enlargements.items()}

    cascade = load_cascade(args.base, result.model_path, device="cpu")
    heldout = labelled_images(snapshots["evaluation"]["items"])
    rows, timings = [], {"base": [], "cascade": []}
    for number, index in enumerate(sheet_prompt_indices(heldout, count=6)):
        prompt = heldout.captions[index]
        outputs = {}
        for stage, pipeline, size in (("base", cascade.base, recipe.upscale_from), ("cascade", cascade, recipe.resolution)):
            generators = [torch.Generator().manual_seed(1000 * (number + 1) + seed) for seed in range(3)]
            begun = time.perf_counter()
            outputs[stage] = pipeline([prompt] * 3, num_inference_steps=args.base_steps, guidance_scale=args.guidance,
                                      height=size, width=size, generator=generators, output_type="pil",
                                      clean_caption=False).images
            timings[stage].append((time.perf_counter() - begun) / 3)
        rows.append((prompt, outputs["base"], outputs["cascade"]))
    sheet_path = args.out.parent / "cascade_sheet.png"
    cascade_sheet(rows, size=256).save(sheet_path)

    report = round_floats({
        "upscaler": {"from": recipe.upscale_from, "to": recipe.resolution, "train_crop": recipe.train_crop,
                     "steps": result.steps_done, "batch": recipe.train_batch_size, "train_minutes": train_minutes,
                     "mixed_precision": recipe.mixed_precision, "serving_noise_level": recipe.serving_noise_level,
                     "upscale_steps": args.upscale_steps, "weights_sha256": result.weights_sha256,
                     "final_loss": result.final_loss},
        "measured_images": len(truth),
        "methods": methods,
        "upscale_seconds_per_image": upscale_seconds,
        "base_seconds_per_image": float(np.mean(timings["base"])),
        "cascade_seconds_per_image": float(np.mean(timings["cascade"])),
        "sheet": str(sheet_path.relative_to(ROOT)) if sheet_path.is_relative_to(ROOT) else str(sheet_path),
        "base": str(args.base),
        "machine": {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch": torch.__version__},
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
