"""Do the foundry's own models draw what they are asked for? Measured, per recipe, against time. Prints JSON.

1. A throw-away embedded deployment onboards the OpenMoji package and freezes two snapshots: the
   training snapshot excludes the catalog's fixed held-out split (``heldout: exclude``), the
   evaluation snapshot takes only it (``heldout: only``). Both pass the licence gate; their Merkle
   roots are reported and their disjointness is checked.
2. The evaluator (``training.quality``) is trained once on the training snapshot's real renditions
   (groups and subgroups from the catalog's ``group:``/``subgroup:`` tags), frozen, and named by its
   sha256. It never trains or selects a generator.
3. Each recipe - the presets asked for, and the reference (the base recipe ``make demo`` trained
   before the presets: 150 steps, text encoder learnt jointly, DDPM sampling) - is trained by the
   engine the training service uses, paused at curve points to be measured (the pauses are not
   counted as training time). Each point: prompt-following balanced accuracy on the held-out
   captions (ceiling: the evaluator on the real held-out images; floor: chance), KID with its
   real-vs-real floor, precision/recall, the held-out diffusion loss. The last point measures every
   held-out caption and writes a contact sheet beside the JSON.

    python benchmarks/quality.py --presets demo,quality --threads 2 --out benchmarks/results/quality_cpu.json

Everything (deployment, evaluator, runs) is kept under ``--work`` so a rerun reuses the onboarding
and the evaluator.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import sys
from dataclasses import asdict, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from PIL import Image
from rich.console import Console
from sqlalchemy import select

from benchmarks.quality_common import (
    REPORT_KEYS,
    HeldoutSets,
    evaluator_for,
    in_content_order,
    run_recipe,
    split_content_sha256,
)
from foundry import migrate
from foundry.blobs import open_blob_store
from foundry.catalog import service as catalog_service
from foundry.catalog.models import Asset
from foundry.config import Settings
from foundry.datasets import service as dataset_service
from foundry.datasets.policy import HELDOUT_FRACTION, HELDOUT_SPLIT
from foundry.datasets.schemas import SnapshotFilters
from foundry.db import session_factory
from foundry.demo import locate_catalog
from recipes import PRESETS, base_recipe, preset_recipe
from training.data import ImageTransform, TrainingExample
from training.engine import native_cpu_bf16
from training.quality import EvaluatorConfig, LabelledImages, SamplingSettings, labelled_renditions, round_floats

EVALUATED_RESOLUTION = 32
REFERENCE = "reference"
"""Today's demo recipe before the presets: ``base_recipe()`` for 150 steps, as ``make demo`` trained it."""


def examples_of(items: list[dict]) -> list[TrainingExample]:
    def loader(data: bytes):
        return lambda: Image.open(io.BytesIO(data)).convert("RGB")

    return [TrainingExample(i["id"], loader(i["png"]), i["caption"], i["tags"]) for i in items]


def reference_recipe():
    return base_recipe(max_train_steps=150, checkpoint_every=0, validation_every=0, validation_prompts=())


# ------------------------------------------------------------------------------------- the data


def prepare_snapshots(work: Path, catalog: Path | None) -> dict:
    """Onboard the catalog (once) and freeze the training and evaluation snapshots."""
    settings = Settings(var_dir=work / "var", import_workers=min(2, os.cpu_count() or 1))
    url = settings.resolved_database_url
    migrate.upgrade(url)
    store = open_blob_store(settings.resolved_blob_url)
    sessions = session_factory(url)
    with sessions() as session:
        onboarded = catalog_service.catalog_summary(session=session).assets > 0
    if not onboarded:
        source = locate_catalog(settings, catalog, Console(stderr=True))
        catalog_service.import_from_location(session_factory=sessions, blob_store=store, location=source,
                                             source_format="openmoji", requested_by="benchmark",
                                             options=catalog_service.import_options(settings))
    snapshots = {}
    for role, heldout in (("training", "exclude"), ("evaluation", "only")):
        with sessions() as session, session.begin():
            snapshot = dataset_service.create_snapshot(session=session, name=f"quality-{role}", use="base_training",
                                                       filters=SnapshotFilters(heldout=heldout), created_by="benchmark")
            dataset_service.enforce_license_gate(session=session, snapshot_id=snapshot.id)
            entries = dataset_service.snapshot_entries(session=session, snapshot_id=snapshot.id)
            assets = {a.id: a for a in session.scalars(select(Asset).where(Asset.id.in_([e.asset_id for e in entries])))}
            items = in_content_order([
                {"id": str(e.asset_id), "sha256": e.asset_sha256, "caption": e.caption,
                 "tags": tuple(assets[e.asset_id].tags or ()),
                 "png": dataset_service.load_rendition(blob_store=store, entry=e)} for e in entries])
            snapshots[role] = {"snapshot_id": str(snapshot.id), "merkle_root": snapshot.merkle_root,
                               "content_sha256": split_content_sha256(items),
                               "entries": snapshot.entry_count, "contributors": snapshot.contributor_count,
                               "items": items}
    overlap = {i["id"] for i in snapshots["training"]["items"]} & {i["id"] for i in snapshots["evaluation"]["items"]}
    if overlap:
        raise SystemExit(f"the evaluation snapshot shares {len(overlap)} assets with the training snapshot")
    return snapshots


def labelled_images(items: list[dict], resolution: int = EVALUATED_RESOLUTION) -> LabelledImages:
    return labelled_renditions(((i["png"], i["caption"], i["tags"]) for i in items), resolution=resolution)


EXPORT_RESOLUTION = 64


