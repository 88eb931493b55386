"""The base recipe's pre-trained, frozen text encoder; caption forms; training in measured stretches."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from diffusers import DiffusionPipeline, DPMSolverMultistepScheduler
from safetensors.torch import load_file

from recipes import TextPretraining
from tests.support.training import Crash, assert_same_weights, crash_at
from training.data import TrainingExample, caption_for_position, caption_forms, caption_with_tags
from training.engine import DiffusionTrainer, train
from training.synthetic import shape_examples

PRETRAINING = TextPretraining(epochs=2, batch_size=4, image_width=8)


@pytest.fixture(scope="module")
def tagged_examples():
    examples = shape_examples(8, size=32, seed=3)
    return [TrainingExample(e.example_id, e.load_image, e.caption,
                            ("group:shapes", f"subgroup:{e.caption.split()[2]}", "geometry")) for e in examples]


def frozen_text_recipe(recipes, **overrides):
    settings = {"train_text_encoder": False, "text_pretraining": PRETRAINING, "caption_mode": "caption_or_tags"}
    settings.update(overrides)
    return recipes.base(**settings)


def test_caption_forms_add_catalog_levels_and_tags():
    example = TrainingExample("x", lambda: None, "grinning face",
                              ("group:smileys-emotion", "subgroup:face-smiling", "family:1F600", "smile", "grinning face"))
    assert caption_forms(example, "caption") == ("grinning face",)
    assert caption_forms(example, "caption_or_tags") == (
        "grinning face", "grinning face, face smiling, smileys emotion, smile")
    assert caption_with_tags("plain", ()) == "plain"
    untagged = TrainingExample("y", lambda: None, "plain")
    assert caption_forms(untagged, "caption_or_tags") == ("plain",)
    chosen = [caption_for_position(example, "caption_or_tags", 0, p) for p in range(200)]
    assert chosen == [caption_for_position(example, "caption_or_tags", 0, p) for p in range(200)]
    assert 60 < chosen.count("grinning face") < 140, "both forms are used, about half each"
    with pytest.raises(ValueError):
        caption_forms(example, "tags_only")


def test_pretrained_text_encoder_is_frozen_gated_and_recorded(tmp_path, recipes, tagged_examples):
    gated: list[list[str]] = []
    stages: list[tuple[str, int, int]] = []
    result = train(tmp_path / "run", frozen_text_recipe(recipes), tagged_examples,
                   before_batch=lambda ids: gated.append(list(ids)),
                   stage_progress=lambda stage, done, total: stages.append((stage, done, total)))
    all_ids = sorted(e.example_id for e in tagged_examples)
    assert sorted(i for batch in gated[:2] for i in batch) == all_ids, "every image is gated before pre-training"
    assert stages[-1] == ("text_pretraining", 4, 4)
    origin = result.text_encoder_origin
    assert origin["trained_jointly_with_unet"] is False
    assert origin["pretraining"]["pairs"] == len(tagged_examples) and origin["pretraining"]["steps"] == 4
    assert origin["caption_count"] == 16, "the tokenizer learnt both caption forms of every example"

    # The saved text encoder is the pre-trained one, untouched by the UNet's training.
    saved = load_file(result.model_path / "text_encoder" / "model.safetensors")
    pretrained = load_file(tmp_path / "run" / "state" / "pretrained_text_encoder.safetensors")
    for key, value in pretrained.items():
        torch.testing.assert_close(saved[key], value, rtol=0, atol=0)
    pipeline = DiffusionPipeline.from_pretrained(str(result.model_path))
    assert type(pipeline.scheduler).__name__ == "DDPMScheduler", "the default sampler stays DDPM"


def test_resume_reuses_the_pretrained_encoder_and_matches_an_uninterrupted_run(tmp_path, recipes, tagged_examples):
    recipe = frozen_text_recipe(recipes, max_train_steps=6, checkpoint_every=2, use_ema=True)
    straight = train(tmp_path / "straight", recipe, tagged_examples)
    with pytest.raises(Crash):
        train(tmp_path / "crashed", recipe, tagged_examples, progress=crash_at(3))
    stages: list[str] = []
    resumed = train(tmp_path / "crashed", recipe, tagged_examples, resume_from="latest",
                    stage_progress=lambda stage, *_: stages.append(stage))
    assert stages == [], "a resumed run loads the saved text encoder instead of pre-training again"
    assert resumed.resumed_from_step == 2
    assert_same_weights(straight, resumed)


def test_training_in_measured_stretches_gives_the_same_weights(tmp_path, recipes, pixel_examples):
    recipe = recipes.base(max_train_steps=6, use_ema=True)
    straight = train(tmp_path / "straight", recipe, pixel_examples)
    trainer = DiffusionTrainer(tmp_path / "stretches", recipe, pixel_examples)
    try:
        trainer.prepare()
        for stop in (2, 4):
            trainer.fit(until_step=stop)
            assert trainer.global_step == stop
            with trainer.current_pipeline() as pipeline:  # a measurement renders here; training must not notice
                pipeline(["a red circle"], height=32, width=32, num_inference_steps=2, output_type="np",
                         clean_caption=False, generator=torch.Generator().manual_seed(stop))
        trainer.fit()
        stretched = trainer.export()
    finally:
        trainer.close()
    assert_same_weights(straight, stretched)
    assert json.loads((tmp_path / "stretches" / "recipe.json").read_text())["max_train_steps"] == 6


def test_dpm_solver_default_sampler_renders_clean_pixels(tmp_path, recipes, pixel_examples):
    shape = dataclasses.replace(recipes.base().model_shape, default_sampler="dpmsolver++")
    result = train(tmp_path / "run", recipes.base(model_shape=shape), pixel_examples)
    pipeline = DiffusionPipeline.from_pretrained(str(result.model_path))
    assert isinstance(pipeline.scheduler, DPMSolverMultistepScheduler)
    assert pipeline.scheduler.config.thresholding and pipeline.scheduler.config.variance_type is None
    # sampling starts from pure noise at the last training timestep, not at t=950 where the image still shows
    pipeline.scheduler.set_timesteps(25)
    assert int(pipeline.scheduler.timesteps[0]) == pipeline.scheduler.config.num_train_timesteps - 1
    output = pipeline(["a red circle"], height=32, width=32, num_inference_steps=4, guidance_scale=3.0,
                      output_type="np", clean_caption=False, generator=torch.Generator().manual_seed(0))
    assert output.images.shape == (1, 32, 32, 3) and 0.0 <= output.images.min() <= output.images.max() <= 1.0
