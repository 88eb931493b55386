"""The influence method's building blocks: projection, features, index, shares and the blend."""

from __future__ import annotations

import uuid
from fractions import Fraction

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from foundry.money import split_exact
from provenance.influence import InfluenceConfig, InfluenceIndex, blend, influence_shares
from tests.support import images
from training.attribution_features import CountSketch, Featurizer, select_parameters


def test_count_sketch_is_seeded_linear_and_keeps_norms():
    sketch = CountSketch(20_000, 4096, seed=3)
    again = CountSketch(20_000, 4096, seed=3)
    x, y = torch.randn(20_000), torch.randn(20_000)
    assert torch.equal(sketch(x), again(x))
    assert torch.allclose(sketch(2 * x + y), 2 * sketch(x) + sketch(y), atol=1e-4)
    assert abs(float(sketch(x).norm() ** 2 / x.norm() ** 2) - 1) < 0.1
    assert not torch.equal(CountSketch(20_000, 4096, seed=4)(x), sketch(x))
    with pytest.raises(ValueError):
        sketch(torch.randn(10))


@pytest.fixture(scope="module")
def tiny(tiny_model_folder):
    from diffusers import DDPMScheduler, DiffusionPipeline

    pipeline = DiffusionPipeline.from_pretrained(str(tiny_model_folder))
    scheduler = DDPMScheduler.from_config(pipeline.scheduler.config)
    return pipeline, scheduler


def embed(pipeline, caption: str) -> torch.Tensor:
    tokens = pipeline.tokenizer(caption, padding="max_length", max_length=pipeline.tokenizer.model_max_length,
                                truncation=True, return_tensors="pt")
    with torch.no_grad():
        return pipeline.text_encoder(tokens.input_ids, attention_mask=tokens.attention_mask)[0]


def pixels(seed: int) -> torch.Tensor:
    from io import BytesIO

    from PIL import Image

    picture = Image.open(BytesIO(images.pattern_png(seed, size=32))).convert("RGB")
    return torch.from_numpy(np.asarray(picture, dtype=np.float32) / 127.5 - 1).permute(2, 0, 1)


def test_features_are_reproducible_and_tell_examples_apart(tiny):
    pipeline, scheduler = tiny
    names = [name for name, _ in select_parameters(pipeline.unet, "auto")]
    assert names and all(name.startswith(("up_blocks.", "conv_out.")) for name in names)
    config = InfluenceConfig(timesteps=(200, 600), projection_dim=512)
    before = [p.requires_grad for p in pipeline.unet.parameters()]
    first = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    second = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    text = embed(pipeline, "red blocks")
    a = first(pixels(1), text)
    assert torch.equal(a, second(pixels(1), text)) and a.shape == (512,)
    assert not torch.allclose(a, first(pixels(2), text))
    assert [p.requires_grad for p in pipeline.unet.parameters()] == before  # left as found


def test_many_examples_at_once_give_each_examples_own_features(tiny):
    pipeline, scheduler = tiny
    config = InfluenceConfig(timesteps=(200, 600, 900), projection_dim=512)
    featurize = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    assert featurize.tail is not None  # a base model's tail: the batched per-example path
    captions = ["red blocks", "blue blocks", "green tiles", "yellow squares", "purple grid"]
    samples = torch.stack([pixels(i) for i in range(len(captions))])
    states = torch.cat([embed(pipeline, c) for c in captions])
    before = [p.requires_grad for p in pipeline.unet.parameters()]
    batched = featurize.many(samples, states)
    one_by_one = torch.stack([featurize(sample, state) for sample, state in zip(samples, states, strict=True)])
    assert batched.shape == (5, 512)
    assert float((batched - one_by_one).norm(dim=1).max() / one_by_one.norm(dim=1).min()) < 1e-5  # float rounding
    assert torch.equal(featurize.many(samples, states), batched)  # deterministic
    assert [p.requires_grad for p in pipeline.unet.parameters()] == before


