"""The influence method's building blocks: projection, features, index, shares and the blend."""

from __future__ import annotations

import uuid
from dataclasses import replace
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
    config = InfluenceConfig(timesteps=(200, 600), projection_dim=512, payment_timesteps=None)
    before = [p.requires_grad for p in pipeline.unet.parameters()]
    first = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    second = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    text = embed(pipeline, "red blocks")
    a = first(pixels(1), text)
    assert torch.equal(a, second(pixels(1), text)) and a.shape == (1, 512)
    assert not torch.allclose(a, first(pixels(2), text))
    assert [p.requires_grad for p in pipeline.unet.parameters()] == before  # left as found


def test_many_examples_at_once_give_each_examples_own_features(tiny):
    pipeline, scheduler = tiny
    config = InfluenceConfig(timesteps=(900,), payment_timesteps=(200, 600, 900), projection_dim=512)
    featurize = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    assert featurize.tail is not None  # a base model's tail: the batched per-example path
    captions = ["red blocks", "blue blocks", "green tiles", "yellow squares", "purple grid"]
    samples = torch.stack([pixels(i) for i in range(len(captions))])
    states = torch.cat([embed(pipeline, c) for c in captions])
    before = [p.requires_grad for p in pipeline.unet.parameters()]
    batched = featurize.many(samples, states)
    one_by_one = torch.stack([featurize(sample, state) for sample, state in zip(samples, states, strict=True)])
    assert batched.shape == (5, 2, 512)  # evidence and payment views
    assert float((batched - one_by_one).norm(dim=2).max() / one_by_one.norm(dim=2).min()) < 1e-5  # float rounding
    assert torch.equal(featurize.many(samples, states), batched)  # deterministic
    assert [p.requires_grad for p in pipeline.unet.parameters()] == before


def test_an_index_ranks_a_training_example_first_for_itself_and_round_trips(tiny, tmp_path):
    pipeline, scheduler = tiny
    config = InfluenceConfig(timesteps=(300, 700), projection_dim=512, normalisation="none", payment_timesteps=None)
    featurize = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    captions = ["red blocks", "blue blocks", "green tiles", "yellow squares", "purple grid", "orange check"]
    features = np.stack([featurize(pixels(i), embed(pipeline, c))[0].numpy() for i, c in enumerate(captions)])
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


def test_each_view_is_the_mean_gradient_over_its_own_timesteps(tiny):
    """A split config's two views come from one pass with one noise per timestep: the payment view equals a
    one-view config over the same timesteps, and (the sketch being linear) evidence + the other timestep's
    feature make twice the payment view."""
    pipeline, scheduler = tiny
    split = InfluenceConfig(timesteps=(700,), payment_timesteps=(200, 700), projection_dim=256)
    assert split.feature_timesteps == (200, 700)
    captions = ["red blocks", "blue blocks", "green tiles"]
    samples = torch.stack([pixels(i) for i in range(len(captions))])
    states = torch.cat([embed(pipeline, c) for c in captions])

    def views(config):
        return Featurizer(pipeline.unet, scheduler, config, (3, 32, 32)).many(samples, states)

    both = views(split)
    payment_alone = views(InfluenceConfig(timesteps=(200, 700), payment_timesteps=None, projection_dim=256))[:, 0]
    first_alone = views(InfluenceConfig(timesteps=(200,), payment_timesteps=None, projection_dim=256))[:, 0]

    def close(a, b):
        return float((a - b).norm() / b.norm()) < 1e-5

    assert close(both[:, 1], payment_alone)
    assert close(both[:, 0] + first_alone, 2 * both[:, 1])
    assert not close(both[:, 0], both[:, 1])


def split_index_inputs(seed: int = 0, rows: int = 12, dim: int = 16, calibration: int = 4):
    rng = np.random.default_rng(seed)
    features = rng.normal(size=(rows, 2, dim)).astype(np.float32)
    calibration_features = rng.normal(size=(calibration, 2, dim)).astype(np.float32)
    return features, calibration_features, [uuid.uuid4() for _ in range(rows)], [uuid.uuid4() for _ in range(rows)]


