"""2-D maps of the bank's spaces: UMAP fitted jointly on every modality of a space, and placing new points.

**Fitting** (:func:`fit_map`). All vectors of a space (video, audio and text in S_vat) are stacked and mapped
together, so a clip's video and its narration land near each other exactly when the model put them near each
other. UMAP (umap-learn) runs with ``random_state = seed`` (which makes it single-threaded and deterministic:
the same vectors and parameters give the same coordinates, bit for bit, on the same machine) and the
*exact* k-nearest-neighbour graph, computed here with a faiss inner-product search (cosine distance
``1 - <x, y>``) and handed to UMAP as ``precomputed_knn``. That skips pynndescent's approximate graph (whose
numba compilation alone costs ~30 s) and removes its randomness. Above ``max_fit_points`` vectors a seeded
sample is fitted and the rest are placed with :func:`place_points`. Fewer than ``MIN_UMAP_POINTS`` vectors are
mapped by PCA instead (UMAP's spectral initialisation needs more points). Every parameter is stored with the
map. UMAP's kernels come from numba's on-disk cache (:func:`cache_umap_kernels`), so a build does not spend
seconds compiling them.

**Placing new points** (:func:`place_points`) without the UMAP object (a pickle would run code when loaded,
and the bank never unpickles anything): exactly the initialisation of UMAP's own ``transform``. For each new
point, its ``k = n_neighbors`` nearest stored points by cosine distance ``d_j`` get the fuzzy membership
weights ``w_j = exp(-d_j / sigma)`` (the local-connectivity offset of UMAP's transform is 0), with ``sigma``
found by bisection so that ``sum_j w_j = log2(k)``; the point goes to the ``w``-weighted mean of the
neighbours' coordinates, or onto a stored point it equals (``d = 0``, as UMAP does). UMAP's transform
would then refine that position for ``n_epochs / 3`` epochs of its optimisation; this does not, so the
placement is approximate: a new point lands among its high-dimensional neighbours, not necessarily where a
refit would put it.
"""

from __future__ import annotations

import functools
import threading
import warnings
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import numpy as np

from mmv.bank.index import exact_search

#: UMAP settings used when none are given (``umap_params`` entries override them).
DEFAULT_UMAP_PARAMS: dict[str, Any] = {
    "n_neighbors": 15,
    "min_dist": 0.1,
    "spread": 1.0,
    "metric": "cosine",
    "init": "spectral",
    "n_epochs": None,
    "local_connectivity": 1.0,
    "set_op_mix_ratio": 1.0,
}
#: Vectors per space fitted by UMAP; above it a seeded sample is fitted and the rest placed.
DEFAULT_MAX_FIT_POINTS = 50_000
#: Spaces with fewer vectors are mapped by PCA.
MIN_UMAP_POINTS = 10
#: Cosine distance under which a new point counts as equal to a stored one.
_SAME = 1e-6


