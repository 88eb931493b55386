"""The ``gpu`` preset on one GPU: train, measure, save the contact sheet, in one device call. Prints JSON.

The GPU machine has the engine's libraries but not the catalog's database, so the two snapshots
come prepared from this repository's CPU benchmark (their Merkle roots travel with them):

    python benchmarks/quality.py --export-data var/gpu-data/quality-data.npz     # here, on the CPU box

then, on the device (``carry``: ``var/gpu-data`` and the wheels the machine lacks, e.g. diffusers):

    python3 benchmarks/gpu_quality.py --data var/gpu-data/quality-data.npz --out $OUT/quality_gpu.json

The evaluator is trained there on the exported training renditions exactly as the CPU benchmark
trains it (same config, so the same sha256 when the data is the same), and the JSON has the
CPU benchmark's shape: ``{"presets": [...], "classifier_sha256", "curve": [...]}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import sys
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from PIL import Image

from benchmarks.quality_common import REPORT_KEYS, HeldoutSets, evaluator_for, run_recipe
from benchmarks.reporting import publish
from recipes import preset_recipe
from training.data import TrainingExample
from training.quality import (
    EvaluatorConfig,
    LabelledImages,
    SamplingSettings,
    round_floats,
)


def load_exported(path: Path) -> dict:
    data = np.load(path)
    snapshots = {}
    for role in ("training", "evaluation"):
        meta = json.loads(str(data[f"{role}_meta"]))
        snapshots[role] = {"images": data[f"{role}_images"], **meta}
    return snapshots


def labelled(snapshot: dict) -> LabelledImages:
    return LabelledImages.tagged(snapshot["images"], snapshot["captions"], snapshot["tags"])


def examples(snapshot: dict) -> list[TrainingExample]:
    def loader(pixels: np.ndarray):
        return lambda: Image.fromarray(pixels)

    return [TrainingExample(example_id, loader(snapshot["images"][n]), snapshot["captions"][n],
                            tuple(snapshot["tags"][n])) for n, example_id in enumerate(snapshot["ids"])]


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the .npz written by quality.py --export-data")
    parser.add_argument("--preset", default="gpu")
    parser.add_argument("--out", type=Path, default=Path(os.environ.get("OUT", ROOT / "benchmarks" / "results"))
                        / "quality_gpu.json")
    parser.add_argument("--work", type=Path, default=Path("/tmp/gpu-quality"))
    parser.add_argument("--curve-points", type=int, default=4)
    parser.add_argument("--curve-per-group", type=int, default=12)
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=None, help="default: the preset's serving guidance")
    parser.add_argument("--guidance-sweep", default="3,7,9",
                        help="guidance scales the final weights are measured at again (curve prompts)")
    parser.add_argument("--smoke", action="store_true",
                        help="a few steps of everything, on any machine: proves the script runs end to end")
    args = parser.parse_args(argv)
    snapshots = load_exported(args.data)
    training, heldout = labelled(snapshots["training"]), labelled(snapshots["evaluation"])
    sets = HeldoutSets.of(training, heldout.per_group(1) if args.smoke else heldout, args.curve_per_group)
    config = EvaluatorConfig(epochs=1) if args.smoke else EvaluatorConfig()
    evaluator, digest, evaluator_seconds = evaluator_for(args.work, training, snapshots["training"]["content_sha256"],
                                                         config)
    recipe = preset_recipe(args.preset)
    if args.smoke:
        recipe = recipe.replace(max_train_steps=2, checkpoint_every=0, lr_warmup_steps=1, train_batch_size=4,
                                text_pretraining=dataclasses.replace(recipe.text_pretraining, epochs=1))
    if not torch.cuda.is_available() and recipe.mixed_precision != "no":
        recipe = recipe.replace(mixed_precision="no")  # a CPU smoke run of the script
    args.out.parent.mkdir(parents=True, exist_ok=True)
    run = run_recipe(args.preset, recipe, examples(snapshots["training"]), evaluator, sets,
                     work=args.work, curve_points=args.curve_points,
                     sampling=SamplingSettings(num_inference_steps=args.steps, guidance_scale=args.guidance)
                     .for_recipe(recipe.to_dict()),
                     guidance_sweep=tuple(float(g) for g in args.guidance_sweep.split(",") if g),
                     results=args.out.parent)
    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else platform.processor() or "cpu"
    report = round_floats({
        "presets": [{k: run.get(k) for k in REPORT_KEYS}],
        "classifier_sha256": digest,
        "classifier": {"config": asdict(config), "train_seconds": evaluator_seconds,
                       "training_images": len(training)},
        "curve": run["curve"],
        "snapshots": {role: {k: snap[k] for k in ("merkle_root", "entries", "contributors")}
                      for role, snap in snapshots.items()},
        "heldout": {"images": len(sets.full), "curve_images": len(sets.curve)},
        "machine": {"device": device, "torch": torch.__version__},
    })
    return publish(report, args.out)


if __name__ == "__main__":
    main()