def test_a_split_index_scores_evidence_and_payment_each_in_its_own_view(tmp_path):
    # version 3: self evidence, centred pay (version 4's blend of the evidence view: test_influence_search.py)
    config = InfluenceConfig(projection_dim=16, calibration_outputs=4, pixel_weight=0.0)
    assert config.split and config.as_dict()["version"] == "3"
    assert InfluenceConfig.from_dict(config.as_dict()) == config
    features, calibration, assets, contributors = split_index_inputs()
    index = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config,
                                 fingerprint={}, calibration=calibration)
    evidence_alone = InfluenceIndex.build(features[:, 0], asset_ids=assets, contributor_ids=contributors,
                                          config=config.view_config(0), fingerprint={})
    payment_alone = InfluenceIndex.build(features[:, 1], asset_ids=assets, contributor_ids=contributors,
                                         config=config.view_config(1), fingerprint={}, calibration=calibration[:, 1])
    query = np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32)
    scored = index.score_output(query)
    assert np.allclose(scored.evidence.scores, evidence_alone.scores(query[0]))
    assert np.allclose(scored.payment.scores, payment_alone.scores(query[1]))
    assert index.paying() is index.payment and index.config == config.as_dict()
    with pytest.raises(ValueError, match="split index"):
        index.score_output(query[0])
    with pytest.raises(ValueError, match="calibration"):
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config, fingerprint={})

    index.save(tmp_path / "split.npz")
    loaded = InfluenceIndex.load(tmp_path / "split.npz")
    again = loaded.score_output(query)
    assert np.array_equal(again.evidence.scores, scored.evidence.scores)
    assert np.array_equal(again.payment.scores, scored.payment.scores)
    assert loaded.config == config.as_dict() and loaded.payment.asset_ids == assets

    # growing a split index grows both views, as if built from all rows at once
    more, _, more_assets, more_contributors = split_index_inputs(seed=2, rows=3)
    loaded.extend(more, asset_ids=more_assets, contributor_ids=more_contributors, fingerprint={})
    whole = InfluenceIndex.build(np.concatenate([features, more]), asset_ids=assets + more_assets,
                                 contributor_ids=contributors + more_contributors, config=config, fingerprint={},
                                 calibration=calibration)
    grown, rebuilt = loaded.score_output(query), whole.score_output(query)
    assert np.allclose(grown.evidence.scores, rebuilt.evidence.scores, rtol=1e-4, atol=1e-5)
    assert np.allclose(grown.payment.scores, rebuilt.payment.scores, rtol=1e-4, atol=1e-5)
    assert loaded.payment.asset_ids == assets + more_assets


def test_residuals_are_how_far_each_prediction_misses_its_target_per_view(tiny):
    """Featurizer.residuals: the RMS of target - prediction at each timestep with the feature pass's fixed noise,
    averaged over each view's timesteps; an example the model is pushed to fit better has a smaller one."""
    pipeline, scheduler = tiny
    assert scheduler.config.prediction_type == "v_prediction"
    config = InfluenceConfig(timesteps=(700,), payment_timesteps=(200, 700), projection_dim=64)
    featurize = Featurizer(pipeline.unet, scheduler, config, (3, 32, 32))
    captions = ["red blocks", "blue blocks"]
    samples = torch.stack([pixels(i) for i in range(len(captions))])
    states = torch.cat([embed(pipeline, c) for c in captions])
    residuals = featurize.residuals(samples, states)
    assert residuals.shape == (2, 2)  # examples x (evidence, payment)
    for example in range(2):
        per_timestep = {}
        for position, t in enumerate(config.feature_timesteps):
            noise = featurize.noise[position][None]
            timestep = torch.tensor([t])
            noisy = scheduler.add_noise(samples[example][None], noise, timestep)
            with torch.no_grad():
                predicted = pipeline.unet(noisy, timestep, encoder_hidden_states=states[example][None]).sample
            predicted = predicted[:, :3]  # this model also predicts its variance: the mean is what is compared
            signal = scheduler.alphas_cumprod[t]  # a v-prediction model's target: sqrt(a) noise - sqrt(1 - a) x0
            target = signal.sqrt() * noise - (1 - signal).sqrt() * samples[example][None]
            per_timestep[t] = float((target - predicted).pow(2).mean().sqrt())
        assert residuals[example, 0] == pytest.approx(per_timestep[700], rel=1e-4)
        assert residuals[example, 1] == pytest.approx((per_timestep[200] + per_timestep[700]) / 2, rel=1e-4)
    assert torch.equal(featurize.residuals(samples, states), residuals)  # deterministic


