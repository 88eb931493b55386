"""Candidate search for influence scoring at catalog scale: approximate, then exact.

Influence pays only an output's top ``k`` training images (``influence_shares``), so scoring need not
touch every indexed row: an approximate maximum-inner-product search proposes a few hundred candidates
and only those are scored exactly. With the exact top ``k`` among the candidates (``recall_at``, measured
by ``benchmarks/attribution_scale.py``), the shares are the same as a full scan's.

The search works on compact rows: the index rows, mapped by an invertible ``transform`` M (rows by M,
queries by M^-T: inner products are unchanged) and projected onto their top principal directions (an
uncentred SVD of a sample, so inner products are kept as well as ``compact_dim`` directions can keep
them). Influence queries are solved against the kernel, which makes them unlike the rows; with M the
kernel's whitening, rows and queries are alike again. The compact rows, as 8-bit codes, are the nodes of
a FAISS HNSW graph searched by inner product: inverted lists partitioned by inner product lost a tenth to
a quarter of the true top 50 at the same cost (measured on the benchmark's indexes). Rows are added to the
graph without a rebuild (``add``), so an index that grows -- a fine-tune's assets, a catalog import -- is
extended. The graph is stored with the index, so an audit replays the very search a generation made.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import faiss
import numpy as np
from threadpoolctl import ThreadpoolController

COMPACT_DIM = 128
"""Directions kept per row for the search, stored as 8-bit codes; exact scores use the full rows."""
CANDIDATES = 1024
"""Rows the search proposes per query, then scored exactly (twenty times the influence top-k). At 10^6 rows
they found 0.92 of the exact top 50 of the product's evidence view (a blended one: 1,024 from each of its
two searches; 512: 0.82, 2,048: 0.96; benchmarks/results/attribution_scale.json, stop 38)."""
CENTRED_CANDIDATES = 2048
"""What a centred index's search proposes (the payment view's). Its rows, less their shared part, keep
less of each inner product in the compact directions, so its search needs more candidates for the same
recall: at 10^6 rows 1,024 found 0.82 of the exact top 50 and 2,048 found 0.91
(benchmarks/results/attribution_scale.json, stop 39)."""
GRAPH_DEGREE = 32
"""Neighbours per node of the HNSW graph."""
FIT_SAMPLE = 50_000
"""Rows the projection and the codes' ranges are fitted on: enough to find the structure, bounded cost."""


