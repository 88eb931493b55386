"""A contributor who alone brought a concept gets the influence of outputs showing that concept.

The small version of ``benchmarks/attribution.py``'s planted-contributor check, run in CI: a
tiny model is trained for real on 24 captioned shapes from three artists plus 6 images of a
concept only the planted artist has ("zorblat rings": magenta/teal rings on black).
"""

from __future__ import annotations

import uuid

import numpy as np
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
    attributor = Attributor(pipeline, InfluenceConfig())  # the product's method: evidence and payment views
    features = attributor.features_of_many((e.load_image(), e.caption) for e in examples)
    calibration = attributor.calibration_features((e.caption for e in examples), guidance_scale=4.0, steps=20)
    index = InfluenceIndex.build(features, asset_ids=[uuid.uuid4() for _ in examples], contributor_ids=owners,
                                 config=InfluenceConfig(), fingerprint={}, calibration=calibration,
                                 pixels=np.stack([attributor.pixel_codes(e.load_image()) for e in examples]))
    return pipeline, attributor, index


def planted_share(planted_model, prompt: str, seed: int, role: str = "payment") -> tuple[bool, float]:
    """Whether the planted contributor leads this output's influence shares, and its share, by the scores of
    one view (``payment``: what the product pays; ``evidence``: what it shows)."""
    pipeline, attributor, index = planted_model
    image = pipeline(prompt, num_inference_steps=20, guidance_scale=4.0, height=32, width=32, clean_caption=False,
                     generator=torch.Generator().manual_seed(seed)).images[0]
    scored = getattr(attributor.score(index, image, prompt), role)
    shares = influence_shares(scored.scores, [index.asset_ids[p] for p in scored.positions],
                              [index.contributor_ids[p] for p in scored.positions])
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


def test_the_evidence_view_also_finds_the_planted_contributor(planted_model):
    """The evidence view (self-normalised, one late timestep) ranks what is shown beside an output: the planted
    artist leads its concept there too, and stays under pro rata's 20 % elsewhere."""
    assert planted_model[2].payment is not None and planted_model[2].payment.config["normalisation"] == "centered"
    concept = [planted_share(planted_model, prompt, seed, "evidence") for prompt, seed in CONCEPT]
    unrelated = [planted_share(planted_model, prompt, seed, "evidence") for prompt, seed in UNRELATED]
    assert all(top for top, _ in concept), concept
    assert not any(top for top, _ in unrelated), unrelated
    assert max(share for _, share in unrelated) < 0.2
