"""Influence at catalog scale: the kernel solved on the query, rows appended without a rebuild, and a
candidate search whose exact re-scoring gives the full scan's top images."""

from __future__ import annotations

import io
import uuid
from dataclasses import replace

import numpy as np
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from foundry.attribution.policy import outputs_influence
from provenance.influence import InfluenceConfig, InfluenceIndex, unit_pixel_rows
from provenance.influence_search import (
    CANDIDATES,
    CENTRED_CANDIDATES,
    CandidateSearch,
    exact_top,
    one_blas_thread,
    recall_at,
)

CONFIG = InfluenceConfig(projection_dim=64, normalisation="none", damping=0.1, payment_timesteps=None)
"""Raw kernel scores: the arithmetic the calibrated scores build on."""
CALIBRATED = InfluenceConfig(projection_dim=64, normalisation="calibrated", calibration_outputs=24, damping=0.1, payment_timesteps=None)
SELF = InfluenceConfig(projection_dim=64, normalisation="self", damping=0.1, payment_timesteps=None)
CENTERED = InfluenceConfig(projection_dim=64, normalisation="centered", calibration_outputs=24, damping=0.1, payment_timesteps=None)
CENTERED_CALIBRATED = replace(CENTERED, normalisation="centered_calibrated")
FINGERPRINT = {"snapshot_merkle_root": "ab" * 32, "weights_sha256": "cd" * 32}


def clustered_rows(count: int, dim: int = 64, clusters: int = 40, seed: int = 0) -> np.ndarray:
    """Rows with the structure of real features: a few directions carry most of the variance."""
    generator = np.random.default_rng(seed)
    centres = generator.normal(size=(clusters, dim)) * np.linspace(3, 0.3, dim)
    return (centres[generator.integers(0, clusters, count)] + 0.3 * generator.normal(size=(count, dim))).astype(
        np.float32)


def ids(count: int) -> list[uuid.UUID]:
    return [uuid.uuid4() for _ in range(count)]


def build(rows: np.ndarray, **options) -> InfluenceIndex:
    return InfluenceIndex.build(rows, asset_ids=ids(len(rows)), contributor_ids=ids(len(rows)), config=CONFIG,
                                fingerprint=FINGERPRINT, **options)


def test_scores_are_the_kernel_regularised_inner_product():
    rows = clustered_rows(300)
    index = build(rows)
    phi = rows.astype(np.float64)
    kernel = phi.T @ phi
    kernel[np.diag_indices_from(kernel)] += CONFIG.damping * np.trace(kernel) / kernel.shape[0]
    expected = np.linalg.solve(kernel, phi.T).T @ rows[7]  # Phi (Phi^T Phi + lambda I)^-1 phi_q
    assert np.allclose(index.scores(rows[7]), expected, rtol=1e-4, atol=1e-6)
    assert int(np.argmax(index.scores(rows[7]))) == 7
    assert index.search is None and len(index.candidates(rows[7]).positions) == 300  # small: a full scan


def test_an_extended_index_scores_like_one_built_from_every_row():
    rows = clustered_rows(500)
    whole = build(rows)
    grown = InfluenceIndex.build(rows[:350], asset_ids=whole.asset_ids[:350], contributor_ids=whole.contributor_ids[:350],
                                 config=CONFIG, fingerprint={"weights_sha256": "old"})
    grown.extend(rows[350:], asset_ids=whole.asset_ids[350:], contributor_ids=whole.contributor_ids[350:],
                 fingerprint=FINGERPRINT)
    assert grown.asset_ids == whole.asset_ids and grown.valid_for(FINGERPRINT)
    assert np.allclose(grown.scores(rows[400]), whole.scores(rows[400]), rtol=1e-4, atol=1e-6)
    with pytest.raises(ValueError, match="dimension"):
        grown.extend(np.zeros((1, 8), np.float32), asset_ids=ids(1), contributor_ids=ids(1), fingerprint=FINGERPRINT)