def umap_params(overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULT_UMAP_PARAMS` with ``overrides`` applied (unknown keys are rejected)."""
    params = dict(DEFAULT_UMAP_PARAMS)
    for key, value in (overrides or {}).items():
        if key in ("random_state", "n_components", "precomputed_knn", "n_jobs"):
            raise ValueError(f"umap_params: {key!r} is set by the bank (seed, 2-D, exact kNN, one job)")
        if key not in params:
            raise ValueError(f"umap_params: unknown parameter {key!r} (known: {sorted(params)})")
        params[key] = value
    if params["metric"] != "cosine":
        raise ValueError("umap_params: metric must be 'cosine' (the bank's similarity)")
    if int(params["n_neighbors"]) < 2:
        raise ValueError(f"umap_params: n_neighbors must be >= 2, got {params['n_neighbors']}")
    return params


def _pca(x: np.ndarray) -> np.ndarray:
    """First two principal coordinates ``[N, 2]`` (signs fixed: each axis' largest loading is positive)."""
    centred = x.astype(np.float64) - x.mean(axis=0, keepdims=True)
    out = np.zeros((len(x), 2), dtype=np.float64)
    if len(x) >= 2:
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        v = vt[:2]
        v = v * np.sign(v[np.arange(len(v)), np.abs(v).argmax(axis=1)])[:, None]
        out[:, : len(v)] = centred @ v.T
    return out.astype(np.float32)


def _knn(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact ``k`` nearest neighbours of every row among the rows (itself included, first): int32 indices and
    float32 cosine distances ``[N, k]``."""
    sims, idx = exact_search(x, x, k)
    # A point's duplicate may come before the point itself; put the point first so UMAP sees it as its own 0.
    rows = np.arange(len(x))
    first_self = idx[:, 0] == rows
    for i in np.flatnonzero(~first_self):
        where = np.flatnonzero(idx[i] == i)
        j = int(where[0]) if len(where) else k - 1
        idx[i, 1 : j + 1], sims[i, 1 : j + 1] = idx[i, :j].copy(), sims[i, :j].copy()
        idx[i, 0], sims[i, 0] = i, 1.0
    return idx.astype(np.int32), np.clip(1.0 - sims, 0.0, 2.0).astype(np.float32)


#: UMAP's numba kernels that fitting a map runs and umap-learn (0.5.x) compiles without ``cache=True``:
#: (module, attribute). Compiling them took 6-8 s of every bank build's first map on the 2-core machine.
UNCACHED_UMAP_KERNELS = (
    ("umap.umap_", "smooth_knn_dist"),
    ("umap.umap_", "compute_membership_strengths"),
    ("umap.layouts", "_nb_optimize_layout_euclidean_single_epoch"),
)

#: Appended to the swapped kernels' ``__qualname__``: numba names its cache files by qualified name and keys
#: their entries by signature and bytecode, not by options, so a distinct name keeps our entries apart from
#: any that umap-learn (or an earlier option set) would write for the same function.
_CACHED_SUFFIX = "__mmv_cached"

#: umap-learn's own dispatchers of the swapped kernels, by (module, attribute): the tests' reference.
ORIGINAL_UMAP_KERNELS: dict[tuple[str, str], Any] = {}

#: Held while a ``parallel=True`` kernel runs: numba's fallback threading layer (workqueue) aborts the process
#: when two threads launch parallel kernels at once. Those two graph kernels take well under a second.
_PARALLEL_KERNEL_LOCK = threading.Lock()


def cache_umap_kernels() -> list[str]:
    """Swaps UMAP's uncached kernels for cached, GIL-free twins; returns the names it swapped.

    Each kernel of :data:`UNCACHED_UMAP_KERNELS` is replaced, in its module, by a dispatcher of the same Python
    code with the same options (``fastmath``, ``parallel``, ``locals``: the same machine code, so bit for bit
    the same maps, tests/test_bank.py) plus:

    - ``cache=True``: compiled once (``make install`` does it, in the venv), loaded by every later process;
    - ``nogil=True``: the kernels touch no Python object, so :func:`fit_maps` can fit two spaces in two threads.
      The two ``parallel=True`` graph kernels are called through a lock (:data:`_PARALLEL_KERNEL_LOCK`); the
      layout's epochs, most of a fit, run side by side.

    Kernels that are missing (another umap-learn) or not numba dispatchers are left alone. Idempotent.
    """
    import importlib
    import types

    import numba
    from numba.core.registry import CPUDispatcher

    swapped = []
    for module_name, attr in UNCACHED_UMAP_KERNELS:
        module = importlib.import_module(module_name)
        kernel = getattr(module, attr, None)
        if not isinstance(kernel, CPUDispatcher) or (module_name, attr) in ORIGINAL_UMAP_KERNELS:
            continue
        py = kernel.py_func
        twin = types.FunctionType(py.__code__, py.__globals__, py.__name__, py.__defaults__, py.__closure__)
        twin.__qualname__ = py.__qualname__ + _CACHED_SUFFIX
        twin.__module__, twin.__kwdefaults__ = py.__module__, py.__kwdefaults__
        options = {k: v for k, v in kernel.targetoptions.items() if k != "nopython"}
        jitted = numba.njit(twin, locals=dict(kernel.locals), cache=True, nogil=True, **options)
        if options.get("parallel"):
            jitted = _locked(jitted)
        ORIGINAL_UMAP_KERNELS[(module_name, attr)] = kernel
        setattr(module, attr, jitted)
        swapped.append(f"{module_name}.{attr}")
    return swapped


def _locked(kernel: Any) -> Any:
    """``kernel`` called under :data:`_PARALLEL_KERNEL_LOCK` (UMAP calls these two from Python code)."""

    @functools.wraps(kernel.py_func)
    def call(*args: Any, **kwargs: Any) -> Any:
        with _PARALLEL_KERNEL_LOCK:
            return kernel(*args, **kwargs)

    call.dispatcher = kernel  # type: ignore[attr-defined]
    return call


@contextmanager
def _thread_counts_kept() -> Iterator[None]:
    """Restores torch's and faiss's OpenMP thread counts after UMAP: numba sets the OpenMP runtime's thread count
    (its own default, all cores) when UMAP's layout runs, which changes torch's intra-op threads, and with them
    the last bits of every later embedding (a rebuild would then differ from the first build)."""
    import faiss
    import torch

    torch_threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    try:
        yield
    finally:
        torch.set_num_threads(torch_threads)
        faiss.omp_set_num_threads(faiss_threads)


def fit_map(
    vectors: np.ndarray,
    seed: int = 0,
    params: dict[str, Any] | None = None,
    max_fit_points: int = DEFAULT_MAX_FIT_POINTS,
) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D coordinates of every vector (module docstring).

    Args:
        vectors: float32 ``[N, D]``, L2-normalised: every modality of one space, stacked.
        seed: UMAP's ``random_state`` and the seed of the fitted sample.
        params: UMAP parameters (:func:`umap_params` output).
        max_fit_points: the most vectors UMAP fits; the others are placed.

    Returns:
        float32 ``[N, 2]`` coordinates, and the map's description: ``method`` (``umap`` or ``pca``),
        ``params`` (as used, ``n_neighbors`` possibly lowered to ``N - 1``), ``seed``, ``fit_points``,
        ``placed_points``, library versions.
    """
    return fit_maps({"": vectors}, seed=seed, params=params, max_fit_points=max_fit_points)[""]


def fit_maps(
    stacks: dict[str, np.ndarray],
    seed: int = 0,
    params: dict[str, Any] | None = None,
    max_fit_points: int = DEFAULT_MAX_FIT_POINTS,
) -> dict[str, tuple[np.ndarray, dict[str, Any]]]:
    """:func:`fit_map` of several spaces at once, one thread per space; the same maps as one at a time.

    UMAP runs each fit on one core; with its kernels GIL-free (:func:`cache_umap_kernels`) two spaces fit side
    by side (the demo bank's S_va and S_vat: the build's maps stage went from 11.2 s to 7.8 s on 2 cores). Warning
    filters and thread counts are set once, here, because neither ``warnings.catch_warnings`` nor the thread
    counts are safe to save and restore from two threads.

    Args:
        stacks: space name -> float32 ``[N, D]`` L2-normalised vectors (every modality of the space, stacked).
        seed, params, max_fit_points: as :func:`fit_map`, for every space.

    Returns:
        space name -> ``(coords [N, 2], description)`` as :func:`fit_map` returns them.
    """
    params = umap_params(params)
    if any(len(v) >= MIN_UMAP_POINTS for v in stacks.values()):
        cache_umap_kernels()
    with warnings.catch_warnings(), _thread_counts_kept():
        # "n_jobs overridden by random_state" and "no NNDescent search index: transform unavailable" are the
        # intended consequences of seeding and of the precomputed exact graph.
        warnings.simplefilter("ignore", UserWarning)
        if len(stacks) <= 1:
            return {name: _fit_one(v, seed, params, max_fit_points) for name, v in stacks.items()}
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=len(stacks), thread_name_prefix="umap") as pool:
            futures = {name: pool.submit(_fit_one, v, seed, params, max_fit_points) for name, v in stacks.items()}
            return {name: f.result() for name, f in futures.items()}


def _fit_one(
    vectors: np.ndarray, seed: int, params: dict[str, Any], max_fit_points: int
) -> tuple[np.ndarray, dict[str, Any]]:
    """One space's map (:func:`fit_map`), without the warning and thread-count guards of :func:`fit_maps`."""
    n = len(vectors)
    info: dict[str, Any] = {"seed": int(seed), "params": params, "points": n}
    if n < MIN_UMAP_POINTS:
        info |= {"method": "pca", "fit_points": n, "placed_points": 0}
        return _pca(vectors), info

    import umap

    fit = np.arange(n)
    if n > max_fit_points:
        fit = np.sort(np.random.default_rng(seed).choice(n, max_fit_points, replace=False))
    x = np.ascontiguousarray(vectors[fit], dtype=np.float32)
    used = dict(params, n_neighbors=int(min(params["n_neighbors"], len(x) - 1)))
    knn_idx, knn_dist = _knn(x, used["n_neighbors"])
    reducer = umap.UMAP(
        n_components=2, random_state=int(seed), n_jobs=1, precomputed_knn=(knn_idx, knn_dist, None), **used
    )
    emb = reducer.fit_transform(x)
    coords = np.zeros((n, 2), dtype=np.float32)
    coords[fit] = np.asarray(emb, dtype=np.float32)
    rest = np.setdiff1d(np.arange(n), fit)
    if len(rest):
        coords[rest] = place_points(vectors[rest], x, coords[fit], used["n_neighbors"])
    info |= {
        "method": "umap",
        "params": used,
        "fit_points": len(fit),
        "placed_points": len(rest),
        "umap_version": getattr(umap, "__version__", "unknown"),
    }
    return coords, info


def membership_weights(distances: np.ndarray, iterations: int = 64) -> np.ndarray:
    """UMAP's fuzzy membership of each point's ``k`` neighbours (local connectivity 0): ``exp(-d / sigma)``
    with ``sigma`` bisected per row so that the weights sum to ``log2(k)``.

    Args:
        distances: float ``[Q, k]``, >= 0, each row sorted or not.

    Returns:
        float64 ``[Q, k]`` weights in (0, 1].
    """
    d = np.asarray(distances, dtype=np.float64)
    k = d.shape[1]
    target = np.log2(k) if k > 1 else 1.0
    lo = np.zeros(len(d))
    hi = np.full(len(d), np.inf)
    sigma = np.ones(len(d))
    for _ in range(iterations):
        total = np.exp(-d / sigma[:, None]).sum(axis=1)
        big = total > target  # too wide: shrink sigma
        hi = np.where(big, sigma, hi)
        lo = np.where(big, lo, sigma)
        sigma = np.where(np.isinf(hi), sigma * 2, (lo + hi) / 2)
    # UMAP's floor: sigma >= 1e-3 * mean distance (MIN_K_DIST_SCALE), so near-equal distances stay finite.
    sigma = np.maximum(sigma, 1e-3 * d.mean(axis=1).clip(min=1e-12))
    return np.exp(-d / sigma[:, None])


def place_points(
    queries: np.ndarray, ref_vectors: np.ndarray, ref_coords: np.ndarray, n_neighbors: int, searcher: Any = None
) -> np.ndarray:
    """Positions of new vectors on a stored map (module docstring: UMAP's transform initialisation).

    Args:
        queries: float32 ``[Q, D]``, L2-normalised.
        ref_vectors: the mapped vectors ``[M, D]`` (normalised).
        ref_coords: their coordinates ``[M, 2]``.
        n_neighbors: neighbours averaged (the map's ``n_neighbors``).
        searcher: optional :class:`mmv.bank.index.Searcher` over ``ref_vectors`` (reused between calls).

    Returns:
        float32 ``[Q, 2]``.
    """
    k = int(min(n_neighbors, len(ref_vectors)))
    if len(queries) == 0 or k == 0:
        return np.zeros((len(queries), 2), dtype=np.float32)
    if searcher is not None:
        sims, idx = searcher.search(queries, k)
    else:
        sims, idx = exact_search(ref_vectors, queries, k)
    d = np.clip(1.0 - sims.astype(np.float64), 0.0, 2.0)
    w = membership_weights(d)
    out = (w[:, :, None] * ref_coords[idx].astype(np.float64)).sum(axis=1) / w.sum(axis=1, keepdims=True)
    same = d[:, 0] <= _SAME
    out[same] = ref_coords[idx[same, 0]]
    return out.astype(np.float32)
