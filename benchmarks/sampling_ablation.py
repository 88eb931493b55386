"""How should a trained base model be sampled? One sampling change at a time, on fixed weights. Prints JSON.

The weights stay as trained (an exported run of ``benchmarks/quality.py`` or ``quality_ablation.py``);
only the solver's timestep spacing, the guidance scale or the noise levels guidance applies at
change. Each variant generates the same held-out captions with the same seeds and is measured by
the frozen evaluator of ``benchmarks/quality.py`` (balanced accuracy, KID, precision/recall), plus
how white the backgrounds are: OpenMoji draws on pure white, so the share of light border pixels
that are not white (any channel at or below 247) says whether a model tints or speckles its
backgrounds.

    python benchmarks/sampling_ablation.py --pipeline var/bench-quality/runs/custom-model-base/pipeline \\
        --variants leading@9,trailing@9,trailing@7,leading@9+interval

A variant is ``SPACING@GUIDANCE`` (spacing ``leading``, ``trailing`` or ``karras``) with an optional ``+interval`` (guidance only while the noise
level sigma = sqrt((1 - alpha_bar) / alpha_bar) lies in [0.28, 5.42], Kynkäänniemi et al. 2024;
outside it the prompt's prediction alone).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np
import torch
from diffusers import DPMSolverMultistepScheduler

from benchmarks.quality import labelled_images, prepare_snapshots
from benchmarks.quality_common import HeldoutSets, evaluator_for
from benchmarks.reporting import publish
from training.pipelines import load_pipeline
from training.quality import EvaluatorConfig, SamplingSettings, generate_images, measure_images, round_floats

GUIDANCE_INTERVAL = (0.28, 5.42)
SPACINGS = {
    "leading": {"timestep_spacing": "leading"},
    "trailing": {"timestep_spacing": "trailing"},
    # Karras et al. 2022: noise levels spaced for the solver, denser at low noise, ending near sigma_min.
    "karras": {"timestep_spacing": "trailing", "use_karras_sigmas": True},
}
WHITE = 247
LIGHT = 180


def parse_variant(text: str) -> dict:
    spacing, _, rest = text.partition("@")
    guidance, _, extra = rest.partition("+")
    if spacing not in SPACINGS or not guidance or extra not in ("", "interval"):
        raise SystemExit(f"bad variant {text!r}: SPACING@GUIDANCE[+interval], SPACING one of {sorted(SPACINGS)}")
    return {"name": text, "spacing": spacing, "guidance": float(guidance), "interval": extra == "interval"}


class GuidanceInterval:
    """Wraps a pipeline's UNet call: outside the interval the unconditional half is not evaluated and the
    prompt's prediction stands for both halves, so classifier-free guidance leaves it unchanged."""

    def __init__(self, unet: torch.nn.Module, alphas_cumprod: torch.Tensor, interval: tuple[float, float]):
        self.unet, self.forward, self.alphas_cumprod, self.interval = unet, unet.forward, alphas_cumprod, interval
        self.enabled = False

    def __call__(self, sample, timestep, *args, encoder_hidden_states, **kwargs):
        t = int(timestep.flatten()[0]) if torch.is_tensor(timestep) else int(timestep)
        alpha_bar = float(self.alphas_cumprod[t])
        sigma = ((1.0 - alpha_bar) / alpha_bar) ** 0.5
        low, high = self.interval
        if not self.enabled or low <= sigma <= high or sample.shape[0] % 2:
            return self.forward(sample, timestep, *args, encoder_hidden_states=encoder_hidden_states, **kwargs)
        half = sample.shape[0] // 2
        output = self.forward(sample[half:], timestep, *args, encoder_hidden_states=encoder_hidden_states[half:],
                              **kwargs)
        prediction = output[0] if isinstance(output, tuple) else output.sample
        both = torch.cat([prediction, prediction])
        return (both,) if isinstance(output, tuple) else type(output)(sample=both)


def background(images: np.ndarray) -> dict:
    """Border pixels (2 px frame) that are light: how many are not white, and their mean colour."""
    frame = np.concatenate([images[:, :2].reshape(len(images), -1, 3), images[:, -2:].reshape(len(images), -1, 3),
                            images[:, :, :2].reshape(len(images), -1, 3), images[:, :, -2:].reshape(len(images), -1, 3)],
                           axis=1).reshape(-1, 3).astype(np.float64)
    light = frame[frame.min(axis=1) > LIGHT]
    return {"light_border_share": len(light) / max(1, len(frame)),
            "light_not_white": float((light.min(axis=1) <= WHITE).mean()) if len(light) else float("nan"),
            "light_mean_rgb": light.mean(axis=0).tolist() if len(light) else []}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pipeline", type=Path, required=True, help="an exported base pipeline folder")
    parser.add_argument("--variants", default="leading@9,trailing@9")
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--per-group", type=int, default=12, help="held-out prompts per group")
    parser.add_argument("--steps", type=int, default=25)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "sampling_ablation.json")
    args = parser.parse_args(argv)
    variants = [parse_variant(text) for text in args.variants.split(",") if text]
    torch.set_num_threads(args.threads)

    snapshots = prepare_snapshots(args.work, args.catalog)
    training = labelled_images(snapshots["training"]["items"])
    heldout = HeldoutSets.of(training, labelled_images(snapshots["evaluation"]["items"]).per_group(args.per_group),
                             args.per_group)
    evaluator, digest, _ = evaluator_for(args.work, training, snapshots["training"]["content_sha256"], EvaluatorConfig())
    pipeline = load_pipeline(args.pipeline, device="cpu")
    saved = dict(pipeline.scheduler.config)
    wrapper = GuidanceInterval(pipeline.unet, pipeline.scheduler.alphas_cumprod, GUIDANCE_INTERVAL)
    pipeline.unet.forward = wrapper

    rows = []
    for variant in variants:
        pipeline.scheduler = DPMSolverMultistepScheduler.from_config({**saved, **SPACINGS[variant["spacing"]]})
        wrapper.enabled = variant["interval"]
        started = time.perf_counter()
        images = generate_images(pipeline, heldout.full.captions,
                                 SamplingSettings(num_inference_steps=args.steps, guidance_scale=variant["guidance"]),
                                 resolution=32)
        metrics = measure_images(evaluator, images, heldout.full, heldout.reference_full)
        rows.append(round_floats({**variant, **{key: metrics[key] for key in (
            "gen_balanced_acc", "real_balanced_acc", "kid", "kid_ci95", "precision", "recall")},
            **background(images), "seconds": time.perf_counter() - started}))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        folder = args.pipeline.resolve()
        report = {"benchmark": "sampling_ablation",
                  "pipeline": str(folder.relative_to(ROOT)) if folder.is_relative_to(ROOT) else str(folder),
                  "saved_scheduler": {key: saved.get(key) for key in ("_class_name", "timestep_spacing")},
                  "classifier_sha256": digest, "prompts": len(heldout.full), "steps": args.steps,
                  "machine": {"threads": args.threads, "cpu": platform.processor() or platform.machine()},
                  "rows": rows}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return publish(report, args.out)


if __name__ == "__main__":
    main()
