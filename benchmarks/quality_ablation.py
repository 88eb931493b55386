"""Which recipe changes make the foundry's base models draw what they are asked? One change at a time. Prints JSON.

Every variant is a preset with a few settings changed, trained by the training engine on the same
training snapshot (held-out split excluded) and measured by the same frozen evaluator as
``benchmarks/quality.py`` (reused from ``--work``), on the same held-out prompts, so the rows of the
ablation table differ only by the change they name. Training minutes count text pre-training and
the UNet steps, not the measurements.

    python benchmarks/quality_ablation.py --variants demo,demo-unpooled --threads 2

The report is rewritten after every variant (``benchmarks/results/quality_ablation.json``), so a
long sweep can be read while it runs.
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
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch

from benchmarks.quality import examples_of, labelled_images, prepare_snapshots
from benchmarks.quality_common import HeldoutSets, evaluator_for, run_recipe
from benchmarks.reporting import chosen_names
from recipes import PRESETS, Recipe, TextPretraining, preset_recipe
from training.quality import EvaluatorConfig, SamplingSettings, round_floats


@dataclasses.dataclass(frozen=True)
class Variant:
    """A preset, the recipe settings and model-shape settings it changes, and why it is tried."""

    preset: str
    change: str
    recipe: dict[str, Any] = dataclasses.field(default_factory=dict)
    shape: dict[str, Any] = dataclasses.field(default_factory=dict)
    pretraining: dict[str, Any] = dataclasses.field(default_factory=dict)

    def build(self) -> Recipe:
        recipe = preset_recipe(self.preset, **self.recipe)
        changes: dict[str, Any] = {}
        if self.shape:
            changes["model_shape"] = dataclasses.replace(recipe.model_shape, **self.shape)
        if self.pretraining:
            changes["text_pretraining"] = dataclasses.replace(recipe.text_pretraining or TextPretraining(),
                                                              **self.pretraining)
        return recipe.replace(**changes) if changes else recipe


UNPOOLED = {"unet_pooled_text": False}
VARIANTS: dict[str, Variant] = {
    "demo": Variant("demo", "the demo preset as it is"),
    # Both presets pool the prompt into every ResNet block since stop 30 (recipes.PRESET_SHAPE). Measured on
    # all 452 held-out prompts in one session: `demo+pooled` 0.293, KID 0.31, 3.7 minutes against the demo
    # preset's then 0.228, KID 0.55, 3.5 minutes (row `demo-unpooled`). `*-unpooled` are the presets before.
    "demo-unpooled": Variant("demo", "the demo preset before the pooled prompt (stop 29)", shape=UNPOOLED),
    "demo+pretrain30": Variant("demo", "+ text pre-training 30 epochs", pretraining={"epochs": 30}),
    "demo+pretrain30+batch64": Variant("demo", "+ pre-training 30 epochs, batch 64 (same steps)",
                                       recipe={"train_batch_size": 64}, pretraining={"epochs": 30}),
    "demo+bf16": Variant("demo", "+ bfloat16 autocast (AVX-512 BF16 on this CPU)", recipe={"mixed_precision": "bf16"}),
    "demo+bf16+steps600": Variant("demo", "+ bfloat16, 600 steps (what bf16 and the pixel cache buy in 5 minutes)",
                                  recipe={"mixed_precision": "bf16", "max_train_steps": 600,
                                          "checkpoint_every": 60}),
    "demo+bf16+batch16x650": Variant("demo", "+ bfloat16, batch 16 for 650 steps (about the images 5 minutes allow, "
                                              "twice the updates)",
                                     recipe={"mixed_precision": "bf16", "train_batch_size": 16, "max_train_steps": 650,
                                             "checkpoint_every": 65}),
    "demo+balance0.5": Variant("demo", "+ groups evened out halfway (weight (group size)^-0.5)",
                               recipe={"group_balance": 0.5}),
    "demo+balance1": Variant("demo", "+ every group drawn equally often (weight 1 / group size)",
                             recipe={"group_balance": 1.0}),
    "quality": Variant("quality", "the quality preset as it is"),
    "quality+balance0.5": Variant("quality", "+ groups evened out halfway", recipe={"group_balance": 0.5}),
    "quality+balance1": Variant("quality", "+ every group drawn equally often", recipe={"group_balance": 1.0}),
    # The text side is not what limits prompt-following: a nearest-neighbour vote among the training captions'
    # embeddings in the quality preset's frozen text encoder finds a held-out caption's group at balanced
    # accuracy 0.46 (benchmarks/results/text_probe.json), near the evaluator's 0.50 on real images, while the
    # preset's drawings score 0.30. The prompt reaches the UNet only at 8x8; here it also reaches the 16x16
    # level (1.8x the cost of a step: 2,200 steps in the same minutes) and, pooled, every ResNet block.
    # Measured (before the preset was pooled): 0.310 against 0.304 in 25 minutes, KID 0.35 against 0.19:
    # not adopted.
    "quality+attn16": Variant("quality", "+ cross-attention at 16x16 (the preset is pooled), 2,200 steps "
                                         "(the same minutes)",
                              recipe={"max_train_steps": 2200, "checkpoint_every": 220},
                              shape={"unet_down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D",
                                                               "CrossAttnDownBlock2D")}),
    # The prompt only reached the UNet through cross-attention at 8x8. Pooled, it also shifts every ResNet
    # block through the timestep embedding (as a class label does in a class-conditional model), for a few
    # hundred parameters' cost per step. Measured alone (stop 30, Intel Xeon with AMX, all 452 held-out
    # prompts): 0.321 [0.275, 0.370] against the preset's 0.298, KID 0.046 against 0.169, 21.2 training
    # minutes. Adopted: it is the `quality` preset since; `quality-unpooled` is the preset before.
    # (Stop 28's run of it went 0.55 s a step, still unexplained; this one went 0.30 s a step.)
    # The presets train without an EMA of the UNet. With warm-up (decay 1 - (1 + step) ** -0.75, capped at
    # 0.999) the quality preset's average spans about its last 500 of 4,000 steps, for one copy of the UNet.
    # Measured (stop 33, AMD EPYC, the 130-prompt subset: 12 per group, `--per-group 12`): 0.287 [0.236, 0.340],
    # where the preset read 0.308-0.315 on the same prompts at 3,000-4,050 steps (the curves of
    # quality_cpu.json and quality_cpu_steps5400.json); KID 0.060, precision / recall 0.84 / 0.91 (on those 130
    # prompts), 16.1 training minutes: no better at following the prompt. Not adopted. `demo+ema` on all 452:
    # 0.295 [0.250, 0.340] against 0.293 [0.249, 0.339] (`demo+pooled`, the demo preset), KID 0.38 against
    # 0.31, 3.0 minutes; its sheet keeps the speckled background.
    "quality+ema": Variant("quality", "+ EMA of the UNet with warm-up (power 3/4, decay up to 0.999)",
                           recipe={"use_ema": True, "ema_decay": 0.999, "ema_warmup_power": 0.75}),
    "demo+ema": Variant("demo", "+ EMA of the UNet with warm-up (power 3/4, decay up to 0.999)",
                        recipe={"use_ema": True, "ema_decay": 0.999, "ema_warmup_power": 0.75}),
    "quality-unpooled": Variant("quality", "the quality preset before the pooled prompt (stop 29)",
                                shape=UNPOOLED),
    # More UNet where the images are drawn: two ResNet (and, at 8x8, two cross-attention) layers per level
    # instead of one. 1.57x the cost of a step (benchmarks/results/step_cost.json), so 2,800 steps fill
    # the preset's minutes.
    # Measured before the preset was pooled (its row): 0.250, KID 0.036, 32 minutes.
    "quality+deep": Variant("quality", "+ two layers per UNet level, 2,800 steps (the same minutes)",
                            recipe={"max_train_steps": 2800, "checkpoint_every": 280},
                            shape={"unet_layers_per_block": 2}),
}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default=",".join(VARIANTS), help=f"comma-separated, of {sorted(VARIANTS)}")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality",
                        help="shared with benchmarks/quality.py: its onboarding and evaluator are reused")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--per-group", type=int, default=12, help="held-out prompts per group measured")
    parser.add_argument("--curve-points", type=int, default=2)
    parser.add_argument("--curve-per-group", type=int, default=12,
                        help="held-out prompts per group at intermediate curve points and in the guidance sweep")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--guidance", type=float, default=None,
                        help="classifier-free guidance (default: each variant's serving guidance)")
    parser.add_argument("--guidance-sweep", default="", help="comma-separated guidance scales to re-measure "
                                                              "the final weights at, e.g. 3,7,9")
    parser.add_argument("--export", action="store_true",
                        help="also write each variant's pipeline to WORK/ablation/runs/VARIANT (a base for "
                             "benchmarks/custom_model.py --base-run)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "quality_ablation.json")
    args = parser.parse_args(argv)
    names = chosen_names(args.variants, VARIANTS, "variants")
    torch.set_num_threads(args.threads)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    sheets = args.out.parent / "ablation_sheets"
    sheets.mkdir(parents=True, exist_ok=True)

    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    heldout = HeldoutSets.of(training, labelled_images(snapshots["evaluation"]["items"]).per_group(args.per_group),
                             args.curve_per_group)
    config = EvaluatorConfig()
    evaluator, digest, _ = evaluator_for(args.work, training, snapshots["training"]["content_sha256"], config)
    sampling = SamplingSettings(num_inference_steps=args.steps, guidance_scale=args.guidance)
    examples = examples_of(snapshots["training"]["items"])

    previous = json.loads(args.out.read_text()) if args.out.is_file() else {}
    # Rows measured by other evaluators stay, named by their evaluator's sha256: the history of what was tried.
    rows = {(row["variant"], row.get("classifier_sha256")): row for row in previous.get("rows", [])}
    for name in names:
        variant = VARIANTS[name]
        recipe = variant.build()
        run = run_recipe(name, recipe, examples, evaluator, heldout, work=args.work / "ablation",
                         curve_points=args.curve_points, sampling=sampling.for_recipe(recipe.to_dict()),
                         results=sheets, export=args.export, guidance_sweep=tuple(float(g) for g in args.guidance_sweep.split(",") if g))
        rows[(name, digest)] = round_floats({
            "variant": name, "preset": variant.preset, "change": variant.change,
            "train_minutes": run["train_minutes"], "steps": run["steps"], "budget": run["budget"],
            "images_seen": run["images_seen"], "heldout_prompts": len(heldout.full),
            **{k: run.get(k) for k in ("gen_balanced_acc", "gen_balanced_acc_ci95", "real_balanced_acc", "chance_balanced",
                                       "kid", "kid_ci95",
                                       "kid_real_floor", "precision", "recall", "heldout_loss",
                                       "gen_subgroup_balanced_acc", "guidance_sweep",
                                       "gen_group_recall")},
            "curve": run["curve"], "classifier_sha256": digest,
            "recipe_changes": {"recipe": variant.recipe, "shape": variant.shape, "pretraining": variant.pretraining},
        })
        report = {
            "rows": list(rows.values()), "classifier_sha256": digest, "heldout_prompts": len(heldout.full),
            "sampling": asdict(sampling), "presets": sorted(PRESETS),
            "machine": {"threads": args.threads, "cpu": platform.processor() or platform.machine(),
                        "cores": os.cpu_count(), "torch": torch.__version__},
        }
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
