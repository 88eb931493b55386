"""Which way of turning kernel scores into contributor shares predicts what removing a contributor does,
without hubs? Prints JSON.

Reads the score matrices and the paired contributor ground truth that ``benchmarks/attribution.py --dump``
wrote (no model is trained or loaded), and compares split rules on the same queries:

* ``METHOD``: the product's rule on one method's scores (top 50 positive, contributors under 1 % dropped);
* ``select:A/weigh:B``: the top 50 images chosen by method A (e.g. self-normalised scores, which have no
  hubs), each paid by method B's score (e.g. raw kernel scores, whose size says how much an image moved
  the loss); images B scores at or below zero are not paid;
* ``partial:G@CONFIG``: raw scores divided by the image's self-influence to the power G/2 (G = 0: raw,
  G = 1: the self-normalised method), between the two extremes;
* ``base:WEIGHT@CONFIG/METHOD``: the pool's non-influence part split by a per-contributor weight measured
  once per index instead of by image count, the influence part by METHOD as served. WEIGHT ``usual``: the
  contributor's summed raw kernel score on the calibration outputs (what their images typically do to the
  model's outputs); ``self``: their summed self-influence (how far the model bends to their images);
* ``METHOD top:K``: the product's rule paying an output's top K images instead of 50;
* ``METHOD power:P``: the product's rule with each kept score raised to the power P (more of an output
  to its closest images; the oracle's ``author_top1_paid`` says whether a copy then pays its author most);
* ``METHOD excess``: the product's rule on each score's lead over the 51st (``excess_scores``);
* ``centered@CONFIG``: raw kernel scores of features less the mean of the model's own calibration outputs'
  features, the kernel rebuilt over the centred training features (``centered_rules``; also self-normalised,
  and ``centered_on_training``, centred on the training images' mean instead; ``damping:xS``, its damping
  S times the index's; ``centered_rows``: centred rows and queries over the *uncentred* kernel);
* ``evidence:A/pay:B``: method A's scores rank and show an output's most influential images (per-image LDS,
  the evidence's hubness and oracle), method B's split its pool (everything about payment);
* ``blend:W*A+B``: one score, W times method A's plus (1 - W) times method B's, each query's scores
  standardised first (two feature configs' kernels have different scales);
* ``centered@CONFIG damping:xS self:G``: the centred scores divided by each image's centred self-influence
  to the power G/2;
* ``group:G@CONFIG``: a score per contributor, not per image: the contributor's summed raw scores divided by
  the self-influence of their summed features to the power G/2 (a contributor-level RelatIF), shares by
  its positive part.

Also the ground truth's own ``query_independent_ceiling`` (each query's contributors ranked by their mean loss
rise over the *other* queries: a rule that reaches it predicts contributors, not outputs) and its
``ground_truth_hub`` (how often one withheld contributor's removal raised an unrelated output's loss most).

For each: contributor-level LDS of what is paid (influence alone and the pool blended with pro rata),
with bootstrap intervals, hubness and the oracle check on the paid ranking, and the planted contributor's
results, beside the baselines from the same run. The default of the product is not changed by this script.

    python benchmarks/attribution.py --half-models 0 --counterfactual-queries 0 \\
        --variant 't3=timesteps:100|500|900' --dump var/bench-attribution/paired.npz --out /tmp/a.json
    python benchmarks/contributor_shares.py --dump var/bench-attribution/paired.npz
"""

from __future__ import annotations

import argparse
import json
import sys
import uuid
from fractions import Fraction
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.attribution import HUB_TOP, bootstrap, hubness, oracle, per_query_standardised, spearman
from provenance.influence import InfluenceConfig, InfluenceIndex, blend, influence_shares

TOP_K = 50
ALL_POSITIVE = 1000  # the benchmark's index holds 1,020 images: about every positive score is paid
GAMMAS = (0.0, 0.25, 0.5, 0.75, 1.0)
DAMPING_SCALES = (10.0, 100.0)
"""The centred kernel's damping tried beside the index's, as multiples of it."""
BLEND_WEIGHTS = (0.25, 0.5, 0.75)
"""Weights of the first method in ``blend:`` rows."""
SELF_POWERS = (0.25, 0.5, 0.75)
"""Partial self-normalisations of the centred scores tried at every damping (0: none, 1: ``centered_relative``)."""


