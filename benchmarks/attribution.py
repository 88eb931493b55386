"""Does per-output influence attribution find the images that shaped an output? Prints JSON.

All on the tiny CPU base model (the demo's shape, 32 px), trained from scratch by the same
engine the training service uses, on a seeded subset of OpenMoji plus a *planted* contributor
whose images share a concept nobody else has (concentric magenta/teal rings on black,
captioned "zorblat ..."):

1. planted contributor: for "zorblat" prompts, how often the planted contributor gets the
   largest share, and its share of the pool on unrelated prompts -- for the D-TRAK influence
   method and, on the same generations, for pro rata, raw-pixel nearest neighbours and random
   scores;
2. counterfactual: for a few queries remove the top-attributed training images (or as many
   random ones), retrain with the same seed, regenerate with the same seed, and compare how
   much the output and its diffusion loss move;
3. linear datamodeling score (LDS): models trained on random halves of the subset; Spearman
   correlation between the per-query loss each half-model has and the loss the scores predict
   (sum over the half's examples), mean over queries with a bootstrap interval;
4. contributor-level LDS: models retrained without each of ``--contributors`` contributors (the planted one
   and the largest others, same seed); Spearman, per query, between a method's predicted contributor
   influence (the sum of its assets' scores; pro rata: the image count) and the actual rise of the
   query's loss when that contributor is removed, mean over queries with a bootstrap interval; also for what
   the product pays: ``paid:METHOD`` (each output's top-50 positive scores as contributor shares) and
   ``pool:METHOD`` (those blended with pro rata by ``--alpha``, the contributor pool's split);
   by default the counterfactuals are *paired* (``--ground-truth paired``: the contributor's images are
   withheld in place, so every other image meets the same batches, noise and timesteps as in the full model
   and the rise is what the contributor did, not the noise of a new data order; ``reshuffled`` retrains on
   the rest in a new order, as before);
   with ``--ground-truth-seeds 2`` or more every counterfactual is also retrained with other seeds: the
   ground truth is the mean rise, and ``ground_truth.seed_agreement`` (two seeds' rises against each
   other) is the ceiling that retraining noise leaves to any method;
5. hubness (the largest share of unrelated outputs whose top 10 holds the same training image) and the
   oracle check (training images used as queries: does each rank itself, and its author, first);
6. cost: attribution time per image against generation time for the same request.

Influence methods compared on the same index and outputs: ``dtrak`` (the raw kernel scores),
``dtrak_unit`` (each training row's score divided by its feature norm), ``dtrak_relative`` (divided by
the square root of its self-influence, RelatIF-style), ``dtrak_calibrated`` (standardised per training
row by its scores on ``--calibration`` outputs of other captions) and ``dtrak_centered_kernel`` (the
product's ``centered``: every feature less the mean of those outputs' features, the kernel rebuilt over the
centred training features; ``dtrak_centered_calibrated``, its scores then divided per training row by their
spread over those outputs), and the product's default, ``dtrak_split``: a split config's two views from
one feature pass, the evidence view's scores (``dtrak_relative``, t = 900) ranking what an output is shown
beside (per-image LDS, evidence hubness, self top-1) and the payment view's (``dtrak_centered_kernel@pay``,
t = 100/500/900) splitting its pool (contributor LDS, planted shares, paid author, payment hubness); beside
``pixel_nn``, ``pro_rata`` and ``random``, and the evidence view blended with pixel similarity
(``blend:W*dtrak_relative+pixel_nn``, each query's scores standardised; not served yet); with ``--unlearning``, also attribution by unlearning (``unlearning``: each output forgotten by
gradient ascent on a copy of the UNet, every training image scored by the rise of its own loss; Wang et al.,
NeurIPS 2024 -- the method of the product's dispute check, ``training.unlearning``). DAS (Lin et al., ICLR
2025; the product's ``das`` normalisation): ``das``, the raw scores times each training image's denoising
residual over one less its leverage (a Newton leave-one-out step), and ``das_residual``, the residual weight
alone, on every view, also blended with pixels like the evidence view. ``--variant`` adds the
same methods on other feature configs (more timesteps, a larger projection, another damping, K-FAC or EK-FAC
preconditioned gradients -- ``preconditioner:ekfac``, fitted on the training images first -- and, with a kernel
damping so large that the kernel is a multiple of the identity, plain inner products: ``METHOD@NAME``);
``--checkpoint-ensemble K`` replays the full model's training and scores every method with its weights at K - 1
earlier steps too (``METHOD#STEP``), and averages each method over those checkpoints and the final weights
(``ckpt:METHOD``); ``--ensemble`` averages methods (timestep or config ensembles, or kernel scores with
unlearning). Averages are of each query's standardised scores.

Trained models are cached under ``--work`` so an interrupted run resumes where it stopped.

    python benchmarks/attribution.py --out benchmarks/results/attribution_cpu.json
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import random
import shutil
import sys
import tarfile
import time
import uuid
from dataclasses import dataclass, replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from provenance.influence import (
    WITH_CALIBRATION_OUTPUTS,
    WITH_RESIDUALS,
    InfluenceConfig,
    InfluenceIndex,
    blend,
    influence_shares,
    pixel_codes,
    pixel_row,
    unit_pixel_rows,
)
from recipes import PRESETS, base_recipe
from training.attribution_features import Attributor
from training.data import TrainingExample
from training.engine import DiffusionTrainer, train
from training.influence_preconditioner import block_arrays, preconditioner_sample
from training.pipelines import load_pipeline
from training.unlearning import Unlearner, UnlearningConfig

PLANTED = "Planted Artist"
PLANTED_CAPTIONS = ["zorblat rings", "zorblat rings pattern", "small zorblat rings", "large zorblat rings",
                    "zorblat rings on black"]
CONCEPT_PROMPTS = ["zorblat rings", "zorblat rings pattern", "large zorblat rings", "zorblat rings on black",
                   "small zorblat rings"]
GENERATE = {"num_inference_steps": 30, "guidance_scale": 5.0, "height": 32, "width": 32}
LOSS_TIMESTEPS = tuple(range(50, 1000, 100))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@dataclass
class Item:
    example_id: str
    contributor: str
    caption: str
    png: bytes

    def image(self) -> Image.Image:
        return Image.open(io.BytesIO(self.png)).convert("RGB")

    def example(self) -> TrainingExample:
        return TrainingExample(self.example_id, self.image, self.caption)


def planted_image(index: int) -> bytes:
    """Concentric magenta and teal rings on black, centre and ring width varying per image."""
    rng = random.Random(index)
    size = 64
    picture = Image.new("RGB", (size, size), (0, 0, 0))
    draw = ImageDraw.Draw(picture)
    cx, cy, width = 32 + rng.randint(-5, 5), 32 + rng.randint(-5, 5), rng.randint(3, 5)
    for ring, radius in enumerate(range(30, 0, -width)):
        colour = (230, 0, 126) if ring % 2 == 0 else (0, 166, 166)
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), fill=colour)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def load_items(tgz: Path, subset: int, planted: int, seed: int) -> list[Item]:
    import resvg_py

    with tarfile.open(tgz) as archive:
        meta = json.load(archive.extractfile("package/data/openmoji.json"))
        svgs = {m.name.rsplit("/", 1)[1][:-4]: m for m in archive.getmembers()
                if m.name.startswith("package/color/svg/") and m.name.endswith(".svg")}
        rows = [m for m in meta if m.get("hexcode") in svgs and m.get("openmoji_author")]
        chosen = random.Random(seed).sample(rows, subset)
        items = []
        for row in chosen:
            text = archive.extractfile(svgs[row["hexcode"]]).read().decode("utf-8")
            png = bytes(resvg_py.svg_to_bytes(svg_string=text, width=64, height=64, background="#ffffff"))
            items.append(Item(f"om-{row['hexcode']}", row["openmoji_author"], row["annotation"] or row["hexcode"], png))
    items += [Item(f"planted-{i}", PLANTED, PLANTED_CAPTIONS[i % len(PLANTED_CAPTIONS)], planted_image(i))
              for i in range(planted)]
    return items


def benchmark_recipe(steps: int, seed: int, preset: str | None):
    """Every model's recipe here. No minutes budget: a counterfactual must train exactly the steps of the model it
    is compared with."""
    return base_recipe(**{**(PRESETS[preset] if preset else {}), "max_train_steps": steps, "seed": seed,
                          "max_train_minutes": None, "checkpoint_every": 0, "validation_every": 0,
                          "validation_prompts": ()})


def train_stages(work: Path, items: list[Item], steps: int, seed: int, preset: str | None, stages: int,
                 full_path: Path) -> tuple[list[tuple[int, Path]], float]:
    """The full model's training once more, exporting its weights (EMA weights where the recipe keeps them, as a
    checkpoint does) at ``stages - 1`` evenly spaced steps before the last: the checkpoints a training job
    keeps, for a checkpoint ensemble (TRAK). Returns those (step, pipeline folder)s and the largest difference
    between this run's final UNet weights and the full model's (0: the same training, replayed)."""
    folder = work / "full-stages"
    done = folder / "stages.json"
    recipe = benchmark_recipe(steps, seed, preset)
    if done.is_file():
        cached = json.loads(done.read_text())
        if cached["recipe"] != recipe.to_dict() or len(cached["stages"]) != stages - 1:
            raise SystemExit(f"{done} holds other stages: use a new --work")
        return [(step, Path(path)) for step, path in cached["stages"]], cached["final_weights_max_difference"]
    if folder.exists():
        shutil.rmtree(folder)
    started = time.perf_counter()
    trainer = DiffusionTrainer(folder / "run", recipe, [item.example() for item in items])
    exported: list[tuple[int, Path]] = []
    try:
        trainer.prepare()
        for k in range(1, stages):
            step = round(steps * k / stages)
            trainer.fit(until_step=step)
            target = folder / f"step-{step}"
            shutil.copytree(trainer.export().model_path, target)
            exported.append((step, target))
        trainer.fit()
        replayed = trainer.export().model_path
    finally:
        trainer.close()
    difference = max(float((a - b).abs().max()) for a, b in zip(
        load_pipeline(replayed, device="cpu").unet.state_dict().values(),
        load_pipeline(full_path, device="cpu").unet.state_dict().values(), strict=True))
    done.write_text(json.dumps({"stages": [[step, str(path)] for step, path in exported], "recipe": recipe.to_dict(),
                                "final_weights_max_difference": difference}))
    log(f"trained the full model again in {stages} stages ({time.perf_counter() - started:.0f} s); final weights "
        f"differ from the full model's by at most {difference:.3g}")
    return exported, difference


def train_model(work: Path, name: str, items: list[Item], steps: int, seed: int,
                withheld: frozenset[str] = frozenset(), preset: str | None = None) -> Path:
    """``withheld``: example ids kept in the data order but never learnt from (a paired counterfactual);
    ``preset``: train a product preset's recipe (``quality``...) instead of the tiny base recipe."""
    done = work / name / "model.json"
    examples = sorted(item.example_id for item in items if item.example_id not in withheld)
    recipe = benchmark_recipe(steps, seed, preset)
    if done.is_file():
        cached = json.loads(done.read_text())
        if cached.get("examples", examples) != examples or cached.get("withheld", []) != sorted(withheld):
            raise SystemExit(f"{done} was trained on other images (the method config changed?): use a new --work")
        if cached.get("recipe", recipe.to_dict()) != recipe.to_dict():
            raise SystemExit(f"{done} was trained by another recipe: use a new --work")
        return Path(cached["path"])
    started = time.perf_counter()
    result = train(work / name / "run", recipe, [item.example() for item in items], resume_from="latest",
                   withheld=withheld)
    done.write_text(json.dumps({"path": str(result.model_path), "loss": result.final_loss, "examples": examples,
                                "withheld": sorted(withheld), "recipe": recipe.to_dict(),
                                "seconds": time.perf_counter() - started}))
    log(f"trained {name}: {len(examples)} images learnt ({len(withheld)} withheld), {steps} steps, "
        f"{time.perf_counter() - started:.0f} s")
    return Path(result.model_path)


