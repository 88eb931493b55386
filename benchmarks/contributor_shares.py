"""Which way of turning kernel scores into contributor shares predicts what removing a contributor does,
without hubs? Prints JSON.

Reads the score matrices and the paired contributor ground truth that ``benchmarks/attribution.py --dump``
wrote (no model is trained or loaded), and compares split rules on the same queries:

* ``METHOD``: the product's rule on one method's scores (top 50 positive, contributors under 1 % dropped);
* ``select:A/weigh:B``: the top 50 images chosen by method A (e.g. self-normalised scores, which have no
  hubs), each paid by method B's score (e.g. raw kernel scores, whose size says how much an image moved
  the loss); images B scores at or below zero are not paid;
* ``partial:G@CONFIG``: raw scores divided by the image's self-influence to the power G/2 (G = 0: raw,
  G = 1: the self-normalised method), between the two extremes.

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

from benchmarks.attribution import HUB_TOP, bootstrap, hubness, oracle, planted_shares, spearman
from provenance.influence import blend, influence_shares

TOP_K = 50
GAMMAS = (0.0, 0.25, 0.5, 0.75, 1.0)


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


def evaluate(name: str, scores: np.ndarray, oracle_scores: np.ndarray | None, data: dict) -> dict:
    assets, contributors, pro_rata, alpha = data["assets"], data["contributors"], data["pro_rata"], data["alpha"]
    removed, loss_rise, queries = data["removed"], data["loss_rise"], scores.shape[0]
    paid, pooled = [], []
    for q in range(queries):
        shares = influence_shares(scores[q], assets, contributors, top_k=TOP_K).contributors
        paid.append([float(shares.get(c, 0)) for c in removed])
        pool = blend(pro_rata, shares, alpha)
        pooled.append([float(pool.get(c, 0)) for c in removed])
    paid_matrix, pool_matrix = np.array(paid).T, np.array(pooled).T
    planted = [planted_shares(scores[q], assets, contributors, removed[0], pro_rata, alpha) for q in range(queries)]
    concept = data["concept"]
    report = {
        "paid_lds": bootstrap([spearman(paid_matrix[:, q], loss_rise[:, q]) for q in range(queries)]),
        "pool_lds": bootstrap([spearman(pool_matrix[:, q], loss_rise[:, q]) for q in range(queries)]),
        "hubness": round(hubness(scores[data["unrelated_rows"]]), 4),
        "planted_concept_top_rate": round(float(np.mean([p[0] for p, c in zip(planted, concept) if c])), 4),
        "planted_unrelated_mean_pool_share": round(float(np.mean([p[2] for p, c in zip(planted, concept) if not c])), 4),
    }
    if oracle_scores is not None:
        report["oracle"] = oracle(oracle_scores, list(data["oracle_positions"]), contributors)
    return {"rule": name, **report}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dump", type=Path, default=ROOT / "var" / "bench-attribution" / "paired.npz")
    parser.add_argument("--select", default="dtrak_relative", help="the hub-free method that chooses the images")
    parser.add_argument("--weigh", default="dtrak@t3,dtrak", help="comma-separated methods that pay the chosen images")
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
    }

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
    report = {
        "benchmark": "contributor shares from kernel scores, against the paired contributor ground truth",
        "dump": str(args.dump.resolve().relative_to(ROOT)) if args.dump.resolve().is_relative_to(ROOT) else str(args.dump),
        "top_k": TOP_K, "hub_top": HUB_TOP, "alpha": str(data["alpha"]),
        "contributors_removed": len(data["removed"]), "queries": int(data["loss_rise"].shape[1]),
        "pro_rata_lds": bootstrap([spearman(np.array([float(pro_rata[c]) for c in data["removed"]]),
                                            data["loss_rise"][:, q]) for q in range(data["loss_rise"].shape[1])]),
        "rows": rows,
    }
    text = json.dumps(report, indent=2)
    print(text)
    args.out.write_text(text + "\n", encoding="utf-8")
    return report


if __name__ == "__main__":
    main()
