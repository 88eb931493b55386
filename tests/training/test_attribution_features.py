"""Influence features on the model formats the foundry fine-tunes: Stable-Diffusion-style latent
pipelines (features in VAE latent space) and LoRA adapters (gradients of the adapter weights only)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from diffusers import StableDiffusionPipeline

from provenance.influence import InfluenceConfig, InfluenceIndex
from training.attribution_features import Attributor, select_parameters
from training.engine import train
from training.pipelines import load_pipeline

CONFIG = InfluenceConfig(timesteps=(250, 750), projection_dim=128, normalisation="none", payment_timesteps=None)


def test_latent_models_are_featurized_in_latent_space(tiny_sd_path, latent_examples):
    pipeline = load_pipeline(tiny_sd_path, device="cpu")
    attributor = Attributor(pipeline, CONFIG)
    assert attributor.encoder.vae is not None
    assert attributor.encoder.sample_shape == (4, pipeline.unet.config.sample_size, pipeline.unet.config.sample_size)
    sample = attributor.encoder.sample(latent_examples[0].load_image())
    assert tuple(sample.shape) == attributor.encoder.sample_shape
    features = attributor.features_of_many((e.load_image(), e.caption) for e in latent_examples)
    again = Attributor(load_pipeline(tiny_sd_path, device="cpu"), CONFIG).features(
        latent_examples[0].load_image(), latent_examples[0].caption)
    assert features.shape == (len(latent_examples), 128) and np.allclose(features[0], again, rtol=1e-4, atol=1e-4)
    index = InfluenceIndex.build(features, asset_ids=list(range(6)), contributor_ids=list(range(6)), config=CONFIG,
                                 fingerprint={})
    assert [int(np.argmax(index.scores(row))) for row in features] == list(range(6))
    # calibration outputs are drawn by the latent pipeline itself and featurized like any output
    calibrating = Attributor(pipeline, replace(CONFIG, normalisation="calibrated", calibration_outputs=3))
    calibration = calibrating.calibration_features([e.caption for e in latent_examples], guidance_scale=3.0, steps=3)
    assert calibration.shape == (3, 128) and np.isfinite(calibration).all()
    assert np.array_equal(calibration, calibrating.calibration_features([e.caption for e in latent_examples],
                                                                        guidance_scale=3.0, steps=3))
    calibrated = InfluenceIndex.build(features, asset_ids=list(range(6)), contributor_ids=list(range(6)),
                                      config=replace(CONFIG, normalisation="calibrated", calibration_outputs=3), fingerprint={},
                                      calibration=calibration)
    assert np.isfinite(calibrated.scores(features[0])).all()


def test_lora_models_use_adapter_gradients(tiny_sd_path, latent_examples, recipes, tmp_path):
    result = train(tmp_path / "lora", recipes.lora(max_train_steps=2), latent_examples)
    assert result.model_format == "diffusers_lora"
    pipeline = load_pipeline(tiny_sd_path, device="cpu")
    assert isinstance(pipeline, StableDiffusionPipeline)
    pipeline.load_lora_weights(str(result.model_path))
    names = [name for name, _ in select_parameters(pipeline.unet, "auto")]
    assert names and all("lora_" in name for name in names)
    attributor = Attributor(pipeline, CONFIG)
    first = attributor.features(latent_examples[0].load_image(), latent_examples[0].caption)
    second = attributor.features(latent_examples[1].load_image(), latent_examples[1].caption)
    assert np.linalg.norm(first) > 0 and not np.allclose(first, second)