def counterfactual_name(work: Path, query: int, label: str, kept: list[Item]) -> str:
    """Cache name of a retrain without some images: the same removal reuses its model, another one
    (another method config chose other top images) trains its own."""
    examples = sorted(item.example_id for item in kept)
    plain = f"cf-{query}-{label}"
    cached = work / plain / "model.json"
    recorded = json.loads(cached.read_text()).get("examples") if cached.is_file() else examples
    if recorded == examples or (recorded is None and label == "random"):  # random removals never depend on the method
        return plain
    return f"{plain}-{hashlib.sha256(json.dumps(examples).encode()).hexdigest()[:8]}"


def generate(pipeline, prompt: str, seed: int) -> Image.Image:
    with torch.inference_mode():
        output = pipeline(prompt, generator=torch.Generator("cpu").manual_seed(seed), clean_caption=False,
                          output_type="pil", **GENERATE)
    return output.images[0].convert("RGB")


def query_loss(pipeline, attributor: Attributor, image: Image.Image, prompt: str, draws: int = 1) -> float:
    """The model's denoising loss on one (image, prompt) at fixed timesteps, each with ``draws`` fixed noises
    (the same for every model: a difference of two models' losses is paired)."""
    from diffusers import DDPMScheduler

    from training.losses import regression_target

    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    sample = attributor.encoder.sample(image)
    t = torch.tensor(LOSS_TIMESTEPS * draws)
    states = attributor.encoder.embed(prompt)[None].expand(len(t), -1, -1)
    generator = torch.Generator().manual_seed(12345)
    noise = torch.randn((len(t), *sample.shape), generator=generator)
    clean = sample[None].expand(len(t), -1, -1, -1)
    with torch.no_grad():
        output = pipeline.unet(scheduler.add_noise(clean, noise, t), t, encoder_hidden_states=states).sample
    target = regression_target(scheduler, clean, noise, t)
    return float((output[:, : target.shape[1]] - target).pow(2).mean())