def test_the_search_finds_the_exact_top_and_survives_save_load_and_growth():
    rows = clustered_rows(6000)
    index = build(rows[:5000], search_min_rows=1000)
    assert isinstance(index.search, CandidateSearch) and index.search.size == 5000
    queries = clustered_rows(30, seed=9)
    recalls = []
    for query in queries:
        scored = index.candidates(query)
        assert len(scored.positions) == index.search.candidates < 5000
        exact = index.scores(query)
        assert np.allclose(scored.scores, exact[scored.positions], rtol=1e-5, atol=1e-6)  # re-scored exactly
        top = np.argsort(-exact)[:50]
        recalls.append(recall_at(scored.positions[np.argsort(-scored.scores)][:50], top))
    assert np.mean(recalls) >= 0.95, recalls

    buffer = io.BytesIO()
    index.save(buffer)
    loaded = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    assert np.array_equal(loaded.candidates(queries[0]).positions, index.candidates(queries[0]).positions)

    loaded.extend(rows[5000:], asset_ids=ids(1000), contributor_ids=ids(1000), fingerprint=FINGERPRINT)
    assert loaded.search.size == 6000  # added to the graph, not rebuilt
    newcomer = loaded.candidates(rows[5500])
    assert 5500 in newcomer.positions.tolist()
    assert int(newcomer.positions[np.argmax(newcomer.scores)]) == 5500


