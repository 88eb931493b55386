"""Why does the feature-space fidelity test miss a mascot the pixel test finds? Prints JSON.

``benchmarks/custom_model.py`` saves its mascot sheet (left: the base's outputs, right: the custom
model's, 32 px cells enlarged 4x by nearest neighbour, so the raw outputs are recovered exactly). Here the
custom model's outputs, and the mascot's 20 unseen real poses, are changed one property at a time and the
same test is asked again (nearest learnt-from image in the evaluator's features is a brand image):

- outputs with light pixels (mean above 200) set to pure white: is the drawn background what misleads it?
- unseen poses with 8 % of their pixels replaced by light speckle, recoloured to the outputs' star colour,
  or without eyes: which of the outputs' differences from the real mascot costs the most?

    python benchmarks/fidelity_diagnosis.py --sheet benchmarks/results/custom_model_mascot.png
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from PIL import Image

from benchmarks.custom_model import BRAND_IMAGES, IMAGES_PER_PROMPT, PROMPTS, brand_share, pixels
from benchmarks.quality import labelled_images, prepare_snapshots
from benchmarks.quality_common import evaluator_for
from benchmarks.reporting import publish
from foundry.demo import mascot_png
from training.quality import EvaluatorConfig, round_floats

CELL, ENLARGED = 32, 4
LIGHT = 200
"""A pixel whose channel mean is above this counts as background (the catalog draws on pure white)."""


def custom_outputs(sheet_path: Path) -> list[np.ndarray]:
    """The custom model's raw 32 px outputs: the right half of the mascot sheet, row by row."""
    sheet = Image.open(sheet_path).convert("RGB")
    small = sheet.resize((sheet.width // ENLARGED, sheet.height // ENLARGED), Image.Resampling.NEAREST)
    if small.size != (CELL * IMAGES_PER_PROMPT * 2, CELL * len(PROMPTS)):
        raise SystemExit(f"{sheet_path} is not a custom_model.py mascot sheet ({sheet.size})")
    return [np.asarray(small.crop((CELL * column, CELL * row, CELL * (column + 1), CELL * (row + 1))))
            for row in range(len(PROMPTS)) for column in range(IMAGES_PER_PROMPT, 2 * IMAGES_PER_PROMPT)]


def whitened(image: np.ndarray) -> np.ndarray:
    light = image.astype(np.float32).mean(-1, keepdims=True) > LIGHT
    return np.where(light, 255, image).astype(np.uint8)


def speckled(image: np.ndarray, rng: np.random.Generator, share: float = 0.08) -> np.ndarray:
    image = image.copy()
    chosen = rng.random(image.shape[:2]) < share
    image[chosen] = rng.integers(150, 256, size=(int(chosen.sum()), 3))
    return image


def star_colour(image: np.ndarray) -> np.ndarray:
    return image[image.astype(np.float32).mean(-1) < 180].astype(np.float32).mean(0)


def recoloured(image: np.ndarray, colour: np.ndarray) -> np.ndarray:
    image = image.astype(np.float32)
    star = image.mean(-1) < 180
    image[star] = np.clip(image[star] - image[star].mean(0) + colour, 0, 255)
    return image.astype(np.uint8)


def without_eyes(image: np.ndarray) -> np.ndarray:
    """White pixels inside the star's bounding box painted the star's colour."""
    star = image.astype(np.float32).mean(-1) < 180
    rows, columns = np.nonzero(star)
    inside = np.zeros_like(star)
    inside[rows.min():rows.max() + 1, columns.min():columns.max() + 1] = True
    white = (image.min(-1) > LIGHT) & inside & ~_background(image)
    painted = image.copy()
    painted[white] = star_colour(image).astype(np.uint8)
    return painted


def _background(image: np.ndarray) -> np.ndarray:
    """Light pixels connected to the border (flood fill): the background, not the eyes."""
    light = image.min(-1) > LIGHT
    seen = np.zeros_like(light)
    stack = [(r, c) for r in range(light.shape[0]) for c in (0, light.shape[1] - 1)] + \
            [(r, c) for r in (0, light.shape[0] - 1) for c in range(light.shape[1])]
    while stack:
        r, c = stack.pop()
        if 0 <= r < light.shape[0] and 0 <= c < light.shape[1] and light[r, c] and not seen[r, c]:
            seen[r, c] = True
            stack += [(r + 1, c), (r - 1, c), (r, c + 1), (r, c - 1)]
    return seen


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sheet", type=Path, default=ROOT / "benchmarks" / "results" / "custom_model_mascot.png")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "fidelity_diagnosis.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    evaluator, digest, _ = evaluator_for(args.work, training, snapshots["training"]["content_sha256"], EvaluatorConfig())
    brand = np.stack([pixels(mascot_png(number)) for number in range(BRAND_IMAGES)])
    unseen = [pixels(mascot_png(number)) for number in range(BRAND_IMAGES, 2 * BRAND_IMAGES)]
    outputs = custom_outputs(args.sheet)
    share = lambda images: brand_share(images, evaluator, brand, training.images)
    rng = np.random.default_rng(0)
    drawn_colour = np.mean([star_colour(image) for image in outputs], axis=0)
    report = round_floats({
        "benchmark": "fidelity_diagnosis",
        "sheet": str(args.sheet.resolve().relative_to(ROOT)) if args.sheet.resolve().is_relative_to(ROOT) else str(args.sheet),
        "outputs": share(outputs),
        "outputs_background_whitened": share([whitened(image) for image in outputs]),
        "unseen_poses": share(unseen),
        "unseen_poses_speckled": share([speckled(image, rng) for image in unseen]),
        "unseen_poses_recoloured": share([recoloured(image, drawn_colour) for image in unseen]),
        "unseen_poses_without_eyes": share([without_eyes(image) for image in unseen]),
        "star_colour": {"brand": np.mean([star_colour(image) for image in brand], axis=0).tolist(),
                        "drawn": drawn_colour.tolist()},
        "outputs_background_light_not_white": float(np.mean([
            ((image.astype(np.float32).mean(-1) > LIGHT) & (image.min(-1) < 250)).mean() for image in outputs])),
        "classifier_sha256": digest,
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
