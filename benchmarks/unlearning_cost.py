"""Where the time of attribution by unlearning goes, on the attribution benchmark's model. Prints JSON.

Attribution by unlearning (``training.unlearning``) forgets one output on a copy of the UNet and then
reads every probe's loss again: the probe pass and the ascent steps are its two costs. The query is a
planted-concept output, so each ascent learning rate tried also says how many of the 20 images whose loss
rose most are the planted contributor's (its true sources). This times both
on ``benchmarks/attribution.py``'s full model (trained, or reused from its ``--work`` cache) with all its
training images as probes, so a session can tell whether a full ``--unlearning`` run fits its time.

    python benchmarks/unlearning_cost.py --out benchmarks/results/unlearning_cost.json
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from attribution import CONCEPT_PROMPTS, DEFAULT_TGZ, PLANTED, generate, load_items, train_model

from training.pipelines import load_pipeline
from training.unlearning import Unlearner, UnlearningConfig


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tgz", default=DEFAULT_TGZ)
    parser.add_argument("--work", default=str(ROOT / "var" / "bench-attribution"))
    parser.add_argument("--steps", type=int, default=400, help="the attribution benchmark's training steps")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--learning-rates", default="0.001,0.01",
                        help="ascent learning rates to try on the same query (the first is the dispute check's)")
    parser.add_argument("--out")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)

    items = load_items(Path(args.tgz), 1000, 20, seed=17)  # the attribution benchmark's defaults
    pipeline = load_pipeline(train_model(work, "full", items, args.steps, seed=0), device="cpu")
    config = UnlearningConfig()
    probes = [(item.image(), item.caption) for item in items]

    started = time.perf_counter()
    unlearner = Unlearner(pipeline, probes, config)  # one probe pass: the losses before
    probe_pass_s = time.perf_counter() - started

    prompt = CONCEPT_PROMPTS[0]
    output = [(generate(pipeline, prompt, 1000), prompt)]
    unet = copy.deepcopy(unlearner.source).float().eval()
    for parameter in unet.parameters():
        parameter.requires_grad_(True)
    encoded = unlearner.losses.encode(output)
    started = time.perf_counter()
    for _ in range(5):
        (-unlearner.losses(unet, *encoded).mean()).backward()
    step_s = (time.perf_counter() - started) / 5

    by_rate = []
    for rate in (float(text) for text in args.learning_rates.split(",")):
        trial = copy.copy(unlearner)  # the same probes and losses before; another ascent
        trial.config = replace(config, learning_rate=rate)
        started = time.perf_counter()
        result = trial(output)
        by_rate.append({"learning_rate": rate, "query_s": round(time.perf_counter() - started, 1),
                        "ascent_steps": result.steps, "output_loss_before": round(result.output_loss_before, 4),
                        "output_loss_after": round(result.output_loss_after, 4),
                        "reached_target_rise": bool(result.output_loss_after
                                                    >= result.output_loss_before * (1 + config.target_rise)),
                        # the output is a planted-concept prompt: its true sources are the planted images
                        "planted_in_top_20_risers": int(sum(items[i].contributor == PLANTED
                                                            for i in np.argsort(-result.probe_rise)[:20]))})

    report = {
        "benchmark": "attribution by unlearning: cost per query",
        "probes": len(probes),
        "timesteps": list(config.timesteps),
        "config": config.as_dict(),
        "probe_pass_s": round(probe_pass_s, 1),
        "probe_ms_per_image_timestep": round(1000 * probe_pass_s / (len(probes) * len(config.timesteps)), 2),
        "ascent_step_s": round(step_s, 3),
        "query_s": by_rate[0]["query_s"],
        "by_learning_rate": by_rate,
        "threads": args.threads,
        "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__},
    }
    print(json.dumps(report, indent=2))
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
