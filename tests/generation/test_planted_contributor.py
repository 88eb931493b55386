"""A contributor who alone brought a concept gets the influence of outputs showing that concept.

The small version of ``benchmarks/attribution.py``'s planted-contributor check, run in CI: a
tiny model is trained for real on 24 captioned shapes from three artists plus 6 images of a
concept only the planted artist has ("zorblat rings": magenta/teal rings on black).
"""

from __future__ import annotations

import uuid
from dataclasses import replace

import pytest
import torch

from provenance.influence import InfluenceConfig, InfluenceIndex
from provenance.influence_shares import influence_shares
from recipes import base_recipe
from tests.training_jobs.conftest import TINY_SHAPE
from training.attribution_features import Attributor
from training.data import TrainingExample
from training.engine import train
from training.pipelines import load_pipeline
from training.synthetic import planted_rings_image, shape_examples

PLANTED = uuid.UUID(int=99)
CONCEPT = [("zorblat rings", seed) for seed in (1, 2, 3)]
UNRELATED = [("a red circle on a blue background", 1), ("a green square on a white background", 2),
             ("a yellow triangle on a black background", 3)]


@pytest.fixture(scope="module")
def planted_model(tmp_path_factory):
    examples = shape_examples(24, seed=3) + [
        TrainingExample(f"planted-{i}", lambda i=i: planted_rings_image(i), "zorblat rings") for i in range(6)]
    owners = [uuid.UUID(int=i % 3) for i in range(24)] + [PLANTED] * 6
    recipe = base_recipe(model_shape=TINY_SHAPE, max_train_steps=150, train_batch_size=8, learning_rate=2e-3,
                         lr_warmup_steps=0, checkpoint_every=0, validation_every=0, validation_prompts=())
    result = train(tmp_path_factory.mktemp("planted") / "run", recipe, examples)
    pipeline = load_pipeline(result.model_path, device="cpu")
    attributor = Attributor(pipeline, InfluenceConfig())  # the product's method and normalisation
    features = attributor.features_of_many((e.load_image(), e.caption) for e in examples)
    calibration = attributor.calibration_features((e.caption for e in examples), guidance_scale=4.0, steps=20)
    index = InfluenceIndex.build(features, asset_ids=[uuid.uuid4() for _ in examples], contributor_ids=owners,
                                 config=InfluenceConfig(), fingerprint={}, calibration=calibration)
    centred = Attributor(pipeline, replace(InfluenceConfig(), normalisation="centered"))
    centred_index = InfluenceIndex.build(
        features, asset_ids=index.asset_ids, contributor_ids=owners, config=centred.config, fingerprint={},
        calibration=centred.calibration_features((e.caption for e in examples), guidance_scale=4.0, steps=20))
    return pipeline, attributor, index, centred_index


def planted_share(planted_model, prompt: str, seed: int) -> tuple[bool, float]:
    pipeline, attributor, index = planted_model[:3]
    image = pipeline(prompt, num_inference_steps=20, guidance_scale=4.0, height=32, width=32, clean_caption=False,
                     generator=torch.Generator().manual_seed(seed)).images[0]
    shares = influence_shares(index.scores(attributor.features(image, prompt)), index.asset_ids,
                              index.contributor_ids)
    top = max(shares.contributors, key=lambda c: shares.contributors[c])
    return top == PLANTED, float(shares.contributors.get(PLANTED, 0))


def test_the_planted_contributor_leads_on_its_concept_and_not_elsewhere(planted_model):
    concept = [planted_share(planted_model, prompt, seed) for prompt, seed in CONCEPT]
    unrelated = [planted_share(planted_model, prompt, seed) for prompt, seed in UNRELATED]
    assert all(top for top, _ in concept), concept
    assert not any(top for top, _ in unrelated), unrelated
    # pro rata would give the planted artist 6/30 = 20 % everywhere
    assert min(share for _, share in concept) > 0.4
    assert max(share for _, share in unrelated) < 0.2


def test_scores_centred_on_the_models_outputs_also_find_the_planted_contributor(planted_model):
    """The ``centered`` normalisation (features less the mean of the model's own outputs' features, kernel
    rebuilt) on the same features: the planted artist still leads its concept, and what it takes
    elsewhere stays under pro rata's 20 %."""
    pipeline, attributor, _, centred_index = planted_model
    assert centred_index.calibration is not None and centred_index.config["normalisation"] == "centered"
    shares = []
    for prompt, seed in CONCEPT + UNRELATED:
        image = pipeline(prompt, num_inference_steps=20, guidance_scale=4.0, height=32, width=32, clean_caption=False,
                         generator=torch.Generator().manual_seed(seed)).images[0]
        paid = influence_shares(centred_index.scores(attributor.features(image, prompt)), centred_index.asset_ids,
                                centred_index.contributor_ids).contributors
        shares.append((max(paid, key=lambda c: paid[c]) == PLANTED, float(paid.get(PLANTED, 0))))
    concept, unrelated = shares[:len(CONCEPT)], shares[len(CONCEPT):]
    assert all(top for top, _ in concept), concept
    assert not any(top for top, _ in unrelated), unrelated
    assert max(share for _, share in unrelated) < 0.2