def paid_scores(select: np.ndarray, weigh: np.ndarray, top_k: int = TOP_K) -> np.ndarray:
    """Each row: ``weigh``'s scores (clipped at zero) on the ``top_k`` images ``select`` ranks highest
    among its positive scores; zero elsewhere."""
    paid = np.zeros_like(weigh)
    for row, (chooser, payer) in enumerate(zip(select, weigh, strict=True)):
        chosen = [i for i in np.argsort(-chooser, kind="stable")[:top_k] if chooser[i] > 0]
        paid[row, chosen] = np.maximum(payer[chosen], 0.0)
    return paid


def partial_normalisation(raw: np.ndarray, relative: np.ndarray, gamma: float) -> np.ndarray:
    """Raw scores divided by each image's root self-influence to the power ``gamma``; the root is read back
    from the two matrices (relative = raw / root), per image, where both are non-zero."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(relative != 0, raw / relative, np.nan)
    root = np.nanmedian(ratio, axis=0)
    root = np.where(np.isfinite(root) & (root > 0), root, np.nanmedian(root))
    return raw / root ** gamma


def excess_scores(scores: np.ndarray, top_k: int = TOP_K) -> np.ndarray:
    """Each row less its (top_k + 1)-th highest score: what the product's split of the result pays is each
    image's lead over the first image it does not pay, so a near-copy, far ahead of the pack, takes most
    of its output while an ordinary output's top images share it about evenly. The order is unchanged."""
    if scores.shape[1] <= top_k:
        return scores
    threshold = -np.partition(-scores, top_k, axis=1)[:, top_k]
    return scores - threshold[:, None]


def contributor_lds(shares: list[dict], data: dict) -> dict:
    """Per query, Spearman between the withheld contributors' shares and their removal's loss rise."""
    removed, loss_rise = data["removed"], data["loss_rise"]
    predicted = np.array([[float(row.get(c, 0)) for row in shares] for c in removed])
    return bootstrap([spearman(predicted[:, q], loss_rise[:, q]) for q in range(loss_rise.shape[1])])


def asset_lds(scores: np.ndarray, data: dict) -> dict:
    """The per-image LDS over the dump's half-models: per query, Spearman between each half-model's summed
    scores of the images it kept and its loss (negated: more influence kept, lower loss), as
    ``benchmarks/attribution.py`` computes it."""
    predicted = data["lds_masks"].astype(float) @ scores.T
    losses = data["lds_losses"]
    return bootstrap([spearman(predicted[:, q], -losses[:, q]) for q in range(losses.shape[1])])


def planted_report(paid: list[dict], pooled: list[dict], data: dict) -> dict:
    planted, concept = data["removed"][0], data["concept"]
    top = [bool(row) and max(row.items(), key=lambda item: (item[1], str(item[0])))[0] == planted for row in paid]
    return {"planted_concept_top_rate": round(float(np.mean([t for t, c in zip(top, concept) if c])), 4),
            "planted_unrelated_mean_pool_share": round(float(np.mean(
                [float(row.get(planted, 0)) for row, c in zip(pooled, concept) if not c])), 4)}


def evaluate(name: str, scores: np.ndarray, oracle_scores: np.ndarray | None, data: dict,
             base: dict | None = None, top_k: int = TOP_K, power: int = 1) -> dict:
    """The product's split of one method's scores; ``base`` replaces the image counts in the pool's
    non-influence part, ``top_k`` the number of images an output pays, ``power`` the power its
    kept scores are raised to."""
    assets, contributors, alpha = data["assets"], data["contributors"], data["alpha"]
    base = data["pro_rata"] if base is None else base
    paid = [influence_shares(row, assets, contributors, top_k=top_k, power=power).contributors for row in scores]
    pooled = [blend(base, shares, alpha) for shares in paid]
    report = {"paid_lds": contributor_lds(paid, data), "pool_lds": contributor_lds(pooled, data),
              **({"lds": asset_lds(scores, data)} if data.get("lds_masks") is not None else {}),
              "hubness": round(hubness(scores[data["unrelated_rows"]]), 4), **planted_report(paid, pooled, data)}
    if oracle_scores is not None:
        report["oracle"] = oracle(oracle_scores, list(data["oracle_positions"]), contributors,
                                  assets=assets if top_k == TOP_K else None, power=power)
    return {"rule": name, **report}