def blas_threads() -> set[int]:
    return {pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"}


def test_a_searched_query_is_scored_on_one_blas_thread_and_the_threads_are_given_back(monkeypatch):
    index = build(clustered_rows(3000), search_min_rows=1000)
    query = clustered_rows(1, seed=5)[0]
    with threadpool_limits(limits=2, user_api="blas"):
        expected = index.candidates(query)
        during = []
        searched = CandidateSearch.search

        def recording(self, query, count=None):
            during.append(blas_threads())
            return searched(self, query, count)

        monkeypatch.setattr(CandidateSearch, "search", recording)
        scored = index.candidates(query)
        assert during == [{1}] and blas_threads() == {2}
        assert np.array_equal(scored.positions, expected.positions)
        assert np.allclose(scored.scores, expected.scores, rtol=1e-5, atol=1e-6)


def test_a_small_index_is_scanned_on_one_blas_thread_too(monkeypatch):
    """Scanned with two threads, the spinning threads slowed the next output's torch features twice over."""
    index = build(clustered_rows(300))
    query = clustered_rows(1, seed=5)[0]
    assert index.search is None
    with threadpool_limits(limits=2, user_api="blas"):
        expected = index.scores(query)
        during = []
        scored_rows = InfluenceIndex.scores

        def recording(self, query):
            during.append(blas_threads())
            return scored_rows(self, query)

        monkeypatch.setattr(InfluenceIndex, "scores", recording)
        scored = index.candidates(query)
        assert during == [{1}] and blas_threads() == {2}
        assert np.allclose(scored.scores, expected, rtol=1e-5, atol=1e-6)


def test_overlapping_scoring_scopes_restore_the_threads_only_when_the_last_one_ends():
    first, second = one_blas_thread(), one_blas_thread()  # two outputs scored at once, ending out of order
    with threadpool_limits(limits=2, user_api="blas"):
        first.__enter__()
        second.__enter__()
        assert blas_threads() == {1}
        first.__exit__(None, None, None)
        assert blas_threads() == {1}  # the other output is still being scored
        second.__exit__(None, None, None)
        assert blas_threads() == {2}
        with one_blas_thread(), one_blas_thread():  # nested
            assert blas_threads() == {1}
        assert blas_threads() == {2}


def test_shares_from_candidates_match_shares_from_a_full_scan():
    rows = clustered_rows(3000)
    searched, scanned = build(rows, search_min_rows=1000), build(rows)
    scanned.asset_ids, scanned.contributor_ids = searched.asset_ids, searched.contributor_ids
    query = rows[123] + 0.1
    by_search = outputs_influence([searched.candidates(query)], asset_ids=searched.asset_ids,
                                  contributor_ids=searched.contributor_ids)
    by_scan = outputs_influence([scanned.candidates(query)], asset_ids=scanned.asset_ids,
                                contributor_ids=scanned.contributor_ids)
    assert [(a.asset_id, a.share) for a in by_search.assets][:10] == [(a.asset_id, a.share) for a in by_scan.assets][:10]


def test_an_index_saved_with_premultiplied_rows_still_scores():
    rows = clustered_rows(200)
    index = build(rows)
    legacy = io.BytesIO()
    np.savez_compressed(legacy, projected=(index.rows @ np.linalg.inv(
        index.gram + CONFIG.damping * np.trace(index.gram) / 64 * np.eye(64))).astype(np.float32),
        asset_ids=np.array([str(a) for a in index.asset_ids]),
        contributor_ids=np.array([str(c) for c in index.contributor_ids]),
        config=np.array(repr(sorted(index.config.items()))), fingerprint=np.array(repr(sorted(FINGERPRINT.items()))))
    old = InfluenceIndex.load(io.BytesIO(legacy.getvalue()))
    assert old.gram is None and np.allclose(old.scores(rows[3]), index.scores(rows[3]), rtol=1e-3, atol=1e-5)
    with pytest.raises(ValueError, match="rebuild"):
        old.extend(rows[:1], asset_ids=ids(1), contributor_ids=ids(1), fingerprint=FINGERPRINT)


def test_exact_top_is_a_chunked_full_scan():
    rows = clustered_rows(1000)
    query = rows[5]
    expected = np.argsort(-(rows @ query), kind="stable")[:20]
    assert set(exact_top(rows, query, 20, chunk=128).tolist()) == set(expected.tolist())


def calibrated(rows: np.ndarray, calibration: np.ndarray, **options) -> InfluenceIndex:
    return InfluenceIndex.build(rows, asset_ids=ids(len(rows)), contributor_ids=ids(len(rows)), config=CALIBRATED,
                                fingerprint=FINGERPRINT, calibration=calibration, **options)


def test_calibrated_scores_are_each_rows_kernel_scores_standardised_on_the_calibration_outputs():
    rows, calibration = clustered_rows(300), clustered_rows(24, seed=5)
    index, raw = calibrated(rows, calibration), build(rows)
    query = clustered_rows(1, seed=6)[0]
    on_calibration = np.stack([raw.scores(c) for c in calibration], axis=1)  # (rows, C)
    expected = (raw.scores(query) - on_calibration.mean(axis=1)) / on_calibration.std(axis=1)
    assert np.allclose(index.scores(query), expected, rtol=1e-3, atol=1e-4)
    assert np.allclose(index.candidates(query).scores, expected, rtol=1e-3, atol=1e-4)
    with pytest.raises(ValueError, match="calibration"):
        InfluenceIndex.build(rows, asset_ids=ids(300), contributor_ids=ids(300), config=CALIBRATED, fingerprint={})
    with pytest.raises(ValueError, match="calibration"):
        calibrated(rows, calibration[:5])


def test_self_normalised_scores_divide_by_the_root_of_each_rows_self_influence():
    rows = clustered_rows(300)
    raw = build(rows)
    index = InfluenceIndex.build(rows, asset_ids=ids(300), contributor_ids=ids(300), config=SELF, fingerprint={})
    self_influence = np.array([raw.scores(row)[i] for i, row in enumerate(rows)])
    query = clustered_rows(1, seed=6)[0]
    assert np.allclose(index.scores(query), raw.scores(query) / np.sqrt(self_influence), rtol=1e-3, atol=1e-5)
    assert [int(np.argmax(index.scores(rows[i]))) for i in range(20)] == list(range(20))  # Cauchy-Schwarz
    with pytest.raises(ValueError, match="calibration"):
        InfluenceIndex.build(rows, asset_ids=ids(300), contributor_ids=ids(300), config=SELF, fingerprint={},
                             calibration=rows[:32])


@pytest.mark.parametrize(("config", "hub_rate"), [(CALIBRATED, 0.2), (CENTERED, 0.3), (CENTERED_CALIBRATED, 0.2)],
                         ids=["calibrated", "centered", "centered_calibrated"])
def test_the_models_own_outputs_take_the_hub_out_of_every_outputs_top_ten(config, hub_rate):
    """A row that points where every output points scores high for all of them raw. Standardised on other
    outputs, or centred on their mean, it no longer stands out for all of them, while an output still finds
    the row it resembles. (Dividing by the root of self-influence does not remove such a hub: it corrects for
    a row's size, not its direction. A centred row is not rescaled: a long row still varies most and is in
    some top tens, as any large image may be.)"""
    generator = np.random.default_rng(3)
    common = generator.normal(size=64)
    rows = generator.normal(size=(400, 64)) + 0.3 * common
    rows[0] = 6 * common  # the hub
    outputs = generator.normal(size=(60, 64)) + common
    queries, calibration = outputs[:30], outputs[30:54]
    rows = rows.astype(np.float32)
    index = InfluenceIndex.build(rows, asset_ids=ids(400), contributor_ids=ids(400), config=config,
                                 fingerprint=FINGERPRINT, calibration=calibration.astype(np.float32))
    in_top = {name: np.mean([0 in np.argsort(-scored.scores(q))[:10] for q in queries])
              for name, scored in (("raw", build(rows)), ("normalised", index))}
    assert in_top["raw"] >= 0.9 and in_top["normalised"] <= hub_rate, in_top
    assert np.mean([int(np.argmax(index.scores(rows[i] + common))) == i for i in range(1, 41)]) >= 0.9


@pytest.mark.parametrize("config", [CALIBRATED, SELF, CENTERED, CENTERED_CALIBRATED],
                         ids=["calibrated", "self", "centered", "centered_calibrated"])
def test_a_normalised_index_searches_round_trips_and_grows_like_one_built_whole(config):
    rows = clustered_rows(6000)
    calibration = clustered_rows(24, seed=5) if config.uses_calibration_outputs else None

    def normalised(part: np.ndarray, **options) -> InfluenceIndex:
        return InfluenceIndex.build(part, asset_ids=ids(len(part)), contributor_ids=ids(len(part)), config=config,
                                    fingerprint=FINGERPRINT, calibration=calibration, **options)

    index = normalised(rows[:5000], search_min_rows=1000)
    recalls = []
    for query in clustered_rows(20, seed=9):
        scored, exact = index.candidates(query), index.scores(query)
        assert np.allclose(scored.scores, exact[scored.positions], rtol=1e-4, atol=1e-5)
        recalls.append(recall_at(scored.positions[np.argsort(-scored.scores)][:50], np.argsort(-exact)[:50]))
    assert np.mean(recalls) >= 0.9, recalls
    buffer = io.BytesIO()
    index.save(buffer)
    loaded = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    assert (loaded.calibration is None) == (calibration is None) and loaded.config == config.as_dict()
    assert np.array_equal(loaded.scores(rows[1]), index.scores(rows[1]))
    whole = normalised(rows)
    loaded.extend(rows[5000:], asset_ids=ids(1000), contributor_ids=ids(1000), fingerprint=FINGERPRINT)
    assert loaded.search.size == 6000  # refitted: every row's scale moved with the kernel
    assert np.allclose(loaded.scores(rows[5500]), whole.scores(rows[5500]), rtol=1e-3, atol=1e-4)
    found = loaded.candidates(rows[5500])
    assert set(np.argsort(-whole.scores(rows[5500]))[:10].tolist()) <= set(found.positions.tolist())


@pytest.mark.parametrize("config", [CENTERED, CENTERED_CALIBRATED], ids=["centered", "centered_calibrated"])
def test_a_centred_index_searches_features_that_share_a_large_common_part(config):
    """Real gradient features share a large part (to a model its own outputs look alike): the centred score
    takes it out, and so must the rows the search is built on, or the graph follows the shared part and the
    search proposes nearly random candidates (0.10 of the exact top 50 on the benchmark's real index)."""
    common = 25 * np.random.default_rng(3).normal(size=64).astype(np.float32)
    rows, calibration = clustered_rows(5000) + common, clustered_rows(24, seed=5) + common
    index = InfluenceIndex.build(rows, asset_ids=ids(5000), contributor_ids=ids(5000), config=config,
                                 fingerprint=FINGERPRINT, calibration=calibration, search_min_rows=1000)
    recalls = []
    for query in clustered_rows(20, seed=9) + common:
        scored, exact = index.candidates(query), index.scores(query)
        recalls.append(recall_at(scored.positions[np.argsort(-scored.scores)][:50], np.argsort(-exact)[:50]))
    assert np.mean(recalls) >= 0.9, recalls


def test_an_index_searched_with_another_candidate_count_replays_its_own():
    """A generation's audit replays the search it was scored by: an index built when a centred search
    proposed 1,024 candidates loads with 1,024, and proposes them; a new build proposes CENTRED_CANDIDATES."""
    rows, calibration = clustered_rows(3000), clustered_rows(24, seed=5)
    index = InfluenceIndex.build(rows, asset_ids=ids(3000), contributor_ids=ids(3000), config=CENTERED,
                                 fingerprint=FINGERPRINT, calibration=calibration, search_min_rows=1000)
    assert index.search.candidates == CENTRED_CANDIDATES
    assert len(index.candidates(rows[7]).positions) == CENTRED_CANDIDATES
    index.search.candidates = CANDIDATES  # as stop 38 built it
    buffer = io.BytesIO()
    index.save(buffer)
    loaded = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    assert loaded.search.candidates == CANDIDATES
    assert len(loaded.candidates(rows[7]).positions) == CANDIDATES


def centered(rows: np.ndarray, calibration: np.ndarray, **options) -> InfluenceIndex:
    return InfluenceIndex.build(rows, asset_ids=ids(len(rows)), contributor_ids=ids(len(rows)), config=CENTERED,
                                fingerprint=FINGERPRINT, calibration=calibration, **options)


def test_centred_scores_are_kernel_scores_of_features_less_the_calibration_outputs_mean():
    rows, calibration = clustered_rows(300), clustered_rows(24, seed=5)
    index = centered(rows, calibration)
    centre = calibration.astype(np.float64).mean(axis=0)
    phi = rows.astype(np.float64) - centre
    kernel = phi.T @ phi
    kernel[np.diag_indices_from(kernel)] += CENTERED.damping * np.trace(kernel) / kernel.shape[0]
    query = clustered_rows(1, seed=6)[0]
    expected = phi @ np.linalg.solve(kernel, query - centre)
    assert np.allclose(index.scores(query), expected, rtol=1e-3, atol=1e-4)
    assert np.allclose(index.candidates(query).scores, expected, rtol=1e-3, atol=1e-4)
    # not a calibrated index in disguise: no per-row rescaling, and a different order
    assert not np.allclose(index.scores(query), calibrated(rows, calibration).scores(query), rtol=0.1)
    assert np.mean([int(np.argmax(index.scores(rows[i]))) == i for i in range(40)]) >= 0.9
    with pytest.raises(ValueError, match="calibration"):
        InfluenceIndex.build(rows, asset_ids=ids(300), contributor_ids=ids(300), config=CENTERED, fingerprint={})


def test_centred_calibrated_scores_are_centred_scores_over_each_rows_spread_on_the_calibration_outputs():
    rows, calibration = clustered_rows(300), clustered_rows(24, seed=5)
    plain = centered(rows, calibration)
    index = InfluenceIndex.build(rows, asset_ids=ids(300), contributor_ids=ids(300), config=CENTERED_CALIBRATED,
                                 fingerprint=FINGERPRINT, calibration=calibration)
    on_calibration = np.stack([plain.scores(output) for output in calibration])  # (outputs, rows)
    assert np.allclose(on_calibration.mean(axis=0), 0, atol=1e-3 * on_calibration.std())  # centred: mean 0 there
    query = clustered_rows(1, seed=6)[0]
    expected = plain.scores(query) / on_calibration.std(axis=0)
    assert np.allclose(index.scores(query), expected, rtol=1e-3, atol=1e-5)
    standardised = np.stack([index.scores(output) for output in calibration])
    assert np.allclose(standardised.std(axis=0), 1, atol=1e-3)


def test_a_row_long_where_the_outputs_vary_is_a_centred_hub_that_its_spread_takes_out():
    """Centring removes what every output shares, not a row that is long along the direction the outputs vary
    in: its centred score is large, of either sign, for every output, so it sits in the top ten of about half
    of them. Divided by its spread over the calibration outputs it is an ordinary row again."""
    generator = np.random.default_rng(4)
    direction = generator.normal(size=64)
    direction /= np.linalg.norm(direction)
    rows = generator.normal(size=(400, 64))
    rows[0] = 12 * direction  # the hub
    outputs = generator.normal(size=(80, 64)) + 5 * generator.normal(size=(80, 1)) * direction
    queries, calibration = outputs[:40], outputs[40:64]
    in_top = {}
    for config in (CENTERED, CENTERED_CALIBRATED):
        index = InfluenceIndex.build(rows.astype(np.float32), asset_ids=ids(400), contributor_ids=ids(400),
                                     config=config, fingerprint=FINGERPRINT, calibration=calibration.astype(np.float32))
        in_top[config.normalisation] = np.mean([0 in np.argsort(-index.scores(q))[:10] for q in queries])
        assert np.mean([int(np.argmax(index.scores(rows[i] + 0.5 * outputs[i % 24]))) == i
                        for i in range(1, 41)]) >= 0.8  # an output still finds the row it resembles
    assert in_top["centered"] >= 0.25 and in_top["centered_calibrated"] <= 0.1, in_top


def test_each_version_is_read_with_its_own_defaults():
    version_one = {**CENTERED.as_dict(), "version": "1"}
    del version_one["timesteps"]
    old = InfluenceConfig.from_dict(version_one)
    assert (old.normalisation, old.timesteps) == ("none", (100, 300, 500, 700, 900))  # what version 1 served
    recorded = {**CENTERED.as_dict()}
    del recorded["normalisation"]
    assert InfluenceConfig.from_dict(recorded).normalisation == "self"  # version 2's default
    assert InfluenceConfig.from_dict(CENTERED.as_dict()) == CENTERED


def test_a_generation_scored_before_calibration_is_audited_as_it_was_scored():
    recorded = {**InfluenceConfig().as_dict(), "version": "1"}
    for added in ("normalisation", "calibration_outputs", "calibration_seed"):
        del recorded[added]
    assert InfluenceConfig.from_dict(recorded).normalisation == "none"
    with pytest.raises(ValueError, match="normalisation"):
        InfluenceConfig(normalisation="mystery")
    assert InfluenceConfig.from_dict(InfluenceConfig().as_dict()) == InfluenceConfig()
    with pytest.raises(ValueError, match="v9"):
        InfluenceConfig.from_dict({**InfluenceConfig().as_dict(), "version": "9"})


def test_a_split_index_searches_both_views_and_round_trips_and_grows_them_together():
    # self evidence, centred payment (version 3; a blended evidence view's search: the tests below)
    split = InfluenceConfig(projection_dim=64, damping=0.1, calibration_outputs=24, pixel_weight=0.0)
    assert split.split
    rows = np.stack([clustered_rows(6000, seed=1), clustered_rows(6000, seed=2)], axis=1)  # (N, views, d)
    calibration = np.stack([clustered_rows(24, seed=5), clustered_rows(24, seed=6)], axis=1)
    assets, contributors = ids(6000), ids(6000)
    index = InfluenceIndex.build(rows[:5000], asset_ids=assets[:5000], contributor_ids=contributors[:5000],
                                 config=split, fingerprint=FINGERPRINT, calibration=calibration, search_min_rows=1000)
    assert index.search is not None and index.payment.search is not None and index.paying() is index.payment
    # the centred (payment) view's search proposes more candidates: its compact rows keep less of each product
    assert (index.search.candidates, index.payment.search.candidates) == (CANDIDATES, CENTRED_CANDIDATES)
    query = rows[4321]
    scored = index.score_output(query)
    # each view proposes and scores its own candidates, exactly as its own full scan would
    for view, part in ((index, scored.evidence), (index.payment, scored.payment)):
        exact = view.scores(query[0] if view is index else query[1])
        assert np.allclose(part.scores, exact[part.positions], rtol=1e-4, atol=1e-5)
        assert 4321 in part.positions[np.argsort(-part.scores)][:10].tolist()
    buffer = io.BytesIO()
    index.save(buffer)
    loaded = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    assert loaded.config == split.as_dict() and loaded.payment.search.candidates == CENTRED_CANDIDATES
    again = loaded.score_output(query)
    for before, after in ((scored.evidence, again.evidence), (scored.payment, again.payment)):
        assert np.array_equal(before.positions, after.positions) and np.array_equal(before.scores, after.scores)
    loaded.extend(rows[5000:], asset_ids=assets[5000:], contributor_ids=contributors[5000:], fingerprint=FINGERPRINT)
    whole = InfluenceIndex.build(rows, asset_ids=assets, contributor_ids=contributors, config=split,
                                 fingerprint=FINGERPRINT, calibration=calibration)
    assert len(loaded.asset_ids) == len(loaded.payment.asset_ids) == 6000 and loaded.payment.search.size == 6000
    for grown, built, view in ((loaded, whole, 0), (loaded.payment, whole.payment, 1)):
        assert np.allclose(grown.scores(rows[5500, view]), built.scores(rows[5500, view]), rtol=1e-3, atol=1e-4)


BLENDED = InfluenceConfig(projection_dim=64, damping=0.1, calibration_outputs=24, pixel_weight=0.75, pixel_size=4)
"""Version 4: the product's split views, the evidence view blended with 4 x 4 RGB pixel rows (48 numbers)."""


def codes(count: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    """Pixel codes as ``pixel_codes`` makes them (bytes), clustered like thumbnails of a few kinds of picture."""
    rows = clustered_rows(count, dim=dim, clusters=25, seed=seed)
    return np.clip(np.rint(128 + 30 * rows), 0, 255).astype(np.uint8)


def unit_rows(count: int, dim: int = 48, seed: int = 0) -> np.ndarray:
    """Outputs' pixel rows, as ``pixel_row`` makes them from their codes."""
    return unit_pixel_rows(codes(count, dim, seed))


def blended_inputs(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    features = np.stack([clustered_rows(count, seed=seed + 1), clustered_rows(count, seed=seed + 2)], axis=1)
    calibration = np.stack([clustered_rows(24, seed=5), clustered_rows(24, seed=6)], axis=1)
    return features, calibration, codes(count, seed=seed + 3)


def standardised(scores: np.ndarray) -> np.ndarray:
    return (scores - scores.mean()) / scores.std()


def test_a_blended_evidence_view_mixes_each_parts_standardised_scores_and_pays_by_gradients_alone():
    features, calibration, pixels = blended_inputs(400)
    assets, contributors = ids(400), ids(400)
    index = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=BLENDED,
                                 fingerprint=FINGERPRINT, calibration=calibration, pixels=pixels)
    unblended = InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors,
                                     config=replace(BLENDED, pixel_weight=0.0), fingerprint=FINGERPRINT,
                                     calibration=calibration)
    query, query_pixels = clustered_rows(2, seed=9), unit_rows(1, seed=10)[0]
    scored, gradient_only = index.score_output(query, pixels=query_pixels), unblended.score_output(query)
    rows = unit_pixel_rows(pixels)
    expected = 0.25 * standardised(gradient_only.evidence.scores) + 0.75 * standardised(rows @ query_pixels)
    assert np.allclose(scored.evidence.scores, expected, atol=1e-4)
    assert np.array_equal(scored.payment.scores, gradient_only.payment.scores)  # the pool splits as in version 3
    # a training image asked about as an output (its own features and pixels) still ranks itself first
    assert int(np.argmax(index.score_output(features[17], pixels=rows[17]).evidence.scores)) == 17
    assert BLENDED.as_dict()["version"] == "4" and InfluenceConfig.from_dict(BLENDED.as_dict()) == BLENDED
    with pytest.raises(ValueError, match="pixel row"):
        index.score_output(query)
    with pytest.raises(ValueError, match="pixel row per example"):
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=BLENDED,
                             fingerprint=FINGERPRINT, calibration=calibration)
    with pytest.raises(ValueError, match="blends pixel similarity"):
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors,
                             config=replace(BLENDED, pixel_weight=0.0), fingerprint=FINGERPRINT,
                             calibration=calibration, pixels=pixels)
    with pytest.raises(ValueError, match="pixel codes"):  # an index keeps bytes: a quarter of float rows' size
        InfluenceIndex.build(features, asset_ids=assets, contributor_ids=contributors, config=BLENDED,
                             fingerprint=FINGERPRINT, calibration=calibration, pixels=rows)


