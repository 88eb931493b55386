"""Influence scoring at catalog scale: candidate search, then exact re-scoring, per output. Prints JSON.

An output is scored by both views of the product's index (``InfluenceConfig()``, method version 4): the
evidence view (``self``, t = 900, blended with pixel similarity: a gradient search and a pixel search, the
union of their candidates re-scored by the blend) and the payment view (``centered``, t = 100/500/900: one
search, its candidates re-scored). Each view is measured as its own index, so the figures per output are
the sums of the two views' (p95: the sum of their p95s, at least the p95 of the sums).

1. A real index: D-TRAK features (2,048 dimensions a view) of the quality benchmark's training snapshot
   (OpenMoji without its held-out split) through a base (``--base``; by default the ``demo`` base that
   ``benchmarks/custom_model.py`` exported under ``--work``), one feature pass for both views, and each
   training image's pixel codes. Queries are outputs of that model for held-out catalog captions, as served
   generations are. Reported per view: recall@50 of the search's answer (candidates re-scored exactly)
   against the exact full scan.
2. Synthetic indexes of 10^5 and 10^6 rows, drawn per view from a Gaussian with the real rows' mean and
   covariance (their spectrum, so the search meets the real structure), the pixel codes likewise from the
   real codes'; memory-mapped, as float32 rows (what ``InfluenceIndex`` keeps; ``--rows-dtype float16`` halves
   the disk and adds a conversion to every read) and uint8 codes. The kernel is accumulated in chunks. Per
   run and view: query latency p50/p95 over ``--timed-queries`` further draws, timed as served before any full
   scan (``InfluenceIndex.candidates``; blended: ``blended_candidates``), the
   same for a full scan, the searches' resident memory, and recall@50 against the exact full scan for held-out
   draws from the same distribution.

    python benchmarks/attribution_scale.py --base var/bench-attribution/full/run/pipeline \
        --out benchmarks/results/attribution_scale.json

``--view evidence`` or ``--view payment`` measures one; ``--normalisation``, ``--timesteps`` and
``--pixel-weight`` then change that view's settings.
"""

from __future__ import annotations

import argparse
import io
import os
import resource
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import faiss
import numpy as np
import torch
from PIL import Image
from threadpoolctl import threadpool_info

from benchmarks.quality import prepare_snapshots
from benchmarks.reporting import publish
from provenance.influence import (
    NORMALISATIONS,
    InfluenceConfig,
    InfluenceIndex,
    pixel_codes,
    pixel_row,
    unit_pixel_rows,
)
from provenance.influence_search import COMPACT_DIM, GRAPH_DEGREE, exact_top, one_blas_thread, recall_at
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


class RealFeatures(NamedTuple):
    """One feature pass of a base over its training snapshot, for both views, and its outputs'."""

    features: np.ndarray
    """(N, 2, d): each training image's evidence and payment features."""
    calibration: np.ndarray
    """(C, 2, d): the calibration outputs' (the payment view is centred on them)."""
    pixels: np.ndarray
    """(N, 3 size^2) uint8: each training image's pixel codes."""
    outputs: np.ndarray
    """(Q, 2, d): the queries' features."""
    output_pixels: np.ndarray
    """(Q, 3 size^2): the queries' pixel rows."""


def real_features(work: Path, catalog: Path | None, queries: int, config: InfluenceConfig,
                  base: Path) -> RealFeatures:
    """The base's features of its training snapshot and of its outputs for held-out captions, by the split
    ``config``'s one pass (cached under ``work``)."""
    cached = work / "attribution-scale-real.npz"
    recorded = repr(sorted(config.as_dict().items()))
    if cached.is_file():
        with np.load(cached) as data:
            if str(data.get("base", "")) == str(base) and str(data.get("config", "")) == recorded:
                return RealFeatures(*(data[name] for name in RealFeatures._fields))
    if not base.is_dir():
        raise SystemExit(f"no demo base under {base}: run benchmarks/custom_model.py first, or name one with --base")
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
        output_pixels.append(pixel_row(image, config.pixel_size))
    real = RealFeatures(
        features=features,
        calibration=attributor.calibration_features((i["caption"] for i in items),
                                                    guidance_scale=serving_guidance(PRESETS["demo"])),
        pixels=np.stack([pixel_codes(Image.open(io.BytesIO(i["png"])), config.pixel_size) for i in items]),
        outputs=np.stack(rows), output_pixels=np.stack(output_pixels))
    np.savez(cached, base=np.array(str(base)), config=np.array(recorded), **real._asdict())
    return real


