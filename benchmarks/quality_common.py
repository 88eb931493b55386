"""What the CPU and GPU quality benchmarks share: held-out subsets, the real floor sample, measured runs.

No database here: the GPU benchmark runs on a machine that has the training engine only.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

from training.engine import DiffusionTrainer
from training.quality import (
    FROZEN_EVALUATORS,
    Evaluator,
    EvaluatorConfig,
    LabelledImages,
    SamplingSettings,
    evaluator_folder_name,
    evaluator_sha256,
    measure_pipeline,
    reference_sample,
    round_floats,
    train_evaluator,
)
from training.quality import split_content_sha256 as content_sha256

ROOT = Path(__file__).resolve().parents[1]
REPORT_KEYS = ("preset", "train_minutes", "real_balanced_acc", "real_balanced_acc_ci95", "gen_balanced_acc",
               "gen_balanced_acc_ci95", "chance_balanced", "kid",
               "kid_ci95", "kid_real_floor", "precision", "recall", "heldout_loss", "gen_subgroup_balanced_acc",
               "real_subgroup_balanced_acc", "chance_subgroup_balanced", "steps", "images_seen", "guidance_scale", "sheet",
               "guidance_sweep", "gen_group_recall", "real_group_recall", "budget")


@dataclass(frozen=True)
class HeldoutSets:
    """What a run is measured on: every held-out prompt at its last curve point, a per-group subset at
    the others, each beside real training images of the same group composition (KID's real floor)."""

    full: LabelledImages
    curve: LabelledImages
    reference_full: LabelledImages
    reference_curve: LabelledImages

    @classmethod
    def of(cls, training: LabelledImages, heldout: LabelledImages, curve_per_group: int | None) -> HeldoutSets:
        curve = heldout.per_group(curve_per_group)
        return cls(heldout, curve, reference_sample(training, heldout), reference_sample(training, curve))


def in_content_order(items: list[dict]) -> list[dict]:
    """Snapshot items (``sha256`` of the licensed source file, ``caption``, ``tags``) sorted by their content.

    A snapshot lists its entries by asset id, and asset ids are random per database: in that order two
    machines would train the same images in different orders and get other weights. By content the order
    is the same wherever the catalog is onboarded."""
    return sorted(items, key=lambda item: (item["sha256"], item["caption"], tuple(item["tags"])))


def split_content_sha256(items: list[dict]) -> str:
    """``training.quality.split_content_sha256`` of snapshot items (``sha256``, ``caption``, ``tags``)."""
    return content_sha256((item["sha256"], item["caption"], item["tags"]) for item in items)


def evaluator_for(work: Path, training: LabelledImages, training_content: str, config: EvaluatorConfig,
                  frozen: Path = FROZEN_EVALUATORS) -> tuple:
    """The frozen evaluator of this training split (by ``split_content_sha256``) and config: the committed one
    under ``frozen`` if there is one, else trained once and kept under ``work``: (evaluator, its sha256,
    seconds spent training it now)."""
    name = evaluator_folder_name(training_content, config)
    folder = work / "evaluators" / name
    for kept in (frozen / name, folder):
        if (kept / "evaluator.json").is_file():
            return Evaluator.load(kept), evaluator_sha256(kept), 0.0
    started = time.perf_counter()
    evaluator = train_evaluator(training.images, training.groups, training.subgroups, config)
    seconds = time.perf_counter() - started
    return evaluator, evaluator.save(folder), seconds


def sweep_point(trainer, evaluator, heldout, reference, resolution: int, sampling: SamplingSettings,
                guidance: float) -> dict:
    """The final weights measured at another guidance scale: sampling is chosen by the numbers too."""
    with trainer.current_pipeline() as pipeline:
        pipeline.set_progress_bar_config(disable=True)
        metrics, _ = measure_pipeline(pipeline, evaluator, heldout, reference, resolution=resolution,
                                      sampling=replace(sampling, guidance_scale=guidance))
    return round_floats({"guidance_scale": guidance, **{k: metrics[k] for k in (
        "gen_balanced_acc", "gen_balanced_acc_ci95", "kid", "precision", "recall", "gen_group_recall")}})


def run_recipe(name: str, recipe, examples, evaluator, heldout: HeldoutSets, *, work: Path, curve_points: int,
               sampling: SamplingSettings, results: Path, export: bool = False,
               guidance_sweep: tuple[float, ...] = ()) -> dict:
    """Train ``recipe``, measuring at ``curve_points`` evenly spaced steps; the last is the full measurement.

    ``export`` also writes the trained pipeline to ``work/runs/<name>/pipeline`` (e.g. for an upscaler to follow);
    ``guidance_sweep`` measures the final weights again at each of these guidance scales, on the curve's
    held-out prompts (no sheet)."""
    output = work / "runs" / name
    if output.exists():
        shutil.rmtree(output)
    trainer = DiffusionTrainer(output, recipe, examples)
    curve = []
    train_seconds = 0.0
    final: dict = {}
    try:
        started = time.perf_counter()
        trainer.prepare()
        train_seconds += time.perf_counter() - started
        for k in range(1, curve_points + 1):
            # evenly spaced over the steps the run will train: a minutes budget may plan fewer than the recipe's
            stop = max(1, round(trainer.planned_steps * k / curve_points))
            started = time.perf_counter()
            trainer.fit(until_step=stop)
            train_seconds += time.perf_counter() - started
            last = k == curve_points
            if not last and trainer.global_step >= trainer.planned_steps:
                continue  # the plan ended the run before this point: measured once, as the last
            measure_started = time.perf_counter()
            with trainer.current_pipeline() as pipeline:
                pipeline.set_progress_bar_config(disable=True)
                metrics, sheet = measure_pipeline(
                    pipeline, evaluator, heldout.full if last else heldout.curve,
                    heldout.reference_full if last else heldout.reference_curve, resolution=recipe.resolution or 32,
                    sampling=sampling)
            step = trainer.global_step
            point = {"recipe": name, "step": step, "images_seen": step * recipe.train_batch_size,
                     "train_minutes": train_seconds / 60, "measure_seconds": time.perf_counter() - measure_started,
                     **{k: metrics[k] for k in ("gen_balanced_acc", "real_balanced_acc", "chance_balanced", "kid",
                                                "kid_real_floor", "precision", "recall", "heldout_loss")},
                     "measured_images": metrics["images"]}
            curve.append(round_floats(point))
            print(json.dumps(round_floats(point)), file=sys.stderr, flush=True)
            if last:
                final = metrics
                final["guidance_sweep"] = [sweep_point(trainer, evaluator, heldout.curve, heldout.reference_curve,
                                                       recipe.resolution or 32, sampling, scale)
                                           for scale in guidance_sweep]
                sheet_path = results / f"quality_sheet_{name}.png"
                sheet.save(sheet_path)
                final["sheet"] = str(sheet_path.relative_to(ROOT)) if sheet_path.is_relative_to(ROOT) else str(sheet_path)
        if export:
            trainer.export()
    finally:
        trainer.close()
    steps = trainer.global_step
    return {"preset": name, "train_minutes": train_seconds / 60, "steps": steps,
            "images_seen": steps * recipe.train_batch_size, "guidance_scale": sampling.guidance_scale,
            "budget": trainer.budget, **final, "curve": curve}