def export_data(snapshots: dict, path: Path) -> None:
    """Both snapshots as arrays, for a machine that has the engine but not the catalog's database."""
    transform = ImageTransform(EXPORT_RESOLUTION)
    arrays: dict[str, np.ndarray] = {}
    for role, snap in snapshots.items():
        items = snap["items"]
        arrays[f"{role}_images"] = np.stack([transform.to_uint8(Image.open(io.BytesIO(i["png"]))).permute(1, 2, 0)
                                             .numpy() for i in items])
        arrays[f"{role}_meta"] = np.array(json.dumps({
            "ids": [i["id"] for i in items], "captions": [i["caption"] for i in items],
            "tags": [list(i["tags"]) for i in items],
            **{k: v for k, v in snap.items() if k != "items"}}))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(path, **arrays)


# ------------------------------------------------------------------------------------- the runs


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", default="demo,quality", help="comma-separated presets to train and measure")
    parser.add_argument("--no-reference", action="store_true", help="skip the pre-preset demo recipe")
    parser.add_argument("--catalog", type=Path, default=None, help="the OpenMoji tarball (else found like the demo)")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--curve-points", type=int, default=5)
    parser.add_argument("--curve-per-group", type=int, default=12,
                        help="held-out prompts per group at intermediate curve points (all at the last one)")
    parser.add_argument("--final-per-group", type=int, default=None,
                        help="held-out prompts per group at the last point (default: every held-out caption)")
    parser.add_argument("--steps", type=int, default=25, help="sampling steps of the measured images")
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance of the measured images (default: each recipe's serving "
                             "guidance, else the served default)")
    parser.add_argument("--guidance-sweep", default="", help="comma-separated guidance scales the final weights of "
                                                              "each preset are measured at again, e.g. 3,7,9")
    parser.add_argument("--max-train-steps", type=int, default=None, help="override every recipe's steps (smoke runs)")
    parser.add_argument("--evaluator-epochs", type=int, default=EvaluatorConfig().epochs)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality_cpu.json")
    parser.add_argument("--export-data", type=Path, default=None,
                        help="write the two snapshots' renditions (64 px) and labels to this .npz for "
                             "benchmarks/gpu_quality.py, then stop")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    results = args.out.parent
    results.mkdir(parents=True, exist_ok=True)

    snapshots = prepare_snapshots(args.work, args.catalog)
    if args.export_data is not None:
        export_data(snapshots, args.export_data)
        return {"exported": str(args.export_data)}
    training = labelled_images(snapshots["training"]["items"])
    heldout = HeldoutSets.of(training, labelled_images(snapshots["evaluation"]["items"]).per_group(args.final_per_group),
                             args.curve_per_group)
    config = EvaluatorConfig(epochs=args.evaluator_epochs)
    evaluator, evaluator_digest, evaluator_seconds = evaluator_for(
        args.work, training, snapshots["training"]["content_sha256"], config)
    sampling = SamplingSettings(num_inference_steps=args.steps)

    recipes = [] if args.no_reference else [(REFERENCE, reference_recipe())]
    for name in filter(None, args.presets.split(",")):
        if name not in PRESETS:
            raise SystemExit(f"unknown preset {name!r}")
        recipes.append((name, preset_recipe(name)))
    examples = examples_of(snapshots["training"]["items"])
    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    kept = {row["preset"]: row for row in previous.get("presets", [])
            if previous.get("classifier_sha256") == evaluator_digest and row["preset"] not in dict(recipes)}
    kept_curve = [point for point in previous.get("curve", []) if point["recipe"] in kept]
    runs, report = [], {}
    for name, recipe in recipes:
        if args.max_train_steps is not None:
            recipe = recipe.replace(max_train_steps=args.max_train_steps,
                                    checkpoint_every=0, lr_warmup_steps=min(recipe.lr_warmup_steps, 1))
        recipe_sampling = sampling_for(recipe, sampling, args.guidance)
        runs.append(run_recipe(name, recipe, examples, evaluator, heldout, work=args.work,
                               curve_points=args.curve_points, sampling=recipe_sampling,
                               results=results, export=name != REFERENCE,
                               guidance_sweep=tuple(float(g) for g in args.guidance_sweep.split(",") if g)))
        report = write_report(args, runs, kept, kept_curve, evaluator, evaluator_digest, evaluator_seconds, config,
                              training, heldout, snapshots, sampling)
    print(json.dumps(report, indent=2))
    return report


def sampling_for(recipe, sampling: SamplingSettings, guidance: float | None) -> SamplingSettings:
    """A model is measured as it is served: at its recipe's guidance unless the command names one."""
    return replace(sampling, guidance_scale=guidance).for_recipe(recipe.to_dict())


def write_report(args, runs, kept, kept_curve, evaluator, evaluator_digest, evaluator_seconds, config, training,
                 heldout, snapshots, sampling) -> dict:
    """The report so far: this invocation's runs, and earlier ones measured by the same evaluator."""
    report = {
        "presets": list(kept.values()) + [{k: run.get(k) for k in REPORT_KEYS} for run in runs],
        "classifier_sha256": evaluator_digest,
        "classifier": {"config": asdict(config), "train_seconds": evaluator_seconds,
                       "training_images": len(training), "groups": list(evaluator.groups)},
        "curve": kept_curve + [point for run in runs for point in run["curve"]],
        "heldout": {"split": HELDOUT_SPLIT, "fraction": HELDOUT_FRACTION, "images": len(heldout.full),
                    "curve_images": len(heldout.curve)},
        "snapshots": {role: {k: v for k, v in snap.items() if k != "items"} for role, snap in snapshots.items()},
        "sampling": asdict(sampling),
        "machine": {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
                    "cores": os.cpu_count(), "torch": torch.__version__,
                    "cpu_capability": torch.backends.cpu.get_cpu_capability(), "native_bf16": native_cpu_bf16()},
    }
    report = round_floats(report)
    args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