def contributor_loss_rise(work: Path, items: list[Item], removed: list[str], outputs: list[Image.Image],
                          queries: list[tuple], steps: int, seed: int, config: InfluenceConfig,
                          draws: int, paired: bool, preset: str | None) -> np.ndarray:
    """(contributors x queries): how much each query's loss rises when the model is retrained, with training
    seed ``seed``, without each contributor in ``removed`` (against the full model of the same seed).

    ``paired``: the contributor's images are withheld in place (every other image meets the same batches,
    noise and timesteps as in the full run); otherwise the retrain draws a new data order from the rest."""
    suffix = "" if seed == 0 else f"-seed{seed}"

    def losses(path: Path) -> np.ndarray:
        return query_losses(path, outputs, queries, config, draws)

    full = losses(train_model(work, f"full{suffix}", items, steps, seed=seed, preset=preset))
    rise = np.zeros((len(removed), len(queries)))
    for c, name in enumerate(removed):
        slug = "".join(ch if ch.isalnum() else "-" for ch in name.lower())
        if paired:
            withheld = frozenset(item.example_id for item in items if item.contributor == name)
            model = train_model(work, f"withheld-{slug}{suffix}", items, steps, seed=seed, withheld=withheld,
                                preset=preset)
        else:
            kept = [item for item in items if item.contributor != name]
            model = train_model(work, f"without-{slug}{suffix}", kept, steps, seed=seed, preset=preset)
        rise[c] = losses(model) - full
    return rise


def query_losses(model_path: Path, outputs: list[Image.Image], queries: list[tuple], config: InfluenceConfig,
                 draws: int) -> np.ndarray:
    """Every query's ``query_loss`` under one trained model, kept beside its weights: a resumed run neither
    retrains nor re-evaluates a model it has (keyed by the queries' pixels, prompts and the loss's draws)."""
    key = hashlib.sha256(json.dumps({"prompts": [q[0] for q in queries], "draws": draws,
                                     "timesteps": list(LOSS_TIMESTEPS)}).encode())
    for image in outputs:
        key.update(np.asarray(image).tobytes())
    cache = Path(model_path).parent / f"query-losses-{key.hexdigest()[:16]}.json"  # beside the pipeline folder
    if cache.is_file():
        return np.array(json.loads(cache.read_text()))
    model = load_pipeline(model_path, device="cpu")
    model_attributor = Attributor(model, config)
    values = [query_loss(model, model_attributor, outputs[q], queries[q][0], draws) for q in range(len(queries))]
    cache.write_text(json.dumps(values))
    return np.array(values)


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks with ties sharing their average rank (a constant prediction has no order, hence no correlation)."""
    values = np.asarray(values, dtype=float)
    order = np.argsort(values, kind="stable")
    ranked = np.empty(len(values))
    ranked[order] = np.arange(len(values), dtype=float)
    for value in np.unique(values):
        tied = values == value
        ranked[tied] = ranked[tied].mean()
    return ranked


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra, rb = ranks(a), ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    denominator = np.sqrt((ra ** 2).sum() * (rb ** 2).sum())
    return float((ra * rb).sum() / denominator) if denominator else 0.0


def bootstrap(values: list[float], seed: int = 0, rounds: int = 2000) -> dict:
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    means = [float(rng.choice(data, size=len(data)).mean()) for _ in range(rounds)]
    return {"mean": round(float(data.mean()), 4), "ci95": [round(float(np.percentile(means, 2.5)), 4),
                                                          round(float(np.percentile(means, 97.5)), 4)]}


def pixel_matrix(images: list[Image.Image]) -> np.ndarray:
    """Each image's pixel row as a version 4 index keeps it (``provenance.influence.pixel_row``): the pixel
    nearest-neighbour baseline and the pixel part of a blended evidence view."""
    return np.stack([pixel_row(image, InfluenceConfig().pixel_size) for image in images])


def planted_shares(method_scores: np.ndarray, assets: list[uuid.UUID], contributors: list[uuid.UUID],
                   planted_id: uuid.UUID, pro_rata: dict, alpha: Fraction) -> tuple[bool, float, float]:
    """(planted is the top contributor, planted influence share, planted share of the pool after the blend)."""
    shares = influence_shares(method_scores, assets, contributors)
    if not shares.contributors:
        return False, 0.0, float(blend(pro_rata, {}, alpha).get(planted_id, 0))
    top = max(shares.contributors.items(), key=lambda item: (item[1], str(item[0])))[0]
    pool = blend(pro_rata, shares.contributors, alpha)
    return top == planted_id, float(shares.contributors.get(planted_id, 0)), float(pool.get(planted_id, 0))


BASELINES = ("pixel_nn", "random", "pro_rata")
HUB_TOP = 10
DEFAULT_TGZ = os.environ.get("FOUNDRY_OPENMOJI_TGZ", str(ROOT.parent / "shared" / "datasets" / "openmoji-17.0.0.tgz"))


METHOD_OF_NORMALISATION = {"none": "dtrak", "self": "dtrak_relative", "calibrated": "dtrak_calibrated",
                           "centered": "dtrak_centered_kernel", "centered_calibrated": "dtrak_centered_calibrated",
                           "das": "das"}
"""The benchmark's name of the kernel scores under each of the product's normalisations."""


def influence_methods(indexes: dict[str, InfluenceIndex], queries: np.ndarray) -> dict[str, np.ndarray]:
    """Each influence method's scores (queries x training rows), all from the product's indexes over one feature
    config: the raw kernel scores (``dtrak``), and those normalised per training row by the root of its
    self-influence (``dtrak_relative``, RelatIF) or standardised on the model's own outputs for other captions
    (``dtrak_calibrated``), or of features centred on those outputs' mean (``dtrak_centered_kernel``); and,
    for comparison, the raw scores divided by the row's feature norm (``dtrak_unit``)
    or less the row's mean on the calibration outputs (``dtrak_centered``); and DAS (``das``: times the row's
    denoising residual over one less its leverage) beside its residual weighting alone, without the
    leave-one-out step (``das_residual``)."""
    methods = {METHOD_OF_NORMALISATION[normalisation]: np.stack([index.scores(q) for q in queries]).astype(np.float64)
               for normalisation, index in indexes.items()}
    norms = np.linalg.norm(indexes["none"].rows.astype(np.float64), axis=1)
    methods["dtrak_unit"] = methods["dtrak"] / np.maximum(norms, 1e-12)
    methods["das_residual"] = methods["dtrak"] * indexes["das"].residuals.astype(np.float64)
    if "calibrated" in indexes:  # the raw scores less each row's mean over the calibration outputs, not rescaled
        usual = np.mean([indexes["none"].scores(c) for c in indexes["calibrated"].calibration], axis=0)
        methods["dtrak_centered"] = methods["dtrak"] - usual.astype(np.float64)
    return methods


def per_query_standardised(matrix: np.ndarray) -> np.ndarray:
    """Each query's scores as z-scores, so methods on different kernels (scales) can be averaged."""
    return (matrix - matrix.mean(axis=1, keepdims=True)) / np.maximum(matrix.std(axis=1, keepdims=True), 1e-12)


PIXEL_BLEND_WEIGHTS = (0.75, 0.5)
"""Weights of pixel similarity in the evidence view's blends with it, reported on every run (the rest is the
gradient score's)."""


