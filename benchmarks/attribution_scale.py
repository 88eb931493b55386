"""Influence scoring at catalog scale: candidate search, then exact re-scoring. Prints JSON.

1. A real index: D-TRAK features (``InfluenceConfig()``: 2,048 dimensions) of the quality benchmark's
   training snapshot (OpenMoji without its held-out split) through the ``demo`` base that
   ``benchmarks/custom_model.py`` exported under ``--work`` (kept there, reused). Queries are outputs of
   that model for held-out catalog captions, as served generations are. Reported: recall@50 of the
   search's answer (candidates re-scored exactly) against the exact full scan.
   With ``--pixel-weight`` (the product's default from method version 4), the index is the evidence view as
   a version 4 index keeps it: each row also has its image's 32 x 32 pixel row, and each output is searched
   by both (gradient and pixel candidates together, re-scored exactly by the blend).
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
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss
import numpy as np
import torch
from PIL import Image

from benchmarks.quality import prepare_snapshots
from benchmarks.reporting import publish
from provenance.influence import NORMALISATIONS, InfluenceConfig, InfluenceIndex, pixel_row
from provenance.influence_search import CANDIDATES, COMPACT_DIM, GRAPH_DEGREE, exact_top, recall_at
from recipes import PRESETS, serving_guidance
from training.attribution_features import Attributor
from training.pipelines import load_pipeline, pipeline_call_kwargs

TOP_K = 50


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Queries(NamedTuple):
    """Outputs as an index is asked about them: gradient features, and pixel rows (None unless blended)."""

    features: np.ndarray
    pixels: np.ndarray | None


def real_index(work: Path, catalog: Path | None, queries: int, config: InfluenceConfig,
               base: Path, pixel_weight: float) -> tuple[InfluenceIndex, Queries]:
    """The demo base's index over its training snapshot and features of its outputs (cached under ``work``)."""
    cached = work / "attribution-scale-real.npz"
    stale = True
    if cached.is_file():
        with np.load(cached) as data:
            features, outputs = data["features"], data["outputs"]
            calibration = data.get("calibration")
            pixels, output_pixels = data.get("pixels"), data.get("output_pixels")
            # features of another model, or at other timesteps, or no pixel rows
            stale = "base" not in data or str(data["base"]) != str(base) or \
                list(data.get("timesteps", [900])) != list(config.timesteps) or (pixel_weight and pixels is None)
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
        rows, output_pixels = [], []
        for number, item in enumerate(held_out):
            image = pipeline(item["caption"], num_inference_steps=25, generator=torch.Generator().manual_seed(number),
                             height=32, width=32, **pipeline_call_kwargs(pipeline)).images[0]
            rows.append(attributor.features(image, item["caption"]))
            output_pixels.append(pixel_row(image))
        outputs, output_pixels = np.stack(rows), np.stack(output_pixels)
        pixels = np.stack([pixel_row(Image.open(io.BytesIO(i["png"]))) for i in items])
        calibration = attributor.calibration_features((i["caption"] for i in items),
                                                      guidance_scale=serving_guidance(PRESETS["demo"]))
        np.savez(cached, features=features, outputs=outputs, base=np.array(str(base)),
                 timesteps=np.array(config.timesteps), pixels=pixels, output_pixels=output_pixels,
                 **({"calibration": calibration} if calibration is not None else {}))
    ids = [uuid.uuid4() for _ in range(len(features))]
    index = InfluenceIndex.build(features, asset_ids=ids, contributor_ids=ids, config=config, fingerprint={},
                                 calibration=calibration, search_min_rows=0)
    if pixel_weight:
        as_blended_evidence(index, pixels, pixel_weight)
    return index, Queries(outputs, output_pixels if pixel_weight else None)


def as_blended_evidence(index: InfluenceIndex, pixels: np.ndarray, pixel_weight: float) -> None:
    """Make a one-view index the evidence view of a version 4 index, as ``InfluenceIndex.build`` makes it from a
    split config: the same rows and kernel, the pixel rows beside them, and their own search."""
    index.pixels, index.config = pixels, {**index.config, "pixel_weight": pixel_weight}
    if index.search is not None:
        index.pixel_search = index.new_pixel_search()


def unit_rows(rows: np.ndarray) -> np.ndarray:
    """Drawn pixel rows made rows as ``pixel_row`` makes them: less their mean, unit length."""
    rows = rows - rows.mean(axis=1, keepdims=True)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


