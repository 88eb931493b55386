"""Image quality, measured with the foundry's own licensed-only evaluator.

Nothing here comes from outside the catalog: the *evaluator* is a small convolutional classifier
trained only on the real renditions of a training split, to tell each image's catalog group (and
separately its subgroup). It is trained once per split, frozen, saved with a sha256 that every
report carries, and never used to train or select generators. With it:

* **prompt-following accuracy** - images generated from held-out captions are classified; the
  score is *balanced* accuracy (mean per-class recall: one large group must not hide the others),
  reported next to the evaluator's own balanced accuracy on the real held-out images (the ceiling)
  and chance (one over the number of classes, the floor);
* **KID** (Binkowski et al. 2018) between generated and real held-out images in the evaluator's
  penultimate features, with real-vs-real (a training sample of the same group composition
  against the held-out images) as its floor;
* **precision / recall** (Kynkaanniemi et al. 2019): k-nearest-neighbour manifolds in the same space;
* **held-out diffusion loss**: the noise-prediction error on held-out images at fixed timesteps and
  fixed noise, whatever the model's own parameterisation (v, epsilon or sample);
* a **contact sheet**: held-out prompts x seeds at native and delivered size.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import KW_ONLY, asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from PIL import Image, ImageDraw
from safetensors.torch import load_file, save_file
from torch import nn

from recipes import serving_guidance
from training.data import ImageTransform
from training.pipelines import pipeline_call_kwargs
from training.text_encoder import PromptStyle, encode_prompts, tokenize_prompts

EVALUATOR_WEIGHTS = "evaluator.safetensors"
EVALUATOR_CONFIG = "evaluator.json"
Progress = Callable[[int, int], None]


# ----------------------------------------------------------------------------- the evaluator


@dataclass(frozen=True)
class EvaluatorConfig:
    """How the evaluator is built and trained; stored with it, part of its identity."""

    resolution: int = 32
    """Pixels a side it sees: generated and real images are brought to this size alike."""
    width: int = 32
    """Channels of the first conv stage (then 2x and 4x)."""
    feature_size: int = 256
    """The penultimate layer: KID and precision/recall are computed in this space."""
    subgroup_loss_weight: float = 0.5
    """The subgroup head's share of the loss, beside the group head's 1."""
    _: KW_ONLY
    # How it is optimised (keyword-only: a caller names what it changes).
    epochs: int = 12
    """Passes over the training renditions."""
    batch_size: int = 128
    """Images per AdamW step, augmented by shifts, flips, blur and pixel noise."""
    blur_sigma: float = 1.2
    """Half of each batch is blurred by a Gaussian of a random width up to this (pixels; 0: never). Trained on
    crisp renditions only, the evaluator read edges, not content: a 0.7 px blur of real held-out renditions
    took its balanced accuracy from 0.51 to 0.20, and the 32 px generators it judges draw soft edges."""
    learning_rate: float = 3e-3
    """The peak of a one-cycle schedule (warm-up, then cosine annealing)."""
    weight_decay: float = 5e-4
    """AdamW's decoupled decay: a little, against memorising 3,848 emoji."""
    seed: int = 0
    """Initial weights and batch order: the same seed and threads give the same evaluator."""