@dataclass
class CandidateSearch:
    row_basis: np.ndarray
    """(d, compact_dim) float32: a full row times it is its compact row."""
    query_basis: np.ndarray
    """(d, compact_dim) float32: a query times it is its compact query (the same inner products)."""
    graph: faiss.Index
    candidates: int = CANDIDATES

    @classmethod
    def build(cls, rows: np.ndarray, *, transform: np.ndarray | None = None, compact_dim: int = COMPACT_DIM,
              candidates: int = CANDIDATES, seed: int = 0, fit_sample: int = FIT_SAMPLE,
              chunk: int = 100_000) -> CandidateSearch:
        """Fit the projection and the codes on a seeded sample of ``rows`` (n, d), then add every row (read
        in chunks, so ``rows`` may be a memory-mapped array larger than memory)."""
        count, dim = rows.shape
        if count == 0:
            raise ValueError("nothing to search")
        transform = np.eye(dim) if transform is None else np.asarray(transform, dtype=np.float64)
        generator = np.random.default_rng(seed)
        sample_rows = np.sort(generator.choice(count, size=min(count, fit_sample), replace=False))
        sample = np.asarray(rows[sample_rows], dtype=np.float64) @ transform
        compact_dim = min(compact_dim, dim, len(sample))
        _, _, right = np.linalg.svd(sample, full_matrices=False)
        directions = right[:compact_dim].T
        row_basis = np.ascontiguousarray(transform @ directions, dtype=np.float32)
        query_basis = np.ascontiguousarray(np.linalg.inv(transform).T @ directions, dtype=np.float32)
        graph = faiss.IndexHNSWSQ(compact_dim, faiss.ScalarQuantizer.QT_8bit, GRAPH_DEGREE,
                                  faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = 80
        graph.train(np.ascontiguousarray((sample @ directions).astype(np.float32)))
        search = cls(row_basis, query_basis, graph, candidates=candidates)
        for start in range(0, count, chunk):
            search.add(rows[start:start + chunk])
        return search

    @property
    def size(self) -> int:
        return int(self.graph.ntotal)

    def add(self, rows: np.ndarray) -> None:
        """Append rows (their positions follow the rows already added): no refit, no rebuild."""
        if len(rows):
            self.graph.add(np.ascontiguousarray(np.asarray(rows, dtype=np.float32) @ self.row_basis))

    def search(self, query: np.ndarray, count: int | None = None) -> np.ndarray:
        """Positions of the rows with the largest approximate inner product with ``query``, best first."""
        wanted = min(count or self.candidates, self.size)
        compact = np.ascontiguousarray((np.asarray(query, dtype=np.float32) @ self.query_basis)[None])
        parameters = faiss.SearchParametersHNSW()
        parameters.efSearch = max(wanted, 64)
        _, positions = self.graph.search(compact, wanted, params=parameters)
        return positions[0][positions[0] >= 0]

    def settings(self) -> dict:
        """What a generation records about the search that chose its candidates."""
        return {"kind": "faiss-hnsw-sq8-inner-product", "compact_dim": int(self.row_basis.shape[1]),
                "candidates": self.candidates, "graph_degree": GRAPH_DEGREE, "rows": self.size}

    def to_bytes(self) -> np.ndarray:
        return faiss.serialize_index(self.graph)

    def memory_bytes(self) -> int:
        """What the search holds in memory: the graph with its 8-bit codes, and the two bases."""
        return int(len(self.to_bytes()) + self.row_basis.nbytes + self.query_basis.nbytes)

    @classmethod
    def from_parts(cls, row_basis: np.ndarray, query_basis: np.ndarray, serialized: np.ndarray,
                   candidates: int) -> CandidateSearch:
        return cls(np.asarray(row_basis, dtype=np.float32), np.asarray(query_basis, dtype=np.float32),
                   faiss.deserialize_index(np.asarray(serialized, dtype=np.uint8)), candidates=int(candidates))


class _BlasThreads:
    """The process's BLAS thread count, held at one while any searched query is being scored."""

    lock = threading.Lock()
    scoring = 0
    limiter = None
    controller: ThreadpoolController | None = None


@contextmanager
def one_blas_thread():
    """Score a query with one BLAS thread, then give the BLAS libraries back their threads.

    A searched query's arithmetic is a few memory-bound products (the solve, the candidates' rows), while BLAS
    threads left spinning after a call took the core the search was about to run on: on a 2-core machine
    with two BLAS threads about one query in fifty stalled for 20-110 ms, in the solve, the search or the
    gather alike, and with 50 queries those few stalls made the p95 (10^6 rows: 51.9 ms per output). With one
    thread the p95 is the queries' own: 46.5 ms at 10^6, for 4 ms more at the median
    (``benchmarks/results/attribution_scale.json``, stop 40). A full scan of a small index is scored this way too:
    after a scan with two BLAS threads, the next output's features (torch, on the same two cores) took 131 ms
    instead of 61 (the benchmark's 1,020-image index, features and scoring alternating as when a request's outputs
    are attributed one after another; stop 41). Scopes nest and overlap (counted under a lock):
    the first to enter limits the threads, the last to leave restores them. Best effort: the pthreads OpenBLAS
    bundled with numpy ignores a setting from another thread once the main thread has set one."""
    with _BlasThreads.lock:
        if _BlasThreads.scoring == 0:
            if _BlasThreads.controller is None:
                _BlasThreads.controller = ThreadpoolController()
            _BlasThreads.limiter = _BlasThreads.controller.limit(limits=1, user_api="blas")
        _BlasThreads.scoring += 1
    try:
        yield
    finally:
        with _BlasThreads.lock:
            _BlasThreads.scoring -= 1
            if _BlasThreads.scoring == 0:
                _BlasThreads.limiter.restore_original_limits()
                _BlasThreads.limiter = None


def exact_top(rows: np.ndarray, query: np.ndarray, count: int, *, chunk: int = 100_000) -> np.ndarray:
    """Positions of the ``count`` largest exact inner products, best first (a chunked full scan)."""
    best_positions = np.zeros(0, dtype=np.int64)
    best_scores = np.zeros(0, dtype=np.float32)
    query = np.asarray(query, dtype=np.float32)
    for start in range(0, len(rows), chunk):
        scores = np.asarray(rows[start:start + chunk], dtype=np.float32) @ query
        positions = np.arange(start, start + len(scores))
        best_positions = np.concatenate([best_positions, positions])
        best_scores = np.concatenate([best_scores, scores])
        if len(best_scores) > count:
            keep = np.argpartition(-best_scores, count)[:count]
            best_positions, best_scores = best_positions[keep], best_scores[keep]
    order = np.lexsort((best_positions, -best_scores))
    return best_positions[order][:count]


def recall_at(approximate: np.ndarray, exact: np.ndarray) -> float:
    """Share of the exact top positions the approximate answer found."""
    return len(set(approximate.tolist()) & set(exact.tolist())) / max(1, len(exact))