def evaluate_split(name: str, evidence: str, pay: str, methods: dict, oracles: dict, data: dict) -> dict:
    """One method's scores to rank and show an output's most influential images (``evidence``), another's to
    split its pool (``pay``): per-image LDS and the evidence's hubness and oracle from the first, everything
    about payment (contributor LDS, hubness, oracle, planted contributor) from the second."""
    report = evaluate(name, methods[pay], oracles.get(pay), data)
    if data.get("lds_masks") is not None:
        report["lds"] = asset_lds(methods[evidence], data)
    report["evidence"] = {"hubness": round(hubness(methods[evidence][data["unrelated_rows"]]), 4)}
    if evidence in oracles:
        report["evidence"]["oracle"] = oracle(oracles[evidence], list(data["oracle_positions"]), data["contributors"],
                                              assets=data["assets"])
    return report


def evaluate_contributor_scores(name: str, scores: np.ndarray, owners: list[uuid.UUID], data: dict) -> dict:
    """Shares from one score per contributor (queries x contributors): their positive parts, normalised."""
    paid = []
    for row in scores:
        positive = {c: Fraction(float(s)) for c, s in zip(owners, row, strict=True) if s > 0}
        total = sum(positive.values())
        paid.append({c: v / total for c, v in positive.items()} if total else {})
    pooled = [blend(data["pro_rata"], shares, data["alpha"]) for shares in paid]
    return {"rule": name, "paid_lds": contributor_lds(paid, data), "pool_lds": contributor_lds(pooled, data),
            **planted_report(paid, pooled, data)}


class Kernel:
    """One feature config's index, rebuilt from the dumped features: raw kernel scores of anything."""

    def __init__(self, features: np.ndarray, damping: float, contributors: list[uuid.UUID]):
        self.index = InfluenceIndex.build(features, asset_ids=[uuid.UUID(int=i) for i in range(len(features))],
                                          contributor_ids=contributors,
                                          config=InfluenceConfig(normalisation="none", damping=damping, payment_timesteps=None),
                                          fingerprint={}, search_min_rows=len(features) + 1)
        self.features = np.asarray(features, dtype=np.float64)

    def scores(self, query: np.ndarray) -> np.ndarray:
        return self.index.scores(query).astype(np.float64)

    def self_influence(self, vector: np.ndarray) -> float:
        return float(self.index.query_vector(vector).astype(np.float64) @ np.asarray(vector, dtype=np.float64))


def contributor_sums(kernel: Kernel, queries: np.ndarray, members: dict, owners: list) -> np.ndarray:
    """(queries x contributors): each contributor's summed raw kernel scores."""
    raw = np.stack([kernel.scores(q) for q in queries])
    return np.stack([raw[:, members[c]].sum(axis=1) for c in owners], axis=1)


def contributor_weights(values: np.ndarray, owners_of_rows: list[uuid.UUID]) -> dict[uuid.UUID, Fraction]:
    """Each contributor's summed per-image value, clipped at zero, as exact weights."""
    totals: dict[uuid.UUID, float] = {}
    for value, owner in zip(values, owners_of_rows, strict=True):
        totals[owner] = totals.get(owner, 0.0) + float(value)
    return {c: Fraction(max(v, 0.0)) for c, v in totals.items()}


def query_independent_ceiling(data: dict) -> dict:
    """Each query's contributors ranked by their mean loss rise over the other queries."""
    loss_rise = data["loss_rise"]
    queries = loss_rise.shape[1]
    others = (loss_rise.sum(axis=1, keepdims=True) - loss_rise) / max(queries - 1, 1)
    return bootstrap([spearman(others[:, q], loss_rise[:, q]) for q in range(queries)])


