"""K-FAC / EK-FAC preconditioning of influence gradients (``training.influence_preconditioner``)."""

from __future__ import annotations

import uuid
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch.func import functional_call, grad, vmap

from provenance.influence import InfluenceConfig, InfluenceIndex
from tests.generation.test_influence import embed, pixels, tiny  # noqa: F401 (fixture)
from training.attribution_features import Featurizer
from training.influence_preconditioner import (
    DiagonalBlock,
    KroneckerBlock,
    _inputs_as_rows,
    _outputs_as_rows,
    block_arrays,
    fit_preconditioner,
    preconditioner_sample,
)


@pytest.mark.parametrize("layer", [torch.nn.Conv2d(3, 5, 3, padding=1), torch.nn.Conv2d(4, 2, 1),
                                   torch.nn.Linear(6, 3)])
def test_a_weights_gradient_is_the_sum_over_positions_of_output_gradient_times_input_patch(layer):
    """The Kronecker factors' rows are laid out as the weight is: sum_l delta_l a_l^T is the weight's gradient."""
    torch.manual_seed(0)
    inputs = torch.randn(2, layer.in_features) if isinstance(layer, torch.nn.Linear) else \
        torch.randn(2, layer.in_channels, 6, 6)
    output = layer(inputs)
    direction = torch.randn(output.shape)
    (weight_grad,) = torch.autograd.grad((output * direction).sum(), [layer.weight])
    patches, positions = _inputs_as_rows(layer, inputs)
    deltas = _outputs_as_rows(direction)  # the output gradient of <output, direction> is the direction
    assert len(patches) == len(deltas) == 2 * positions
    assert torch.allclose(deltas.T @ patches, weight_grad.reshape(weight_grad.shape[0], -1), atol=1e-5)


class SmallTail(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3, padding=1)
        self.norm = torch.nn.GroupNorm(2, 4)
        self.out = torch.nn.Conv2d(4, 2, 3, padding=1)

    def forward(self, hidden):
        return self.out(torch.nn.functional.silu(self.norm(self.conv(hidden))))


@pytest.mark.parametrize("kind", ["kfac", "ekfac"])
def test_ekfac_eigenvalues_are_the_gradients_second_moments_in_the_kronecker_eigenbasis(kind):
    torch.manual_seed(1)
    tail = SmallTail()
    names = [name for name, _ in tail.named_parameters()]
    params = dict(tail.named_parameters())
    data = [torch.randn(8, 3, 5, 5) for _ in range(3)]
    recorded: list[dict[str, torch.Tensor]] = []

    def per_row_grads(inputs, directions):
        def loss(chosen, hidden, direction):
            return (functional_call(tail, chosen, (hidden[None],))[0] * direction).sum()
        grads = vmap(grad(loss), in_dims=(None, 0, 0))({n: p.detach() for n, p in params.items()}, inputs[0],
                                                      directions)
        recorded.append(grads)
        return grads

    damping = 0.05
    preconditioner = fit_preconditioner(tail=tail, names=names, parameters=params,
                                        batches=lambda: (((x,), len(x)) for x in data),
                                        per_row_grads=per_row_grads, kind=kind, damping=damping, seed=3)
    assert isinstance(preconditioner.blocks["conv.weight"], KroneckerBlock)
    assert isinstance(preconditioner.blocks["out.weight"], KroneckerBlock)
    assert all(isinstance(preconditioner.blocks[n], DiagonalBlock) for n in ("conv.bias", "norm.weight", "out.bias"))
    for name in names:  # each block's eigenvalues (EK-FAC) or diagonal: second moments of the same gradients
        block = preconditioner.blocks[name]
        rows = torch.cat([grads[name] for grads in recorded])
        moments = (block(rows) / block.scale.reshape(-1)).pow(2).mean(dim=0).reshape(block.scale.shape)
        expected = (moments + damping * moments.mean()).rsqrt()
        if kind == "ekfac" or isinstance(block, DiagonalBlock):
            assert torch.allclose(block.scale, expected, rtol=1e-3), name
        else:  # K-FAC: the Kronecker product's eigenvalues, not the refitted ones
            assert not torch.allclose(block.scale, expected, rtol=1e-2), name
    for block in (preconditioner.blocks["conv.weight"], preconditioner.blocks["out.weight"]):  # orthonormal bases
        for basis in (block.out_basis, block.in_basis):
            assert torch.allclose(basis.T @ basis, torch.eye(len(basis)), atol=1e-4)