def synthetic_rows(path: Path, count: int, mean: np.ndarray, spread: np.ndarray, seed: int, chunk: int = 50_000,
                   finish=lambda rows: rows):
    """``count`` rows finish(mean + z @ spread) (z standard normal), float16, memory-mapped at ``path``."""
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=np.float16, shape=(count, len(mean)))
    generator = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        rows[start:start + size] = finish(mean + generator.standard_normal((size, spread.shape[0]),
                                                                           dtype=np.float32) @ spread).astype(np.float16)
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


def exact_answers(index: InfluenceIndex, queries: Queries) -> tuple[list[np.ndarray], list[float]]:
    """Each query's exact top 50 by a full scan, and the scans' times (they also bring the rows into the page
    cache, as a serving index's rows are)."""
    answers, seconds = [], []
    for number, query in enumerate(queries.features):
        started = time.perf_counter()
        if queries.pixels is None:
            answers.append(exact_top(index.scaled_rows(), index.query_vector(query), TOP_K))
        else:
            answers.append(exact_blended_top(index, query, queries.pixels[number]))
        seconds.append(time.perf_counter() - started)
    return answers, seconds


def exact_blended_top(index: InfluenceIndex, query: np.ndarray, pixels: np.ndarray, chunk: int = 100_000) -> np.ndarray:
    """A blended evidence view's exact top 50: every row's blended score, a chunk at a time."""
    best_positions, best_scores = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    for start in range(0, len(index.rows), chunk):
        stop = min(start + chunk, len(index.rows))
        best_positions = np.concatenate([best_positions, np.arange(start, stop)])
        best_scores = np.concatenate([best_scores, index.blended_scores(query, pixels, slice(start, stop))])
        if len(best_scores) > TOP_K:
            keep = np.argpartition(-best_scores, TOP_K)[:TOP_K]
            best_positions, best_scores = best_positions[keep], best_scores[keep]
    return best_positions[np.lexsort((best_positions, -best_scores))]


def search_recall(index: InfluenceIndex, queries: Queries, exact: list[np.ndarray]) -> tuple[float, list[float]]:
    """recall@50 of the candidates re-scored exactly against the full scan, and the per-query times."""
    recalls, seconds = [], []
    for number, (query, answer) in enumerate(zip(queries.features, exact, strict=True)):
        started = time.perf_counter()
        scored = (index.candidates(query) if queries.pixels is None
                  else index.blended_candidates(query, queries.pixels[number]))
        found = scored.positions[np.argsort(-scored.scores, kind="stable")][:TOP_K]
        seconds.append(time.perf_counter() - started)
        recalls.append(recall_at(found, answer))
    return float(np.mean(recalls)), seconds