def ground_truth_hub(data: dict) -> dict:
    """Among the unrelated outputs, how often the same withheld contributor's removal raised the loss most:
    a counterfactual "hub" that a rule matching the ground truth would have to reproduce."""
    loss_rise, unrelated = data["loss_rise"], list(data["unrelated_rows"])
    tops = [int(np.argmax(loss_rise[:, q])) for q in unrelated]
    most = max(set(tops), key=tops.count)
    return {"share_of_unrelated_outputs": round(tops.count(most) / len(tops), 4),
            "contributor_images": int(data["removed_sizes"][most])}


def feature_rules(dump, methods: dict, oracles: dict, data: dict, served: str) -> list[dict]:
    """The rules that need the dumped features: ``base:WEIGHT`` and ``group:G`` per feature config."""
    if "feature_configs" not in dump.files:  # a dump from before the features were written
        return []
    rows = []
    contributors = data["contributors"]
    owners = sorted(set(contributors), key=str)
    members = {c: [i for i, owner in enumerate(contributors) if owner == c] for c in owners}
    for n, config in enumerate(str(c) for c in dump["feature_configs"]):
        if f"features_{n}" not in dump.files:
            continue
        at = "" if config == "@served" else config
        kernel = Kernel(dump[f"features_{n}"], float(dump["damping"][n]), contributors)
        usual = kernel.scores(dump[f"calibration_{n}"].astype(np.float64).mean(axis=0))
        self_influence = np.array([kernel.self_influence(row) for row in kernel.features])
        for weight, values in (("usual", usual), ("self", self_influence)):
            base = contributor_weights(values, contributors)
            for top_k in (TOP_K, ALL_POSITIVE):
                rows.append(evaluate(f"base:{weight}{at}/{served}" + (f" top:{top_k}" if top_k != TOP_K else ""),
                                     methods[served], oracles.get(served), data, base=base, top_k=top_k))
        group_self = np.array([max(kernel.self_influence(kernel.features[members[c]].sum(axis=0)), 1e-12)
                               for c in owners])
        outputs = contributor_sums(kernel, dump[f"queries_{n}"], members, owners)
        training_images = contributor_sums(kernel, kernel.features[data["oracle_positions"]], members, owners)
        authors = [contributors[i] for i in data["oracle_positions"]]
        for gamma in GAMMAS:
            row = evaluate_contributor_scores(f"group:{gamma}{at}", outputs / group_self ** (gamma / 2), owners, data)
            ranked = training_images / group_self ** (gamma / 2)
            row["oracle"] = {"author_top1": round(float(np.mean(
                [owners[int(np.argmax(scores))] == author for scores, author in zip(ranked, authors)])), 4)}
            rows.append(row)
        rows += centered_rules(dump, n, at, data)
    return rows


