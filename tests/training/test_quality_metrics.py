"""The image-quality metrics: they must tell a useless classifier, a copying generator and noise apart."""

from __future__ import annotations

import dataclasses
import io
import json
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from diffusers import DDPMScheduler
from PIL import Image, ImageDraw, ImageFilter

from training.quality import (
    Evaluator,
    EvaluatorConfig,
    EvaluatorNet,
    LabelledImages,
    _blurred,
    balanced_accuracy,
    balanced_accuracy_interval,
    contact_sheet,
    evaluator_sha256,
    heldout_diffusion_loss,
    kernel_inception_distance,
    labelled_renditions,
    measure_images,
    precision_recall,
    reference_sample,
    tag_value,
    train_evaluator,
)
from training.text_encoder import TextEncoderShape, build_text_encoder, train_caption_tokenizer

SHAPE_GROUPS = ("circle", "square", "triangle")
TINY_EVALUATOR = EvaluatorConfig(width=16, feature_size=32, epochs=10, batch_size=32, learning_rate=5e-3,
                                 blur_sigma=0.0)
"""Crisp toy shapes: the metric tests below need an evaluator, not its blur robustness (tested on its own)."""


def _shape_image(shape: str, rng: random.Random, size: int = 32) -> np.ndarray:
    """A dark shape of random size and place on white, like a small emoji."""
    image = Image.new("RGB", (size, size), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    half = rng.randint(7, 12)
    cx, cy = rng.randint(half, size - half), rng.randint(half, size - half)
    colour = tuple(rng.randint(0, 120) for _ in range(3))
    box = (cx - half, cy - half, cx + half, cy + half)
    if shape == "circle":
        draw.ellipse(box, fill=colour)
    elif shape == "square":
        draw.rectangle(box, fill=colour)
    else:
        draw.polygon([(cx, cy - half), (cx + half, cy + half), (cx - half, cy + half)], fill=colour)
    return np.asarray(image)


def _labelled(count: int, seed: int) -> LabelledImages:
    rng = random.Random(seed)
    groups = [SHAPE_GROUPS[i % 3] for i in range(count)]
    images = np.stack([_shape_image(g, rng) for g in groups])
    subgroups = [f"{g}-{i % 2}" for i, g in enumerate(groups)]
    return LabelledImages(images, tuple(f"a {g}" for g in groups), tuple(groups), tuple(subgroups))


@pytest.fixture(scope="module")
def shapes():
    return {"train": _labelled(240, 1), "heldout": _labelled(45, 2), "reference": _labelled(45, 3)}


@pytest.fixture(scope="module")
def evaluator(shapes):
    train = shapes["train"]
    return train_evaluator(train.images, train.groups, train.subgroups, TINY_EVALUATOR)


def test_balanced_accuracy_is_the_mean_recall_over_classes():
    truth = np.array([0, 0, 0, 0, 0, 0, 1, 2])
    assert balanced_accuracy(np.zeros(8, dtype=int), truth) == pytest.approx(1 / 3)  # 6 of 8 right, still chance
    assert balanced_accuracy(truth.copy(), truth) == 1.0
    assert balanced_accuracy(np.array([0, 0, 0, 1, 1, 1, 1, 2]), truth) == pytest.approx((0.5 + 1 + 1) / 3)
    with pytest.raises(ValueError):
        balanced_accuracy(np.array([]), np.array([]))


def test_a_classifier_that_cannot_tell_classes_apart_scores_chance(shapes, evaluator):
    blind = EvaluatorNet(TINY_EVALUATOR, 3, 6)
    with torch.no_grad():
        for module in blind.modules():
            if isinstance(module, torch.nn.Linear):
                module.weight.zero_()
                module.bias.zero_()
        blind.group_head.bias[1] = 1.0  # always "square", whatever it sees
    blind_evaluator = Evaluator(blind, evaluator.groups, evaluator.subgroups, TINY_EVALUATOR)
    report = measure_images(blind_evaluator, shapes["heldout"].images, shapes["heldout"], shapes["reference"],
                            kid_subsets=10, kid_subset_size=20)
    assert report["chance_balanced"] == pytest.approx(1 / 3)
    assert report["real_balanced_acc"] == pytest.approx(1 / 3)
    assert report["gen_balanced_acc"] == pytest.approx(1 / 3)


def test_copies_of_heldout_images_score_the_ceiling_and_noise_scores_chance(shapes, evaluator):
    heldout, reference = shapes["heldout"], shapes["reference"]
    copied = measure_images(evaluator, heldout.images.copy(), heldout, reference, kid_subsets=20, kid_subset_size=30)
    assert copied["real_balanced_acc"] > 0.8, "the evaluator must read the shapes it was trained on"
    assert copied["gen_balanced_acc"] == pytest.approx(copied["real_balanced_acc"])
    assert copied["precision"] == 1.0 and copied["recall"] == 1.0
    as_real = measure_images(evaluator, reference.images, heldout, reference, kid_subsets=20, kid_subset_size=30)
    assert as_real["kid"] == pytest.approx(as_real["kid_real_floor"]), "real images of the same groups: the floor"

    noise = np.random.default_rng(0).integers(0, 256, heldout.images.shape, dtype=np.uint8)
    noisy = measure_images(evaluator, noise, heldout, reference, kid_subsets=20, kid_subset_size=30)
    assert noisy["gen_balanced_acc"] < 0.6
    assert noisy["kid_ci95"][0] > as_real["kid_real_floor_ci95"][1], "noise is far outside the real spread"
    assert noisy["precision"] < 0.2


def test_kid_is_zero_on_average_for_one_distribution_and_grows_with_a_shift():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 16)), rng.normal(size=(300, 16))
    same = kernel_inception_distance(a, b, subsets=50, subset_size=100)
    shifted = kernel_inception_distance(a, b + 1.0, subsets=50, subset_size=100)
    assert same.ci95[0] < 0 < same.ci95[1]
    assert shifted.mean > 0 and shifted.ci95[0] > same.ci95[1]
    precision, recall = precision_recall(a, b)
    assert precision > 0.6 and recall > 0.6
    assert precision_recall(a, b + 10.0) == (0.0, 0.0)


