"""benchmarks/contributor_shares.py: split rules read back from an attribution dump."""

from __future__ import annotations

import uuid
from fractions import Fraction

import numpy as np
import pytest

from benchmarks.contributor_shares import (
    Kernel,
    contributor_weights,
    excess_scores,
    main,
    paid_scores,
    partial_normalisation,
)


def test_the_chosen_images_are_paid_by_the_other_method_and_nothing_else_is():
    select = np.array([[5.0, 4.0, -1.0, 3.0, 0.0]])
    weigh = np.array([[1.0, -2.0, 9.0, 3.0, 7.0]])
    paid = paid_scores(select, weigh, top_k=3)
    # chosen: 0, 1, 3 (the third-ranked positive); image 1 is paid nothing, its weight being negative;
    # images 2 and 4 are not chosen, however large their weight
    assert paid.tolist() == [[1.0, 0.0, 0.0, 3.0, 0.0]]


def test_partial_normalisation_runs_from_raw_to_self_normalised_scores():
    rng = np.random.default_rng(0)
    raw = rng.normal(size=(6, 8))
    root = rng.uniform(0.5, 4.0, size=8)
    relative = raw / root
    assert np.allclose(partial_normalisation(raw, relative, 0.0), raw)
    assert np.allclose(partial_normalisation(raw, relative, 1.0), relative)
    assert np.allclose(partial_normalisation(raw, relative, 0.5), raw / np.sqrt(root))


def test_a_rule_paid_by_the_true_influence_predicts_the_ground_truth_and_noise_does_not(tmp_path):
    rng = np.random.default_rng(1)
    images, queries, contributors = 60, 30, 12
    owner = np.arange(images) % contributors
    influence = rng.gamma(0.5, size=(queries, images))  # what each image did to each query's loss
    loss_rise = np.stack([influence[:, owner == c].sum(axis=1) for c in range(contributors)])
    noise = rng.normal(size=(queries, images))
    dump = tmp_path / "dump.npz"
    np.savez(dump, loss_rise=loss_rise, rises=loss_rise[None], unrelated_rows=np.arange(10, queries),
             oracle_positions=np.arange(5), concept=np.arange(queries) < 10, contributors=owner,
             removed=np.arange(contributors), alpha=np.array(0.5), method_names=np.array(["dtrak", "pixel_nn"]),
             oracle_names=np.array([]), scores_0=influence, scores_1=noise)
    report = main(["--dump", str(dump), "--select", "dtrak", "--weigh", "dtrak", "--out", str(tmp_path / "r.json")])
    by_rule = {row["rule"]: row for row in report["rows"]}
    assert by_rule["dtrak"]["paid_lds"]["mean"] > 0.8
    assert by_rule["select:dtrak/weigh:dtrak"]["paid_lds"]["mean"] == by_rule["dtrak"]["paid_lds"]["mean"]
    assert abs(by_rule["pixel_nn"]["paid_lds"]["mean"]) < 0.3
    assert (tmp_path / "r.json").is_file()


