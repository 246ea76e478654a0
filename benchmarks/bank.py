"""Bank search speed: exact and IVF top-10 over a synthetic bank of 1M L2-normalised vectors.

Usage::

    python benchmarks/bank.py                              # 1M vectors, D = 64, 128, 256, 2 threads
    python benchmarks/bank.py --n 200000 --dims 64 --threads 1 --no-ivf

For each width ``D`` the script draws ``n`` vectors from a mixture of ``--clusters`` Gaussian clusters (a
random unit centre per cluster plus isotropic noise, normalised: neighbours are clustered, as real embeddings
are; pure noise would be the worst case for IVF), then measures, with faiss limited to ``--threads`` OpenMP
threads (``faiss.omp_set_num_threads``):

* **exact, single query**: ``mmv.bank.index.Searcher`` (what ``Bank.search`` uses: ``IndexFlatIP`` split into
  one shard per search thread, each thread running faiss with one OpenMP thread) and, side by side, one
  unsharded ``IndexFlatIP`` searched by faiss's own OpenMP with 1 and ``--threads`` threads: median and 95th
  percentile ms per query over ``--queries`` queries (noisy copies of stored vectors), after 3 untimed warm-up
  queries;
* **exact, batched**: ms per query for batches of ``--batch`` queries;
* **IVF** (``mmv.bank.index.build_ivf``: ``IndexIVFFlat``, nlist = 4 sqrt(n), nprobe the smallest power of two
  reaching recall@10 >= 0.95), searched through ``Searcher`` (batches split between the search threads):
  training time, nlist, nprobe, recall@10 measured on 1000 stored vectors, and the same latencies. Recall is
  also measured on the benchmark's own (perturbed) queries (in brackets).

``MMV_SEARCH_THREADS`` sets the number of search threads (default: the CPU count).

The machine's load average is printed: other processes share the cores and lengthen the timings.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import faiss  # noqa: E402
import numpy as np  # noqa: E402

from benchmarks.machine import load_average  # noqa: E402
from mmv.bank.index import Searcher, build_ivf, exact_search, normalize, recall_at_k, search_threads  # noqa: E402


def synthetic(n: int, d: int, clusters: int, noise: float, seed: int) -> np.ndarray:
    """``[n, d]`` float32 unit vectors: cluster centre + ``noise / sqrt(d)`` Gaussian noise per coordinate."""
    rng = np.random.default_rng(seed)
    centres = normalize(rng.standard_normal((clusters, d), dtype=np.float32))
    out = np.empty((n, d), dtype=np.float32)
    for a in range(0, n, 100_000):
        b = min(n, a + 100_000)
        x = centres[rng.integers(0, clusters, b - a)]
        x += rng.standard_normal((b - a, d), dtype=np.float32) * (noise / np.sqrt(d))
        out[a:b] = normalize(x)
    return out


def latencies(search, queries: np.ndarray, k: int) -> tuple[float, float]:
    """Median and 95th-percentile ms of single-query searches (3 untimed warm-up queries first)."""
    for q in queries[:3]:
        search(q[None], k)
    times = []
    for q in queries:
        t = time.perf_counter()
        search(q[None], k)
        times.append(1000 * (time.perf_counter() - t))
    return float(np.median(times)), float(np.percentile(times, 95))


def batched(search, queries: np.ndarray, k: int, batch: int) -> float:
    """ms per query when searching ``batch`` queries at a time (one untimed batch first)."""
    search(queries[:batch], k)
    t = time.perf_counter()
    done = 0
    for a in range(0, len(queries), batch):
        search(queries[a : a + batch], k)
        done += len(queries[a : a + batch])
    return 1000 * (time.perf_counter() - t) / done


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="vectors in the bank")
    parser.add_argument("--dims", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--threads", type=int, default=2, help="faiss OpenMP threads of the unsharded index")
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--queries", type=int, default=200, help="single queries timed")
    parser.add_argument("--batch", type=int, default=256, help="queries per batch in the batched timing")
    parser.add_argument("--batches", type=int, default=4, help="batches timed")
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--noise", type=float, default=1.0, help="noise norm relative to the unit centre")
    parser.add_argument("--no-ivf", action="store_true", help="skip the IVF index")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    faiss.omp_set_num_threads(args.threads)
    print(f"n = {args.n:,}, k = {args.k}, faiss {faiss.__version__}, {args.threads} threads, load {load_average()}")
    rows = []
    for d in args.dims:
        t = time.perf_counter()
        x = synthetic(args.n, d, args.clusters, args.noise, args.seed)
        rng = np.random.default_rng(args.seed + 1)
        picked = rng.integers(0, args.n, args.queries + args.batch * args.batches)
        q = normalize(x[picked] + rng.standard_normal((len(picked), d), dtype=np.float32) * (0.3 / np.sqrt(d)))
        single, batch_q = q[: args.queries], q[args.queries :]
        print(f"D = {d}: data {time.perf_counter() - t:.1f} s", flush=True)

        variants = [(f"exact, Searcher ({search_threads()} shards, our threads)", Searcher(x), None)]
        for threads in sorted({1, args.threads}):
            flat = faiss.IndexFlatIP(d)
            flat.add(x)
            variants.append((f"exact, one IndexFlatIP, faiss OpenMP {threads}", flat, threads))
        for name, index, threads in variants:
            faiss.omp_set_num_threads(threads or args.threads)
            t = time.perf_counter()
            if isinstance(index, Searcher):
                index.parts  # noqa: B018  (build now, outside the timings)
            build_s = time.perf_counter() - t
            med, p95 = latencies(index.search, single, args.k)
            per_q = batched(index.search, batch_q, args.k, args.batch)
            rows.append({"D": d, "index": name, "build s": build_s, "single ms": med, "p95 ms": p95,
                         "batched ms/q": per_q, "recall@10": 1.0})  # fmt: skip
        faiss.omp_set_num_threads(args.threads)
        del variants, index
        print(_table(rows[-3:]), flush=True)
        if not args.no_ivf:
            t = time.perf_counter()
            index, info = build_ivf(x, seed=args.seed)
            build_s = time.perf_counter() - t
            with tempfile.TemporaryDirectory() as tmp:
                faiss.write_index(index, f"{tmp}/ivf.faiss")
                searcher = Searcher(x, f"{tmp}/ivf.faiss", info["nprobe"])
                searcher.parts  # noqa: B018
            med, p95 = latencies(searcher.search, single, args.k)
            per_q = batched(searcher.search, batch_q, args.k, args.batch)
            _, exact = exact_search(x, single, args.k)
            _, approx = searcher.search(single, args.k)
            own = recall_at_k(approx, exact)
            name = f"IVF nlist {info['nlist']} nprobe {info['nprobe']}, Searcher"
            rows.append({"D": d, "index": name, "build s": build_s, "single ms": med, "p95 ms": p95,
                         "batched ms/q": per_q, "recall@10": info["recall_at_10"], "recall own q": own})  # fmt: skip
            del index, searcher
            print(_table(rows[-1:]), flush=True)
        del x
    print(f"\nload average at the end: {load_average()}")
    print(_table(rows))
    return rows


def _table(rows: list[dict]) -> str:
    head = "| D | index | build s | single ms (median) | single ms (p95) | batched ms/query | recall@10 |"
    lines = [head, "|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        recall = f"{r['recall@10']:.3f}" + (f" ({r['recall own q']:.3f})" if "recall own q" in r else "")
        lines.append(
            f"| {r['D']} | {r['index']} | {r['build s']:.1f} | {r['single ms']:.1f} | {r['p95 ms']:.1f} | "
            f"{r['batched ms/q']:.2f} | {recall} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