def test_saved_evaluator_loads_with_the_same_digest_and_predictions(tmp_path, shapes, evaluator):
    digest = evaluator.save(tmp_path / "evaluator")
    assert digest == evaluator_sha256(tmp_path / "evaluator")
    loaded = Evaluator.load(tmp_path / "evaluator")
    assert loaded.groups == evaluator.groups and loaded.config == evaluator.config
    before = evaluator.predict(shapes["heldout"].images)
    after = loaded.predict(shapes["heldout"].images)
    assert np.array_equal(before.groups, after.groups)
    assert np.allclose(before.features, after.features)
    assert loaded.save(tmp_path / "again") == digest


def test_training_the_evaluator_is_deterministic(shapes):
    train = shapes["train"]
    config = EvaluatorConfig(width=8, feature_size=16, epochs=1, batch_size=50)
    first = train_evaluator(train.images, train.groups, train.subgroups, config)
    second = train_evaluator(train.images, train.groups, train.subgroups, config)
    for (name, a), (_, b) in zip(first.net.state_dict().items(), second.net.state_dict().items()):
        assert torch.equal(a, b), name


def test_blur_augmentation_softens_about_half_the_batch_and_keeps_white_white():
    batch = torch.ones(256, 3, 32, 32)
    batch[:, :, 12:20, 12:20] = -1.0  # a dark square on white
    draws = [_blurred(batch, torch.Generator().manual_seed(seed), 1.5) for seed in range(8)]
    shares = [float(((out - batch).abs().flatten(1).amax(1) > 1e-3).float().mean()) for out in draws]
    assert sum(share > 0 for share in shares) >= 6  # widths under 0.1 px are skipped: rare
    out = draws[shares.index(max(shares))]
    changed = (out - batch).abs().flatten(1).amax(1) > 1e-3
    assert all(share == 0 or 0.35 < share < 0.65 for share in shares)
    assert torch.equal(out[~changed], batch[~changed])
    assert torch.equal(out[:, :, :6, :6], batch[:, :, :6, :6])  # far from the square the background stays white
    inside_edge = out[changed][:, :, 16, 12]
    assert bool((inside_edge > -1.0).all())  # the square's edge went soft
    assert out.min() >= -1.0 and out.max() <= 1.0
    assert torch.equal(_blurred(batch, torch.Generator().manual_seed(3), 0.0), batch)


def test_an_evaluator_trained_with_blur_reads_blurred_shapes_and_still_not_noise(shapes):
    train, heldout, reference = shapes["train"], shapes["heldout"], shapes["reference"]
    config = EvaluatorConfig(width=16, feature_size=32, epochs=10, batch_size=32, learning_rate=5e-3, blur_sigma=1.2)
    robust = train_evaluator(train.images, train.groups, train.subgroups, config)
    soft = np.stack([np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(1.0))) for image in heldout.images])
    blurred = measure_images(robust, soft, heldout, reference, kid_subsets=20, kid_subset_size=30)
    assert blurred["gen_balanced_acc"] > 0.9
    noise = np.random.default_rng(0).integers(0, 256, heldout.images.shape, dtype=np.uint8)
    assert measure_images(robust, noise, heldout, reference, kid_subsets=20, kid_subset_size=30)["gen_balanced_acc"] < 0.6