def test_a_featurizer_with_a_fitted_preconditioner_gives_deterministic_preconditioned_features(tiny):  # noqa: F811
    pipeline, scheduler = tiny
    config = InfluenceConfig(timesteps=(900,), payment_timesteps=(200, 900), projection_dim=512,
                             preconditioner="ekfac")
    captions = ["red blocks", "blue blocks", "green tiles", "yellow squares"]
    samples = torch.stack([pixels(i) for i in range(len(captions))])
    states = torch.cat([embed(pipeline, c) for c in captions])
    raw = Featurizer(pipeline.unet, scheduler, replace(config, preconditioner="none"), (3, 32, 32))
    first = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    with pytest.raises(ValueError, match="fit it on the training examples"):
        first.many(samples, states)
    first.fit_preconditioner([(samples[:2], states[:2]), (samples[2:], states[2:])])
    second = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    second.fit_preconditioner([(samples[:2], states[:2]), (samples[2:], states[2:])])
    features = first.many(samples, states)
    assert features.shape == (4, 2, 512)
    assert torch.equal(features, second.many(samples, states))  # the fit is seeded
    one = first(samples[0], states[0])  # one example: the same path
    assert float((one - features[0]).norm() / features[0].norm()) < 1e-5
    unconditioned = raw.many(samples, states)
    cosine = torch.nn.functional.cosine_similarity(features.flatten(1), unconditioned.flatten(1))
    assert float(cosine.max()) < 0.99  # the curvature changed the direction of every feature
    refit = Featurizer(pipeline.unet, scheduler, replace(config, preconditioner="kfac"), (3, 32, 32))
    refit.fit_preconditioner([(samples, states)])
    assert not torch.allclose(refit.many(samples, states), features)  # K-FAC's eigenvalues are not EK-FAC's


def test_a_preconditioned_config_is_recorded_and_an_unpreconditioned_record_is_unchanged():
    plain = InfluenceConfig()
    assert "preconditioner" not in plain.as_dict()
    assert InfluenceConfig.from_dict(plain.as_dict()) == plain
    preconditioned = InfluenceConfig(preconditioner="ekfac", preconditioner_damping=0.01, preconditioner_examples=64)
    record = preconditioned.as_dict()
    assert record["preconditioner"] == "ekfac" and record["preconditioner_damping"] == 0.01
    assert InfluenceConfig.from_dict(record) == preconditioned
    with pytest.raises(ValueError, match="preconditioner must be one of"):
        InfluenceConfig(preconditioner="shampoo")
    with pytest.raises(ValueError, match="positive damping"):
        InfluenceConfig(preconditioner="kfac", preconditioner_damping=0)


def test_an_index_keeps_its_preconditioner_and_every_output_is_scored_through_it(tiny_model_folder, tmp_path):
    from io import BytesIO

    from PIL import Image

    from tests.support import images
    from training.attribution_features import Attributor
    from training.pipelines import load_pipeline

    config = InfluenceConfig(timesteps=(900,), payment_timesteps=(300, 900), projection_dim=512, pixel_weight=0.0,
                             payment_normalisation="self", preconditioner="ekfac", preconditioner_examples=4)
    captions = ["red blocks", "blue blocks", "green tiles", "yellow squares", "purple grid", "orange check"]
    examples = [(Image.open(BytesIO(images.pattern_png(i, size=32))).convert("RGB"), caption)
                for i, caption in enumerate(captions)]
    chosen = preconditioner_sample(len(examples), examples=config.preconditioner_examples, seed=config.noise_seed)
    assert len(chosen) == 4 and chosen == preconditioner_sample(6, examples=4, seed=config.noise_seed)
    fitting = Attributor(load_pipeline(tiny_model_folder, device="cpu"), config)
    arrays = block_arrays(fitting.fit_preconditioner([examples[position] for position in chosen]))
    features = fitting.features_of_many(examples)
    assets, contributors = [uuid.uuid4() for _ in captions], [uuid.uuid4() for _ in captions]
    with pytest.raises(ValueError, match="keeps the preconditioner"):  # rows taken through one, none kept
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config, fingerprint={})
    with pytest.raises(ValueError, match="keeps the preconditioner"):  # a plain config keeps none
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors,
                             config=replace(config, preconditioner="none"), fingerprint={}, preconditioner=arrays)
    InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config, fingerprint={},
                         preconditioner=arrays).save(tmp_path / "index.npz")
    loaded = InfluenceIndex.load(tmp_path / "index.npz")
    assert sorted(loaded.preconditioner) == sorted(arrays)
    assert all(np.array_equal(loaded.preconditioner[name], arrays[name]) for name in arrays)

    scorer = Attributor(load_pipeline(tiny_model_folder, device="cpu"), config)  # nothing fitted: the index's
    for position, (image, caption) in enumerate(examples):
        scored = scorer.score(loaded, image, caption)
        for view in (scored.evidence, scored.payment):
            assert int(view.positions[np.argmax(view.scores)]) == position
    again = scorer.features(*examples[1])  # the same features as the index's row, up to float rounding
    assert float(np.linalg.norm(again - features[1]) / np.linalg.norm(features[1])) < 1e-5
    loaded.preconditioner = None
    with pytest.raises(ValueError, match="keeps no preconditioner"):
        Attributor(load_pipeline(tiny_model_folder, device="cpu"), config).score(loaded, *examples[0])