def test_pixel_blending_is_a_split_configs_evidence_view_and_older_records_read_without_it():
    assert replace(BLENDED, payment_timesteps=None).pixel_weight == 0.0  # one view pays by what it shows
    assert InfluenceConfig().pixel_weight == 0.75 and InfluenceConfig().as_dict()["version"] == "4"
    with pytest.raises(ValueError, match="between 0 and 1"):
        replace(BLENDED, pixel_weight=1.5)
    version_three = replace(BLENDED, pixel_weight=0.0).as_dict()
    assert version_three["version"] == "3" and "pixel_weight" not in version_three  # as version 3 recorded it
    assert InfluenceConfig.from_dict(version_three).pixel_weight == 0.0
    assert InfluenceConfig.from_dict({**version_three, "version": "2", "payment_timesteps": None}).pixel_weight == 0


def test_a_pixel_row_is_an_images_centred_unit_thumbnail():
    from PIL import Image

    from provenance.influence import pixel_codes, pixel_row
    from tests.support import images

    picture = Image.open(io.BytesIO(images.pattern_png(3, size=64)))
    row = pixel_row(picture, 8)
    assert row.shape == (3 * 8 * 8,) and abs(float(row.mean())) < 1e-6 and abs(float(row @ row) - 1) < 1e-5
    assert np.array_equal(row, pixel_row(picture.convert("RGBA"), 8))  # what is compared is the RGB picture
    assert np.allclose(row, unit_pixel_rows(pixel_codes(picture, 8)[None])[0], atol=1e-7)  # what an index keeps
    assert pixel_codes(picture, 8).dtype == np.uint8
    other = pixel_row(Image.open(io.BytesIO(images.pattern_png(4, size=64))), 8)
    assert float(row @ other) < 0.99