def add_pixel_blends(table: dict[str, np.ndarray], served: dict[str, tuple[str, float]] | None = None,
                     evidences: tuple[str, ...] = ("dtrak_relative", "das")) -> None:
    """``blend:W*EVIDENCE+pixel_nn``: W times the evidence method's standardised scores plus (1 - W) times pixel
    similarity's, per query -- as a version 4 index scores its evidence view (``served``: each blended evidence
    view a config serves, by name, with its gradient method and pixel weight). On stop 36's dump
    (``contributor_shares.py``) ¼ + ¾ beat both parts on per-image LDS; measured here on every run, so a blended
    evidence view is judged on fresh models, not the one it was found on. DAS is blended the same way, so the
    evidence view it could become is compared with the one served."""
    if "pixel_nn" not in table:
        return
    blends = dict(served or {})
    for evidence in evidences:
        if evidence in table:
            blends.update({f"blend:{1 - w:g}*{evidence}+pixel_nn": (evidence, w) for w in PIXEL_BLEND_WEIGHTS})
    for name, (gradient, pixel_weight) in blends.items():
        table[name] = ((1 - pixel_weight) * per_query_standardised(table[gradient])
                       + pixel_weight * per_query_standardised(table["pixel_nn"]))


def check_served_evidence(served: list, gradient: np.ndarray, pixels: np.ndarray, pixel_weight: float) -> None:
    """Stop the run when the served index's blended evidence scores differ from the benchmark's blend of the same
    parts: the two must be one method, or the evidence view measured here is not the one the product serves."""
    expected = ((1 - pixel_weight) * per_query_standardised(gradient)
                + pixel_weight * per_query_standardised(pixels))
    for q, scored in enumerate(served):
        gap = float(np.max(np.abs(expected[q, scored.positions] - scored.scores)))
        if gap > 1e-3:
            raise SystemExit(f"the served blended evidence differs from the benchmark's for query {q}: {gap:.2g}")


def parse_variants(texts: list[str], base: InfluenceConfig) -> dict[str, InfluenceConfig]:
    """``NAME=key:value;key:value`` (timesteps as ``100|500|900``) -> the base config with those fields changed,
    one view unless ``payment_timesteps`` (``100|500|900``) makes it a split config."""
    variants = {}
    for text in texts:
        name, _, fields = text.partition("=")
        changes: dict = {}
        for field_text in filter(None, fields.split(";")):
            key, _, value = field_text.partition(":")
            if key == "timesteps":
                changes[key] = tuple(int(t) for t in value.split("|"))
            elif key == "payment_timesteps":
                changes[key] = None if value == "none" else tuple(int(t) for t in value.split("|"))
            elif key in ("payment_normalisation", "preconditioner"):
                changes[key] = value
            elif key in ("projection_dim", "projection_seed", "noise_seed", "preconditioner_examples"):
                changes[key] = int(value)
            elif key in ("damping", "pixel_weight", "preconditioner_damping"):
                changes[key] = float(value)
            else:
                raise SystemExit(f"--variant {text!r}: unknown field {key!r}")
        variants[name] = replace(base, **{"payment_timesteps": None, **changes})  # one view unless it says
    return variants


def hubness(matrix: np.ndarray, top: int = HUB_TOP) -> float:
    """The largest share of these outputs whose ``top`` most influential images hold the same image."""
    counts = np.zeros(matrix.shape[1])
    for row in matrix:
        counts[np.argsort(-row)[:top]] += 1
    return float(counts.max() / len(matrix))


def oracle(matrix: np.ndarray, positions: list[int], contributors: list[uuid.UUID],
           assets: list[uuid.UUID] | None = None, paid_top_ks: tuple[int, ...] = (), power: int = 1) -> dict:
    """Training images asked about as outputs: how often each ranks itself first, and its author first.

    ``author_top1``: the contributor whose images' positive scores, *all* of them, sum highest.
    With ``assets``, also ``author_top1_paid``: the contributor the product pays the largest influence
    share (``influence_shares``: each output's top 50 positive scores), which is what a contributor
    receives; summing every small positive score instead favours whoever has the most images.
    ``paid_top_ks``: the same check were the product to pay each output's top K instead
    (``author_top1_paid_by_top_k``): fewer images paid, more of an output's pay to its closest image.
    ``power``: the paid checks with each kept score raised to it (``influence_shares``).
    """
    itself = author = 0
    paid = dict.fromkeys((None, *paid_top_ks), 0)  # None: the product's own top K
    for row, position in zip(matrix, positions, strict=True):
        itself += int(np.argmax(row)) == position
        totals: dict[uuid.UUID, float] = {}
        for score, contributor in zip(row, contributors, strict=True):
            totals[contributor] = totals.get(contributor, 0.0) + max(float(score), 0.0)
        author += max(totals, key=totals.get) == contributors[position]
        for top_k in paid if assets is not None else ():
            rule = {"power": power} if top_k is None else {"top_k": top_k, "power": power}
            shares = influence_shares(row, assets, contributors, **rule).contributors
            paid[top_k] += _paid_most(shares) == contributors[position]
    report = {"self_top1": round(itself / len(positions), 4), "author_top1": round(author / len(positions), 4)}
    if assets is not None:
        report["author_top1_paid"] = round(paid.pop(None) / len(positions), 4)
        if paid:
            report["author_top1_paid_by_top_k"] = {str(k): round(n / len(positions), 4) for k, n in paid.items()}
    return report


def _paid_most(shares: dict) -> uuid.UUID | None:
    """The contributor paid the largest share (ties by id, so the answer is repeatable); None if nobody is."""
    return max(shares, key=lambda c: (shares[c], str(c))) if shares else None


def contributor_predictions(matrix: np.ndarray, members: list[list[int]]) -> np.ndarray:
    """(contributors x queries): each contributor's summed per-asset scores."""
    return np.array([matrix[:, positions].sum(axis=1) for positions in members]).reshape(len(members), len(matrix))


DEFAULT_RULE = ("among the methods the product can serve (kernel scores, raw, self- or calibration-normalised or "
                "centred, on any feature config, and split methods: one view ranks, the other pays), "
                "those meeting the sanity targets (hubness <= 0.2, oracle self top-1 >= 0.9), the one with the "
                "highest per-asset LDS plus the contributor-level LDS of what it pays (paid:METHOD; without any "
                "that meets them: the highest of all)")
HUBNESS_TARGET, ORACLE_TARGET = 0.2, 0.9


def servable(method: str) -> bool:
    """Scores the product computes (``provenance.influence``): kernel scores under one of its normalisations, and
    a split config's pair (``dtrak_split``: evidence by one view, payment by the other)."""
    return method.split("@")[0] in (*METHOD_OF_NORMALISATION.values(), "dtrak_split")


def choose_default(lds: dict, contributor_lds: dict, hubs: dict, oracle_report: dict, served: str) -> str:
    """The best servable influence method by the LDS this run measured (the served one when it measured none)."""
    methods = [m for m in {**lds, **contributor_lds} if m not in BASELINES and servable(m)]
    if not methods:
        return served
    sane = [m for m in methods if hubs.get(m, 1.0) <= HUBNESS_TARGET
            and oracle_report.get(m, {}).get("self_top1", 0.0) >= ORACLE_TARGET]
    return max(sane or methods, key=lambda method: lds.get(method, {}).get("mean", 0.0)
               + contributor_lds.get(f"paid:{method}", contributor_lds.get(method, {})).get("mean", 0.0))