def real_view(real: RealFeatures, config: InfluenceConfig, view: int) -> tuple[InfluenceIndex, Queries]:
    """One view of the real index as the product builds it (the evidence view with its pixel codes when the
    config blends them), searched whatever its size, and its queries."""
    view_config = config.view_config(view)
    ids = [uuid.uuid4() for _ in range(len(real.features))]
    index = InfluenceIndex.build(real.features[:, view], asset_ids=ids, contributor_ids=ids, config=view_config,
                                 fingerprint={}, search_min_rows=0, calibration=real.calibration[:, view]
                                 if view_config.uses_calibration_outputs else None)
    blended = view == 0 and config.blends_pixels
    if blended:
        as_blended_evidence(index, real.pixels, config.pixel_weight)
    return index, Queries(real.outputs[:, view], real.output_pixels if blended else None)


def as_blended_evidence(index: InfluenceIndex, pixels: np.ndarray, pixel_weight: float) -> None:
    """Make a one-view index the evidence view of a version 4 index, as ``InfluenceIndex.build`` makes it from a
    split config: the same rows and kernel, the pixel codes beside them, and their own search."""
    index.pixels, index.config = pixels, {**index.config, "pixel_weight": pixel_weight}
    if index.search is not None:
        index.pixel_search = index.new_pixel_search()


def as_codes(rows: np.ndarray) -> np.ndarray:
    """Drawn pixel values made bytes, as ``pixel_codes`` keeps them."""
    return np.clip(np.rint(rows), 0, 255).astype(np.uint8)


def synthetic_rows(path: Path, count: int, mean: np.ndarray, spread: np.ndarray, seed: int, chunk: int = 50_000,
                   finish=lambda rows: rows, dtype=np.float16):
    """``count`` rows finish(mean + z @ spread) (z standard normal) as ``dtype``, memory-mapped at ``path``."""
    rows = np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=(count, len(mean)))
    generator = np.random.default_rng(seed)
    for start in range(0, count, chunk):
        size = min(chunk, count - start)
        rows[start:start + size] = finish(mean + generator.standard_normal((size, spread.shape[0]),
                                                                           dtype=np.float32) @ spread).astype(dtype)
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


def answered(index: InfluenceIndex, queries: Queries, number: int):
    """Query ``number`` scored as a served index scores it (``candidates``; blended: ``blended_candidates``)."""
    if queries.pixels is None:
        return index.candidates(queries.features[number])
    return index.blended_candidates(queries.features[number], queries.pixels[number])


def search_recall(index: InfluenceIndex, queries: Queries, exact: list[np.ndarray]) -> tuple[float, list[float]]:
    """recall@50 of the candidates re-scored exactly against the full scan, and the per-query times."""
    recalls, seconds = [], []
    for number, (_, answer) in enumerate(zip(queries.features, exact, strict=True)):
        started = time.perf_counter()
        scored = answered(index, queries, number)
        found = scored.positions[np.argsort(-scored.scores, kind="stable")][:TOP_K]
        seconds.append(time.perf_counter() - started)
        recalls.append(recall_at(found, answer))
    return float(np.mean(recalls)), seconds


def blas_threads_while_scoring() -> list[int]:
    """What each loaded BLAS library runs on inside ``one_blas_thread``, read, not assumed."""
    with one_blas_thread():
        return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def served_times(index: InfluenceIndex, queries: Queries) -> list[float]:
    """Each query's time as a served index answers it."""
    seconds = []
    for number in range(len(queries.features)):
        started = time.perf_counter()
        answered(index, queries, number)
        seconds.append(time.perf_counter() - started)
    return seconds