class EvaluatorNet(nn.Module):
    """Three conv stages, global pooling, a feature layer, and one head per label level."""

    def __init__(self, config: EvaluatorConfig, num_groups: int, num_subgroups: int) -> None:
        super().__init__()
        width = config.width

        def stage(inputs: int, outputs: int) -> nn.Sequential:
            return nn.Sequential(
                nn.Conv2d(inputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(),
                nn.Conv2d(outputs, outputs, 3, padding=1), nn.BatchNorm2d(outputs), nn.ReLU(),
            )

        self.trunk = nn.Sequential(
            stage(3, width), nn.MaxPool2d(2), stage(width, 2 * width), nn.MaxPool2d(2), stage(2 * width, 4 * width),
            nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        )
        self.embed = nn.Sequential(nn.Dropout(0.3), nn.Linear(4 * width, config.feature_size), nn.ReLU())
        self.group_head = nn.Linear(config.feature_size, num_groups)
        self.subgroup_head = nn.Linear(config.feature_size, num_subgroups)

    def features(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.embed(self.trunk(pixels))

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        features = self.features(pixels)
        return self.group_head(features), self.subgroup_head(features)


def to_evaluator_pixels(images: np.ndarray, resolution: int) -> torch.Tensor:
    """uint8 (N, H, W, 3) -> float (N, 3, R, R) in [-1, 1]; other sizes are resized with area averaging."""
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError("images must be a uint8 array of shape (N, H, W, 3)")
    pixels = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if pixels.shape[-1] != resolution or pixels.shape[-2] != resolution:
        pixels = F.interpolate(pixels, size=(resolution, resolution), mode="area")
    return pixels


@dataclass
class Predictions:
    groups: np.ndarray
    subgroups: np.ndarray
    features: np.ndarray


class Evaluator:
    """A frozen evaluator: its network, its label vocabularies and the config that trained it."""

    def __init__(self, net: EvaluatorNet, groups: Sequence[str], subgroups: Sequence[str],
                 config: EvaluatorConfig, training: dict[str, Any] | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.groups = tuple(groups)
        self.subgroups = tuple(subgroups)
        self.config = config
        self.training = dict(training or {})

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 256) -> Predictions:
        """Labels and features in float32, also when called inside a generator's mixed-precision autocast:
        a frozen evaluator gives the same figures whatever precision the measured model trained in."""
        groups, subgroups, features = [], [], []
        for start in range(0, len(images), batch_size):
            chunk = to_evaluator_pixels(images[start:start + batch_size], self.config.resolution)
            with torch.autocast(chunk.device.type, enabled=False):
                embedded = self.net.features(chunk.float())
            groups.append(self.net.group_head(embedded).argmax(1))
            subgroups.append(self.net.subgroup_head(embedded).argmax(1))
            features.append(embedded)
        if not features:
            empty = np.zeros(0, dtype=np.int64)
            return Predictions(empty, empty, np.zeros((0, self.config.feature_size), dtype=np.float32))
        return Predictions(torch.cat(groups).numpy(), torch.cat(subgroups).numpy(),
                           torch.cat(features).numpy().astype(np.float64))

    def describe(self) -> dict[str, Any]:
        return {"groups": list(self.groups), "subgroups": list(self.subgroups), "config": asdict(self.config),
                "training": self.training}

    def save(self, folder: str | Path) -> str:
        """Write weights and description; returns the evaluator's sha256 (over both files)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        state = {name: tensor.detach().contiguous() for name, tensor in self.net.state_dict().items()}
        save_file(state, folder / EVALUATOR_WEIGHTS)
        (folder / EVALUATOR_CONFIG).write_text(json.dumps(self.describe(), indent=2, sort_keys=True), encoding="utf-8")
        return evaluator_sha256(folder)

    @classmethod
    def load(cls, folder: str | Path) -> Evaluator:
        folder = Path(folder)
        described = json.loads((folder / EVALUATOR_CONFIG).read_text(encoding="utf-8"))
        # Evaluators saved before blur augmentation existed were trained without it.
        config = EvaluatorConfig(**{"blur_sigma": 0.0, **described["config"]})
        net = EvaluatorNet(config, len(described["groups"]), len(described["subgroups"]))
        net.load_state_dict(load_file(folder / EVALUATOR_WEIGHTS))
        return cls(net, described["groups"], described["subgroups"], config, described.get("training"))


def split_content_sha256(entries: Iterable[tuple[str, str, Sequence[str]]]) -> str:
    """The identity of a split by what it holds -- each (source file sha256, caption, tags) -- and nothing a
    database makes up: a snapshot's Merkle root also covers its asset and grant ids, random per database, so
    two machines that onboard the same catalog freeze the same content under different roots."""
    lines = sorted(f"{sha256}\t{caption}\t{json.dumps(list(tags))}" for sha256, caption, tags in entries)
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def evaluator_folder_name(training_content: str, config: EvaluatorConfig) -> str:
    """Where the frozen evaluator of a training split (by ``split_content_sha256``) and config is kept."""
    settings_digest = hashlib.sha256(json.dumps(asdict(config), sort_keys=True).encode()).hexdigest()[:12]
    return f"{training_content[:16]}-{settings_digest}"


FROZEN_EVALUATORS = Path(__file__).resolve().parent / "evaluators"
"""Evaluators kept in the repository, one per training split (by content) and config (see its README).

Trained on another CPU, the same evaluator comes out as other weights (float sums in another order), and
its figures move by a few hundredths; a committed file is the same everywhere, so the demo, the CLI and
every benchmark session measure with one evaluator. It is learnt from the licensed training split only,
like every model here."""


def frozen_evaluator(training_content: str, config: EvaluatorConfig, frozen: Path = FROZEN_EVALUATORS) -> Path | None:
    """The committed evaluator folder of this training split (by ``split_content_sha256``)
    and config, or None when there is none."""
    folder = frozen / evaluator_folder_name(training_content, config)
    return folder if (folder / EVALUATOR_CONFIG).is_file() and (folder / EVALUATOR_WEIGHTS).is_file() else None


def evaluator_sha256(folder: str | Path) -> str:
    """One digest over the evaluator's weights and description files."""
    digest = hashlib.sha256()
    for name in (EVALUATOR_WEIGHTS, EVALUATOR_CONFIG):
        digest.update(name.encode() + b"\0" + hashlib.sha256((Path(folder) / name).read_bytes()).digest())
    return digest.hexdigest()


def _shifted(pixels: torch.Tensor, generator: torch.Generator, limit: int = 3) -> torch.Tensor:
    """Translate the batch by up to ``limit`` pixels, filling with white (the catalog's background)."""
    dx, dy = torch.randint(-limit, limit + 1, (2,), generator=generator).tolist()
    padded = F.pad(pixels, (limit, limit, limit, limit), value=1.0)
    return torch.roll(padded, (dy, dx), (2, 3))[:, :, limit:-limit, limit:-limit]


def _blurred(pixels: torch.Tensor, generator: torch.Generator, max_sigma: float) -> torch.Tensor:
    """A random half of the batch blurred by one Gaussian of width up to ``max_sigma`` (white beyond the edge)."""
    sigma = max_sigma * torch.rand(1, generator=generator).item()
    if sigma < 0.1:
        return pixels
    radius = max(1, math.ceil(2.5 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=pixels.dtype)
    kernel = torch.exp(-offsets ** 2 / (2 * sigma ** 2))
    kernel = kernel / kernel.sum()
    channels = pixels.shape[1]
    padded = F.pad(pixels, (radius, radius, radius, radius), value=1.0)
    soft = F.conv2d(padded, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    soft = F.conv2d(soft, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    chosen = (torch.rand(len(pixels), generator=generator) < 0.5).view(-1, 1, 1, 1)
    return torch.where(chosen, soft, pixels)


def train_evaluator(
    images: np.ndarray,
    groups: Sequence[str],
    subgroups: Sequence[str],
    config: EvaluatorConfig = EvaluatorConfig(),
    *,
    progress: Progress | None = None,
) -> Evaluator:
    """Train the evaluator on real training renditions (uint8 N x H x W x 3) and their labels.

    Class-weighted cross-entropy for the groups (balanced accuracy is what is reported), light
    augmentation (shifts, flips, blur, pixel noise) so generated images with soft edges or small
    defects are still read by their content. Deterministic for a given config and data order.
    """
    if not len(images) == len(groups) == len(subgroups):
        raise ValueError("images, groups and subgroups must have the same length")
    group_names = sorted(set(groups))
    subgroup_names = sorted(set(subgroups))
    if len(group_names) < 2:
        raise ValueError("the evaluator needs at least two groups to tell apart")
    torch.manual_seed(config.seed)
    generator = torch.Generator().manual_seed(config.seed)
    pixels = to_evaluator_pixels(images, config.resolution)
    group_ids = torch.tensor([group_names.index(g) for g in groups])
    subgroup_ids = torch.tensor([subgroup_names.index(s) for s in subgroups])
    counts = torch.bincount(group_ids, minlength=len(group_names)).clamp(min=1).float()
    class_weights = (1.0 / counts) / (1.0 / counts).mean()

    net = EvaluatorNet(config, len(group_names), len(subgroup_names))
    batch_size = min(config.batch_size, len(pixels))
    batches_per_epoch = max(1, len(pixels) // batch_size)
    total = config.epochs * batches_per_epoch
    optimizer = torch.optim.AdamW(net.parameters(), config.learning_rate, weight_decay=config.weight_decay)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.learning_rate, total_steps=total)
    net.train()
    done = 0
    for _epoch in range(config.epochs):
        order = torch.randperm(len(pixels), generator=generator)
        for number in range(batches_per_epoch):
            chosen = order[number * batch_size:(number + 1) * batch_size]
            batch = _shifted(pixels[chosen], generator)
            if config.blur_sigma > 0:
                batch = _blurred(batch, generator, config.blur_sigma)
            if torch.rand(1, generator=generator).item() < 0.5:
                batch = batch.flip(3)
            noise_level = 0.1 * torch.rand(1, generator=generator).item()
            batch = batch + noise_level * torch.randn(batch.shape, generator=generator)
            group_logits, subgroup_logits = net(batch)
            loss = F.cross_entropy(group_logits, group_ids[chosen], weight=class_weights)
            loss = loss + config.subgroup_loss_weight * F.cross_entropy(subgroup_logits, subgroup_ids[chosen])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            done += 1
            if progress is not None:
                progress(done, total)
    training = {"images": len(pixels), "final_loss": float(loss.item()), "steps": total}
    return Evaluator(net, group_names, subgroup_names, config, training)


# ------------------------------------------------------------------------------- the metrics


def balanced_accuracy(predicted: np.ndarray, truth: np.ndarray) -> float:
    """Mean recall over the classes present in ``truth``."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    if predicted.shape != truth.shape or truth.size == 0:
        raise ValueError("predicted and truth must be non-empty and of the same shape")
    recalls = [float((predicted[truth == label] == label).mean()) for label in np.unique(truth)]
    return float(np.mean(recalls))


def balanced_accuracy_interval(predicted: np.ndarray, truth: np.ndarray, *, rounds: int = 2000,
                               seed: int = 0) -> tuple[float, float]:
    """95 % bootstrap interval of :func:`balanced_accuracy`, the images resampled within each class: how far
    the figure moves with which held-out prompts were drawn (a class of one image moves it by a class's
    whole weight)."""
    predicted, truth = np.asarray(predicted), np.asarray(truth)
    balanced_accuracy(predicted, truth)  # the same checks
    rng = np.random.default_rng(seed)
    hits = [(predicted[truth == label] == label).astype(float) for label in np.unique(truth)]
    estimates = np.mean([[rng.choice(row, size=len(row)).mean() for row in hits] for _ in range(rounds)], axis=1)
    return float(np.percentile(estimates, 2.5)), float(np.percentile(estimates, 97.5))


@dataclass(frozen=True)
class KidEstimate:
    mean: float
    ci95: tuple[float, float]
    """2.5 and 97.5 percentiles of the subset estimates: the spread of KID at ``subset_size``."""
    subset_size: int
    subsets: int

    def as_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "ci95": list(self.ci95), "subset_size": self.subset_size, "subsets": self.subsets}


def _polynomial_mmd2(a: np.ndarray, b: np.ndarray) -> float:
    """Unbiased MMD^2 with the cubic polynomial kernel k(x, y) = (x.y / d + 1)^3."""
    dimension = a.shape[1]
    k_aa = (a @ a.T / dimension + 1.0) ** 3
    k_bb = (b @ b.T / dimension + 1.0) ** 3
    k_ab = (a @ b.T / dimension + 1.0) ** 3
    m, n = len(a), len(b)
    return float((k_aa.sum() - np.trace(k_aa)) / (m * (m - 1)) + (k_bb.sum() - np.trace(k_bb)) / (n * (n - 1))
                 - 2.0 * k_ab.mean())


def kernel_inception_distance(a: np.ndarray, b: np.ndarray, *, subsets: int = 100, subset_size: int = 100,
                              seed: int = 0) -> KidEstimate:
    """KID between two feature sets, averaged over random subsets drawn without replacement."""
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError("KID needs at least two samples on each side")
    rng = np.random.default_rng(seed)
    values = np.array([
        _polynomial_mmd2(a[rng.choice(len(a), size, replace=False)], b[rng.choice(len(b), size, replace=False)])
        for _ in range(subsets)
    ])
    low, high = np.percentile(values, [2.5, 97.5])
    return KidEstimate(float(values.mean()), (float(low), float(high)), size, subsets)


def _kth_neighbour_radii(points: np.ndarray, k: int) -> np.ndarray:
    distances = ((points[:, None, :] - points[None, :, :]) ** 2).sum(-1)
    return np.sort(distances, axis=1)[:, min(k, len(points) - 1)]


def precision_recall(real: np.ndarray, generated: np.ndarray, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls in feature space.

    Precision: share of generated samples inside some real sample's k-NN ball; recall: share of
    real samples inside some generated sample's ball.
    """
    real_radii = _kth_neighbour_radii(real, k)
    generated_radii = _kth_neighbour_radii(generated, k)
    distances = ((real[:, None, :] - generated[None, :, :]) ** 2).sum(-1)
    precision = float((distances <= real_radii[:, None]).any(axis=0).mean())
    recall = float((distances <= generated_radii[None, :]).any(axis=1).mean())
    return precision, recall


# --------------------------------------------------------------------- generating and measuring


@dataclass(frozen=True)
class LabelledImages:
    """Real images (uint8 N x H x W x 3) with their captions and labels."""

    images: np.ndarray
    captions: tuple[str, ...]
    groups: tuple[str, ...]
    subgroups: tuple[str, ...]

    def __post_init__(self) -> None:
        if not len(self.images) == len(self.captions) == len(self.groups) == len(self.subgroups):
            raise ValueError("images, captions and labels must have the same length")

    def __len__(self) -> int:
        return len(self.images)

    @classmethod
    def tagged(cls, images: np.ndarray, captions: Sequence[str], tags: Sequence[Sequence[str]]) -> LabelledImages:
        """The images whose catalog tags name a group and a subgroup, labelled by them."""
        labels = [(tag_value(t, GROUP_TAG), tag_value(t, SUBGROUP_TAG)) for t in tags]
        kept = [i for i, (group, subgroup) in enumerate(labels) if group and subgroup]
        return cls(images[kept], tuple(captions[i] for i in kept), tuple(labels[i][0] for i in kept),
                   tuple(labels[i][1] for i in kept))

    def per_group(self, count: int | None, seed: int = 0) -> LabelledImages:
        """At most ``count`` images of each group (all when None), chosen in a seeded order, kept in order."""
        if count is None:
            return self
        order = list(range(len(self)))
        random.Random(seed).shuffle(order)
        taken: dict[str, int] = {}
        kept = []
        for index in order:
            group = self.groups[index]
            if taken.get(group, 0) < count:
                kept.append(index)
                taken[group] = taken.get(group, 0) + 1
        kept.sort()
        return LabelledImages(self.images[kept], tuple(self.captions[i] for i in kept),
                              tuple(self.groups[i] for i in kept), tuple(self.subgroups[i] for i in kept))


@dataclass(frozen=True)
class SamplingSettings:
    """How the measured images are generated: fixed, so runs compare."""

    num_inference_steps: int = 25
    guidance_scale: float | None = None
    """``None``: the model's serving guidance (:meth:`for_recipe`), so a model is measured as it is served.
    The best scale depends on the model: 9 for the demo preset's weights, 5 for the quality preset's
    (``benchmarks/results/quality_ablation.json``, ``quality_cpu.json``)."""
    seed: int = 0
    batch_size: int = 64

    def for_recipe(self, *recipes: dict[str, Any]) -> SamplingSettings:
        """These settings with the guidance filled in where none is set, as the model is served: from its
        recipes in drawing order (a pipeline's, then its adapters', :func:`recipes.serving_guidance`)."""
        if self.guidance_scale is not None:
            return self
        return SamplingSettings(**{**asdict(self), "guidance_scale": serving_guidance(*recipes)})


GROUP_TAG, SUBGROUP_TAG = "group:", "subgroup:"


def tag_value(tags: Sequence[str], prefix: str) -> str | None:
    """``group:flags`` -> ``flags`` for the first tag with ``prefix``; None when there is none."""
    return next((t.removeprefix(prefix) for t in tags if t.startswith(prefix)), None)


def labelled_renditions(records: Iterable[tuple[bytes, str, Sequence[str]]], *, resolution: int) -> LabelledImages:
    """(PNG bytes, caption, catalog tags) -> the records that carry a group and a subgroup, as uint8
    images at ``resolution`` (resized and centre-cropped as training sees them)."""
    transform = ImageTransform(resolution)
    records = list(records)
    images = [transform.to_uint8(Image.open(io.BytesIO(data))).permute(1, 2, 0).numpy() for data, _, _ in records]
    stacked = np.stack(images) if images else np.zeros((0, resolution, resolution, 3), dtype=np.uint8)
    return LabelledImages.tagged(stacked, [caption for _, caption, _ in records], [tags for _, _, tags in records])


def reference_sample(training: LabelledImages, heldout: LabelledImages, seed: int = 1) -> LabelledImages:
    """Real training images with the held-out set's group composition (KID's real-vs-real floor)."""
    rng = random.Random(seed)
    chosen = []
    for group in sorted(set(heldout.groups)):
        need = heldout.groups.count(group)
        pool = [i for i, g in enumerate(training.groups) if g == group]
        chosen += rng.sample(pool, min(need, len(pool)))
    chosen.sort()
    return LabelledImages(training.images[chosen], tuple(training.captions[i] for i in chosen),
                          tuple(training.groups[i] for i in chosen), tuple(training.subgroups[i] for i in chosen))


def group_ids(evaluator: Evaluator, names: Sequence[str], level: str = "group") -> np.ndarray:
    vocabulary = evaluator.groups if level == "group" else evaluator.subgroups
    return np.array([vocabulary.index(name) if name in vocabulary else -1 for name in names])


def group_recalls(evaluator: Evaluator, predicted: np.ndarray, truth: np.ndarray) -> dict[str, dict[str, float]]:
    """Per group: its recall and how many images it had, so a report says which groups a model cannot draw
    (a group of a few held-out images moves the balanced accuracy by a twelfth on its own)."""
    return {evaluator.groups[label]: {"recall": float((predicted[truth == label] == label).mean()),
                                      "images": int((truth == label).sum())}
            for label in np.unique(truth)}


def measure_images(evaluator: Evaluator, generated: np.ndarray, heldout: LabelledImages,
                   reference: LabelledImages, *, kid_subsets: int = 100, kid_subset_size: int = 100) -> dict[str, Any]:
    """All image metrics for ``generated[i]`` made from ``heldout.captions[i]``.

    ``reference`` is a real training sample with the held-out set's group composition (KID's floor).
    """
    if len(generated) != len(heldout):
        raise ValueError("one generated image per held-out caption is expected")
    truth = group_ids(evaluator, heldout.groups)
    sub_truth = group_ids(evaluator, heldout.subgroups, "subgroup")
    known = truth >= 0
    real = evaluator.predict(heldout.images)
    fake = evaluator.predict(generated)
    floor = evaluator.predict(reference.images)
    kid = kernel_inception_distance(fake.features, real.features, subsets=kid_subsets, subset_size=kid_subset_size)
    kid_floor = kernel_inception_distance(floor.features, real.features, subsets=kid_subsets,
                                          subset_size=kid_subset_size)
    precision, recall = precision_recall(real.features, fake.features)
    sub_known = sub_truth >= 0
    return {
        "images": len(generated),
        "classes": len(np.unique(truth[known])),
        "real_balanced_acc": balanced_accuracy(real.groups[known], truth[known]),
        "gen_balanced_acc": balanced_accuracy(fake.groups[known], truth[known]),
        "gen_balanced_acc_ci95": list(balanced_accuracy_interval(fake.groups[known], truth[known])),
        "real_balanced_acc_ci95": list(balanced_accuracy_interval(real.groups[known], truth[known])),
        "chance_balanced": 1.0 / len(np.unique(truth[known])),
        "real_subgroup_balanced_acc": balanced_accuracy(real.subgroups[sub_known], sub_truth[sub_known]),
        "gen_subgroup_balanced_acc": balanced_accuracy(fake.subgroups[sub_known], sub_truth[sub_known]),
        "chance_subgroup_balanced": 1.0 / len(np.unique(sub_truth[sub_known])),
        "gen_group_recall": group_recalls(evaluator, fake.groups[known], truth[known]),
        "real_group_recall": group_recalls(evaluator, real.groups[known], truth[known]),
        "kid": kid.mean,
        "kid_ci95": list(kid.ci95),
        "kid_real_floor": kid_floor.mean,
        "kid_real_floor_ci95": list(kid_floor.ci95),
        "precision": precision,
        "recall": recall,
    }


@torch.no_grad()
def generate_images(pipeline: Any, prompts: Sequence[str], settings: SamplingSettings, *, resolution: int,
                    progress: Progress | None = None) -> np.ndarray:
    """One image per prompt; image ``i`` from its own generator seeded ``seed + i`` (batch-size free)."""
    if settings.guidance_scale is None:
        raise ValueError("the guidance is not set: resolve it with SamplingSettings.for_recipe(the model's recipe)")
    pipeline.set_progress_bar_config(disable=True)
    images = []
    for start in range(0, len(prompts), settings.batch_size):
        chunk = list(prompts[start:start + settings.batch_size])
        generators = [torch.Generator().manual_seed(settings.seed + start + offset) for offset in range(len(chunk))]
        output = pipeline(chunk, height=resolution, width=resolution, num_inference_steps=settings.num_inference_steps,
                          guidance_scale=settings.guidance_scale, generator=generators, output_type="np",
                          **pipeline_call_kwargs(pipeline))
        images.append(np.clip(np.round(np.asarray(output.images) * 255.0), 0, 255).astype(np.uint8))
        if progress is not None:
            progress(min(start + len(chunk), len(prompts)), len(prompts))
    return np.concatenate(images) if images else np.zeros((0, resolution, resolution, 3), dtype=np.uint8)


HELDOUT_LOSS_TIMESTEPS = (50, 200, 400, 600, 800, 950)


@torch.no_grad()
def heldout_diffusion_loss(pipeline: Any, heldout: LabelledImages, *, resolution: int,
                           timesteps: Sequence[int] = HELDOUT_LOSS_TIMESTEPS, seed: int = 0,
                           batch_size: int = 64) -> float:
    """Mean epsilon-prediction MSE on held-out images at fixed timesteps with fixed noise.

    The model's output (v, epsilon or sample prediction) is converted to predicted noise first,
    so models with different parameterisations on the same noise schedule compare directly.
    Latent models are measured in their latent space (VAE mean, no sampling).
    """
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    alphas_cumprod = scheduler.alphas_cumprod.double()
    prediction_type = scheduler.config.prediction_type
    style = PromptStyle.for_pipeline_class(type(pipeline).__name__)
    vae = getattr(pipeline, "vae", None)
    first_parameter = next(pipeline.unet.parameters())
    device, dtype = first_parameter.device, first_parameter.dtype
    channels = pipeline.unet.config.in_channels
    total, count = 0.0, 0
    generator = torch.Generator().manual_seed(seed)
    for start in range(0, len(heldout), batch_size):
        pixels = to_evaluator_pixels(heldout.images[start:start + batch_size], resolution).to(device)
        clean = pixels
        if vae is not None:
            clean = vae.encode(pixels.to(vae.dtype)).latent_dist.mean.float() * vae.config.scaling_factor
        tokens = tokenize_prompts(pipeline.tokenizer, heldout.captions[start:start + batch_size], style)
        embeddings = encode_prompts(pipeline.text_encoder, tokens, style, device)
        for timestep in timesteps:
            noise = torch.randn(clean.shape, generator=generator).to(device)
            t = torch.full((len(clean),), int(timestep), dtype=torch.long, device=device)
            noisy = scheduler.add_noise(clean, noise, t)
            output = pipeline.unet(noisy.to(dtype), t, encoder_hidden_states=embeddings).sample.float()
            output = output[:, :channels]
            alpha = alphas_cumprod[int(timestep)]
            a, s = float(alpha.sqrt()), float((1 - alpha).sqrt())
            if prediction_type == "epsilon":
                predicted_noise = output
            elif prediction_type == "v_prediction":
                predicted_noise = s * noisy + a * output
            else:
                predicted_noise = (noisy - a * output) / s
            total += float(F.mse_loss(predicted_noise, noise, reduction="sum"))
            count += noise.numel()
    return total / count


# ---------------------------------------------------------------------------- contact sheets


def contact_sheet(rows: Sequence[tuple[str, Sequence[np.ndarray]]], *, delivered_size: int = 256,
                  native_scale: int = 1) -> Image.Image:
    """One row per prompt: its caption, the seeds' images at native size, then at delivered size.

    Delivered images are nearest-neighbour enlargements (what a customer receives without a
    super-resolution stage); native images are shown pixel for pixel (``native_scale`` 1).
    """
    if not rows or not rows[0][1]:
        raise ValueError("a contact sheet needs at least one prompt with one image")
    seeds = len(rows[0][1])
    native = rows[0][1][0].shape[0] * native_scale
    label_height, gap = 18, 8
    width = gap + seeds * (native + gap) + seeds * (delivered_size + gap)
    height = len(rows) * (label_height + delivered_size + gap) + gap
    sheet = Image.new("RGB", (width, height), (240, 240, 240))
    draw = ImageDraw.Draw(sheet)
    for row_number, (prompt, images) in enumerate(rows):
        top = gap + row_number * (label_height + delivered_size + gap)
        draw.text((gap, top + 2), prompt[:120], fill=(20, 20, 20))
        left = gap
        for image in images:
            tile = Image.fromarray(image).resize((native, native), Image.Resampling.NEAREST)
            sheet.paste(tile, (left, top + label_height))
            left += native + gap
        for image in images:
            tile = Image.fromarray(image).resize((delivered_size, delivered_size), Image.Resampling.NEAREST)
            sheet.paste(tile, (left, top + label_height))
            left += delivered_size + gap
    return sheet


SHEET_PROMPTS = 8
SHEET_SEEDS = 4


def sheet_prompt_indices(heldout: LabelledImages, count: int = SHEET_PROMPTS) -> list[int]:
    """Held-out prompts for the contact sheet: the first of each group in turn, so every group shows."""
    by_group: dict[str, list[int]] = {}
    for index, group in enumerate(heldout.groups):
        by_group.setdefault(group, []).append(index)
    chosen: list[int] = []
    depth = 0
    while len(chosen) < min(count, len(heldout)):
        added = False
        for group in sorted(by_group):
            if depth < len(by_group[group]) and len(chosen) < count:
                chosen.append(by_group[group][depth])
                added = True
        if not added:
            break
        depth += 1
    return chosen


def measure_pipeline(pipeline: Any, evaluator: Evaluator, heldout: LabelledImages, reference: LabelledImages, *,
                     resolution: int, sampling: SamplingSettings = SamplingSettings(), delivered_size: int = 256,
                     progress: Progress | None = None) -> tuple[dict[str, Any], Image.Image]:
    """Every metric of one model, and its contact sheet: what benchmarks and training jobs record.

    ``progress(done, total)`` counts generated images (the held-out captions, then the sheet's).
    """
    sheet_rows = sheet_prompt_indices(heldout)
    total = len(heldout) + len(sheet_rows) * SHEET_SEEDS

    def generation_progress(offset: int) -> Progress | None:
        if progress is None:
            return None
        return lambda done, _total: progress(offset + done, total)

    started = time.perf_counter()
    generated = generate_images(pipeline, heldout.captions, sampling, resolution=resolution,
                                progress=generation_progress(0))
    generation_seconds = time.perf_counter() - started
    metrics = measure_images(evaluator, generated, heldout, reference)
    metrics["heldout_loss"] = heldout_diffusion_loss(pipeline, heldout, resolution=resolution)
    metrics["sampling"] = asdict(sampling)
    metrics["seconds_per_image"] = generation_seconds / max(1, len(heldout))
    rows = []
    for number, index in enumerate(sheet_rows):
        prompt = heldout.captions[index]
        seeds = SamplingSettings(**{**asdict(sampling), "seed": sampling.seed + 1000 * (number + 1)})
        images = generate_images(pipeline, [prompt] * SHEET_SEEDS, seeds, resolution=resolution,
                                 progress=generation_progress(len(heldout) + number * SHEET_SEEDS))
        rows.append((prompt, list(images)))
    return metrics, contact_sheet(rows, delivered_size=delivered_size)


def round_floats(value: Any, digits: int = 4) -> Any:
    """Reports keep four significant decimals; NaN stays NaN."""
    if isinstance(value, float):
        return value if math.isnan(value) else round(value, digits)
    if isinstance(value, dict):
        return {key: round_floats(item, digits) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [round_floats(item, digits) for item in value]
    return value


__all__ = [
    "Evaluator",
    "EvaluatorConfig",
    "EvaluatorNet",
    "KidEstimate",
    "LabelledImages",
    "SamplingSettings",
    "balanced_accuracy",
    "balanced_accuracy_interval",
    "contact_sheet",
    "evaluator_sha256",
    "generate_images",
    "group_ids",
    "group_recalls",
    "heldout_diffusion_loss",
    "kernel_inception_distance",
    "measure_images",
    "measure_pipeline",
    "precision_recall",
    "train_evaluator",
]
