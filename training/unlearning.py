"""A counterfactual check by unlearning: make the model forget one output, see whose images it forgets too.

Attribution by unlearning (Wang et al., "Data Attribution for Text-to-Image Models by Unlearning
Synthesized Images", NeurIPS 2024): gradient ascent on the output's own denoising loss until the model
draws it clearly worse, then the rise of each training image's loss. Images the output depended on
rise with it; images it owed nothing to barely move. It needs no index and no retraining, so a
disputed royalty split can be checked in minutes against a second, independent method.

Everything is deterministic (fixed timesteps and noise, plain SGD on a copy of the UNet), so a
recorded check can be rerun and gives the same numbers on the same machine type.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler
from PIL import Image

from training.attribution_features import ExampleEncoder
from training.losses import regression_target
from training.pipelines import drawing_pipeline

METHOD = "unlearn-output-sgd"
VERSION = "1"


@dataclass(frozen=True)
class UnlearningConfig:
    timesteps: tuple[int, ...] = (100, 300, 500, 700, 900)
    noise_seed: int = 20261205
    learning_rate: float = 1e-3
    max_steps: int = 40
    target_rise: float = 1.0
    """Stop once the outputs' loss has risen by this factor of itself (1.0: doubled)."""
    batch: int = 16

    def as_dict(self) -> dict:
        return {"method": METHOD, "version": VERSION, **asdict(self), "timesteps": list(self.timesteps)}


@dataclass(frozen=True)
class UnlearningResult:
    probe_rise: np.ndarray
    """Each probe image's loss after unlearning minus before (same timesteps and noise)."""
    output_loss_before: float
    output_loss_after: float
    steps: int


class _Losses:
    """Per-example denoising loss at fixed timesteps and noise: the same draw for every call."""

    def __init__(self, pipeline, config: UnlearningConfig):
        pipeline = drawing_pipeline(pipeline)
        self.encoder = ExampleEncoder(pipeline)
        self.scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
        self.config = config
        generator = torch.Generator().manual_seed(config.noise_seed)
        self.noise = torch.randn((len(config.timesteps), *self.encoder.sample_shape), generator=generator)
        self.timesteps = torch.tensor(config.timesteps)

    def encode(self, examples: Sequence[tuple[Image.Image, str]]) -> tuple[torch.Tensor, torch.Tensor]:
        return (torch.stack([self.encoder.sample(image) for image, _ in examples]),
                torch.stack([self.encoder.embed(text) for _, text in examples]))

    def __call__(self, unet, samples: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """(examples,) mean squared error over the fixed timesteps."""
        count, steps = len(samples), len(self.timesteps)
        clean = samples.repeat_interleave(steps, dim=0)
        noise = self.noise.repeat(count, 1, 1, 1)
        t = self.timesteps.repeat(count)
        prediction = unet(self.scheduler.add_noise(clean, noise, t), t,
                          encoder_hidden_states=states.repeat_interleave(steps, dim=0)).sample
        target = regression_target(self.scheduler, clean, noise, t)
        error = (prediction[:, : target.shape[1]] - target).pow(2).flatten(1).mean(1)
        return error.view(count, steps).mean(1)

    def of_many(self, unet, encoded: tuple[torch.Tensor, torch.Tensor]) -> np.ndarray:
        samples, states = encoded
        with torch.no_grad():
            parts = [self(unet, samples[i:i + self.config.batch], states[i:i + self.config.batch])
                     for i in range(0, len(samples), self.config.batch)]
        return torch.cat(parts).numpy() if parts else np.zeros(0, dtype=np.float32)


class Unlearner:
    """Unlearning against one fixed set of probes: they are encoded, and their losses on the unchanged model
    computed, once; each call then forgets other outputs on a fresh copy of the UNet."""

    def __init__(self, pipeline, probes: Sequence[tuple[Image.Image, str]], config: UnlearningConfig | None = None):
        self.config = config or UnlearningConfig()
        self.losses = _Losses(pipeline, self.config)
        self.source = drawing_pipeline(pipeline).unet
        self.probe_batch = self.losses.encode(probes)
        self.before = self.losses.of_many(copy.deepcopy(self.source).float().eval(), self.probe_batch)

    def __call__(self, outputs: Sequence[tuple[Image.Image, str]]) -> UnlearningResult:
        """Forget ``outputs`` (images with their prompt) on a copy of the UNet; the rise of each probe's loss."""
        config, losses = self.config, self.losses
        unet = copy.deepcopy(self.source).float().eval()
        output_batch = losses.encode(outputs)
        with torch.no_grad():
            output_before = float(losses(unet, *output_batch).mean())
        parameters = list(unet.parameters())  # every weight, a LoRA's base included: any contributor may be disputed
        for parameter in parameters:
            parameter.requires_grad_(True)
        optimizer = torch.optim.SGD(parameters, lr=config.learning_rate)
        steps, output_now = 0, output_before
        while steps < config.max_steps and output_now < output_before * (1 + config.target_rise):
            optimizer.zero_grad(set_to_none=True)
            loss = losses(unet, *output_batch).mean()
            (-loss).backward()  # ascent: make the outputs harder to draw
            optimizer.step()
            steps += 1
            with torch.no_grad():
                output_now = float(losses(unet, *output_batch).mean())
        after = losses.of_many(unet, self.probe_batch)
        return UnlearningResult(probe_rise=after - self.before, output_loss_before=output_before,
                                output_loss_after=output_now, steps=steps)


def unlearn_outputs(pipeline, outputs: Sequence[tuple[Image.Image, str]], probes: Sequence[tuple[Image.Image, str]],
                    config: UnlearningConfig | None = None) -> UnlearningResult:
    """Forget ``outputs`` (images with their prompt) on a copy of the UNet; the rise of each probe's loss."""
    return Unlearner(pipeline, probes, config)(outputs)