def test_pixel_codes_are_read_as_the_rows_they_stand_for_and_early_float_rows_still_score_and_grow():
    from provenance.influence import PixelRows

    features, calibration, pixels = blended_inputs(800)
    assets, contributors = ids(800), ids(800)
    rows = unit_pixel_rows(pixels)
    view, output = PixelRows(pixels, chunk=300), unit_rows(1, seed=11)[0]
    picked = np.array([3, 250, 299, 300, 799])
    assert np.allclose(view.products(picked, output), rows[picked] @ output, atol=1e-6)
    assert np.allclose(view.products(slice(None), output), rows @ output, atol=1e-6)
    assert np.allclose(view[picked], rows[picked], atol=1e-6)

    index = InfluenceIndex.build(features[:700], asset_ids=assets[:700], contributor_ids=contributors[:700],
                                 config=BLENDED, fingerprint=FINGERPRINT, calibration=calibration,
                                 pixels=pixels[:700])
    buffer = io.BytesIO()
    index.save(buffer)
    # version 4's first release kept float pixel rows: saved that way, an index reads, scores and grows the same
    early = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    early.pixels = rows[:700].copy()
    early.save(buffer := io.BytesIO())
    early = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    assert early.pixels.dtype == np.float32
    assert np.allclose(early.score_output(features[5], pixels=output).evidence.scores,
                       index.score_output(features[5], pixels=output).evidence.scores, atol=1e-5)
    for grown in (index, early):
        grown.extend(features[700:], asset_ids=assets[700:], contributor_ids=contributors[700:],
                     fingerprint=FINGERPRINT, pixels=pixels[700:])
    assert index.pixels.dtype == np.uint8 and early.pixels.dtype == np.float32 and len(early.pixels) == 800
    assert np.allclose(early.score_output(features[750], pixels=output).evidence.scores,
                       index.score_output(features[750], pixels=output).evidence.scores, atol=1e-5)
    with pytest.raises(ValueError, match="pixel codes"):
        index.extend(features[:1], asset_ids=ids(1), contributor_ids=ids(1), fingerprint=FINGERPRINT,
                     pixels=rows[:1])