def feature_config_of(dumped: str) -> str:
    """The ``variants`` key of a dumped view: "@served", "@pay" and a checkpoint's ("#STEP", "#STEP@pay") are the
    served config's views, "@NAME" and "@NAME@pay" a variant's."""
    name = dumped.removesuffix("@pay")
    return "" if name in ("", "@served") or name.startswith("#") else name


def add_view_methods(methods: dict, oracle_methods: dict, feature_dump: dict, *, variant: InfluenceConfig,
                     suffix: str, features: np.ndarray, residuals: np.ndarray, calibration: np.ndarray | None,
                     queried: np.ndarray, oracle_positions: list[int], assets: list, contributors: list) -> None:
    """Every normalisation's scores on each view of one feature pass (a split config's views are METHOD and
    METHOD@pay), for the queries and for the oracle's training images, named METHOD + ``suffix`` + view."""
    def view(array, position):
        return None if array is None else array[:, position]

    views = [("", features, calibration, queried, residuals)] if not variant.split else [
        (view_suffix, view(features, n), view(calibration, n), view(queried, n), view(residuals, n))
        for n, view_suffix in enumerate(("", "@pay"))]
    for view_suffix, view_features, view_calibration, view_queries, view_residuals in views:
        view_config = variant.view_config(1 if view_suffix else 0)
        indexes = {normalisation: InfluenceIndex.build(
            view_features, asset_ids=assets, contributor_ids=contributors,
            config=replace(view_config, normalisation=normalisation), fingerprint={"benchmark": "attribution"},
            calibration=view_calibration if normalisation in WITH_CALIBRATION_OUTPUTS else None,
            residuals=view_residuals if normalisation in WITH_RESIDUALS else None)
            for normalisation in METHOD_OF_NORMALISATION}
        name = f"{suffix}{view_suffix}"
        feature_dump[name or "@served"] = {"features": view_features, "calibration": view_calibration,
                                           "queries": view_queries, "residuals": view_residuals}
        for method, matrix in influence_methods(indexes, view_queries).items():
            methods[method + name] = matrix
        for method, matrix in influence_methods(indexes, view_features[oracle_positions]).items():
            oracle_methods[method + name] = matrix


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tgz", default=DEFAULT_TGZ)
    parser.add_argument("--work", default=str(ROOT / "var" / "bench-attribution"))
    parser.add_argument("--subset", type=int, default=1000)
    parser.add_argument("--planted", type=int, default=20)
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="train every model by this product preset's recipe (e.g. quality: the better-trained "
                             "model the product serves) instead of the tiny base recipe")
    parser.add_argument("--steps", type=int, default=None,
                        help="optimizer steps of the full model (default: the preset's, or 400)")
    parser.add_argument("--half-models", type=int, default=16)
    parser.add_argument("--counterfactual-queries", type=int, default=3)
    parser.add_argument("--remove", type=int, default=10, help="training images removed per counterfactual")
    parser.add_argument("--seeds-per-concept", type=int, default=4)
    parser.add_argument("--unrelated", type=int, default=40)
    parser.add_argument("--contributors", type=int, default=12, help="contributors retrained without (>= 12)")
    parser.add_argument("--ground-truth", choices=("paired", "reshuffled"), default="paired",
                        help="paired: each contributor's images withheld in place, every other image trained with "
                             "the full model's batches and noise (the difference is what the contributor did); "
                             "reshuffled: retrained on the rest in a new data order (that order's noise included)")
    parser.add_argument("--ground-truth-seeds", type=int, default=1,
                        help="train the contributor counterfactuals (and the full model) with this many seeds: the "
                             "ground truth is their mean rise, and two seeds' agreement bounds any method's score")
    parser.add_argument("--oracle-queries", type=int, default=40, help="training images asked about as outputs")
    parser.add_argument("--oracle-paid-top-k", default="5,10,25",
                        help="also check the author is paid most were each output's top K paid (comma-separated)")
    parser.add_argument("--alpha", default="1/2")
    parser.add_argument("--timesteps", default=",".join(str(t) for t in InfluenceConfig().timesteps),
                        help="the influence features' timesteps, the evidence view's when split (default: the product's)")
    parser.add_argument("--payment-timesteps",
                        default=",".join(str(t) for t in InfluenceConfig().payment_timesteps),
                        help="the payment view's timesteps (default: the product's), or none: one view ranks and pays")
    parser.add_argument("--normalisation", default=InfluenceConfig().normalisation,
                        help="the served (evidence) view's normalisation")
    parser.add_argument("--pixel-weight", type=float, default=InfluenceConfig().pixel_weight,
                        help="the share of pixel similarity in the evidence view's score (version 4; default: "
                             "the product's)")
    parser.add_argument("--calibration", type=int, default=InfluenceConfig().calibration_outputs,
                        help="outputs of other captions that calibrate each training image's scores (dtrak_calibrated)")
    parser.add_argument("--variant", action="append", default=[],
                        help="another feature config, NAME=key:value;key:value (timesteps as 100|500|900); its "
                             "methods are reported as METHOD@NAME")
    parser.add_argument("--checkpoint-ensemble", type=int, default=0,
                        help="K >= 2: also score with the full model's weights at K evenly spaced steps of its training "
                             "(the checkpoints a job keeps), every method as METHOD#STEP, and their mean per-query "
                             "standardised scores as ckpt:METHOD (TRAK's ensemble over checkpoints)")
    parser.add_argument("--ensemble", action="append", default=[],
                        help="NAME=METHOD+METHOD...: the mean of those methods' per-query standardised scores")
    parser.add_argument("--loss-draws", type=int, default=4,
                        help="fixed noises per timestep in a query's loss (the counterfactual ground truth)")
    parser.add_argument("--unlearning", action="store_true",
                        help="also score every query by unlearning it (slower: a few seconds per query)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--dump", help="also write every method's score matrices, the oracle's, the contributor "
                                       "ground truth and the half-models' masks and query losses to this .npz, to "
                                       "study other predictions without retraining")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.steps is None:
        args.steps = PRESETS[args.preset]["max_train_steps"] if args.preset else 400
    torch.set_num_threads(args.threads)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    alpha = Fraction(args.alpha)

    items = load_items(Path(args.tgz), args.subset, args.planted, seed=17)
    contributor_uuid = {name: uuid.uuid5(uuid.NAMESPACE_URL, f"contributor:{name}")
                        for name in sorted({item.contributor for item in items})}
    planted_id = contributor_uuid[PLANTED]
    assets = [uuid.uuid5(uuid.NAMESPACE_URL, item.example_id) for item in items]
    contributors = [contributor_uuid[item.contributor] for item in items]
    pro_rata: dict[uuid.UUID, Fraction] = {}
    for contributor in contributors:
        pro_rata[contributor] = pro_rata.get(contributor, Fraction(0)) + 1
    log(f"{len(items)} training images from {len(contributor_uuid)} contributors")

    full_path = train_model(work, "full", items, args.steps, seed=0, preset=args.preset)
    pipeline = load_pipeline(full_path, device="cpu")
    config = InfluenceConfig(timesteps=tuple(int(t) for t in args.timesteps.split(",")),
                             calibration_outputs=args.calibration,
                             payment_timesteps=None if args.payment_timesteps == "none"
                             else tuple(int(t) for t in args.payment_timesteps.split(",")),
                             normalisation=args.normalisation, pixel_weight=args.pixel_weight)
    variants = {"": config, **{f"@{name}": variant for name, variant in parse_variants(args.variant, config).items()}}
    attributor = Attributor(pipeline, config)

    # --- queries: concept prompts x seeds, and unrelated OpenMoji captions; calibration outputs from other captions
    rng = random.Random(5)
    others = [i for i in items if i.contributor != PLANTED]
    unrelated = [item.caption for item in rng.sample(others, args.unrelated)]
    queries = [(prompt, 1000 + seed, True) for prompt in CONCEPT_PROMPTS for seed in range(args.seeds_per_concept)]
    queries += [(prompt, 2000 + n, False) for n, prompt in enumerate(unrelated)]
    generation_s, outputs = [], []
    for prompt, seed, _ in queries:
        started = time.perf_counter()
        outputs.append(generate(pipeline, prompt, seed))
        generation_s.append(time.perf_counter() - started)
    spare = sorted({item.caption for item in items} - set(unrelated))  # calibration never sees a query's prompt
    oracle_positions = sorted(random.Random(23).sample(
        [i for i, item in enumerate(items) if item.contributor != PLANTED], args.oracle_queries))

    # --- per feature config: the index over the training set, the queries' features, every method's scores
    methods: dict[str, np.ndarray] = {}
    oracle_methods: dict[str, np.ndarray] = {}
    costs: dict[str, dict] = {}
    feature_dump: dict[str, dict[str, np.ndarray]] = {}  # per feature config, for --dump
    splits: dict[str, tuple[str, str]] = {}  # a split config's method -> (its evidence method, its payment method)
    evidence_blends: dict[str, tuple[str, float]] = {}  # a blended evidence method -> (its gradient part, weight)
    train_codes = np.stack([pixel_codes(item.image(), InfluenceConfig().pixel_size) for item in items])
    train_pixels = unit_pixel_rows(train_codes)  # what the served index reads its codes as
    for suffix, variant in variants.items():
        variant_attributor = attributor if suffix == "" else Attributor(pipeline, variant)
        started = time.perf_counter()
        preconditioner = None
        if variant.preconditioner != "none":  # K-FAC / EK-FAC: fitted on the training images before any feature
            chosen = preconditioner_sample(len(items), examples=variant.preconditioner_examples,
                                           seed=variant.noise_seed)
            preconditioner = block_arrays(variant_attributor.fit_preconditioner(
                [(items[position].image(), items[position].caption) for position in chosen]))
        fit_s = time.perf_counter() - started
        started = time.perf_counter()
        features, residuals = variant_attributor.index_rows_of_many(((item.image(), item.caption) for item in items),
                                                                    residuals=True)  # every view's das method
        feature_s = time.perf_counter() - started
        # one set of calibration outputs per feature config: their prompts and seeds do not depend on the
        # normalisation that uses them
        calibration = Attributor(pipeline, replace(variant, normalisation="calibrated"),
                                 preconditioner=variant_attributor.featurizer.preconditioner).calibration_features(
            spare, guidance_scale=GENERATE["guidance_scale"], steps=GENERATE["num_inference_steps"])
        # the index as the product builds it (a split config: both views), then timed queries against it
        served = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=variant,
                                      fingerprint={"benchmark": "attribution"},
                                      calibration=calibration if variant.uses_calibration_outputs else None,
                                      pixels=train_codes if variant.blends_pixels else None,
                                      residuals=residuals if variant.uses_residuals else None,
                                      preconditioner=preconditioner)
        build_s = time.perf_counter() - started
        attribution_times, query_features, served_evidence = [], [], []
        for (prompt, _, _), image in zip(queries, outputs, strict=True):
            started = time.perf_counter()
            query_features.append(variant_attributor.features(image, prompt))
            scored = served.score_output(query_features[-1], pixels=pixel_row(image, variant.pixel_size)
                                         if variant.blends_pixels else None)
            influence_shares(scored.payment.scores, [assets[p] for p in scored.payment.positions],
                             [contributors[p] for p in scored.payment.positions])
            attribution_times.append(time.perf_counter() - started)
            served_evidence.append(scored.evidence)
        queried = np.stack(query_features)
        add_view_methods(methods, oracle_methods, feature_dump, variant=variant, suffix=suffix, features=features,
                         residuals=residuals, calibration=calibration, queried=queried,
                         oracle_positions=oracle_positions, assets=assets, contributors=contributors)
        if variant.split:
            evidence = METHOD_OF_NORMALISATION[variant.normalisation] + suffix
            if variant.blends_pixels:  # version 4: the evidence view is that method blended with pixel similarity
                check_served_evidence(served_evidence, methods[evidence], pixel_matrix(outputs) @ train_pixels.T,
                                      variant.pixel_weight)
                blended = f"blend:{1 - variant.pixel_weight:g}*{evidence}+pixel_nn"
                evidence_blends[blended], evidence = (evidence, variant.pixel_weight), blended
            splits[f"dtrak_split{suffix}"] = (evidence,
                                              METHOD_OF_NORMALISATION[variant.payment_normalisation] + suffix + "@pay")
        costs[suffix or "served"] = {"index_build_s": round(build_s, 2), "preconditioner_fit_s": round(fit_s, 2),
                                     "features_per_example_ms": round(1000 * feature_s / len(items), 2),
                                     "attribution_s_per_image": round(float(np.median(attribution_times)), 4)}
        if suffix == "":
            index_s, attribution_s, served_feature_s = build_s, attribution_times, feature_s
        log(f"index{suffix or ' (served config)'}: {len(items)} examples in {build_s:.1f} s")
    if args.checkpoint_ensemble >= 2:
        served_methods = [m for m in methods if not any(mark in m.split("@pay")[0] for mark in ("@", "#"))]
        stages, replay_difference = train_stages(work, items, args.steps, seed=0, preset=args.preset,
                                                 stages=args.checkpoint_ensemble, full_path=full_path)
        stage_query_s: list[float] = []  # each earlier checkpoint's features of one output
        for step, folder in stages:
            started = time.perf_counter()
            stage_pipeline = load_pipeline(folder, device="cpu")
            stage = Attributor(stage_pipeline, config)
            features, residuals = stage.index_rows_of_many(((item.image(), item.caption) for item in items),
                                                           residuals=True)
            calibration = Attributor(stage_pipeline, replace(config, normalisation="calibrated")).calibration_features(
                spare, guidance_scale=GENERATE["guidance_scale"], steps=GENERATE["num_inference_steps"])
            query_started = time.perf_counter()
            queried = np.stack([stage.features(image, prompt) for (prompt, _, _), image in zip(queries, outputs,
                                                                                             strict=True)])
            stage_query_s.append((time.perf_counter() - query_started) / len(queries))
            add_view_methods(methods, oracle_methods, feature_dump, variant=config, suffix=f"#{step}",
                             features=features, residuals=residuals, calibration=calibration, queried=queried,
                             oracle_positions=oracle_positions, assets=assets, contributors=contributors)
            log(f"checkpoint at step {step}: every method in {time.perf_counter() - started:.0f} s")
        for method in served_methods:  # the final weights and each earlier checkpoint, equally weighted
            base, _, view = method.partition("@")
            members = [method] + [f"{base}#{step}{'@' + view if view else ''}" for step, _ in stages]
            for table in (methods, oracle_methods):
                table[f"ckpt:{method}"] = np.mean([per_query_standardised(table[m]) for m in members], axis=0)
        costs["checkpoint_ensemble"] = {"members": [step for step, _ in stages] + [args.steps],
                                        "final_weights_max_difference": replay_difference,
                                        "extra_features_s_per_output": round(sum(stage_query_s), 4)}
    unlearning_config = UnlearningConfig()
    if args.unlearning:
        probes = [(item.image(), item.caption) for item in items]
        unlearner = Unlearner(pipeline, probes, unlearning_config)  # the probes' losses before, once
        started = time.perf_counter()
        methods["unlearning"] = np.stack([unlearner([(image, prompt)]).probe_rise.astype(np.float64)
                                          for (prompt, _, _), image in zip(queries, outputs, strict=True)])
        unlearning_s = (time.perf_counter() - started) / len(queries)  # no oracle: it is not a served method
        log(f"unlearning: {unlearning_s:.1f} s per query")
    for text in args.ensemble:
        name, _, members = text.partition("=")
        for table in (methods, oracle_methods):
            if all(member in table for member in members.split("+")):  # unlearning has no oracle scores
                table[name] = np.mean([per_query_standardised(table[member]) for member in members.split("+")],
                                      axis=0)
    influence_scores = methods["dtrak"]
    methods["pixel_nn"] = pixel_matrix(outputs) @ train_pixels.T
    add_pixel_blends(methods, evidence_blends)
    for split, (evidence, _) in splits.items():  # shown and ranked by one view, paid by the other
        methods[split] = methods[evidence]
    methods["random"] = np.random.default_rng(0).random((len(queries), len(items)))
    unrelated_rows = [q for q, (_, _, is_concept) in enumerate(queries) if not is_concept]
    def paying(method: str) -> np.ndarray:
        """The scores that split the pool under a method: a split's payment view, else its own."""
        return methods[splits[method][1]] if method in splits else methods[method]

    # a split method's hubs: what it shows and what it pays, the larger
    hubs = {method: round(max(hubness(matrix[unrelated_rows]), hubness(paying(method)[unrelated_rows])), 4)
            for method, matrix in methods.items()}
    log(f"hubness: {json.dumps(hubs)}")

    # --- oracle: training images asked about as if they were outputs
    oracle_methods["pixel_nn"] = train_pixels[oracle_positions] @ train_pixels.T
    add_pixel_blends(oracle_methods, evidence_blends)
    for split, (evidence, _) in splits.items():
        oracle_methods[split] = oracle_methods[evidence]
    paid_top_ks = tuple(int(k) for k in args.oracle_paid_top_k.split(",") if k)
    oracle_report = {method: oracle(matrix, oracle_positions, contributors, assets, paid_top_ks)
                     for method, matrix in oracle_methods.items()}
    for split, (_, payment) in splits.items():  # ranks itself by the evidence, pays its author by the payment view
        oracle_report[split] = {**oracle_report[split], **{key: value for key, value in oracle_report[payment].items()
                                                           if key.startswith("author_top1_paid")}}
    log(f"oracle: {json.dumps(oracle_report)}")

    planted = {}
    for method in methods:
        results = [planted_shares(paying(method)[q], assets, contributors, planted_id, pro_rata, alpha)
                   for q in range(len(queries))]
        concept = [r for r, (_, _, is_concept) in zip(results, queries, strict=True) if is_concept]
        other = [r for r, (_, _, is_concept) in zip(results, queries, strict=True) if not is_concept]
        planted[method] = {
            "concept_top_rate": round(sum(r[0] for r in concept) / len(concept), 4),
            "concept_mean_influence_share": round(float(np.mean([r[1] for r in concept])), 4),
            "unrelated_mean_influence_share": round(float(np.mean([r[1] for r in other])), 4),
            "unrelated_max_influence_share": round(float(np.max([r[1] for r in other])), 4),
            "unrelated_mean_pool_share": round(float(np.mean([r[2] for r in other])), 4),
            "unrelated_max_pool_share": round(float(np.max([r[2] for r in other])), 4),
        }
    planted_fraction = float(pro_rata[planted_id] / sum(pro_rata.values()))
    top_contributor = max(pro_rata.items(), key=lambda item: item[1])[0]
    planted["pro_rata"] = {"concept_top_rate": 1.0 if top_contributor == planted_id else 0.0,
                           "concept_mean_influence_share": round(planted_fraction, 4),
                           "unrelated_mean_influence_share": round(planted_fraction, 4),
                           "unrelated_mean_pool_share": round(planted_fraction, 4)}
    log(f"planted: {json.dumps(planted['dtrak'])}")

    # --- counterfactual retraining
    counterfactual = []
    chosen = ([0] + [q for q in range(len(queries)) if not queries[q][2]][: args.counterfactual_queries - 1]
              if args.counterfactual_queries > 0 else [])
    base_losses = {q: query_loss(pipeline, attributor, outputs[q], queries[q][0], args.loss_draws) for q in chosen}
    for q in chosen:
        prompt, seed, is_concept = queries[q]
        top = set(np.argsort(-influence_scores[q])[: args.remove].tolist())
        random_removed = set(random.Random(q).sample(range(len(items)), args.remove))
        row = {"prompt": prompt, "seed": seed, "concept": is_concept,
               "removed_top_planted": sum(items[i].contributor == PLANTED for i in top)}
        for label, removed in (("top", top), ("random", random_removed)):
            kept = [item for i, item in enumerate(items) if i not in removed]
            retrained = load_pipeline(train_model(work, counterfactual_name(work, q, label, kept), kept, args.steps,
                                                  seed=0, preset=args.preset), device="cpu")
            image = generate(retrained, prompt, seed)
            change = np.abs(np.asarray(image, dtype=np.float32) - np.asarray(outputs[q], dtype=np.float32)).mean()
            loss = query_loss(retrained, Attributor(retrained, config), outputs[q], prompt, args.loss_draws)
            row[label] = {"pixel_change": round(float(change), 3), "loss_change": round(loss - base_losses[q], 5)}
        counterfactual.append(row)
        log(f"counterfactual {q}: {json.dumps(row)}")

    # --- linear datamodeling score over half-models
    half_rng = np.random.default_rng(11)
    masks = [half_rng.permutation(len(items)) < len(items) // 2 for _ in range(args.half_models)]
    actual = np.zeros((args.half_models, len(queries)))
    for m, mask in enumerate(masks):
        subset = [item for item, keep in zip(items, mask, strict=True) if keep]
        actual[m] = query_losses(train_model(work, f"half-{m}", subset, args.steps // 2, seed=100 + m,
                                             preset=args.preset), outputs, queries, config, args.loss_draws)
    lds = {}
    for method, matrix in ({**methods, "pro_rata": np.ones((len(queries), len(items)))} if masks else {}).items():
        # more influence from the included examples -> lower loss: correlate the prediction with -loss
        predicted = np.stack(masks).astype(float) @ matrix.T
        per_query = [spearman(predicted[:, q], -actual[:, q]) for q in range(len(queries))]
        lds[method] = bootstrap(per_query)
    log(f"lds: {json.dumps(lds)}")

    # --- contributor-level LDS: retrain without each of N contributors
    by_size = sorted((name for name in contributor_uuid if name != PLANTED),
                     key=lambda name: (-sum(item.contributor == name for item in items), name))
    removed_contributors = [PLANTED, *by_size[: args.contributors - 1]] if args.contributors > 0 else []
    members = [[i for i, item in enumerate(items) if item.contributor == name] for name in removed_contributors]
    rises = [contributor_loss_rise(work, items, removed_contributors, outputs, queries, args.steps, seed, config,
                                   args.loss_draws, paired=args.ground_truth == "paired", preset=args.preset)
             for seed in range(args.ground_truth_seeds)]
    loss_rise = np.mean(rises, axis=0)  # over training seeds: less of one training run's noise
    ground_truth = {"retraining": args.ground_truth, "seeds": args.ground_truth_seeds}
    if len(rises) > 1:
        # how far two retrainings (seeds 0 and 1) agree on each query's contributor order: the contributor
        # LDS a perfect method could reach against one seed's ground truth
        ground_truth["seed_agreement"] = bootstrap([spearman(rises[0][:, q], rises[1][:, q])
                                                    for q in range(len(queries))])
        log(f"contributor ground truth, seed agreement: {json.dumps(ground_truth['seed_agreement'])}")
    contributor_lds = {}
    predictions = {method: contributor_predictions(paying(method), members) for method in methods}
    predictions["pro_rata"] = np.array([[len(positions)] * len(queries) for positions in members], dtype=float)
    removed_ids = [contributor_uuid[name] for name in removed_contributors]
    for method in [m for m in methods if servable(m)]:
        # what the product pays: each output's top-k positive scores as contributor shares, and the pool
        # that blends them with pro rata (alpha)
        paid = [influence_shares(paying(method)[q], assets, contributors).contributors for q in range(len(queries))]
        predictions[f"paid:{method}"] = np.array([[float(paid[q].get(c, 0)) for q in range(len(queries))]
                                                  for c in removed_ids])
        pooled = [blend(pro_rata, paid[q], alpha) for q in range(len(queries))]
        predictions[f"pool:{method}"] = np.array([[float(pooled[q].get(c, 0)) for q in range(len(queries))]
                                                  for c in removed_ids])
    for method, predicted in (predictions.items() if removed_contributors else ()):
        contributor_lds[method] = bootstrap([spearman(predicted[:, q], loss_rise[:, q]) for q in range(len(queries))])
    log(f"contributor lds: {json.dumps(contributor_lds)}")
    if args.dump:
        contributor_index = {c: n for n, c in enumerate(contributor_uuid.values())}
        np.savez_compressed(
            args.dump, loss_rise=loss_rise, rises=np.array(rises), unrelated_rows=np.array(unrelated_rows),
            oracle_positions=np.array(oracle_positions), concept=np.array([q[2] for q in queries]),
            contributors=np.array([contributor_index[c] for c in contributors]),
            removed=np.array([contributor_index[contributor_uuid[name]] for name in removed_contributors], dtype=int),
            alpha=np.array(float(alpha)), method_names=np.array(list(methods)),
            oracle_names=np.array(list(oracle_methods)), feature_configs=np.array(list(feature_dump)),
            damping=np.array([variants[feature_config_of(name)].damping for name in feature_dump]),
            splits=np.array([f"{split}={evidence}/{payment}" for split, (evidence, payment) in splits.items()]),
            **{f"{kind}_{n}": array for n, arrays in enumerate(feature_dump.values()) for kind, array in arrays.items()},
            **({"lds_masks": np.stack(masks), "lds_losses": actual} if masks else {}),
            **{f"scores_{n}": matrix for n, matrix in enumerate(methods.values())},
            **{f"oracle_{n}": matrix for n, matrix in enumerate(oracle_methods.values())})
    default_method = choose_default(lds, contributor_lds, hubs, oracle_report,
                                    served="dtrak_split" if config.split else METHOD_OF_NORMALISATION[config.normalisation])

    result = {
        "benchmark": "per-output influence attribution on the tiny CPU base model",
        "method": config.as_dict(),
        "variants": {name: variant.as_dict() for name, variant in variants.items() if name},
        "ensembles": dict(text.partition("=")[::2] for text in args.ensemble),
        **({"unlearning": unlearning_config.as_dict()} if args.unlearning else {}),
        "calibration_outputs": args.calibration,
        "training": {"images": len(items), "contributors": len(contributor_uuid), "planted_images": args.planted,
                     "preset": args.preset or "tiny base recipe", "steps": args.steps,
                     "half_model_steps": args.steps // 2,
                     "resolution": PRESETS[args.preset]["resolution"] if args.preset else 32},
        "queries": {"concept": sum(q[2] for q in queries), "unrelated": sum(not q[2] for q in queries),
                    "generation": GENERATE,
                    "loss": {"timesteps": list(LOSS_TIMESTEPS), "noise_draws": args.loss_draws}},
        "alpha": f"{alpha.numerator}/{alpha.denominator}",
        "default_method": default_method,
        "default_method_rule": DEFAULT_RULE if lds or contributor_lds else "no LDS in this run: the served method",
        "hubness": hubs[default_method],
        "hubness_by_method": hubs,
        "hubness_top": HUB_TOP,
        "oracle_top1": oracle_report[default_method]["self_top1"],
        "oracle_author_top1_paid": oracle_report[default_method]["author_top1_paid"],
        "oracle": {"queries": len(oracle_positions), **oracle_report},
        "planted": planted,
        "counterfactual": counterfactual,
        "lds": {"half_models": args.half_models, "queries": len(queries), **lds},
        "contributor_lds": {"contributors_removed": len(removed_contributors), "ground_truth": ground_truth,
                            "removed_images": [len(positions) for positions in members],
                            "queries": len(queries), **contributor_lds},
        "cost": {"index_build_s": round(index_s, 2), "features_per_example_ms": round(1000 * served_feature_s / len(items), 2),
                 "generation_s_per_image": round(float(np.median(generation_s)), 4),
                 "attribution_s_per_image": round(float(np.median(attribution_s)), 4),
                 "attribution_share_of_generation": round(float(np.median(attribution_s) / np.median(generation_s)), 4),
                 "threads": args.threads, "by_config": costs,
                 **({"unlearning_s_per_query": round(unlearning_s, 2)} if args.unlearning else {})},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
