"""How much of a prompt-following figure is luck? The same trained weights measured again. Prints JSON.

``benchmarks/quality.py`` measures each preset once: one image per held-out caption from one sampling
seed, judged by one evaluator. Here the weights a run exported are measured again with other sampling
seeds (same evaluator) and by evaluators trained from other seeds (same images), so a difference
between two recipes can be set against the spread of one recipe's own measurements.

    python benchmarks/quality.py --presets quality          # exports var/bench-quality/runs/quality
    python benchmarks/quality_noise.py --run var/bench-quality/runs/quality --sampling-seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from benchmarks.quality import labelled_images, prepare_snapshots
from benchmarks.quality_common import HeldoutSets, evaluator_for
from benchmarks.reporting import publish
from training.engine import RESULT_FILE
from training.pipelines import load_pipeline
from training.quality import EvaluatorConfig, SamplingSettings, generate_images, measure_images, round_floats


def seeds(text: str) -> list[int]:
    return [int(value) for value in text.split(",") if value]


def spread(values: list[float]) -> dict:
    return {"values": values, "mean": statistics.fmean(values),
            "stdev": statistics.stdev(values) if len(values) > 1 else 0.0,
            "range": max(values) - min(values)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, required=True, help="a run folder benchmarks/quality.py exported")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sampling-seeds", type=seeds, default=[0, 1, 2])
    parser.add_argument("--evaluator-seeds", type=seeds, default=[0, 1, 2],
                        help="evaluators differing only in their seed (0 is the benchmark's own)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality_noise.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    result = args.run / RESULT_FILE
    if not result.is_file():
        raise SystemExit(f"{result} is missing: export the run first (benchmarks/quality.py exports every preset)")
    trained = json.loads(result.read_text(encoding="utf-8"))

    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    heldout = HeldoutSets.of(training, labelled_images(snapshots["evaluation"]["items"]), None)
    root = snapshots["training"]["content_sha256"]
    evaluators = {seed: evaluator_for(args.work, training, root, replace(EvaluatorConfig(), seed=seed))[:2]
                  for seed in sorted({0, *args.evaluator_seeds})}
    pipeline = load_pipeline(Path(trained["model_path"]), device="cpu")
    pipeline.set_progress_bar_config(disable=True)
    resolution = int(trained["recipe"].get("resolution") or 32)
    sampling = SamplingSettings().for_recipe(trained["recipe"])

    images = {seed: generate_images(pipeline, list(heldout.full.captions), replace(sampling, seed=seed),
                                    resolution=resolution) for seed in args.sampling_seeds}
    by_sampling = {seed: measure_images(evaluators[0][0], generated, heldout.full, heldout.reference_full)
                   for seed, generated in images.items()}
    first = images[args.sampling_seeds[0]]
    by_evaluator = {seed: measure_images(evaluator, first, heldout.full, heldout.reference_full)
                    for seed, (evaluator, _) in evaluators.items() if seed in args.evaluator_seeds}
    report = round_floats({
        "benchmark": "quality_noise",
        "run": str(args.run), "recipe_steps": trained["recipe"]["max_train_steps"],
        "heldout_prompts": len(heldout.full), "guidance_scale": sampling.guidance_scale,
        "by_sampling_seed": {
            "gen_balanced_acc": spread([m["gen_balanced_acc"] for m in by_sampling.values()]),
            "kid": spread([m["kid"] for m in by_sampling.values()]),
        },
        "by_evaluator_seed": {
            "gen_balanced_acc": spread([m["gen_balanced_acc"] for m in by_evaluator.values()]),
            "real_balanced_acc": spread([m["real_balanced_acc"] for m in by_evaluator.values()]),
            "kid": spread([m["kid"] for m in by_evaluator.values()]),
        },
        "evaluators": {str(seed): digest for seed, (_, digest) in evaluators.items()},
        "sampling_seeds": args.sampling_seeds, "evaluator_seeds": args.evaluator_seeds,
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