def test_a_large_blended_index_finds_the_blends_top_and_round_trips_and_grows_like_one_built_whole():
    features, calibration, pixels = blended_inputs(6000)
    assets, contributors = ids(6000), ids(6000)

    def blended(part: slice, **options) -> InfluenceIndex:
        return InfluenceIndex.build(features[part], asset_ids=assets[part], contributor_ids=contributors[part],
                                    config=BLENDED, fingerprint=FINGERPRINT, calibration=calibration,
                                    pixels=pixels[part], **options)

    searched, scanned = blended(slice(0, 5000), search_min_rows=1000), blended(slice(0, 5000))
    assert searched.pixel_search is not None and scanned.pixel_search is None
    recalls = []
    for q in range(20):
        query, query_pixels = clustered_rows(2, seed=100 + q), unit_rows(1, seed=200 + q)[0]
        found = searched.score_output(query, pixels=query_pixels).evidence
        exact = scanned.score_output(query, pixels=query_pixels).evidence.scores
        assert np.allclose(found.scores, exact[found.positions], atol=1e-4)  # candidates scored exactly
        recalls.append(recall_at(found.positions[np.argsort(-found.scores)][:50], np.argsort(-exact)[:50]))
    assert np.mean(recalls) >= 0.9, recalls
    buffer = io.BytesIO()
    searched.save(buffer)
    loaded = InfluenceIndex.load(io.BytesIO(buffer.getvalue()))
    query, query_pixels = features[4321], unit_pixel_rows(pixels[4321:4322])[0]
    before, after = searched.score_output(query, pixels=query_pixels), loaded.score_output(query, pixels=query_pixels)
    assert np.array_equal(before.evidence.positions, after.evidence.positions)
    assert np.array_equal(before.evidence.scores, after.evidence.scores)
    with pytest.raises(ValueError, match="pixel row per example"):
        loaded.extend(features[5000:], asset_ids=assets[5000:], contributor_ids=contributors[5000:],
                      fingerprint=FINGERPRINT)
    assert len(loaded.asset_ids) == 5000  # refused before anything grew
    loaded.extend(features[5000:], asset_ids=assets[5000:], contributor_ids=contributors[5000:],
                  fingerprint=FINGERPRINT, pixels=pixels[5000:])
    whole = blended(slice(None))
    assert loaded.pixel_search.size == loaded.search.size == 6000
    own = unit_pixel_rows(pixels[5500:5501])[0]
    grown = loaded.score_output(features[5500], pixels=own).evidence
    built = whole.score_output(features[5500], pixels=own).evidence
    assert np.allclose(grown.scores, built.scores[grown.positions], rtol=1e-3, atol=1e-3)
    assert int(grown.positions[np.argmax(grown.scores)]) == 5500 == int(np.argmax(built.scores))
