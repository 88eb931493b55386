"""Influence scoring at catalog scale: candidate search, then exact re-scoring. Prints JSON.

1. A real index: D-TRAK features (``InfluenceConfig()``: 2,048 dimensions) of the quality benchmark's
   training snapshot (OpenMoji without its held-out split) through the ``demo`` base that
   ``benchmarks/custom_model.py`` exported under ``--work`` (kept there, reused). Queries are outputs of
   that model for held-out catalog captions, as served generations are. Reported: recall@50 of the
   search's answer (candidates re-scored exactly) against the exact full scan.
2. Synthetic indexes of 10^5 and 10^6 rows in the same dimension, drawn from a Gaussian with the real
   rows' mean and covariance (their spectrum, so the search meets the real structure), stored as float16
   and memory-mapped, as a large index would be. The kernel is accumulated in chunks. Per run: query
   latency p50/p95 of ``InfluenceIndex.candidates`` (the kernel solve on the query, the search, the exact
   re-scoring), the same for a full scan, the search's resident memory, and recall@50 against the exact
   full scan for held-out draws from the same distribution.

    python benchmarks/attribution_scale.py --out benchmarks/results/attribution_scale.json
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss
import numpy as np
import torch
from PIL import Image

from benchmarks.quality import prepare_snapshots
from benchmarks.reporting import publish
from provenance.influence import NORMALISATIONS, InfluenceConfig, InfluenceIndex
from provenance.influence_search import CANDIDATES, COMPACT_DIM, GRAPH_DEGREE, exact_top, recall_at
from recipes import PRESETS, serving_guidance
from training.attribution_features import Attributor
from training.pipelines import load_pipeline, pipeline_call_kwargs

TOP_K = 50


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def real_index(work: Path, catalog: Path | None, queries: int, config: InfluenceConfig,
               base: Path) -> tuple[InfluenceIndex, np.ndarray]:
    """The demo base's index over its training snapshot and features of its outputs (cached under ``work``)."""
    cached = work / "attribution-scale-real.npz"
    stale = True
    if cached.is_file():
        with np.load(cached) as data:
            features, outputs = data["features"], data["outputs"]
            calibration = data.get("calibration")
            # features of another model, or at other timesteps
            stale = "base" not in data or str(data["base"]) != str(base) or \
                list(data.get("timesteps", [900])) != list(config.timesteps)
    if stale or (calibration is None and config.uses_calibration_outputs):
        if not base.is_dir():
            raise SystemExit(f"no demo base under {base}: run benchmarks/custom_model.py first, or name one with "
                             "--base")
        snapshots = prepare_snapshots(work, catalog)
        pipeline = load_pipeline(base, device="cpu")
        pipeline.set_progress_bar_config(disable=True)
        attributor = Attributor(pipeline, config)
        items = snapshots["training"]["items"]
        started = time.perf_counter()
        features = attributor.features_of_many(
            ((Image.open(io.BytesIO(i["png"])).convert("RGB"), i["caption"]) for i in items),
            progress=lambda done: done % 500 == 0 and log(f"features {done}/{len(items)}"))
        log(f"{len(items)} training features in {time.perf_counter() - started:.0f} s")
        held_out = snapshots["evaluation"]["items"][:: max(1, len(snapshots["evaluation"]["items"]) // queries)][:queries]
        rows = []
        for number, item in enumerate(held_out):
            image = pipeline(item["caption"], num_inference_steps=25, generator=torch.Generator().manual_seed(number),
                             height=32, width=32, **pipeline_call_kwargs(pipeline)).images[0]
            rows.append(attributor.features(image, item["caption"]))
        outputs = np.stack(rows)
        calibration = attributor.calibration_features((i["caption"] for i in items),
                                                      guidance_scale=serving_guidance(PRESETS["demo"]))
        np.savez(cached, features=features, outputs=outputs, base=np.array(str(base)),
                 timesteps=np.array(config.timesteps),
                 **({"calibration": calibration} if calibration is not None else {}))
    ids = [uuid.uuid4() for _ in range(len(features))]
    index = InfluenceIndex.build(features, asset_ids=ids, contributor_ids=ids, config=config, fingerprint={},
                                 calibration=calibration, search_min_rows=0)
    return index, outputs


def synthetic_rows(path: Path, count: int, mean: np.ndarray, spread: np.ndarray, seed: int, chunk: int = 50_000):
    """``count`` rows mean + z @ spread (z standard normal), float16, memory-mapped at ``path``."""
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(count, len(mean)))
    generator = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        rows[start:start + size] = (mean + generator.standard_normal((size, spread.shape[0]), dtype=np.float32)
                                    @ spread).astype(np.float16)
    rows.flush()
    return np.load(path, mmap_mode="r")


def chunked_gram(rows, chunk: int = 50_000) -> np.ndarray:
    gram = np.zeros((rows.shape[1], rows.shape[1]), dtype=np.float64)
    for start in range(0, len(rows), chunk):
        block = np.asarray(rows[start:start + chunk], dtype=np.float32)
        gram += (block.T @ block).astype(np.float64)
    return gram


def percentile_ms(seconds: list[float], q: float) -> float:
    return round(float(np.percentile(seconds, q)) * 1000, 2)


def exact_answers(index: InfluenceIndex, queries: np.ndarray) -> tuple[list[np.ndarray], list[float]]:
    """Each query's exact top 50 by a full scan, and the scans' times (they also bring the rows into the page
    cache, as a serving index's rows are)."""
    answers, seconds = [], []
    for query in queries:
        started = time.perf_counter()
        answers.append(exact_top(index.scaled_rows(), index.query_vector(query), TOP_K))
        seconds.append(time.perf_counter() - started)
    return answers, seconds


def search_recall(index: InfluenceIndex, queries: np.ndarray, exact: list[np.ndarray]) -> tuple[float, list[float]]:
    """recall@50 of the candidates re-scored exactly against the full scan, and the per-query times."""
    recalls, seconds = [], []
    for query, answer in zip(queries, exact, strict=True):
        started = time.perf_counter()
        scored = index.candidates(query)
        found = scored.positions[np.argsort(-scored.scores, kind="stable")][:TOP_K]
        seconds.append(time.perf_counter() - started)
        recalls.append(recall_at(found, answer))
    return float(np.mean(recalls)), seconds


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality",
                        help="shared with benchmarks/quality.py and custom_model.py (its demo base is reused)")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidate-sweep", type=lambda text: [int(v) for v in text.split(",") if v],
                        default=[512, 2048], help="candidate counts also timed on each synthetic index")
    parser.add_argument("--base", type=Path, default=None,
                        help="the demo base's pipeline folder (default: WORK/runs/custom-model-base/pipeline, "
                             "as benchmarks/custom_model.py exports it; or quality_ablation.py --export's)")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default=InfluenceConfig().normalisation,
                        help="how the index's scores are normalised (default: the product's evidence view's; its "
                             "payment view is centered over three timesteps: measure it with --normalisation "
                             "centered --timesteps 100,500,900, each output searching both)")
    parser.add_argument("--timesteps", default=",".join(str(t) for t in InfluenceConfig().timesteps),
                        help="the features' timesteps (default: the product's evidence view's)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attribution_scale.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    # one view at a time: a split index searches each of its views as one such index
    config = InfluenceConfig(normalisation=args.normalisation, payment_timesteps=None,
                             timesteps=tuple(int(t) for t in args.timesteps.split(",")))

    base = args.base or args.work / "runs" / "custom-model-base" / "pipeline"
    index, outputs = real_index(args.work, args.catalog, args.queries, config, base)
    real_exact, real_scanned = exact_answers(index, outputs)
    real_recall, real_searched = search_recall(index, outputs, real_exact)
    log(f"real index: {len(index.rows)} rows, recall@50 {real_recall:.3f}")
    by_candidates = {}
    for candidates in (64, 128, 256):  # the real index is small: fewer candidates make its search a real test
        index.search.candidates = candidates
        by_candidates[str(candidates)] = round(search_recall(index, outputs, real_exact)[0], 4)
    index.search.candidates = CANDIDATES

    rows = index.rows.astype(np.float64)
    mean = rows.mean(axis=0)
    _, singular, right = np.linalg.svd(rows - mean, full_matrices=False)
    spread = (singular[:, None] / np.sqrt(len(rows) - 1) * right).astype(np.float32)  # z @ spread has their covariance

    runs = []
    for count in (int(size) for size in args.sizes.split(",") if size):
        path = args.work / f"attribution-scale-{count}.npy"
        started = time.perf_counter()
        synthetic = synthetic_rows(path, count, mean.astype(np.float32), spread, seed=count)
        gram = chunked_gram(synthetic)
        ids = [uuid.UUID(int=n) for n in range(count)]
        # calibration outputs drawn like the queries (the real index's outputs are like its rows)
        calibration = (mean + np.random.default_rng(count + 2).standard_normal(
            (config.calibration_outputs, spread.shape[0]), dtype=np.float32) @ spread).astype(np.float32)
        big = InfluenceIndex(ids, ids, synthetic, config.as_dict(), {}, gram,
                             calibration=calibration if config.uses_calibration_outputs else None)
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        search_started = time.perf_counter()
        big.search = big.new_search()
        build_s = time.perf_counter() - search_started
        log(f"{count} rows: drawn and kernel in {search_started - started:.0f} s, search built in {build_s:.0f} s")
        queries = (mean + np.random.default_rng(count + 1).standard_normal((args.queries, spread.shape[0]),
                                                                          dtype=np.float32) @ spread).astype(np.float32)
        big.candidates(queries[0])  # the kernel's inverse is computed once per loaded index, not per query
        exact, scanned = exact_answers(big, queries)
        recall, searched = search_recall(big, queries, exact)
        sweep = []
        for candidates in args.candidate_sweep:
            big.search.candidates = candidates
            swept_recall, swept = search_recall(big, queries, exact)
            sweep.append({"candidates": candidates, "p50_ms": percentile_ms(swept, 50),
                          "p95_ms": percentile_ms(swept, 95), "recall_at_50": round(swept_recall, 4)})
        big.search.candidates = CANDIDATES
        runs.append({
            "entries": count, "p50_ms": percentile_ms(searched, 50), "p95_ms": percentile_ms(searched, 95),
            "memory_mib": round(big.search.memory_bytes() / 2**20, 1), "recall_at_50": round(recall, 4),
            "full_scan_p50_ms": percentile_ms(scanned, 50), "full_scan_p95_ms": percentile_ms(scanned, 95),
            "rows_on_disk_mib": round(path.stat().st_size / 2**20, 1), "search_build_s": round(build_s, 1),
            "by_candidates": sweep,
            "peak_rss_growth_mib": round(
                (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1)})
        log(f"{count} rows: {runs[-1]}")
        del big, synthetic
        path.unlink()

    report = {
        "benchmark": "attribution_scale",
        "runs": runs,
        "real_index": {"entries": len(index.rows), "queries": len(outputs), "recall_at_50": round(real_recall, 4),
                       "recall_at_50_by_candidates": by_candidates, "p50_ms": percentile_ms(real_searched, 50), "full_scan_p50_ms": percentile_ms(real_scanned, 50),
                       "queries_are": "outputs of the demo base for held-out catalog captions",
                       "base": str(base.resolve().relative_to(ROOT)) if base.resolve().is_relative_to(ROOT) else str(base)},
        "settings": {"normalisation": config.normalisation, "timesteps": list(config.timesteps), "feature_dim": config.projection_dim, "compact_dim": COMPACT_DIM, "candidates": CANDIDATES,
                     "graph_degree": GRAPH_DEGREE, "search": "FAISS HNSW over 8-bit codes, inner product",
                     "top_k": TOP_K, "rows_dtype": "float16 memory-mapped (synthetic)", "threads": args.threads,
                     "cores": os.cpu_count(), "faiss": faiss.__version__,
                     "synthetic": "Gaussian with the real index rows' mean and covariance"},
        "notes": "p50/p95: InfluenceIndex.candidates per query (kernel solve, search, exact re-score of the "
                 "candidates), timed after the full scans have brought the rows into the page cache; memory_mib: the search's compact rows, ids, centroids and bases held in memory; "
                 "the full rows stay on disk (rows_on_disk_mib) and only the candidates are read.",
    }
    return publish(report, args.out)


if __name__ == "__main__":
    main()
