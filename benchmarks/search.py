"""Exact top-k search: the full score matrix + lexsort (as it was) vs vdr.retrieval.search.search.

    python benchmarks/search.py                       # 5,000 queries x 50,000 pages, top 100: old vs new
    python benchmarks/search.py --grid                # the same on a 2**-10 grid: float32 arithmetic is exact
    python benchmarks/search.py --large               # 50,000 x 500,000 pages, new only, pages memory-mapped
    python benchmarks/search.py --queries 2000 --pages 20000 --max-memory-mb 256

Synthetic, seeded unit vectors (384-d float32). Each way runs in a fresh Python process that loads the
embeddings, runs one search and reports its wall time and its peak resident memory (VmHWM, the whole process:
interpreter, embeddings and search). The parent checks the two results agree:
  * bit for bit with --grid, where every product and sum is exact, so BLAS rounding cannot differ;
  * otherwise up to near ties: the blocked sgemm may round an entry one ulp away from the full sgemm (the full
    product itself changes that way with the BLAS thread count), so the check is that the scores per rank agree
    within TOLERANCE and that every page the new search returns truly (float64) scores within TOLERANCE of the
    old search's page at that rank. Exact index and score matches are counted and printed.
--large writes the pages to a memory-mapped file in chunks (generating them never holds them all), and the search
reads them through np.memmap; peak RSS then includes the file pages it has mapped (reclaimable page cache),
shown at the end of the search as "file pages at end".
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOLERANCE = 1e-5
"""Allowed score difference for unit vectors: far above the few-ulp (~1e-7) rounding differences between sgemm
shapes, far below the gaps that decide a ranking."""

GENERATION_CHUNK = 20_000


def full_matrix_search(query_embeddings: np.ndarray, document_embeddings: np.ndarray, top_k: int):
    """the search before vdr.retrieval.search: the whole score matrix, every row lexsorted."""
    scores = query_embeddings @ document_embeddings.T
    top_k = min(top_k, scores.shape[1])
    order = np.stack([np.lexsort((np.arange(row.size), -row))[:top_k] for row in scores])
    return order, np.take_along_axis(scores, order, axis=1)


def unit_vectors(rng: np.random.Generator, rows: int, dim: int, grid: bool) -> np.ndarray:
    """Seeded random unit vectors, float32; with `grid`, rounded to multiples of 2**-10 (then only nearly unit)."""
    x = rng.standard_normal((rows, dim), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    if grid:
        x = np.round(x * 1024) / 1024
    return x


def write_embeddings(path: Path, rows: int, dim: int, seed: int, grid: bool) -> None:
    """`rows` unit vectors to a raw float32 file, GENERATION_CHUNK rows at a time through a memmap."""
    rng = np.random.default_rng(seed)
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(rows, dim))
    for start in range(0, rows, GENERATION_CHUNK):
        out[start : start + GENERATION_CHUNK] = unit_vectors(rng, min(GENERATION_CHUNK, rows - start), dim, grid)
    out.flush()
    del out


def status_mb(field: str) -> float | None:
    """A memory field of /proc/self/status (VmHWM: peak resident set; RssFile: resident file pages now), in MiB."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM), in MiB; ru_maxrss where /proc is missing."""
    peak = status_mb("VmHWM")
    if peak is not None:
        return peak
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return maxrss / 2**20 if sys.platform == "darwin" else maxrss / 1024


def child(args: argparse.Namespace) -> None:
    """One search in this fresh process; results to --data, timing and memory as JSON on stdout."""
    mode = "r" if args.mmap else None
    queries = np.load(args.data / "queries.npy", mmap_mode=mode)
    pages = np.load(args.data / "pages.npy", mmap_mode=mode)
    before = peak_rss_mb()
    started = time.perf_counter()
    if args.child == "old":
        indices, scores = full_matrix_search(queries, pages, args.top_k)
    else:
        from vdr.retrieval.search import search

        indices, scores = search(queries, pages, args.top_k, max_memory_mb=args.max_memory_mb)
    seconds = time.perf_counter() - started
    peak = peak_rss_mb()
    np.save(args.data / f"{args.child}_indices.npy", indices)
    np.save(args.data / f"{args.child}_scores.npy", scores)
    report = {"seconds": seconds, "peak_rss_mb": peak, "rss_before_search_mb": before}
    print(json.dumps(report | {"file_pages_mb": status_mb("RssFile") or 0.0}))