def gaussian_like(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) with z @ spread of the rows' covariance (z standard normal): draws with their spectrum."""
    rows = rows.astype(np.float64)
    mean = rows.mean(axis=0)
    _, singular, right = np.linalg.svd(rows - mean, full_matrices=False)
    return mean.astype(np.float32), (singular[:, None] / np.sqrt(len(rows) - 1) * right).astype(np.float32)


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
    parser.add_argument("--pixel-weight", type=float, default=InfluenceConfig().pixel_weight,
                        help="blend pixel similarity into the index's scores, as a version 4 evidence view does "
                             "(default: the product's; 0 measures gradient scores alone)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attribution_scale.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    # one view at a time: a split index searches each of its views as one such index
    config = InfluenceConfig(normalisation=args.normalisation, payment_timesteps=None,
                             timesteps=tuple(int(t) for t in args.timesteps.split(",")))

    base = args.base or args.work / "runs" / "custom-model-base" / "pipeline"
    index, outputs = real_index(args.work, args.catalog, args.queries, config, base, args.pixel_weight)
    real_exact, real_scanned = exact_answers(index, outputs)
    real_recall, real_searched = search_recall(index, outputs, real_exact)
    log(f"real index: {len(index.rows)} rows, recall@50 {real_recall:.3f}")
    by_candidates = {}
    searches = [index.search] + ([index.pixel_search] if index.pixel_search is not None else [])
    for candidates in (64, 128, 256):  # the real index is small: fewer candidates make its search a real test
        for search in searches:
            search.candidates = candidates
        by_candidates[str(candidates)] = round(search_recall(index, outputs, real_exact)[0], 4)
    for search in searches:
        search.candidates = CANDIDATES

    mean, spread = gaussian_like(index.rows)
    pixel_mean, pixel_spread = gaussian_like(index.pixels) if index.pixels is not None else (None, None)

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
        pixel_path = args.work / f"attribution-scale-{count}-pixels.npy"
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        search_started = time.perf_counter()
        big.search = big.new_search()
        if pixel_mean is not None:
            as_blended_evidence(big, synthetic_rows(pixel_path, count, pixel_mean, pixel_spread, seed=count + 3,
                                                    finish=unit_rows), args.pixel_weight)
        build_s = time.perf_counter() - search_started
        log(f"{count} rows: drawn and kernel in {search_started - started:.0f} s, search built in {build_s:.0f} s")
        draws = np.random.default_rng(count + 1)
        queries = Queries(
            (mean + draws.standard_normal((args.queries, spread.shape[0]), dtype=np.float32) @ spread).astype(
                np.float32),
            None if pixel_mean is None else unit_rows(pixel_mean + draws.standard_normal(
                (args.queries, pixel_spread.shape[0]), dtype=np.float32) @ pixel_spread).astype(np.float32))
        # the kernel's inverse (and a blend's moments) are computed once per loaded index, not per query
        search_recall(big, Queries(queries.features[:1], None if queries.pixels is None else queries.pixels[:1]),
                      [np.zeros(0, dtype=np.int64)])
        exact, scanned = exact_answers(big, queries)
        recall, searched = search_recall(big, queries, exact)
        searches = [big.search] + ([big.pixel_search] if big.pixel_search is not None else [])
        sweep = []
        for candidates in args.candidate_sweep:
            for search in searches:
                search.candidates = candidates
            swept_recall, swept = search_recall(big, queries, exact)
            sweep.append({"candidates": candidates, "p50_ms": percentile_ms(swept, 50),
                          "p95_ms": percentile_ms(swept, 95), "recall_at_50": round(swept_recall, 4)})
        for search in searches:
            search.candidates = CANDIDATES
        runs.append({
            "entries": count, "p50_ms": percentile_ms(searched, 50), "p95_ms": percentile_ms(searched, 95),
            "memory_mib": round(sum(search.memory_bytes() for search in searches) / 2**20, 1),
            "recall_at_50": round(recall, 4),
            "full_scan_p50_ms": percentile_ms(scanned, 50), "full_scan_p95_ms": percentile_ms(scanned, 95),
            "rows_on_disk_mib": round(sum(p.stat().st_size for p in (path, pixel_path) if p.exists()) / 2**20, 1),
            "search_build_s": round(build_s, 1),
            "by_candidates": sweep,
            "peak_rss_growth_mib": round(
                (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1)})
        log(f"{count} rows: {runs[-1]}")
        del big, synthetic
        path.unlink()
        pixel_path.unlink(missing_ok=True)

    report = {
        "benchmark": "attribution_scale",
        "runs": runs,
        "real_index": {"entries": len(index.rows), "queries": len(outputs.features),
                       "recall_at_50": round(real_recall, 4),
                       "recall_at_50_by_candidates": by_candidates, "p50_ms": percentile_ms(real_searched, 50), "full_scan_p50_ms": percentile_ms(real_scanned, 50),
                       "queries_are": "outputs of the demo base for held-out catalog captions",
                       "base": str(base.resolve().relative_to(ROOT)) if base.resolve().is_relative_to(ROOT) else str(base)},
        "settings": {"normalisation": config.normalisation, "timesteps": list(config.timesteps),
                     "pixel_weight": args.pixel_weight,
                     "pixel_dim": None if index.pixels is None else int(index.pixels.shape[1]),
                     "feature_dim": config.projection_dim, "compact_dim": COMPACT_DIM, "candidates": CANDIDATES,
                     "graph_degree": GRAPH_DEGREE, "search": "FAISS HNSW over 8-bit codes, inner product",
                     "top_k": TOP_K, "rows_dtype": "float16 memory-mapped (synthetic)", "threads": args.threads,
                     "cores": os.cpu_count(), "faiss": faiss.__version__,
                     "synthetic": "Gaussian with the real index rows' mean and covariance"},
        "notes": "p50/p95: InfluenceIndex.candidates per query (kernel solve, search, exact re-score of the "
                 "candidates; blended: InfluenceIndex.blended_candidates, both searches and the blend's exact "
                 "re-score of their candidates together), timed after the full scans have brought the rows into the page cache; memory_mib: the search's compact rows, ids, centroids and bases held in memory; "
                 "the full rows stay on disk (rows_on_disk_mib) and only the candidates are read.",
    }
    return publish(report, args.out)


if __name__ == "__main__":
    main()