def test_per_image_lds_reads_the_half_models_from_the_dump(tmp_path):
    """Half-models whose loss falls with the influence of the images they kept: the true influence predicts
    them (per-image LDS near 1), noise does not; a dump without half-models reports no per-image LDS."""
    rng = np.random.default_rng(4)
    images, queries, contributors, halves = 40, 12, 8, 16
    owner = np.arange(images) % contributors
    influence = rng.gamma(0.5, size=(queries, images))
    masks = np.stack([rng.permutation(images) < images // 2 for _ in range(halves)])
    losses = -(masks.astype(float) @ influence.T) + 0.01 * rng.normal(size=(halves, queries))
    common = {"loss_rise": np.stack([influence[:, owner == c].sum(axis=1) for c in range(contributors)]),
              "unrelated_rows": np.arange(4, queries), "oracle_positions": np.arange(3),
              "concept": np.arange(queries) < 4, "contributors": owner, "removed": np.arange(contributors),
              "alpha": np.array(0.5), "method_names": np.array(["dtrak", "pixel_nn"]), "oracle_names": np.array([]),
              "scores_0": influence, "scores_1": rng.normal(size=influence.shape)}
    np.savez(tmp_path / "with.npz", lds_masks=masks, lds_losses=losses, **common)
    np.savez(tmp_path / "without.npz", **common)
    arguments = ["--select", "dtrak", "--weigh", "", "--top-k", "", "--powers", "", "--out", str(tmp_path / "r.json")]
    rows = {row["rule"]: row for row in main(["--dump", str(tmp_path / "with.npz"), *arguments])["rows"]}
    assert rows["dtrak"]["lds"]["mean"] > 0.9 and abs(rows["pixel_nn"]["lds"]["mean"]) < 0.4
    rows = {row["rule"]: row for row in main(["--dump", str(tmp_path / "without.npz"), *arguments])["rows"]}
    assert "lds" not in rows["dtrak"]

    # one method shown as the evidence, another paying: per-image LDS from the first, payment from the second
    rows = {row["rule"]: row for row in main(["--dump", str(tmp_path / "with.npz"), *arguments,
                                              "--split", "dtrak/pixel_nn,pixel_nn/dtrak"])["rows"]}
    shown_true, shown_noise = rows["evidence:dtrak/pay:pixel_nn"], rows["evidence:pixel_nn/pay:dtrak"]
    assert shown_true["lds"] == rows["dtrak"]["lds"] and shown_noise["lds"] == rows["pixel_nn"]["lds"]
    assert shown_true["paid_lds"] == rows["pixel_nn"]["paid_lds"]
    assert shown_noise["paid_lds"] == rows["dtrak"]["paid_lds"]
    assert shown_true["evidence"]["hubness"] == rows["dtrak"]["hubness"]

    # one score blended from the two: the more of the true influence, the better it predicts the half-models
    rows = {row["rule"]: row for row in main(["--dump", str(tmp_path / "with.npz"), *arguments,
                                              "--blend", "dtrak/pixel_nn"])["rows"]}
    blended = [rows[f"blend:{w}*dtrak+pixel_nn"]["lds"]["mean"] for w in ("0.25", "0.5", "0.75")]
    assert rows["pixel_nn"]["lds"]["mean"] < blended[0] < blended[1] < blended[2] <= rows["dtrak"]["lds"]["mean"]


def kernel_dump(tmp_path, loss_rise_of, images=48, contributors=8, queries=20, dim=16):
    """A dump with features; ``loss_rise_of(raw scores, owners, contributors)`` sets the ground truth."""
    rng = np.random.default_rng(3)
    owner = np.arange(images) % contributors
    shared = rng.normal(size=dim)  # one direction every vector shares: most raw scores are positive
    features = rng.normal(size=(images, dim)) + 3 * shared
    query_features = rng.normal(size=(queries, dim)) + 3 * shared
    kernel = Kernel(features, 1.0, [uuid.UUID(int=10 ** 6 + int(c)) for c in owner])
    raw = np.stack([kernel.scores(q) for q in query_features])
    dump = tmp_path / "dump.npz"
    np.savez(dump, loss_rise=loss_rise_of(raw, owner, contributors), unrelated_rows=np.arange(5, queries),
             oracle_positions=np.arange(4), concept=np.arange(queries) < 5, contributors=owner,
             removed=np.arange(contributors), alpha=np.array(0.5),
             method_names=np.array(["dtrak_relative", "pixel_nn"]), oracle_names=np.array([]),
             scores_0=raw, scores_1=rng.normal(size=raw.shape), feature_configs=np.array(["@served"]),
             damping=np.array([1.0]), features_0=features, calibration_0=features[:6] + 0.5,
             queries_0=query_features)
    return dump


def test_a_contributor_scored_as_one_group_predicts_its_removal_and_the_ceiling_reads_the_ground_truth(tmp_path):
    def summed_raw(raw, owner, contributors):  # removing a contributor costs what its images' raw scores add up to
        return np.stack([raw[:, owner == c].sum(axis=1) for c in range(contributors)])

    dump = kernel_dump(tmp_path, summed_raw)
    report = main(["--dump", str(dump), "--select", "dtrak_relative", "--weigh", "", "--out", str(tmp_path / "r.json")])
    by_rule = {row["rule"]: row for row in report["rows"]}
    assert by_rule["group:0.0"]["paid_lds"]["mean"] > 0.9
    assert by_rule["pixel_nn"]["paid_lds"]["mean"] < 0.5
    assert {"base:usual/dtrak_relative", "base:self/dtrak_relative", "group:1.0", "centered damping:x10",
            "centered damping:x100", "centered_rows", "centered damping:x1 self:0.5",
            "centered damping:x100 self:0.25"} <= set(by_rule)


def test_the_query_independent_ceiling_is_one_when_every_query_orders_contributors_alike(tmp_path):
    def constant(raw, owner, contributors):
        return np.outer(np.arange(1, contributors + 1), np.linspace(1, 2, len(raw)))

    report = main(["--dump", str(kernel_dump(tmp_path, constant)), "--select", "dtrak_relative", "--weigh", "",
                   "--out", str(tmp_path / "r.json")])
    assert report["query_independent_ceiling"]["mean"] == 1.0
    # the last contributor raises every output's loss most: a counterfactual hub over all unrelated outputs
    assert report["ground_truth_hub"] == {"share_of_unrelated_outputs": 1.0, "contributor_images": 6}


def test_contributor_weights_sum_each_contributors_values_and_clip_at_zero():
    a, b = uuid.UUID(int=1), uuid.UUID(int=2)
    weights = contributor_weights(np.array([1.5, -0.5, -3.0, 1.0]), [a, a, b, b])
    assert weights == {a: Fraction(1), b: Fraction(0)}


def test_the_oracle_names_the_author_the_product_pays_not_the_one_with_most_small_scores():
    from benchmarks.attribution import oracle

    author, prolific = uuid.uuid4(), uuid.uuid4()
    contributors = [author] + [prolific] * 200
    assets = [uuid.uuid4() for _ in contributors]
    # the query is image 0: it scores itself 1.0; 200 images of another contributor score 0.02 each (4.0 in all)
    row = np.array([1.0] + [0.02] * 200)
    report = oracle(row[None, :], [0], contributors, assets)
    # summing every positive score names the prolific contributor; the paid top 50 (1.0 against 49 × 0.02)
    # names the author
    assert report == {"self_top1": 1.0, "author_top1": 0.0, "author_top1_paid": 1.0}
    row[1:] = 0.03  # now 49 × 0.03 = 1.47 of the paid top 50: the prolific contributor is paid most
    assert oracle(row[None, :], [0], contributors, assets)["author_top1_paid"] == 0.0
    # paying only the top 10 (1.0 against 9 × 0.03) names the author again
    assert oracle(row[None, :], [0], contributors, assets, (10, 50))["author_top1_paid_by_top_k"] == {"10": 1.0,
                                                                                                    "50": 0.0}
    assert "author_top1_paid" not in oracle(row[None, :], [0], contributors)
    # a higher power pays more of the output to its closest image: its author again
    assert oracle(row[None, :], [0], contributors, assets, power=2)["author_top1_paid"] == 1.0


def test_power_rows_split_each_methods_scores_and_check_the_author_as_paid(tmp_path):
    dump = tmp_path / "dump.npz"
    rng = np.random.default_rng(4)
    owner = np.arange(40) % 8
    scores = rng.gamma(1.0, size=(12, 40))
    oracle_scores = rng.gamma(1.0, size=(4, 40)) * 0.3
    oracle_scores[np.arange(4), np.arange(4)] = 2.0  # each oracle query scores itself highest
    np.savez(dump, loss_rise=rng.normal(size=(8, 12)), unrelated_rows=np.arange(4, 12),
             oracle_positions=np.arange(4), concept=np.arange(12) < 4, contributors=owner, removed=np.arange(8),
             alpha=np.array(0.5), method_names=np.array(["dtrak_relative", "pixel_nn"]),
             oracle_names=np.array(["dtrak_relative"]), scores_0=scores, scores_1=scores, oracle_0=oracle_scores)
    report = main(["--dump", str(dump), "--select", "dtrak_relative", "--weigh", "", "--powers", "1,8",
                   "--out", str(tmp_path / "r.json")])
    by_rule = {row["rule"]: row for row in report["rows"]}
    assert by_rule["dtrak_relative power:1"]["paid_lds"] == by_rule["dtrak_relative"]["paid_lds"]
    # linear: each query's 0.3-scale images of other contributors outweigh its own 2.0; the 8th power does not
    assert by_rule["dtrak_relative"]["oracle"]["author_top1_paid"] < 1.0
    assert by_rule["dtrak_relative power:8"]["oracle"]["author_top1_paid"] == 1.0


def test_excess_scores_keep_the_order_and_pay_nothing_past_the_top_k():
    scores = np.array([[5.0, 1.0, 3.0, 2.0, 4.0]])
    excess = excess_scores(scores, top_k=3)
    assert excess.tolist() == [[3.0, -1.0, 1.0, 0.0, 2.0]]  # less the 4th highest (2.0): only the top 3 lead
    assert np.array_equal(np.argsort(-excess), np.argsort(-scores))
    assert excess_scores(scores, top_k=5) is scores  # nothing unpaid to measure a lead over


def test_centering_on_the_models_own_outputs_takes_the_hub_out_of_what_every_output_shares(tmp_path):
    rng = np.random.default_rng(5)
    images, queries, dim, contributors = 200, 30, 24, 8
    owner = np.arange(images) % contributors
    shared = 4 * rng.normal(size=dim)  # what every output's features have in common
    features = rng.normal(size=(images, dim)) + shared
    features[0] = 3 * shared  # one image that is nothing but the common part: raw scores rank it high everywhere
    outputs = rng.normal(size=(queries, dim)) + shared
    calibration = rng.normal(size=(16, dim)) + shared
    kernel = Kernel(features, 1.0, [uuid.UUID(int=10 ** 6 + int(c)) for c in owner])
    raw = np.stack([kernel.scores(q) for q in outputs])
    oracle_raw = np.stack([kernel.scores(f) for f in features[1:5]])
    dump = tmp_path / "dump.npz"
    np.savez(dump, loss_rise=rng.normal(size=(contributors, queries)), unrelated_rows=np.arange(5, queries),
             oracle_positions=np.arange(1, 5), concept=np.arange(queries) < 5, contributors=owner,
             removed=np.arange(contributors), alpha=np.array(0.5), method_names=np.array(["dtrak_relative", "dtrak"]),
             oracle_names=np.array(["dtrak_relative", "dtrak"]), oracle_0=oracle_raw, oracle_1=oracle_raw,
             scores_0=raw, scores_1=raw, feature_configs=np.array(["@served"]),
             damping=np.array([1.0]), features_0=features, calibration_0=calibration, queries_0=outputs)
    report = main(["--dump", str(dump), "--select", "dtrak_relative", "--weigh", "dtrak", "--top-k", "",
                   "--powers", "", "--out", str(tmp_path / "r.json")])
    by_rule = {row["rule"]: row for row in report["rows"]}
    assert by_rule["dtrak"]["hubness"] == 1.0  # the common-part image is in every unrelated output's top 10
    assert by_rule["centered"]["hubness"] < 0.5
    assert by_rule["centered"]["oracle"]["self_top1"] == 1.0  # a training image still finds itself
    assert {"centered", "centered_relative", "centered_on_training"} <= set(by_rule)


def test_the_benchmark_blends_the_evidence_view_with_pixel_similarity_per_query():
    from benchmarks.attribution import PIXEL_BLEND_WEIGHTS, add_pixel_blends, per_query_standardised

    rng = np.random.default_rng(0)
    evidence, pixels = rng.normal(size=(4, 30)) * 50 + 7, rng.normal(size=(4, 30)) * 0.01  # unlike scales
    table = {"dtrak_relative": evidence, "pixel_nn": pixels}
    add_pixel_blends(table)
    for weight in PIXEL_BLEND_WEIGHTS:
        blended = table[f"blend:{1 - weight:g}*dtrak_relative+pixel_nn"]  # named by the gradient score's weight
        expected = (1 - weight) * per_query_standardised(evidence) + weight * per_query_standardised(pixels)
        assert np.allclose(blended, expected)
        # neither part's scale decides: each query's blend ranks between the two parts' orders
        assert np.corrcoef(blended[0], evidence[0])[0, 1] > 0.2 and np.corrcoef(blended[0], pixels[0])[0, 1] > 0.2
    missing = {"dtrak_relative": evidence}
    add_pixel_blends(missing)  # no pixels in the table (e.g. before they are computed): nothing added
    assert list(missing) == ["dtrak_relative"]
    # a served version 4 evidence view is blended the same way, under the name the benchmark ranks it by
    served = {"dtrak_relative@v": evidence[::-1], "pixel_nn": pixels}
    add_pixel_blends(served, {"blend:0.1*dtrak_relative@v+pixel_nn": ("dtrak_relative@v", 0.9)})
    assert np.allclose(served["blend:0.1*dtrak_relative@v+pixel_nn"], 0.1 * per_query_standardised(evidence[::-1])
                       + 0.9 * per_query_standardised(pixels))


def test_the_benchmark_stops_when_the_served_blend_is_not_its_own():
    from benchmarks.attribution import check_served_evidence, per_query_standardised
    from provenance.influence import Scored

    rng = np.random.default_rng(1)
    gradient, pixels = rng.normal(size=(3, 20)), rng.normal(size=(3, 20))
    blended = 0.25 * per_query_standardised(gradient) + 0.75 * per_query_standardised(pixels)
    positions = np.array([0, 4, 7])
    check_served_evidence([Scored(positions, blended[q, positions]) for q in range(3)], gradient, pixels, 0.75)
    with pytest.raises(SystemExit, match="query 2"):
        check_served_evidence([Scored(positions, blended[q, positions] + (q == 2)) for q in range(3)], gradient,
                              pixels, 0.75)