def test_an_index_ranks_a_training_example_first_for_itself_and_round_trips(tiny, tmp_path):
    pipeline, scheduler = tiny
    config = InfluenceConfig(timesteps=(300, 700), projection_dim=512, normalisation="none")
    featurize = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    captions = ["red blocks", "blue blocks", "green tiles", "yellow squares", "purple grid", "orange check"]
    features = np.stack([featurize(pixels(i), embed(pipeline, c)).numpy() for i, c in enumerate(captions)])
    assets = [uuid.uuid4() for _ in captions]
    contributors = [uuid.uuid4() for _ in captions]
    fingerprint = {"snapshot_merkle_root": "ab" * 32, "weights_sha256": "cd" * 32}
    index = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config,
                                 fingerprint=fingerprint)
    for i in range(len(captions)):
        assert int(np.argmax(index.scores(features[i]))) == i
    index.save(tmp_path / "index.npz")
    loaded = InfluenceIndex.load(tmp_path / "index.npz")
    assert loaded.asset_ids == assets and loaded.config == config.as_dict()
    assert np.array_equal(loaded.scores(features[0]), index.scores(features[0]))
    assert loaded.valid_for(fingerprint)
    assert not loaded.valid_for({**fingerprint, "weights_sha256": "ef" * 32})  # retrained: rebuild the index


def test_influence_shares_clip_keep_top_k_and_drop_small_contributors():
    a, b, c = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    assets = [uuid.uuid4() for _ in range(5)]
    shares = influence_shares([5.0, 3.0, -4.0, 0.1, 2.0], assets, [a, a, b, c, b], top_k=4,
                              min_share=Fraction(1, 20))
    # -4 clipped; the top 4 positive scores are 5, 3, 2, 0.1; c (0.1 of 10.1) falls under 5% and is dropped
    assert set(shares.contributors) == {a, b} and sum(shares.contributors.values()) == 1
    assert shares.contributors[a] == Fraction(8) / 10
    assert [item.asset_id for item in shares.assets] == [assets[0], assets[1], assets[4]]
    assert [item.share for item in shares.assets] == [Fraction(5, 10), Fraction(3, 10), Fraction(2, 10)]
    assert sum(item.share for item in shares.assets if item.contributor_id == a) == shares.contributors[a]
    assert influence_shares([-1.0, 0.0], assets[:2], [a, b]).contributors == {}



def test_a_power_pays_more_of_an_output_to_its_closest_images_and_is_recorded():
    author, prolific = uuid.uuid4(), uuid.uuid4()
    assets = [uuid.uuid4() for _ in range(5)]
    owners = [author, prolific, prolific, prolific, prolific]
    scores = [2.0, 1.0, 1.0, 1.0, 1.0]
    linear = influence_shares(scores, assets, owners)
    assert linear.contributors == {author: Fraction(1, 3), prolific: Fraction(2, 3)}
    assert "power" not in linear.parameters  # today's rule records what it always recorded
    squared = influence_shares(scores, assets, owners, power=2)
    # (2/2)^2 = 1 against 4 x (1/2)^2 = 1: an even split; the cube pays the closest image's author most
    assert squared.contributors == {author: Fraction(1, 2), prolific: Fraction(1, 2)}
    assert squared.parameters["power"] == 2
    cubed = influence_shares(scores, assets, owners, power=3)
    assert cubed.contributors[author] == Fraction(2, 3) and sum(cubed.contributors.values()) == 1
    # the split depends on the scores' ratios, not their scale, and huge scores do not overflow
    assert influence_shares([s * 1e300 for s in scores], assets, owners, power=3).contributors == cubed.contributors
    assert influence_shares(scores, assets, owners, power=8).contributors[author] > Fraction(9, 10)
    with pytest.raises(ValueError, match="power"):
        influence_shares(scores, assets, owners, power=0)

@settings(max_examples=2000, deadline=None)
@given(pool=st.integers(0, 10**7), alpha=st.fractions(0, 1, max_denominator=1000),
       pro=st.lists(st.integers(1, 500), min_size=1, max_size=12),
       influence=st.lists(st.floats(0.001, 100, allow_nan=False), min_size=0, max_size=12))
def test_blended_splits_are_exact(pool, alpha, pro, influence):
    contributors = [uuid.UUID(int=i) for i in range(max(len(pro), len(influence)))]
    pro_rata = {contributors[i]: Fraction(count) for i, count in enumerate(pro)}
    influenced = {contributors[i]: Fraction(score) for i, score in enumerate(influence)}
    weights = blend(pro_rata, influenced, alpha)
    assert sum(weights.values()) == 1
    parts = split_exact(pool, weights)
    assert sum(parts.values()) == pool
    if not influenced or alpha == 0:
        assert weights == {c: w / sum(pro_rata.values()) for c, w in pro_rata.items()}
