"""Edits render with the diffusers pipeline of each model family, over the model's own components:
IF image-to-image and inpainting for pixel models, Stable Diffusion's for latent ones."""

from __future__ import annotations

import threading

import pytest
from PIL import Image

from foundry.generation.editing import EditPlan, edit_canvas
from foundry.generation.policy import ResolvedRequest
from recipes import BaseModelShape
from training.inference import LoadedPipeline
from training.pipelines import build_base_parts, build_tiny_stable_diffusion, editing_pipeline, load_pipeline
from training.text_encoder import train_caption_tokenizer

CAPTIONS = ["a red circle", "a blue square"] * 8


def tiny_pixel_pipeline():
    shape = BaseModelShape(unet_block_out_channels=(32, 32), unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
                           text_hidden_size=32, text_intermediate_size=64, text_num_layers=1, text_num_heads=2,
                           tokenizer_vocab_size=700, default_sampler="dpmsolver++")
    return build_base_parts(shape, 32, train_caption_tokenizer(CAPTIONS, 700)).assemble(requires_safety_checker=False)


def request(size: int, operation: str) -> ResolvedRequest:
    return ResolvedRequest(prompt="a red circle", negative_prompt="", seed=5, num_images=2, steps=6,
                           guidance_scale=3.0, width=size, height=size, scheduler="default",
                           edit=EditPlan(operation, 0.5 if operation == "image_to_image" else 1.0).as_dict())


@pytest.mark.parametrize("family", ["pixel", "latent"])
def test_edits_use_the_model_familys_own_pipelines(family, tmp_path):
    import torch

    torch.manual_seed(0)
    pipeline = tiny_pixel_pipeline() if family == "pixel" else load_pipeline(
        build_tiny_stable_diffusion(tmp_path / "sd", CAPTIONS))
    size = 32 if family == "pixel" else 64
    expected = {"pixel": ("IFImg2ImgPipeline", "IFInpaintingPipeline"),
                "latent": ("StableDiffusionImg2ImgPipeline", "StableDiffusionInpaintPipeline")}[family]
    assert (type(editing_pipeline(pipeline, painting=False)).__name__,
            type(editing_pipeline(pipeline, painting=True)).__name__) == expected
    loaded = LoadedPipeline("m", pipeline, pipeline.scheduler, threading.Lock())
    source = Image.new("RGB", (48, 40), (200, 30, 30))
    mask = Image.new("L", (48, 40), 0)
    mask.paste(255, (0, 0, 24, 40))
    for operation in ("image_to_image", "inpaint"):
        plan = EditPlan(operation, 1.0)
        canvas, canvas_mask = edit_canvas(plan, source, mask if operation == "inpaint" else None, size)
        first = loaded.render(request(size, operation), canvas, canvas_mask)
        again = loaded.render(request(size, operation), canvas, canvas_mask)
        assert [image.size for image in first] == [(size, size)] * 2
        assert [image.tobytes() for image in first] == [image.tobytes() for image in again]  # seeded per image
    # the edit pipelines share the loaded components: no second copy of the weights
    assert loaded.editors[True].unet is pipeline.unet and loaded.editors[False].text_encoder is pipeline.text_encoder