def test_an_evaluator_saved_before_blur_augmentation_loads_as_trained_without_it(tmp_path, evaluator):
    folder = tmp_path / "old"
    blurred_config = dataclasses.replace(evaluator.config, blur_sigma=1.2)
    Evaluator(evaluator.net, evaluator.groups, evaluator.subgroups, blurred_config, evaluator.training).save(folder)
    described = json.loads((folder / "evaluator.json").read_text())
    del described["config"]["blur_sigma"]
    (folder / "evaluator.json").write_text(json.dumps(described))
    assert Evaluator.load(folder).config.blur_sigma == 0.0
    assert EvaluatorConfig().blur_sigma > 0  # today's default trains with it


class _OracleUnet(torch.nn.Module):
    """Predicts the exact v target: it knows the clean images the loss is measured on."""

    def __init__(self, clean: torch.Tensor, scheduler: DDPMScheduler):
        super().__init__()
        self.clean, self.scheduler = clean, scheduler
        self.config = SimpleNamespace(in_channels=3)
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(self, noisy, t, encoder_hidden_states):
        alpha = self.scheduler.alphas_cumprod[t].float().reshape(-1, 1, 1, 1)
        noise = (noisy - alpha.sqrt() * self.clean) / (1 - alpha).sqrt()
        velocity = alpha.sqrt() * noise - (1 - alpha).sqrt() * self.clean
        return SimpleNamespace(sample=torch.cat([velocity, torch.zeros_like(velocity)], dim=1))


def test_heldout_loss_is_zero_for_an_oracle_and_repeatable_for_a_model(shapes):
    heldout = LabelledImages(shapes["heldout"].images[:6], shapes["heldout"].captions[:6],
                             shapes["heldout"].groups[:6], shapes["heldout"].subgroups[:6])
    scheduler = DDPMScheduler(beta_schedule="squaredcos_cap_v2", prediction_type="v_prediction",
                              variance_type="learned_range")
    tokenizer = train_caption_tokenizer(list(heldout.captions), 600)
    text_encoder = build_text_encoder(tokenizer, TextEncoderShape(16, 32, 1, 2))
    clean = torch.from_numpy(heldout.images).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    oracle = SimpleNamespace(scheduler=scheduler, tokenizer=tokenizer, text_encoder=text_encoder,
                             unet=_OracleUnet(clean, scheduler), vae=None)
    loss = heldout_diffusion_loss(_IFLike(oracle), heldout, resolution=32, batch_size=6)
    assert loss == pytest.approx(0.0, abs=1e-8)


class _IFLike:
    """Carries a pipeline's parts under a class name the prompt-style rule reads as IF."""

    def __init__(self, parts):
        self.__dict__.update(vars(parts))


_IFLike.__name__ = "IFPipeline"


def test_contact_sheet_lays_out_prompts_by_seeds(shapes):
    images = list(shapes["heldout"].images[:6])
    sheet = contact_sheet([("a circle", images[:3]), ("a square", images[3:6])], delivered_size=64)
    assert sheet.size == (8 + 3 * (32 + 8) + 3 * (64 + 8), 2 * (18 + 64 + 8) + 8)
    with pytest.raises(ValueError):
        contact_sheet([])


def test_renditions_are_labelled_by_their_catalog_tags_and_the_floor_sample_matches_groups(shapes):
    def png(colour) -> bytes:
        buffer = io.BytesIO()
        Image.new("RGB", (72, 64), colour).save(buffer, format="PNG")
        return buffer.getvalue()

    records = [(png((255, 0, 0)), "red", ("group:flags", "subgroup:flag", "family:1F1E6")),
               (png((0, 0, 255)), "blue", ("group:symbols", "subgroup:geometric")),
               (png((0, 255, 0)), "no subgroup", ("group:symbols",)),
               (png((9, 9, 9)), "untagged", ())]
    labelled = labelled_renditions(records, resolution=16)
    assert labelled.captions == ("red", "blue") and labelled.groups == ("flags", "symbols")
    assert labelled.subgroups == ("flag", "geometric")
    assert labelled.images.shape == (2, 16, 16, 3) and labelled.images.dtype == np.uint8
    assert tuple(labelled.images[0, 8, 8]) == (255, 0, 0)
    assert tag_value(("group:a", "group:b"), "group:") == "a" and tag_value((), "group:") is None

    training, heldout = shapes["train"], shapes["heldout"]
    floor = reference_sample(training, heldout)
    assert sorted(floor.groups) == sorted(heldout.groups)
    assert reference_sample(training, heldout).captions == floor.captions  # seeded


