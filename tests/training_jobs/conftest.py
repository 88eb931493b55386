"""A small licensed catalog with captions, and tiny recipes that train in seconds on a CPU."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from foundry.catalog.models import Asset
from foundry.datasets import service as dataset_service
from recipes import BaseModelShape, base_recipe
from tests.catalog.test_import import row, run, write_manifest
from tests.support import images

TINY_SHAPE = BaseModelShape(
    unet_block_out_channels=(16, 32), unet_down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    unet_norm_num_groups=8, text_hidden_size=32, text_intermediate_size=64, text_num_layers=1, text_num_heads=2,
    tokenizer_vocab_size=700,
)
CAPTIONS = ["red blocks", "blue blocks", "green tiles", "yellow squares", "purple grid", "orange check",
            "grey mosaic", "pink pattern"]


def tiny_base_recipe(**overrides) -> dict:
    settings = {"model_shape": TINY_SHAPE, "resolution": 32, "train_batch_size": 4, "max_train_steps": 4,
                "learning_rate": 2e-3, "lr_scheduler": "constant", "lr_warmup_steps": 0, "checkpoint_every": 2,
                "validation_every": 0, "validation_prompts": ("red blocks",), "validation_inference_steps": 2}
    settings.update(overrides)
    return base_recipe(**settings).to_dict()


def build_catalog(settings, sessions, blob_store, folder) -> dict:
    """Eight captioned pattern images from three artists (3/3/2 assets); name -> asset id."""
    files = {f"img{i}.png": images.pattern_png(500 + i, size=48) for i in range(len(CAPTIONS))}
    rows = [row(name, contributor=f"Artist {i % 3}") for i, name in enumerate(files)]
    for item, caption in zip(rows, CAPTIONS, strict=True):
        item["caption"] = caption
    run(settings, sessions, blob_store, write_manifest(folder / "catalog", rows, files))
    with sessions() as session:
        return {a.source_ref.split(":", 1)[1]: a.id for a in session.scalars(select(Asset))}


@pytest.fixture
def licensed_catalog(settings, sessions, blob_store, tmp_path):
    return build_catalog(settings, sessions, blob_store, tmp_path)


@pytest.fixture
def base_snapshot(sessions, licensed_catalog):
    with sessions() as session, session.begin():
        return dataset_service.create_snapshot(session=session, name="all", use="base_training", created_by="test")