def centered_rules(dump, n: int, at: str, data: dict) -> list[dict]:
    """``centered@CONFIG`` (and ``centered_relative@CONFIG``, self-normalised after): every feature, of the
    training images and of the outputs, less the mean of the model's calibration outputs' features, and
    the kernel rebuilt over the centred training features. What every output's gradient shares (a model's
    own outputs look alike to it) no longer makes every image look influential; ``dtrak_centered`` only
    takes that mean from the outputs' side of the raw scores."""
    calibration = dump[f"calibration_{n}"].astype(np.float64) if f"calibration_{n}" in dump.files else None
    if calibration is None or not len(calibration):
        return []
    features = dump[f"features_{n}"].astype(np.float64)
    queries = dump[f"queries_{n}"].astype(np.float64)
    damping = float(dump["damping"][n])
    rows = []
    # the centred kernel with more damping: nearer a plain inner product of centred features
    centre = calibration.mean(axis=0)
    for scale in (1.0, *DAMPING_SCALES):
        kernel = Kernel(features - centre, damping * scale, data["contributors"])
        scores = np.stack([kernel.scores(q - centre) for q in queries])
        oracle_scores = np.stack([kernel.scores(kernel.features[p]) for p in data["oracle_positions"]])
        if scale != 1.0:
            rows.append(evaluate(f"centered{at} damping:x{scale:g}", scores, oracle_scores, data))
        # between the plain centred score (G = 0) and the self-normalised one (G = 1): each image's score
        # divided by its centred self-influence to the power G/2
        root = np.sqrt(np.maximum([kernel.self_influence(row) for row in kernel.features], 1e-12))
        for gamma in SELF_POWERS:
            rows.append(evaluate(f"centered{at} damping:x{scale:g} self:{gamma:g}", scores / root ** gamma,
                                 oracle_scores / root ** gamma, data))
    # centred rows and queries over the uncentred kernel: (phi_i - c)^T K^-1 (phi_q - c)
    raw = Kernel(features, damping, data["contributors"])

    def centred_rows(query: np.ndarray) -> np.ndarray:
        return raw.scores(query - centre) - float(raw.index.query_vector(query - centre).astype(np.float64) @ centre)

    rows.append(evaluate(f"centered_rows{at}", np.stack([centred_rows(q) for q in queries]),
                         np.stack([centred_rows(features[p]) for p in data["oracle_positions"]]), data))
    # the mean of the model's own outputs; and, for comparison, the training images' mean
    for name, centre in (("centered", calibration.mean(axis=0)), ("centered_on_training", features.mean(axis=0))):
        kernel = Kernel(features - centre, damping, data["contributors"])
        scores = np.stack([kernel.scores(q) for q in queries - centre])
        oracle_scores = np.stack([kernel.scores(kernel.features[p]) for p in data["oracle_positions"]])
        rows.append(evaluate(f"{name}{at}", scores, oracle_scores, data))
        if name == "centered":
            root = np.sqrt(np.maximum([kernel.self_influence(row) for row in kernel.features], 1e-12))
            rows.append(evaluate(f"centered_relative{at}", scores / root, oracle_scores / root, data))
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", type=Path, default=ROOT / "var" / "bench-attribution" / "paired.npz")
    parser.add_argument("--select", default="dtrak_relative", help="the hub-free method that chooses the images")
    parser.add_argument("--weigh", default="dtrak@t3,dtrak", help="comma-separated methods that pay the chosen images")
    parser.add_argument("--top-k", default="10,25,100,200,1000",
                        help="comma-separated numbers of images an output pays, tried on the --select method "
                             f"(the product pays {TOP_K})")
    parser.add_argument("--powers", default="2,3,4,8",
                        help="comma-separated powers the --select and --weigh methods' kept scores are raised to "
                             "before the split (the product: 1)")
    parser.add_argument("--split", default="dtrak_relative@t1/dtrak_centered_kernel,dtrak_relative@t1/dtrak",
                        help="comma-separated EVIDENCE/PAY method pairs: one method's scores shown as an output's "
                             "most influential images, another's splitting its pool")
    parser.add_argument("--blend", default="dtrak_relative@t1/dtrak_centered_kernel",
                        help="comma-separated A/B method pairs scored as one: w * A + (1 - w) * B, each query's "
                             f"scores standardised first, for w in {BLEND_WEIGHTS}")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "contributor_shares.json")
    args = parser.parse_args(argv)
    if not args.dump.is_file():
        raise SystemExit(f"{args.dump} not found: run benchmarks/attribution.py --dump {args.dump} first")
    dump = np.load(args.dump)
    names = [str(n) for n in dump["method_names"]]
    oracle_names = [str(n) for n in dump["oracle_names"]]
    methods = {n: dump[f"scores_{i}"] for i, n in enumerate(names)}
    oracles = {n: dump[f"oracle_{i}"] for i, n in enumerate(oracle_names)}
    contributor_numbers = [int(c) for c in dump["contributors"]]
    contributors = [uuid.UUID(int=10 ** 6 + c) for c in contributor_numbers]
    pro_rata: dict[uuid.UUID, Fraction] = {}
    for contributor in contributors:
        pro_rata[contributor] = pro_rata.get(contributor, Fraction(0)) + 1
    data = {
        "assets": [uuid.UUID(int=i) for i in range(len(contributors))], "contributors": contributors,
        "pro_rata": pro_rata, "alpha": Fraction(float(dump["alpha"])).limit_denominator(10_000),
        "removed": [uuid.UUID(int=10 ** 6 + int(c)) for c in dump["removed"]],
        "loss_rise": dump["loss_rise"], "unrelated_rows": dump["unrelated_rows"],
        "oracle_positions": dump["oracle_positions"], "concept": [bool(c) for c in dump["concept"]],
        # the half-models' masks and losses: dumps from before they were written have no per-image LDS
        "lds_masks": dump["lds_masks"] if "lds_masks" in dump.files else None,
        "lds_losses": dump["lds_losses"] if "lds_losses" in dump.files else None,
    }
    data["removed_sizes"] = [contributor_numbers.count(int(c)) for c in dump["removed"]]

    rows = [evaluate(name, methods[name], oracles.get(name), data)
            for name in [args.select, *args.weigh.split(","), "pixel_nn"] if name in methods]
    for weigh in args.weigh.split(","):
        if weigh in methods and args.select in methods:
            rows.append(evaluate(f"select:{args.select}/weigh:{weigh}",
                                 paid_scores(methods[args.select], methods[weigh]),
                                 paid_scores(oracles[args.select], oracles[weigh]) if weigh in oracles else None, data))
    for suffix in sorted({n.partition("@")[2] for n in names if n.startswith("dtrak")}):
        at = f"@{suffix}" if suffix else ""
        raw, relative = f"dtrak{at}", f"dtrak_relative{at}"
        if raw not in methods or relative not in methods:
            continue
        for gamma in GAMMAS[1:-1]:
            rows.append(evaluate(f"partial:{gamma}{at}", partial_normalisation(methods[raw], methods[relative], gamma),
                                 partial_normalisation(oracles[raw], oracles[relative], gamma), data))
    for name in (n for n in methods if n.startswith("dtrak_centered")):
        rows.append(evaluate(name, methods[name], oracles.get(name), data))
    for top_k in (int(k) for k in args.top_k.split(",") if k):
        rows.append(evaluate(f"{args.select} top:{top_k}", methods[args.select], oracles.get(args.select), data,
                             top_k=top_k))
    for name in (n for n in [args.select, *args.weigh.split(",")] if n in methods):
        for power in (int(p) for p in args.powers.split(",") if p):
            rows.append(evaluate(f"{name} power:{power}", methods[name], oracles.get(name), data, power=power))
        rows.append(evaluate(f"{name} excess", excess_scores(methods[name]),
                             excess_scores(oracles[name]) if name in oracles else None, data))
    for pair in (p for p in args.split.split(",") if p):
        evidence, _, pay = pair.partition("/")
        if evidence in methods and pay in methods:
            rows.append(evaluate_split(f"evidence:{evidence}/pay:{pay}", evidence, pay, methods, oracles, data))
    for pair in (p for p in args.blend.split(",") if p):
        first, _, second = pair.partition("/")
        if first in methods and second in methods:
            both_oracles = first in oracles and second in oracles
            for weight in BLEND_WEIGHTS:
                def blended(a: np.ndarray, b: np.ndarray, w: float = weight) -> np.ndarray:
                    return w * per_query_standardised(a) + (1 - w) * per_query_standardised(b)

                rows.append(evaluate(f"blend:{weight:g}*{first}+{second}", blended(methods[first], methods[second]),
                                     blended(oracles[first], oracles[second]) if both_oracles else None, data))
    rows += feature_rules(dump, methods, oracles, data, served=args.select)
    report = {
        "benchmark": "contributor shares from kernel scores, against the paired contributor ground truth",
        "dump": str(args.dump.resolve().relative_to(ROOT)) if args.dump.resolve().is_relative_to(ROOT) else str(args.dump),
        "top_k": TOP_K, "hub_top": HUB_TOP, "alpha": str(data["alpha"]),
        "contributors_removed": len(data["removed"]), "queries": int(data["loss_rise"].shape[1]),
        "pro_rata_lds": bootstrap([spearman(np.array([float(pro_rata[c]) for c in data["removed"]]),
                                            data["loss_rise"][:, q]) for q in range(data["loss_rise"].shape[1])]),
        "query_independent_ceiling": query_independent_ceiling(data),
        "ground_truth_hub": ground_truth_hub(data),
        "rows": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
