"""Fixtures for the training-engine tests: tiny models and synthetic data, all built offline."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from recipes import BaseModelShape, base_recipe, finetune_recipe, lora_recipe
from training.pipelines import LatentModelShape, build_tiny_stable_diffusion
from training.synthetic import shape_examples

REPO_ROOT = Path(__file__).resolve().parents[2]

# One thread per process: on a small shared CPU box, OpenMP threads spin-waiting for a busy core
# make runs many times slower, and child processes must use the same kernels for exact resumes.
torch.set_num_threads(1)

TINY_BASE_SHAPE = BaseModelShape(
    unet_block_out_channels=(16, 32), unet_norm_num_groups=8,
    unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    text_hidden_size=32, text_intermediate_size=64, text_num_layers=1, text_num_heads=2, tokenizer_vocab_size=700,
)
"""Two UNet levels (attention at the coarser) and a one-layer text side: seconds per CPU test run."""
TINY_LATENT_SHAPE = LatentModelShape(
    unet_block_out_channels=(16, 32), vae_block_out_channels=(8, 8, 16, 16), tokenizer_vocab_size=800
)


@pytest.fixture(scope="session")
def pixel_examples():
    return shape_examples(6, size=32, seed=1)


@pytest.fixture(scope="session")
def latent_examples():
    return shape_examples(6, size=64, seed=2)


@pytest.fixture(scope="session")
def tiny_sd_path(tmp_path_factory, latent_examples) -> Path:
    """A random-init Stable-Diffusion-format pipeline folder shared by the finetune/lora tests."""
    folder = tmp_path_factory.mktemp("tiny-sd")
    captions = [e.caption for e in latent_examples]
    return build_tiny_stable_diffusion(folder, captions, seed=0, shape=TINY_LATENT_SHAPE)


class TinyRecipes:
    """Recipe factories sized for CPU tests (a few steps of the tiny models)."""

    def __init__(self, tiny_sd_path: Path) -> None:
        self.tiny_sd_path = tiny_sd_path

    def base(self, **overrides):
        settings = {
            "model_shape": TINY_BASE_SHAPE,
            "resolution": 32,
            "train_batch_size": 3,
            "max_train_steps": 6,
            "learning_rate": 2e-3,
            "lr_scheduler": "constant",
            "lr_warmup_steps": 0,
            "checkpoint_every": 0,
            "validation_every": 0,
            "validation_prompts": (),
            "validation_inference_steps": 3,
        }
        settings.update(overrides)
        return base_recipe(**settings)

    def finetune(self, **overrides):
        settings = {"train_batch_size": 3, "max_train_steps": 6, "learning_rate": 1e-3, "checkpoint_every": 0}
        settings.update(overrides)
        return finetune_recipe(str(self.tiny_sd_path), **settings)

    def lora(self, **overrides):
        settings = {
            "train_batch_size": 3,
            "max_train_steps": 6,
            "learning_rate": 5e-3,
            "lora_rank": 4,
            "checkpoint_every": 0,
        }
        settings.update(overrides)
        return lora_recipe(str(self.tiny_sd_path), **settings)


@pytest.fixture(scope="session")
def recipes(tiny_sd_path) -> TinyRecipes:
    return TinyRecipes(tiny_sd_path)


@pytest.fixture(scope="session")
def child_env() -> dict[str, str]:
    """Environment for child Python processes: repo importable, no hub access, CPU only."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    env["HF_HUB_OFFLINE"] = "1"
    env["TOKENIZERS_PARALLELISM"] = "false"
    env["CUDA_VISIBLE_DEVICES"] = ""
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="session")
def run_child(child_env) -> Callable[[list[str]], subprocess.CompletedProcess]:
    """Run a child command to its end from the repo root in ``child_env``, output captured, within 5 minutes."""

    def run(command: list[str]) -> subprocess.CompletedProcess:
        return subprocess.run(command, check=False, cwd=REPO_ROOT, env=child_env, capture_output=True, text=True,
                              timeout=300)

    return run


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def python() -> str:
    return sys.executable