def test_a_das_index_weighs_each_raw_score_by_the_rows_residual_over_one_less_its_leverage(tmp_path):
    rng = np.random.default_rng(3)
    features = rng.normal(size=(30, 8)).astype(np.float32)
    residuals = rng.uniform(0.2, 2.0, size=30).astype(np.float32)
    assets, contributors = [uuid.uuid4() for _ in range(30)], [uuid.uuid4() for _ in range(30)]
    config = InfluenceConfig(projection_dim=8, normalisation="das", payment_timesteps=None)
    assert config.uses_residuals and not replace(config, normalisation="self").uses_residuals
    index = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config,
                                 fingerprint={}, residuals=residuals)
    raw = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors,
                               config=replace(config, normalisation="none"), fingerprint={})
    phi = features.astype(np.float64)
    kernel = phi.T @ phi
    kernel += np.eye(8) * np.trace(kernel) / 8  # damping 1, relative to the mean diagonal
    leverage = np.einsum("ij,ij->i", phi @ np.linalg.inv(kernel), phi)
    assert np.all((leverage > 0) & (leverage < 1))
    query = rng.normal(size=8).astype(np.float32)
    expected = raw.scores(query) * residuals / (1 - leverage)
    assert np.allclose(index.scores(query), expected, rtol=1e-4, atol=1e-6)
    doubled = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config,
                                   fingerprint={}, residuals=np.where(np.arange(30) == 4, 2 * residuals, residuals))
    assert doubled.scores(query)[4] == pytest.approx(2 * index.scores(query)[4], rel=1e-5)

    index.save(tmp_path / "das.npz")
    loaded = InfluenceIndex.load(tmp_path / "das.npz")
    assert np.array_equal(loaded.residuals, residuals) and np.array_equal(loaded.scores(query), index.scores(query))
    loaded.extend(features[:5] * 2, asset_ids=assets[:5], contributor_ids=contributors[:5], fingerprint={},
                  residuals=residuals[:5])
    whole = InfluenceIndex.build(np.concatenate([features, features[:5] * 2]), asset_ids=assets + assets[:5],
                                 contributor_ids=contributors + contributors[:5], config=config, fingerprint={},
                                 residuals=np.concatenate([residuals, residuals[:5]]))
    assert np.allclose(loaded.scores(query), whole.scores(query), rtol=1e-4, atol=1e-6)

    with pytest.raises(ValueError, match="residuals"):  # a das index without them, or another with them
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config, fingerprint={})
    with pytest.raises(ValueError, match="residuals"):
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=raw_config(config),
                             fingerprint={}, residuals=residuals)
    with pytest.raises(ValueError, match="residual"):  # negative, or one short
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config, fingerprint={},
                             residuals=-residuals)
    with pytest.raises(ValueError, match="residual"):
        loaded.extend(features[:2], asset_ids=assets[:2], contributor_ids=contributors[:2], fingerprint={})
    with pytest.raises(ValueError, match="residual"):  # refused before anything grows
        loaded.extend(features[:2], asset_ids=assets[:2], contributor_ids=contributors[:2], fingerprint={},
                      residuals=np.array([1.0, np.nan], np.float32))
    assert len(loaded.rows) == 35 and len(loaded.residuals) == 35 and len(loaded.asset_ids) == 35


def raw_config(config: InfluenceConfig) -> InfluenceConfig:
    return replace(config, normalisation="none")


def test_a_split_index_with_a_das_payment_view_keeps_the_residuals_of_that_view_only(tmp_path):
    config = InfluenceConfig(projection_dim=16, calibration_outputs=4, pixel_weight=0.0, payment_normalisation="das")
    features, _, assets, contributors = split_index_inputs()
    residuals = np.random.default_rng(5).uniform(0.5, 1.5, size=(12, 2)).astype(np.float32)
    index = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config,
                                 fingerprint={}, residuals=residuals)
    assert index.residuals is None and np.array_equal(index.payment.residuals, residuals[:, 1])
    payment_alone = InfluenceIndex.build(features[:, 1], asset_ids=assets, contributor_ids=contributors,
                                         config=config.view_config(1), fingerprint={}, residuals=residuals[:, 1])
    query = np.random.default_rng(1).normal(size=(2, 16)).astype(np.float32)
    assert np.allclose(index.score_output(query).payment.scores, payment_alone.scores(query[1]))
    assert InfluenceConfig.from_dict(config.as_dict()) == config
    with pytest.raises(ValueError, match="residuals"):
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=config,
                             fingerprint={}, residuals=residuals[:, 1])
    index.save(tmp_path / "split-das.npz")
    loaded = InfluenceIndex.load(tmp_path / "split-das.npz")
    assert np.array_equal(loaded.score_output(query).payment.scores, index.score_output(query).payment.scores)
    more, _, more_assets, more_contributors = split_index_inputs(seed=2, rows=3)
    with pytest.raises(ValueError, match="residual"):  # a bad payment residual: neither view grows
        loaded.extend(more, asset_ids=more_assets, contributor_ids=more_contributors, fingerprint={},
                      residuals=-residuals[:3])
    assert len(loaded.rows) == 12 and len(loaded.payment.rows) == 12
    loaded.extend(more, asset_ids=more_assets, contributor_ids=more_contributors, fingerprint={},
                  residuals=residuals[:3])
    assert len(loaded.payment.residuals) == 15 and loaded.residuals is None


