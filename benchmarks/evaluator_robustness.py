"""Does the quality evaluator read what an image shows, or how crisp its edges are? Prints JSON.

The evaluator (``training.quality``) is trained on crisp real renditions; the 32 px generators it judges
draw soft edges. For evaluators that differ only in ``blur_sigma`` (their blur augmentation):

1. real held-out renditions, crisp and blurred by a Gaussian of 0.7 and 1 px: balanced accuracy, KID
   against the real reference sample, precision; and uniform noise (it must stay at chance);
2. the custom-model benchmark's mascot: 20 unseen poses, crisp and softened, against the 20 brand images
   and the training renditions (``benchmarks/custom_model.py``'s nearest-neighbour test);
3. with ``--pipelines``: generators that ``benchmarks/quality.py`` exported under ``--work``, measured by each
   evaluator on every held-out caption (the same images, two judges).

    python benchmarks/evaluator_robustness.py --pipelines demo,quality \
        --out benchmarks/results/evaluator_robustness.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch

from benchmarks.custom_model import BRAND_IMAGES, brand_share, pixels, softened
from benchmarks.quality import labelled_images, prepare_snapshots
from benchmarks.quality_common import HeldoutSets, evaluator_for
from benchmarks.reporting import publish
from foundry.demo import mascot_png
from training.pipelines import load_pipeline
from training.quality import EvaluatorConfig, SamplingSettings, measure_images, measure_pipeline, round_floats

BLURS = (0.0, 0.7, 1.0)


def blurred(images: np.ndarray, radius: float) -> np.ndarray:
    return images if radius == 0 else np.stack(softened(list(images), radius))


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--blur-sigmas", default="0,1.2", help="the evaluators compared, by their blur_sigma")
    parser.add_argument("--pipelines", default="", help="runs under --work/runs whose exported pipelines are measured")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "evaluator_robustness.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    heldout = labelled_images(snapshots["evaluation"]["items"])
    sets = HeldoutSets.of(training, heldout, None)
    noise = np.random.default_rng(0).integers(0, 256, heldout.images.shape, dtype=np.uint8)
    brand = np.stack([pixels(mascot_png(n)) for n in range(BRAND_IMAGES)])
    unseen = np.stack([pixels(mascot_png(n)) for n in range(BRAND_IMAGES, 2 * BRAND_IMAGES)])

    evaluators = []
    for sigma in (float(value) for value in args.blur_sigmas.split(",")):
        evaluator, digest, _ = evaluator_for(args.work, training, snapshots["training"]["content_sha256"],
                                             EvaluatorConfig(blur_sigma=sigma))
        real = {}
        for radius in BLURS:
            measured = measure_images(evaluator, blurred(heldout.images, radius), heldout, sets.reference_full)
            real[str(radius)] = {key: measured[key] for key in ("gen_balanced_acc", "kid", "precision")}
        on_noise = measure_images(evaluator, noise, heldout, sets.reference_full)
        entry = {
            "blur_sigma": sigma, "classifier_sha256": digest,
            "real_heldout_by_blur_px": real,
            "noise": {key: on_noise[key] for key in ("gen_balanced_acc", "kid", "precision")},
            "mascot_unseen_poses_brand_share": {str(radius): brand_share(list(blurred(unseen, radius)), evaluator,
                                                                         brand, training.images)
                                                for radius in BLURS},
            "pipelines": {},
        }
        for name in (n for n in args.pipelines.split(",") if n):
            run = args.work / "runs" / name
            recipe = json.loads((run / "recipe.json").read_text(encoding="utf-8"))
            pipeline = load_pipeline(run / "pipeline", device="cpu")
            metrics, _ = measure_pipeline(pipeline, evaluator, sets.full, sets.reference_full, resolution=32,
                                          sampling=SamplingSettings().for_recipe(recipe))
            entry["pipelines"][name] = {key: metrics[key] for key in (
                "gen_balanced_acc", "real_balanced_acc", "kid", "kid_ci95", "kid_real_floor", "precision", "recall")}
        evaluators.append(entry)

    report = round_floats({
        "benchmark": "evaluator_robustness",
        "evaluators": evaluators,
        "heldout_images": len(heldout.images),
        "notes": "real_heldout_by_blur_px: the evaluator on real held-out renditions blurred by a Gaussian of that "
                 "radius (KID against the real reference sample); mascot_unseen_poses_brand_share: share of 20 "
                 "unseen mascot poses whose nearest neighbour among the 20 brand images and the training "
                 "renditions is a brand image; pipelines: the same generator outputs judged by each evaluator.",
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