def gaussian_like(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean, spread) with z @ spread of the rows' covariance (z standard normal): draws with their spectrum."""
    rows = rows.astype(np.float64)
    mean = rows.mean(axis=0)
    _, singular, right = np.linalg.svd(rows - mean, full_matrices=False)
    return mean.astype(np.float32), (singular[:, None] / np.sqrt(len(rows) - 1) * right).astype(np.float32)


VIEWS = ("evidence", "payment")


def measured_config(args) -> InfluenceConfig:
    """The product's config, with the one measured view's settings changed as asked."""
    config = InfluenceConfig()
    changes = {name: value for name, value in (("normalisation", args.normalisation), ("timesteps", args.timesteps),
                                               ("pixel_weight", args.pixel_weight)) if value is not None}
    if changes and args.view == "both":
        raise SystemExit("--normalisation, --timesteps and --pixel-weight change one view: name it with --view")
    if "timesteps" in changes:
        changes["timesteps"] = tuple(int(t) for t in changes["timesteps"].split(","))
    if args.view == "payment":
        if "pixel_weight" in changes:
            raise SystemExit("the payment view does not blend pixels")
        changes = {f"payment_{name}": value for name, value in changes.items()}
    return replace(config, **changes)


def real_run(index: InfluenceIndex, outputs: Queries) -> dict:
    """recall@50 of a real view's search (searched whatever its size), also with fewer candidates."""
    exact, scanned = exact_answers(index, outputs)
    recall, searched = search_recall(index, outputs, exact)
    by_candidates = {}
    searches = [index.search] + ([index.pixel_search] if index.pixel_search is not None else [])
    served = [search.candidates for search in searches]
    for candidates in (64, 128, 256):  # the real index is small: fewer candidates make its search a real test
        for search in searches:
            search.candidates = candidates
        by_candidates[str(candidates)] = round(search_recall(index, outputs, exact)[0], 4)
    for search, candidates in zip(searches, served, strict=True):
        search.candidates = candidates
    return {"entries": len(index.rows), "queries": len(outputs.features), "recall_at_50": round(recall, 4),
            "candidates": served,
            "recall_at_50_by_candidates": by_candidates, "p50_ms": percentile_ms(searched, 50),
            "full_scan_p50_ms": percentile_ms(scanned, 50)}


