"""The bank on disk and in memory: :class:`Bank` loads a bank directory and searches, maps and compares it.

Layout of a bank directory (``docs/formats.md``, section "Embedding bank")::

    bank/
      provenance.json                  format, spaces, counts, parameters, versions, indexes, maps, skips
      meta.parquet                     one row per clip; the row number is the clip's id everywhere
      vectors/<space>-<modality>.npy       float32 [N_m, D], L2-normalised
      vectors/<space>-<modality>.rows.npy  int64 [N_m]: the meta row of each vector
      vectors/descriptions.npy         float32 [U, D_vat]: the distinct clean descriptions (toy world only)
      index/<space>-<modality>.faiss   only for IVF indexes (faiss.write_index)
      coords/<space>.parquet           row, modality, x, y: the 2-D map of the space
      thumbs/<row>.jpg, previews/<row>.mp4

Loading reads the JSON and the metadata only; vectors are memory-mapped (``np.load(mmap_mode="r")``), and
indexes and map references are built on first use (thread-safe). Nothing is unpickled.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmv.bank.index import Searcher, normalize
from mmv.bank.project import place_points

FORMAT = "mmv-bank"
FORMAT_VERSION = 1
PROVENANCE_FILE = "provenance.json"
META_FILE = "meta.parquet"
DESCRIPTIONS_FILE = "vectors/descriptions.npy"
#: Modalities in the order they are listed in ``Bank.spaces``.
MODALITY_ORDER = ("video", "audio", "text")


class BankError(ValueError):
    """A bank directory is missing, incomplete, or of a format this mmv does not read."""


def vectors_file(space: str, modality: str) -> str:
    return f"vectors/{space}-{modality}.npy"


def rows_file(space: str, modality: str) -> str:
    return f"vectors/{space}-{modality}.rows.npy"


def index_file(space: str, modality: str) -> str:
    return f"index/{space}-{modality}.faiss"


def coords_file(space: str) -> str:
    return f"coords/{space}.parquet"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def _as_list(value: Any) -> list[str]:
    return [] if value is None or (isinstance(value, float) and np.isnan(value)) else [str(v) for v in value]


class Bank:
    """An embedding bank loaded from its directory (build one with :func:`mmv.bank.build_bank`).

    Attributes:
        dir: the bank directory.
        meta: one row per clip, row order = the ``row`` ids used by every method (columns: docs/formats.md).
        spaces: ``{space: [modality, ...]}``, e.g. ``{"va": ["video", "audio"], "vat": ["video", "audio",
            "text"]}``; a modality is listed when at least one clip has a vector in it.
        provenance: the parsed ``provenance.json``.
        config: the model's :class:`mmv.config.MMVConfig` as a dict (``MMVConfig.from_dict(bank.config)``).
        root_of_media: the manifest's directory (media paths in ``meta`` are absolute; ``None`` if unknown).
    """

    def __init__(self, directory: Path, provenance: dict[str, Any], meta: pd.DataFrame) -> None:
        self.dir = Path(directory)
        self.provenance = provenance
        self.meta = meta
        self.spaces: dict[str, list[str]] = {s: list(m) for s, m in provenance["spaces"].items()}
        self.config: dict[str, Any] = provenance.get("model_config", {})
        root = provenance.get("manifest", {}).get("root")
        self.root_of_media = Path(root) if root else None
        self._arrays: dict[str, np.ndarray] = {}
        self._searchers: dict[tuple[str, str], Searcher] = {}
        self._coords: dict[str, pd.DataFrame] = {}
        self._maps: dict[str, tuple[np.ndarray, np.ndarray, Searcher]] = {}
        self._pairs: dict[tuple[str, str, str, int, int], np.ndarray] = {}
        self._lock = threading.RLock()

    # -- loading ------------------------------------------------------------------------------------

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Bank:
        """Opens a bank directory (fast: JSON + parquet; no model, no UMAP fit).

        Raises:
            BankError: no such directory, missing files, or an unknown format or newer format version.
        """
        d = Path(directory)
        prov_path = d / PROVENANCE_FILE
        if not prov_path.is_file():
            hint = "build one with python -m training.build_bank"
            raise BankError(f"{d}: not an mmv bank (no {PROVENANCE_FILE}); {hint}")
        try:
            prov = json.loads(prov_path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise BankError(f"{prov_path}: cannot read ({e})") from e
        if prov.get("format") != FORMAT:
            raise BankError(f"{prov_path}: not an mmv bank (format={prov.get('format')!r})")
        if int(prov.get("format_version", 0)) > FORMAT_VERSION:
            raise BankError(f"{d}: bank format_version {prov['format_version']} is newer than this mmv reads")
        missing = [META_FILE] if not (d / META_FILE).is_file() else []
        for space, mods in prov["spaces"].items():
            missing += [f for m in mods for f in (vectors_file(space, m), rows_file(space, m)) if not (d / f).is_file()]
            missing += [coords_file(space)] if not (d / coords_file(space)).is_file() else []
            for m in mods:
                info = prov.get("indexes", {}).get(f"{space}/{m}", {})
                if info.get("type") == "IndexIVFFlat" and not (d / index_file(space, m)).is_file():
                    missing.append(index_file(space, m))
        if missing:
            raise BankError(f"{d}: incomplete bank, missing {missing[:5]}")
        meta = pd.read_parquet(d / META_FILE)
        meta["captions"] = [_as_list(c) for c in meta["captions"].tolist()]
        meta.index = pd.RangeIndex(len(meta))
        return cls(d, prov, meta)

    def __len__(self) -> int:
        return len(self.meta)

    def __repr__(self) -> str:
        spaces = ", ".join(f"{s}: {'/'.join(m)}" for s, m in self.spaces.items())
        return f"Bank({str(self.dir)!r}, clips={len(self)}, {spaces})"

    def matches_checkpoint(self, checkpoint: str | os.PathLike) -> bool:
        """Whether the bank was built from this checkpoint as it is now (sha256 of its ``model.safetensors``).

        ``False`` for a bank built without ``checkpoint_path``, or when the weights changed since (a stale bank).
        """
        stored = (self.provenance.get("checkpoint") or {}).get("sha256")
        path = Path(checkpoint)
        weights = path / "model.safetensors" if path.is_dir() else path
        return bool(stored) and weights.is_file() and sha256_file(weights) == stored

    # -- vectors and search -------------------------------------------------------------------------

    def _check(self, space: str, modality: str) -> None:
        if space not in self.spaces:
            raise KeyError(f"bank has no space {space!r} (spaces: {list(self.spaces)})")
        if modality not in self.spaces[space]:
            raise KeyError(f"bank has no {modality!r} vectors in space {space!r} (it has {self.spaces[space]})")

    def _array(self, name: str) -> np.ndarray:
        if name not in self._arrays:
            with self._lock:
                if name not in self._arrays:
                    self._arrays[name] = np.load(self.dir / name, mmap_mode="r", allow_pickle=False)
        return self._arrays[name]

    def vectors(self, space: str, modality: str) -> np.ndarray:
        """float32 ``[N_m, D]``, L2-normalised (read-only memory map): the ``modality`` vectors in ``space``."""
        self._check(space, modality)
        return self._array(vectors_file(space, modality))

    def rows(self, space: str, modality: str) -> np.ndarray:
        """int64 ``[N_m]``: the meta row of each vector of :meth:`vectors` (clips lacking the modality are absent)."""
        self._check(space, modality)
        return self._array(rows_file(space, modality))

    def dim(self, space: str) -> int:
        """Width ``D`` of the space's vectors."""
        return int(self.provenance["dims"][space])

    def index_info(self, space: str, modality: str) -> dict[str, Any]:
        """How ``(space, modality)`` is searched: ``type`` (``IndexFlatIP`` / ``IndexIVFFlat``), counts, recall."""
        self._check(space, modality)
        return self.provenance["indexes"][f"{space}/{modality}"]

    def _searcher(self, space: str, modality: str) -> Searcher:
        key = (space, modality)
        if key not in self._searchers:
            with self._lock:
                if key not in self._searchers:
                    info = self.index_info(space, modality)
                    ivf = self.dir / index_file(space, modality) if info["type"] == "IndexIVFFlat" else None
                    self._searchers[key] = Searcher(self.vectors(space, modality), ivf, info.get("nprobe", 1))
        return self._searchers[key]

    def search(self, space: str, modality: str, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` stored ``modality`` vectors most similar (cosine) to each query, in ``space``.

        Args:
            space: ``"va"``, ``"vat"``, ...
            modality: which stored vectors are searched (queries may be of any modality of the space).
            queries: float ``[Q, D]`` or ``[D]``; normalised here.
            k: results per query.

        Returns:
            ``scores`` float32 ``[Q, k]`` (cosine, best first) and ``rows`` int64 ``[Q, k]`` (meta rows); when
            ``k`` exceeds the number of vectors the missing places hold row -1 and score ``-inf``.
        """
        self._check(space, modality)
        if int(k) != k or k < 1:
            raise ValueError(f"k: must be a positive int, got {k!r}")
        q = normalize(queries)
        if q.shape[1] != self.dim(space):
            raise ValueError(f"queries: space {space!r} has dimension {self.dim(space)}, got {q.shape[1]}")
        scores, pos = self._searcher(space, modality).search(q, int(k))
        rows = self.rows(space, modality)
        return scores, np.where(pos >= 0, rows[np.maximum(pos, 0)], -1).astype(np.int64)

    # -- maps ---------------------------------------------------------------------------------------

    def coords(self, space: str) -> pd.DataFrame:
        """The 2-D map of ``space``: columns ``row``, ``clip_id``, ``modality``, ``x``, ``y`` (one row per vector,
        modalities in ``spaces`` order, each in the order of :meth:`rows`)."""
        if space not in self.spaces:
            raise KeyError(f"bank has no space {space!r} (spaces: {list(self.spaces)})")
        if space not in self._coords:
            with self._lock:
                if space not in self._coords:
                    df = pd.read_parquet(self.dir / coords_file(space))
                    df.insert(1, "clip_id", self.meta["clip_id"].to_numpy()[df["row"].to_numpy()])
                    self._coords[space] = df
        return self._coords[space]

    def _map(self, space: str) -> tuple[np.ndarray, np.ndarray, Searcher]:
        if space not in self._maps:
            df = self.coords(space)
            with self._lock:
                if space not in self._maps:
                    vecs = np.concatenate([np.asarray(self.vectors(space, m)) for m in self.spaces[space]])
                    xy = df[["x", "y"]].to_numpy(np.float32)
                    self._maps[space] = (vecs, xy, Searcher(vecs))
        return self._maps[space]

    def project(self, space: str, vectors: np.ndarray) -> np.ndarray:
        """Places new vectors ``[Q, D]`` (or ``[D]``) on the stored map of ``space``: float32 ``[Q, 2]``.

        Approximate: the membership-weighted mean of the coordinates of the ``n_neighbors`` nearest stored
        points, UMAP's own transform initialisation without its refinement (:mod:`mmv.bank.project`); a vector
        equal to a stored one lands on it.
        """
        q = normalize(vectors)
        if q.shape[1] != self.dim(space):
            raise ValueError(f"vectors: space {space!r} has dimension {self.dim(space)}, got {q.shape[1]}")
        ref, xy, searcher = self._map(space)
        k = int(self.provenance["maps"][space]["params"]["n_neighbors"])
        return place_points(q, ref, xy, k, searcher)

    # -- statistics ---------------------------------------------------------------------------------

    def random_pair_scores(self, space: str, mod_a: str, mod_b: str, n: int = 10000, seed: int = 0) -> np.ndarray:
        """Cosines of ``n`` random pairs (a ``mod_a`` vector, a ``mod_b`` vector of *another* clip) in ``space``.

        The reference for "how unusual is this score": the percentile of a score ``s`` is
        ``np.searchsorted(scores, s) / len(scores)``. Pairs are drawn uniformly with ``seed`` (same arguments,
        same result; cached).

        Returns:
            float32 ``[n]``, sorted ascending (empty when no pair of different clips exists).
        """
        key = (space, mod_a, mod_b, int(n), int(seed))
        if key not in self._pairs:
            a, b = self.vectors(space, mod_a), self.vectors(space, mod_b)
            ra, rb = self.rows(space, mod_a), self.rows(space, mod_b)
            rng = np.random.default_rng([int(seed), int(n)])
            i = rng.integers(0, len(a), n) if len(a) else np.zeros(0, np.int64)
            j = rng.integers(0, len(b), n) if len(b) else np.zeros(0, np.int64)
            for _ in range(100):  # redraw the pairs that fell on one clip
                same = np.flatnonzero(ra[i] == rb[j]) if len(i) and len(j) else np.zeros(0, np.int64)
                if len(same) == 0:
                    break
                j[same] = rng.integers(0, len(b), len(same))
            keep = ra[i] != rb[j] if len(i) and len(j) else np.zeros(0, bool)
            order = np.argsort(i[keep], kind="stable")  # increasing i: sequential reads of a memory map
            i, j = i[keep][order], j[keep][order]
            scores = np.einsum("nd,nd->n", np.asarray(a[i], np.float64), np.asarray(b[j], np.float64))
            self._pairs[key] = np.sort(scores).astype(np.float32)
        return self._pairs[key]

    def descriptions(self) -> tuple[list[str], np.ndarray]:
        """The distinct clean descriptions of the bank's clips and their S_vat text vectors ``[U, D]``.

        Descriptions come from the builder's ``describe`` hook (:func:`mmv.bank.build_bank`; the toy world's in
        ``training.build_bank``). ``meta["description"]`` names each clip's; empty list and ``[0, 0]`` for banks
        built without descriptions. Not indexed and not on the maps (in the toy world, about 120 sentences each
        shared by many clips): for zero-shot labelling of bank clips without loading the model.
        """
        sentences = list(self.provenance.get("descriptions", []))
        if not sentences:
            return [], np.zeros((0, 0), dtype=np.float32)
        return sentences, self._array(DESCRIPTIONS_FILE)