def test_one_view_configs_keep_their_recorded_version():
    """Versions 1 and 2 had one score for evidence and payment: their records load as one view, so their
    generations are scored again exactly as they were."""
    two = {"method": "dtrak-square-countsketch", "version": "2", "timesteps": [900], "noise_seed": 20240501,
           "projection_dim": 2048, "projection_seed": 7, "damping": 1.0, "parameters": "auto",
           "normalisation": "self", "calibration_outputs": 32, "calibration_seed": 31}
    config = InfluenceConfig.from_dict(two)
    assert not config.split and config.feature_timesteps == (900,) and config.as_dict() == two
    one = InfluenceConfig.from_dict({"method": "dtrak-square-countsketch", "version": "1"})
    assert not one.split and one.normalisation == "none" and len(one.views()) == 1
    with pytest.raises(ValueError):
        InfluenceConfig(payment_normalisation="magic")
    with pytest.raises(ValueError, match="spread"):  # one calibration output has no spread to divide by
        InfluenceConfig(payment_normalisation="centered_calibrated", calibration_outputs=1)
    for repeated in ({"timesteps": (900, 900)}, {"payment_timesteps": (100, 500, 100)}):
        with pytest.raises(ValueError, match="repeat"):  # one noise per distinct timestep would not repeat one
            InfluenceConfig(**repeated)


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


def test_an_outputs_record_shows_its_most_influential_images_then_the_best_paid_others():
    from foundry.attribution.policy import output_evidence
    from provenance.influence import OutputScores, Scored

    assets = [uuid.uuid4() for _ in range(6)]
    owners = [uuid.uuid4() for _ in range(6)]
    # the evidence search scored rows 0-3; the payment view scored every row and pays rows 4, 2 and 5
    evidence = Scored(np.array([0, 1, 2, 3]), np.array([0.9, 0.5, 0.1, -0.2]))
    payment = Scored(np.arange(6), np.array([0.0, -1.0, 2.0, 0.0, 5.0, 3.0]))
    shares = influence_shares(payment.scores, assets, owners)
    recorded = output_evidence(OutputScores(evidence, payment), shares, asset_ids=assets, contributor_ids=owners,
                               top=2)
    assert [(r["asset_id"], r["role"]) for r in recorded] == [
        (str(assets[0]), "evidence"), (str(assets[1]), "evidence"),  # top 2 positive evidence scores
        (str(assets[4]), "paid"), (str(assets[5]), "paid")]  # the top 2 paid, none of them shown above
    assert [r["share_ppm"] for r in recorded] == [0, 0, 500_000, 300_000]  # 5/10 and 3/10 of the pool
    assert [r["score"] for r in recorded] == [0.9, 0.5, None, None]  # rows 4 and 5 not scored as evidence
    assert [r["payment_score"] for r in recorded] == [0.0, -1.0, 5.0, 3.0]
    assert all(r["contributor_id"] == str(owners[assets.index(uuid.UUID(r["asset_id"]))]) for r in recorded)
    # the best paid (row 4) is already shown as evidence: the paid list still holds ``top`` others (rows 5, 2)
    overlapping = Scored(np.array([4, 0]), np.array([0.7, 0.6]))
    recorded = output_evidence(OutputScores(overlapping, payment), shares, asset_ids=assets, contributor_ids=owners,
                               top=2)
    assert [(r["asset_id"], r["role"]) for r in recorded] == [
        (str(assets[4]), "evidence"), (str(assets[0]), "evidence"), (str(assets[5]), "paid"), (str(assets[2]), "paid")]
    # one view (before version 3): the same scores rank and pay; a shown image that was paid carries its share
    one = Scored(np.arange(6), np.array([4.0, 1.0, -1.0, 0.0, 0.0, 0.0]))
    single = output_evidence(OutputScores(one, one), influence_shares(one.scores, assets, owners),
                             asset_ids=assets, contributor_ids=owners)
    assert [(r["role"], r["share_ppm"]) for r in single] == [("evidence", 800_000), ("evidence", 200_000)]
