"""Unlearning against fixed probes: one Unlearner answers many outputs as separate calls would."""

from __future__ import annotations

import numpy as np
import pytest

from training.engine import train
from training.pipelines import load_pipeline
from training.synthetic import shape_examples
from training.unlearning import Unlearner, UnlearningConfig, unlearn_outputs


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, recipes):
    examples = shape_examples(6, size=16, seed=3)
    folder = train(tmp_path_factory.mktemp("base"), recipes.base(resolution=16, max_train_steps=2), examples).model_path
    pairs = [(example.load_image(), example.caption) for example in examples]
    return load_pipeline(folder, device="cpu"), pairs


def test_an_unlearner_reused_for_many_outputs_matches_one_call_each_and_leaves_the_model_unchanged(tiny):
    pipeline, pairs = tiny
    config = UnlearningConfig(timesteps=(300, 700), max_steps=3, learning_rate=1e-2)
    weights_before = {name: value.clone() for name, value in pipeline.unet.state_dict().items()}
    unlearner = Unlearner(pipeline, pairs, config)
    reused = [unlearner([pairs[0]]), unlearner([pairs[1]])]
    for output, result in zip(pairs[:2], reused, strict=True):
        single = unlearn_outputs(pipeline, [output], pairs, config)
        np.testing.assert_allclose(result.probe_rise, single.probe_rise, rtol=1e-5, atol=1e-7)
        assert result.steps == single.steps and result.output_loss_after > result.output_loss_before
    assert not np.allclose(reused[0].probe_rise, reused[1].probe_rise)  # each call forgot its own output
    assert all((pipeline.unet.state_dict()[name] == value).all() for name, value in weights_before.items())
