"""The upscaler stage: its recipe's rules, its condition made as the served pipeline makes it, and a
trained stage that loads and enlarges as a cascade after its base."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from foundry.errors import InvalidInput
from foundry.generation.policy import capabilities_of, cascade_capabilities
from recipes import BaseModelShape, Recipe, upscaler_recipe
from training.engine import DiffusionTrainer, train
from training.pipelines import CASCADE_FILE, Cascade, load_cascade
from training.synthetic import shape_examples

CONV_SHAPE = BaseModelShape(unet_block_out_channels=(16, 32), unet_down_block_types=("DownBlock2D", "DownBlock2D"),
                            unet_norm_num_groups=8)


@pytest.fixture(scope="module")
def examples():
    return shape_examples(6, size=64, seed=4)


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory, recipes, examples):
    """A two-step base model at 16 px: what the upscaler follows."""
    return train(tmp_path_factory.mktemp("base"), recipes.base(resolution=16, max_train_steps=2), examples).model_path


def tiny_upscaler(base, **overrides) -> Recipe:
    settings = {"model_shape": CONV_SHAPE, "resolution": 64, "upscale_from": 16, "train_crop": 32,
                "train_batch_size": 3, "max_train_steps": 2, "lr_warmup_steps": 0, "checkpoint_every": 0}
    return upscaler_recipe(str(base), **{**settings, **overrides})


@pytest.mark.parametrize("change, message", [
    ({"model_shape": BaseModelShape(unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"))},
     "convolutional"),
    ({"upscale_from": 24}, "proper divisor"),
    ({"upscale_from": 64}, "proper divisor"),
    ({"train_crop": 96}, "train_crop"),
    ({"train_crop": 36}, "train_crop"),
    ({"serving_noise_level": 300}, "serving_noise_level"),
    ({"train_text_encoder": True}, "frozen text encoder"),
])
def test_an_upscaler_recipe_that_cannot_work_is_refused(change, message):
    with pytest.raises(ValueError, match=message):
        tiny_upscaler("base", **change)


def test_upscaler_fields_belong_to_the_upscaler_and_survive_json(recipes):
    with pytest.raises(ValueError, match="upscaler recipe"):
        recipes.base(upscale_from=16)
    recipe = tiny_upscaler("base")
    assert Recipe.from_json(recipe.to_json()) == recipe


def test_the_condition_is_the_base_size_image_enlarged_and_cropped_with_its_target(tmp_path, tiny_base, examples):
    trainer = DiffusionTrainer(tmp_path, tiny_upscaler(tiny_base, noise_augmentation_max=1, serving_noise_level=0,
                                                       train_crop=64), examples)
    try:
        trainer.prepare()
        batch = trainer._next_batch(0)
        clean = trainer._clean_inputs(batch, torch.Generator().manual_seed(0))
        target, condition, levels = trainer._upscaling_inputs(batch, clean, torch.Generator().manual_seed(0))
        small = torch.stack([trainer.condition_transform(e.load_image()) for e in batch.examples])
        enlarged = F.interpolate(small, size=(64, 64), mode="bilinear", align_corners=True)
        assert levels.tolist() == [0, 0, 0] and torch.equal(target, clean)
        assert 0 < (condition - enlarged).abs().max() < 0.05  # level 0: enlarged, with almost no noise

        trainer.recipe = trainer.recipe.replace(noise_augmentation_max=250, serving_noise_level=100)
        _, full_condition, full_levels = trainer._upscaling_inputs(batch, clean, torch.Generator().manual_seed(1))
        trainer.recipe = trainer.recipe.replace(train_crop=32)
        target, condition, levels = trainer._upscaling_inputs(batch, clean, torch.Generator().manual_seed(1))
    finally:
        trainer.close()
    assert target.shape == condition.shape == (3, 3, 32, 32)
    assert torch.equal(levels, full_levels) and len(set(levels.tolist())) > 1
    for image, whole, crop, cond in zip(clean, full_condition, target, condition):
        windows = [(y, x) for y in range(33) for x in range(33)
                   if torch.equal(image[:, y:y + 32, x:x + 32], crop) and torch.equal(whole[:, y:y + 32, x:x + 32], cond)]
        assert windows, "target and condition are the same window of the image and of its condition"


def test_a_trained_upscaler_loads_as_a_cascade_that_enlarges_deterministically(tmp_path, tiny_base, examples):
    result = train(tmp_path / "up", tiny_upscaler(tiny_base), examples)
    assert json.loads((result.model_path / CASCADE_FILE).read_text()) == {"upscale_from": 16, "noise_level": 100}
    assert json.loads((result.model_path / "unet" / "config.json").read_text())["in_channels"] == 6
    cascade = load_cascade(tiny_base, result.model_path, device="cpu")
    assert isinstance(cascade, Cascade) and cascade.unet is cascade.base.unet

    def render():
        generators = [torch.Generator().manual_seed(i) for i in range(2)]
        return cascade(["a red circle"], num_inference_steps=2, num_images_per_prompt=2, height=64, width=64,
                       generator=generators, output_type="np").images

    first, second = render(), render()
    assert first.shape == (2, 64, 64, 3) and np.array_equal(first, second)


def test_a_cascade_serves_at_its_upscalers_size_with_its_bases_schedulers():
    configs = {"model_index.json": {"_class_name": "IFPipeline"}, "unet/config.json": {"sample_size": 32},
               "scheduler/scheduler_config.json": {"_class_name": "DPMSolverMultistepScheduler"}}
    base = capabilities_of(configs.get)
    upscaler = {"model_index.json": {"_class_name": "IFSuperResolutionPipeline"},
                "unet/config.json": {"sample_size": 128}, "cascade.json": {"upscale_from": 32, "noise_level": 100}}
    served = cascade_capabilities(base, upscaler.get)
    assert (served.native_size, served.sizes, served.schedulers) == (128, (128,), base.schedulers)
    assert served.pipeline_class == "IFPipeline+IFSuperResolutionPipeline"
    for broken in ({**upscaler, "cascade.json": {"upscale_from": 16}}, {**upscaler, "unet/config.json": {}},
                   {k: v for k, v in upscaler.items() if k != "cascade.json"}):
        with pytest.raises(InvalidInput) as refused:
            cascade_capabilities(base, broken.get)
        assert refused.value.code == "model_not_servable"


def test_a_bfloat16_model_with_a_frozen_encoder_exports_float32_and_renders_from_disk(tmp_path, recipes, examples):
    from safetensors.torch import load_file

    from recipes import TextPretraining

    recipe = recipes.base(resolution=16, max_train_steps=2, mixed_precision="bf16", train_text_encoder=False,
                          text_pretraining=TextPretraining(epochs=1, batch_size=6, image_width=8, resolution=16),
                          validation_prompts=("a red circle",))
    result = train(tmp_path, recipe, examples)  # the final grid is rendered from the saved folder
    weights = load_file(result.model_path / "text_encoder" / "model.safetensors")
    assert {tensor.dtype for tensor in weights.values()} == {torch.float32}
    assert (tmp_path / "samples" / "final.png").is_file()