def synthetic_run(count: int, real: InfluenceIndex, config: InfluenceConfig, pixel_weight: float, args,
                  name: str) -> dict:
    """One view at ``count`` rows drawn like the real view's: build, search, time, check against full scans."""
    mean, spread = gaussian_like(real.rows)
    pixel_mean, pixel_spread = gaussian_like(real.pixels) if real.pixels is not None else (None, None)
    dtype = np.dtype(args.rows_dtype)
    path = args.work / f"attribution-scale-{count}-{name}.npy"
    pixel_path = args.work / f"attribution-scale-{count}-pixels.npy"
    started = time.perf_counter()
    synthetic = synthetic_rows(path, count, mean.astype(np.float32), spread, seed=count, dtype=dtype)
    gram = chunked_gram(synthetic)
    ids = [uuid.UUID(int=n) for n in range(count)]
    draws = np.random.default_rng(count + 1)
    # calibration outputs drawn like the queries (the real index's outputs are like its rows)
    calibration = (mean + np.random.default_rng(count + 2).standard_normal(
        (config.calibration_outputs, spread.shape[0]), dtype=np.float32) @ spread).astype(np.float32)
    big = InfluenceIndex(ids, ids, synthetic, config.as_dict(), {}, gram,
                         calibration=calibration if config.uses_calibration_outputs else None)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    search_started = time.perf_counter()
    big.search = big.new_search()
    if pixel_mean is not None:
        as_blended_evidence(big, synthetic_rows(pixel_path, count, pixel_mean, pixel_spread, seed=count + 3,
                                                finish=as_codes, dtype=np.uint8), pixel_weight)
    build_s = time.perf_counter() - search_started
    log(f"{count} rows, {name}: drawn and kernel in {search_started - started:.0f} s, search built in {build_s:.0f} s")
    if args.resident:  # a served index holds its rows in memory (InfluenceIndex.load reads them whole)
        big.rows = np.array(big.rows)
        big.pixels = None if big.pixels is None else np.array(big.pixels)
    def drawn(count: int) -> Queries:
        return Queries(
            (mean + draws.standard_normal((count, spread.shape[0]), dtype=np.float32) @ spread).astype(np.float32),
            None if pixel_mean is None else unit_pixel_rows(as_codes(pixel_mean + draws.standard_normal(
                (count, pixel_spread.shape[0]), dtype=np.float32) @ pixel_spread)))

    queries, timed = drawn(args.queries), drawn(args.timed_queries)
    # the kernel's inverse, the rows' scales and a blend's moments are computed once per loaded index
    search_recall(big, Queries(queries.features[:1], None if queries.pixels is None else queries.pixels[:1]),
                  [np.zeros(0, dtype=np.int64)])
    searched = served_times(big, timed)
    exact, scanned = exact_answers(big, queries)
    recall, _ = search_recall(big, queries, exact)
    searches = [big.search] + ([big.pixel_search] if big.pixel_search is not None else [])
    served = [search.candidates for search in searches]
    sweep = []
    for candidates in args.candidate_sweep:
        for search in searches:
            search.candidates = candidates
        swept_recall, swept = search_recall(big, queries, exact)
        sweep.append({"candidates": candidates, "p50_ms": percentile_ms(swept, 50),
                      "p95_ms": percentile_ms(swept, 95), "recall_at_50": round(swept_recall, 4)})
    for search, candidates in zip(searches, served, strict=True):
        search.candidates = candidates
    run = {
        "p50_ms": percentile_ms(searched, 50), "p95_ms": percentile_ms(searched, 95),
        "max_ms": percentile_ms(searched, 100), "timed_queries": len(searched), "candidates": served,
        "memory_mib": round(sum(search.memory_bytes() for search in searches) / 2**20, 1),
        "recall_at_50": round(recall, 4),
        "full_scan_p50_ms": percentile_ms(scanned, 50), "full_scan_p95_ms": percentile_ms(scanned, 95),
        "rows_on_disk_mib": round(sum(p.stat().st_size for p in (path, pixel_path) if p.exists()) / 2**20, 1),
        "search_build_s": round(build_s, 1), "by_candidates": sweep,
        "peak_rss_growth_mib": round((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024, 1),
        "settings": {key: config.as_dict()[key] for key in ("normalisation", "timesteps")} | (
            {"pixel_weight": pixel_weight} if pixel_mean is not None else {})}
    log(f"{count} rows, {name}: {run}")
    del big, synthetic
    path.unlink()
    pixel_path.unlink(missing_ok=True)
    return run


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, default=ROOT / "var" / "bench-quality",
                        help="shared with benchmarks/quality.py and custom_model.py (its demo base is reused)")
    parser.add_argument("--catalog", type=Path, default=None)
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--queries", type=int, default=50, help="queries whose answers are checked against a full "
                        "scan (recall@50, and the candidate sweep's times)")
    parser.add_argument("--timed-queries", type=int, default=300,
                        help="further queries timed as served (p50/p95), before any full scan")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--candidate-sweep", type=lambda text: [int(v) for v in text.split(",") if v],
                        default=[512, 2048], help="candidate counts also timed on each synthetic index")
    parser.add_argument("--base", type=Path, default=None,
                        help="the base's pipeline folder (default: WORK/runs/custom-model-base/pipeline, as "
                             "benchmarks/custom_model.py exports it; or attribution.py's full model)")
    parser.add_argument("--view", choices=("both", *VIEWS), default="both",
                        help="the product's index's views to measure (an output is scored by both)")
    parser.add_argument("--normalisation", choices=NORMALISATIONS, default=None,
                        help="the measured view's normalisation (default: the product's)")
    parser.add_argument("--timesteps", default=None, help="the measured view's timesteps (default: the product's)")
    parser.add_argument("--pixel-weight", type=float, default=None,
                        help="the evidence view's blend with pixel similarity (default: the product's; 0 measures "
                             "gradient scores alone)")
    parser.add_argument("--rows-dtype", choices=("float32", "float16"), default="float32",
                        help="the synthetic rows' dtype (float32: what an index keeps)")
    parser.add_argument("--resident", action=argparse.BooleanOptionalAction, default=True,
                        help="time queries with the rows in memory, as a served index holds them (--no-resident: "
                             "memory-mapped, read through the page cache)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "attribution_scale.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    faiss.omp_set_num_threads(args.threads)
    config = measured_config(args)
    views = [0, 1] if args.view == "both" else [VIEWS.index(args.view)]

    base = args.base or args.work / "runs" / "custom-model-base" / "pipeline"
    real = real_features(args.work, args.catalog, args.queries, config, base)
    real_views, real_report = {}, {}
    for view in views:
        real_views[view] = real_view(real, config, view)
        real_report[VIEWS[view]] = real_run(*real_views[view])
        log(f"real index, {VIEWS[view]}: {real_report[VIEWS[view]]}")

    runs = []
    for count in (int(size) for size in args.sizes.split(",") if size):
        measured = {VIEWS[view]: synthetic_run(count, real_views[view][0], config.view_config(view),
                                               config.pixel_weight if view == 0 else 0.0, args, VIEWS[view])
                    for view in views}
        runs.append({"entries": count,
                     **{key: round(sum(run[key] for run in measured.values()), 2)
                        for key in ("p50_ms", "p95_ms", "memory_mib")},
                     "recall_at_50": min(run["recall_at_50"] for run in measured.values()),
                     "views": measured})

    report = {
        "benchmark": "attribution_scale",
        "runs": runs,
        "real_index": {**real_report, "queries_are": "outputs of the base for held-out catalog captions",
                       "base": str(base.resolve().relative_to(ROOT)) if base.resolve().is_relative_to(ROOT) else str(base)},
        "settings": {"method": config.as_dict(), "views": [VIEWS[view] for view in views],
                     "pixel_dim": 3 * config.pixel_size ** 2 if config.blends_pixels else None,
                     "feature_dim": config.projection_dim, "compact_dim": COMPACT_DIM,
                     "candidates": {VIEWS[view]: real_report[VIEWS[view]]["candidates"] for view in views},
                     "graph_degree": GRAPH_DEGREE, "search": "FAISS HNSW over 8-bit codes, inner product",
                     "top_k": TOP_K, "rows_dtype": args.rows_dtype, "pixels_dtype": "uint8 (pixel codes)",
                     "rows_while_timed": "in memory" if args.resident else "memory-mapped", "threads": args.threads,
                     "blas_threads_while_scoring": blas_threads_while_scoring(),
                     "timed_queries": args.timed_queries, "cores": os.cpu_count(), "faiss": faiss.__version__,
                     "synthetic": "Gaussian with the real view's rows' (and pixel codes') mean and covariance"},
        "notes": "Per output, both views: p50_ms, p95_ms and memory_mib are the sums of the views' (a p95 of "
                 "sums is at most the sum of the p95s), recall_at_50 the lower of the two. Each view's p50/p95: "
                 "InfluenceIndex.candidates per query (kernel solve, search, exact re-score of the candidates; "
                 "blended: InfluenceIndex.blended_candidates, both searches and the blend's exact re-score of the "
                 "union of their candidates), over --timed-queries queries drawn like the others and timed before any "
                 "full scan, with one BLAS thread (provenance.influence_search.one_blas_thread, as the product "
                 "scores); recall and the candidate sweep use the --queries queries; rows_while_timed: in memory, "
                 "as a served index holds them, or memory-mapped (read through the page cache); memory_mib: the searches' "
                 "compact rows and bases, beside the rows themselves (rows_on_disk_mib).",
    }
    return publish(report, args.out)


if __name__ == "__main__":
    main()