def test_per_group_keeps_at_most_count_of_each_group_in_order(shapes):
    heldout = shapes["heldout"]
    few = heldout.per_group(4)
    assert sorted(set(few.groups)) == sorted(set(heldout.groups)) and len(few) == 12
    assert all(few.groups.count(g) == 4 for g in set(few.groups))
    rows = [image.tobytes() for image in heldout.images]
    positions = [rows.index(image.tobytes()) for image in few.images]
    assert positions == sorted(positions) and len(set(positions)) == len(few)
    assert few.per_group(4).captions == few.captions and heldout.per_group(None) is heldout
    assert heldout.per_group(4, seed=1).images.tobytes() != few.images.tobytes()


def test_measured_images_use_the_guidance_the_model_is_served_at():
    from training.quality import SamplingSettings, generate_images

    unset = SamplingSettings(num_inference_steps=7)
    assert unset.for_recipe({"serving_guidance_scale": 5.0}) == SamplingSettings(num_inference_steps=7,
                                                                                   guidance_scale=5.0)
    assert unset.for_recipe({}).guidance_scale == 9.0
    # a custom model is measured as served: its adapter's own scale over its base's
    assert unset.for_recipe({"serving_guidance_scale": 5.0}, {"serving_guidance_scale": 6.5}).guidance_scale == 6.5
    chosen = SamplingSettings(guidance_scale=3.0)
    assert chosen.for_recipe({"serving_guidance_scale": 5.0}) is chosen  # an explicit scale is kept
    with pytest.raises(ValueError, match="for_recipe"):
        generate_images(object(), ["a prompt"], unset, resolution=8)


def test_benchmarks_use_the_committed_evaluator_of_a_split_before_training_one(tmp_path, shapes, evaluator):
    """Sessions run on different CPUs: a committed evaluator keeps their figures comparable."""
    from benchmarks.quality_common import evaluator_folder_name, evaluator_for

    train = shapes["train"]
    root = "ab" * 32
    frozen = tmp_path / "frozen"
    digest = evaluator.save(frozen / evaluator_folder_name(root, TINY_EVALUATOR))
    used, used_digest, seconds = evaluator_for(tmp_path / "work", train, root, TINY_EVALUATOR, frozen=frozen)
    assert (used_digest, seconds) == (digest, 0.0)
    assert not (tmp_path / "work").exists()
    assert np.array_equal(used.predict(shapes["heldout"].images).groups, evaluator.predict(shapes["heldout"].images).groups)

    other_split = "cd" * 32  # no committed evaluator: trained once under the work folder, then reused
    _, trained_digest, trained_seconds = evaluator_for(tmp_path / "work", train, other_split, TINY_EVALUATOR,
                                                       frozen=frozen)
    _, reused_digest, reused_seconds = evaluator_for(tmp_path / "work", train, other_split, TINY_EVALUATOR,
                                                     frozen=frozen)
    assert trained_seconds > 0 and reused_seconds == 0.0 and reused_digest == trained_digest


def test_a_split_is_named_and_ordered_by_its_content_not_by_its_database_ids():
    """Asset ids are random per database: the committed evaluator must be found, and the images trained in
    the same order, on every machine that onboards the same catalog."""
    from benchmarks.quality_common import in_content_order, split_content_sha256

    def items(ids):
        return [{"id": asset_id, "sha256": sha, "caption": caption, "tags": ("group:flags",)}
                for asset_id, (sha, caption) in zip(ids, [("c" * 64, "flag: Chad"), ("a" * 64, "grinning face"),
                                                           ("b" * 64, "red heart")], strict=True)]

    here, there = items(["3", "1", "2"]), items(["9", "8", "7"])
    assert split_content_sha256(here) == split_content_sha256(list(reversed(there)))
    assert [i["sha256"] for i in in_content_order(here)] == [i["sha256"] for i in in_content_order(there)] == [
        "a" * 64, "b" * 64, "c" * 64]
    recaptioned = [dict(item, caption="a heart") if item["caption"] == "red heart" else item for item in here]
    assert split_content_sha256(recaptioned) != split_content_sha256(here)


def test_the_balanced_accuracy_interval_holds_the_estimate_and_narrows_with_more_images():
    rng = np.random.default_rng(0)
    assert balanced_accuracy_interval(np.arange(3), np.arange(3)) == (1.0, 1.0)  # nothing to resample differently

    def interval(per_class: int) -> tuple[float, float]:
        truth = np.repeat(np.arange(4), per_class)
        predicted = np.where(rng.random(truth.size) < 0.5, truth, (truth + 1) % 4)  # about half right
        low, high = balanced_accuracy_interval(predicted, truth)
        assert low <= balanced_accuracy(predicted, truth) <= high
        return low, high

    few, many = interval(8), interval(400)
    assert few[1] - few[0] > 2 * (many[1] - many[0])
    assert 0.4 < many[0] < many[1] < 0.6
    with pytest.raises(ValueError):
        balanced_accuracy_interval(np.arange(2), np.arange(3))