def run_child(way: str, args: argparse.Namespace, data: Path, mmap: bool) -> dict:
    """Run one way in a fresh interpreter and return its report."""
    command = [sys.executable, __file__, "--child", way, "--data", str(data), "--top-k", str(args.top_k)]
    command += ["--max-memory-mb", str(args.max_memory_mb)] + (["--mmap"] if mmap else [])
    done = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def compare(data: Path, exact: bool) -> dict:
    """Agreement of the old and new results (see the module docstring); raises AssertionError if they disagree."""
    old_indices, old_scores = np.load(data / "old_indices.npy"), np.load(data / "old_scores.npy")
    new_indices, new_scores = np.load(data / "new_indices.npy"), np.load(data / "new_scores.npy")
    assert old_indices.shape == new_indices.shape and new_indices.dtype == np.int64 and new_scores.dtype == np.float32
    same_index = old_indices == new_indices
    same_bits = old_scores.view(np.uint32) == new_scores.view(np.uint32)
    report = {
        "entries": same_index.size,
        "same_index": int(same_index.sum()),
        "same_score_bits": int(same_bits.sum()),
        "queries_identical": int((same_index & same_bits).all(axis=1).sum()),
        "max_score_diff": float(np.abs(old_scores.astype(np.float64) - new_scores).max()),
    }
    if exact:
        assert same_index.all() and same_bits.all(), f"results differ on exact data: {report}"
        return report
    # Near ties only: every new page's true score is within TOLERANCE of the old page's score at that rank
    queries = np.load(data / "queries.npy", mmap_mode="r")
    pages = np.load(data / "pages.npy", mmap_mode="r")
    rows, ranks = np.nonzero(~same_index)
    returned_pages = pages[new_indices[rows, ranks]].astype(np.float64)
    true_scores = np.einsum("ij,ij->i", queries[rows].astype(np.float64), returned_pages)
    report["max_true_score_gap"] = float(np.abs(true_scores - old_scores[rows, ranks]).max(initial=0.0))
    assert report["max_score_diff"] <= TOLERANCE, f"scores per rank differ beyond {TOLERANCE}: {report}"
    assert report["max_true_score_gap"] <= TOLERANCE, f"rankings differ beyond near ties: {report}"
    assert all(len(set(row)) == row.size for row in new_indices), "a page repeats within a query's results"
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=None, help="default 5,000 (50,000 with --large)")
    parser.add_argument("--pages", type=int, default=None, help="default 50,000 (500,000 with --large)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--top-k", type=int, default=100)
    parser.add_argument("--max-memory-mb", type=float, default=1024)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", action="store_true", help="a 2**-10 grid: the results must match bit for bit")
    parser.add_argument("--large", action="store_true", help="new code only, pages memory-mapped from disk")
    parser.add_argument("--workdir", type=Path, default=None, help="where the embeddings are written (a temp dir)")
    parser.add_argument("--child", choices=["old", "new"], help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--mmap", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    num_queries = args.queries or (50_000 if args.large else 5_000)
    num_pages = args.pages or (500_000 if args.large else 50_000)

    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        data = Path(tmp)
        # 1. Embeddings on disk, written in chunks (queries and pages from different seeds)
        started = time.perf_counter()
        write_embeddings(data / "queries.npy", num_queries, args.dim, args.seed, args.grid)
        write_embeddings(data / "pages.npy", num_pages, args.dim, args.seed + 1, args.grid)
        threads = os.environ.get("OPENBLAS_NUM_THREADS", "default")
        print(
            f"{num_queries:,} queries x {num_pages:,} pages, {args.dim}-d, top {args.top_k}, max_memory_mb "
            f"{args.max_memory_mb:g}, {os.cpu_count()} CPUs, OPENBLAS_NUM_THREADS {threads}; "
            f"data written in {time.perf_counter() - started:.1f} s"
        )

        # 2. Each way in its own process
        ways = ["new"] if args.large else ["old", "new"]
        reports = {way: run_child(way, args, data, mmap=args.large) for way in ways}
        print(f"{'way':<28} {'wall s':>9} {'peak RSS MiB':>13} {'RSS before search':>18} {'file pages at end':>18}")
        labels = {"old": "old: full matrix + lexsort", "new": "new: vdr.retrieval.search (blocked)"}
        for way, report in reports.items():
            print(
                f"{labels[way]:<28} {report['seconds']:>9.2f} {report['peak_rss_mb']:>13.0f} "
                f"{report['rss_before_search_mb']:>18.0f} {report['file_pages_mb']:>18.0f}"
            )

        # 3. Same answers, and the ratios
        if not args.large:
            old, new = reports["old"], reports["new"]
            print(
                f"old / new: wall time {old['seconds'] / new['seconds']:.1f}x, "
                f"peak RSS {old['peak_rss_mb'] / new['peak_rss_mb']:.1f}x"
            )
            agreement = compare(data, exact=args.grid)
            print("agreement:", json.dumps(agreement))
            print("identical bit for bit" if args.grid else f"identical up to near ties (tolerance {TOLERANCE:g})")


if __name__ == "__main__":
    main()
