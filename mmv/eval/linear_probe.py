"""Linear probes on frozen features: standardisation + a linear classifier, C chosen on held-out data.

**Protocol** (``shared/mmv_spec.md`` sections 7.1-7.3). The paper's scripts fit scikit-learn's
``StandardScaler`` then ``LinearSVC`` on the frozen representation and report top-1 / top-5 accuracy; the
official UCF101 script fixes ``C = 0.001`` and averages the SVM's decision scores over 10 linearly spaced test
windows. Here:

* **Classifier**: ``classifier='svm'`` (default, the paper's: ``StandardScaler`` + ``LinearSVC``, squared hinge,
  one-vs-rest) or ``'logreg'`` (``StandardScaler`` + multinomial ``LogisticRegression``: calibrated
  probabilities and one joint softmax instead of independent one-vs-rest scores, often a little better on few
  samples, and slower). Both are deterministic (``random_state=seed``).
* **C**: a fixed value (``C=0.001`` reproduces the UCF101 script; a validation split is then unused) or, by
  default, the best of :data:`C_GRID` on the validation split when there is one (the model is then refitted on
  train + val), else by stratified ``cv_folds``-fold cross-validation on the training clips (folds never split
  a clip's windows). Ties go to the smallest C (the most regularised model). Too few clips per class to cross-validate
  falls back to ``C = 1``.
* **Windows** (``aggregate``): ``'mean'`` (default) averages each clip's window features and fits one sample
  per clip; ``'scores'`` fits every window as a sample and averages the decision scores over a test clip's
  windows, as the UCF101/HMDB51 scripts do (they train on 10 augmented passes; here the windows are the
  evaluation ones, without augmentation).
* **Top-k**: a test clip counts when fewer than k classes score *at least* as high as its true class (ties are
  pessimistic, as in :mod:`mmv.eval.ranking`, and independent of class order). A class absent from the
  training labels can never be predicted: its clips count as errors. Top-5 is NaN with 5 or fewer classes.
* **Cross-validation datasets** (ESC-50): :func:`run_probe` with ``protocol='folds'`` trains on all folds but
  one and tests on it, for each fold, and reports the mean over folds.
"""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from mmv.eval.features import FeatureOptions, Features, extract_features

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: The C values tried when none is given (log-spaced; the paper's UCF101/HMDB51 choices 1e-4..1e-3 included).
C_GRID: tuple[float, ...] = (1e-4, 1e-3, 1e-2, 1e-1, 1.0)
#: C when there are too few clips per class to cross-validate.
FALLBACK_C = 1.0
CLASSIFIERS = ("svm", "logreg")
AGGREGATES = ("mean", "scores")
PROTOCOLS = ("auto", "split", "folds")


@dataclass(frozen=True)
class ProbeOptions:
    """How a probe fits (module docstring), passed whole from :func:`probe_manifest` to :func:`run_probe` to
    :func:`probe`.

    Attributes:
        classifier: ``'svm'`` or ``'logreg'``.
        C: one value (no search), a grid to search, or ``None`` for :data:`C_GRID`.
        aggregate: ``'mean'`` (average window features) or ``'scores'`` (average window scores).
        cv_folds: folds of the C search when there is no validation split.
        seed: the classifier's and the folds' seed.
    """

    classifier: str = "svm"
    C: float | Sequence[float] | None = None
    aggregate: str = "mean"
    cv_folds: int = 3
    seed: int = 0

    def __post_init__(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"classifier must be one of {CLASSIFIERS}, got {self.classifier!r}")
        if self.aggregate not in AGGREGATES:
            raise ValueError(f"aggregate must be one of {AGGREGATES}, got {self.aggregate!r}")
        if not self.grid or min(self.grid) <= 0:
            raise ValueError(f"C: values must be > 0, got {self.grid}")

    @property
    def grid(self) -> list[float]:
        """The C values to try, ascending."""
        C = self.C
        return sorted(C_GRID if C is None else ([float(C)] if np.isscalar(C) else {float(c) for c in C}))


@dataclass
class ProbeResult:
    """One train/test evaluation.

    Attributes:
        top1, top5: accuracies in [0, 1] (``top5`` NaN with <= 5 classes).
        C: the C used; ``selection``: how it was chosen (``'fixed'``, ``'val'``, ``'cv'``, ``'fallback'``);
        val_top1: ``{C: accuracy}`` on the validation split or the CV folds (empty when fixed).
        classes: the class labels (sorted training labels); ``predictions``: ``[N_test]`` predicted labels
        (argmax, ties to the first class); ``labels``: ``[N_test]`` true labels.
        num_train, num_val, num_test: clips used.
    """

    top1: float
    top5: float
    C: float
    selection: str
    classifier: str
    aggregate: str
    num_train: int
    num_val: int
    num_test: int
    classes: list[Any]
    val_top1: dict[float, float] = field(default_factory=dict)
    predictions: list[Any] = field(default_factory=list)
    labels: list[Any] = field(default_factory=list)

    def to_dict(self, details: bool = False) -> dict[str, Any]:
        """JSON-ready; per-clip ``predictions``/``labels`` only with ``details``."""
        out = asdict(self)
        out["val_top1"] = {str(c): v for c, v in self.val_top1.items()}
        out["classes"] = [_plain(c) for c in self.classes]
        out["num_classes"] = len(self.classes)
        if details:
            out["predictions"] = [_plain(c) for c in self.predictions]
            out["labels"] = [_plain(c) for c in self.labels]
        else:
            out.pop("predictions"), out.pop("labels")
        return out


def _plain(v: Any) -> Any:
    return v.item() if isinstance(v, np.generic) else v


# ---------------------------------------------------------------------------------------------------
# The classifier
# ---------------------------------------------------------------------------------------------------


def _make(classifier: str, seed: int):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import LinearSVC

    if classifier == "svm":
        head = LinearSVC(dual="auto", max_iter=2000, random_state=seed)
    else:  # warm-started along the ascending C grid: each fit starts from the previous solution
        head = LogisticRegression(max_iter=300, warm_start=True, random_state=seed)
    return make_pipeline(StandardScaler(), head)


def _windows(x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Features as ``[N, W, D]`` float64 with a bool ``[N, W]`` mask (``[N, D]`` is one window)."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None]
    if x.ndim != 3:
        raise ValueError(f"features: expected [N, D] or [N, W, D], got shape {x.shape}")
    mask = np.ones(x.shape[:2], dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if mask.shape != x.shape[:2]:
        raise ValueError(f"mask: expected {x.shape[:2]}, got {mask.shape}")
    if not mask.any(axis=1).all():
        raise ValueError("features: a clip has no window (mask all False); leave it out")
    if not np.isfinite(x[mask]).all():
        raise ValueError("features: contain NaN or infinite values")
    return x, mask


def _samples(x: np.ndarray, mask: np.ndarray, y: np.ndarray, aggregate: str) -> tuple[np.ndarray, np.ndarray]:
    """Training samples: one per clip (mean of its windows) or one per window (label repeated)."""
    if aggregate == "mean":
        return (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True), y
    rows, k = np.nonzero(mask)
    return x[rows, k], y[rows]


def _scores(clf: Any, x: np.ndarray, mask: np.ndarray, aggregate: str, num_classes: int) -> np.ndarray:
    """Decision scores ``[N, num_classes]`` of a fitted classifier (:func:`_make`) per clip (window scores
    averaged with ``'scores'``)."""

    def decide(z: np.ndarray) -> np.ndarray:
        s = clf.decision_function(z)
        return np.stack([-s, s], axis=1) if s.ndim == 1 else s  # binary: one score for classes[1]

    if aggregate == "mean":
        return decide((x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True))
    rows, k = np.nonzero(mask)
    total = np.zeros((len(x), num_classes))
    np.add.at(total, rows, decide(x[rows, k]))
    return total / mask.sum(1, keepdims=True)


def topk_accuracy(scores: np.ndarray, y: np.ndarray, k: int) -> float:
    """Fraction of rows whose true class ``y`` (an index; -1 = unknown class, always wrong) is among the top
    ``k`` scores, ties pessimistic: correct when fewer than ``k`` other classes score ``>=`` the true one."""
    scores = np.asarray(scores, dtype=np.float64)
    y = np.asarray(y)
    known = y >= 0
    true = np.where(known, scores[np.arange(len(y)), np.maximum(y, 0)], np.inf)
    ahead = (scores >= true[:, None]).sum(axis=1) - 1  # the true class itself is >= itself
    return float(np.mean(known & (ahead < k))) if len(y) else float("nan")


def probe(
    x_train: np.ndarray,
    y_train: Sequence[Any],
    x_test: np.ndarray,
    y_test: Sequence[Any],
    *,
    x_val: np.ndarray | None = None,
    y_val: Sequence[Any] | None = None,
    mask_train: np.ndarray | None = None,
    mask_test: np.ndarray | None = None,
    mask_val: np.ndarray | None = None,
    options: ProbeOptions | None = None,
) -> ProbeResult:
    """Fits a linear probe on training features and scores it on test features (module docstring).

    Args:
        x_train: ``[N, D]`` features, or ``[N, W, D]`` per window (with ``mask_train`` ``[N, W]`` of the
            windows read; default all).
        y_train: ``[N]`` labels (any hashable values: strings, ints).
        x_test: ``[N', D]`` or ``[N', W, D]``; y_test: ``[N']``.
        x_val: optional validation features for choosing C (then refitted on train + val); y_val likewise.
        mask_train, mask_test, mask_val: window masks.
        options: classifier, C, aggregation, folds and seed (defaults if None).

    Returns:
        A :class:`ProbeResult`.
    """
    options = options or ProbeOptions()
    train = _windows(x_train, mask_train)
    test = _windows(x_test, mask_test)
    y_test = list(y_test)
    if len(y_train) != len(train[0]) or len(y_test) != len(test[0]):
        raise ValueError("probe: features and labels differ in length")
    classes, index = _class_index(y_train)
    train = (*train, index(y_train))
    yi_test = index(y_test)
    val = None
    if x_val is not None and y_val is not None and len(y_val):
        val = (*_windows(x_val, mask_val), index(y_val))

    fit = _Fitter(options, len(classes))
    best, selection, val_top1 = fit.choose_C(train, val)
    final = train
    if selection == "val":  # refit on train + val with the chosen C (val windows padded to the same W)
        known = val[2] >= 0
        final = _concat(train, (val[0][known], val[1][known], val[2][known]))
    scores = fit([best], final, test)[0]
    return ProbeResult(
        top1=topk_accuracy(scores, yi_test, 1),
        top5=topk_accuracy(scores, yi_test, 5) if len(classes) > 5 else float("nan"),
        C=float(best),
        selection=selection,
        classifier=options.classifier,
        aggregate=options.aggregate,
        num_train=int(len(train[2])),
        num_val=0 if val is None else int(len(val[2])),
        num_test=int(len(yi_test)),
        classes=list(classes),
        val_top1=val_top1,
        predictions=[classes[i] for i in scores.argmax(axis=1)],
        labels=list(y_test),
    )


def _class_index(y_train: Sequence[Any]) -> tuple[list[Any], Callable[[Sequence[Any]], np.ndarray]]:
    """The training classes (sorted) and the labels -> class indices map (-1: a class not in training)."""
    classes = sorted(set(np.asarray(list(y_train), dtype=object).tolist()), key=lambda c: (str(type(c)), c))
    if len(classes) < 2:
        raise ValueError(f"probe: the training labels hold {len(classes)} class(es); a classifier needs 2 or more")
    index = {c: i for i, c in enumerate(classes)}
    return classes, lambda y: np.array([index.get(c, -1) for c in np.asarray(list(y), dtype=object)], dtype=np.int64)


@dataclass
class _Fitter:
    """Fits the probe's classifier on ``(x, mask, y)`` triples (``y``: class indices) for a C grid."""

    options: ProbeOptions
    num_classes: int

    def __call__(self, grid: Sequence[float], train: tuple, test: tuple) -> list[np.ndarray]:
        """Fits one classifier per C of ``grid`` (ascending) on ``train = (x, mask, y)`` and returns, per C, the
        decision scores ``[N_test, num_classes]`` of ``test = (x, mask, ...)`` (``-inf`` for classes not in
        ``y``)."""
        from sklearn.exceptions import ConvergenceWarning

        xs, ys = _samples(*train, self.options.aggregate)
        clf = _make(self.options.classifier, self.options.seed)
        out = []
        for c in grid:
            clf[-1].set_params(C=c)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)  # large C on separable data: argmax is settled
                clf.fit(xs, ys)
            scores = np.full((len(test[0]), self.num_classes), -np.inf)
            scores[:, clf[-1].classes_] = _scores(clf, *test[:2], self.options.aggregate, len(clf[-1].classes_))
            out.append(scores)
        return out

    def choose_C(self, train: tuple, val: tuple | None) -> tuple[float, str, dict[float, float]]:
        """The C to use, how it was chosen (``'fixed'``, ``'val'``, ``'cv'``, ``'fallback'``), and the
        accuracy of each C tried; ties go to the smallest C."""
        grid = self.options.grid
        if len(grid) == 1:
            return grid[0], "fixed", {}
        if val is not None:
            val_top1 = {c: topk_accuracy(s, val[2], 1) for c, s in zip(grid, self(grid, train, val))}
            return max(val_top1, key=lambda c: (val_top1[c], -c)), "val", val_top1
        y = train[2]
        folds = min(self.options.cv_folds, int(np.bincount(y, minlength=self.num_classes).min()))
        if folds < 2:
            return FALLBACK_C, "fallback", {}
        from sklearn.model_selection import StratifiedKFold

        hits = np.zeros(len(grid))
        for a, b in StratifiedKFold(folds, shuffle=True, random_state=self.options.seed).split(y, y):
            scores = self(grid, (train[0][a], train[1][a], y[a]), (train[0][b], train[1][b]))
            hits += [topk_accuracy(s, y[b], 1) * len(b) for s in scores]
        val_top1 = {c: float(h / len(y)) for c, h in zip(grid, hits)}
        return max(val_top1, key=lambda c: (val_top1[c], -c)), "cv", val_top1


def _concat(a: tuple, b: tuple) -> tuple:
    """Concatenates ``(x [N, W, D], mask [N, W], y [N])`` triples whose W may differ (padded, masked out)."""
    w = max(a[0].shape[1], b[0].shape[1])

    def pad(x: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        extra = w - x.shape[1]
        return np.pad(x, ((0, 0), (0, extra), (0, 0))), np.pad(m, ((0, 0), (0, extra)))

    (xa, ma), (xb, mb) = pad(*a[:2]), pad(*b[:2])
    return np.concatenate([xa, xb]), np.concatenate([ma, mb]), np.concatenate([a[2], b[2]])


# ---------------------------------------------------------------------------------------------------
# Probing a manifest
# ---------------------------------------------------------------------------------------------------


def label_column(manifest: pd.DataFrame, label: str) -> str:
    """``label`` or ``label_<label>``, whichever the manifest has; a clear error listing the label columns."""
    for name in (label, f"label_{label}"):
        if name in manifest.columns:
            return name
    labels = [c for c in manifest.columns if c.startswith("label_")]
    raise ValueError(f"no label column {label!r} in the manifest; it has {', '.join(labels) or 'none'}")


def resolve_protocol(manifest: pd.DataFrame, protocol: str = "auto") -> str:
    """``'folds'`` for a cross-validation set (every row has a ``fold``, at least two folds, no test split),
    else ``'split'`` (train / val / test from the ``split`` column)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be one of {PROTOCOLS}, got {protocol!r}")
    if protocol != "auto":
        return protocol
    folds = manifest["fold"] if "fold" in manifest.columns else pd.Series([pd.NA] * len(manifest))
    has_folds = bool(folds.notna().all()) and folds.nunique() >= 2
    return "folds" if has_folds and not (manifest["split"] == "test").any() else "split"


def run_probe(
    features: Features,
    manifest: pd.DataFrame,
    label: str,
    *,
    protocol: str = "auto",
    options: ProbeOptions | None = None,
) -> dict[str, Any]:
    """A probe of a label on precomputed features (:func:`mmv.eval.features.extract_features` of ``manifest``).

    Clips without the label or without any window read are left out (``num_skipped``).

    Args:
        features: per-row features, aligned with ``manifest``.
        manifest: the manifest (``split`` column; ``fold`` for ``'folds'``).
        label: the label column (``label_shape`` or ``shape``).
        protocol: ``'split'`` (fit on ``train``, choose C on ``val`` when present, test on ``test``),
            ``'folds'`` (leave one fold out, mean over folds), or ``'auto'`` (:func:`resolve_protocol`).
        options: :func:`probe`'s options (classifier, C, aggregation, folds, seed; defaults if None).

    Returns:
        JSON-ready: ``top1``, ``top5`` (means over folds for ``'folds'``), ``protocol``, ``label``,
        ``num_clips``, ``num_skipped``, ``feature_dim``, ``num_windows``, and ``result`` (one
        :meth:`ProbeResult.to_dict`) or ``folds`` (a list of them, each with its ``fold``).
    """
    df = manifest.reset_index(drop=True)
    if list(df["clip_id"].astype(str)) != list(features.clip_id):
        raise ValueError("run_probe: the features were computed on another manifest (clip ids differ)")
    column = label_column(df, label)
    labels = df[column]
    usable = labels.notna().to_numpy() & features.valid
    protocol = resolve_protocol(df[usable], protocol)
    rows = _Rows(features, np.asarray(labels.tolist(), dtype=object), column, options or ProbeOptions())
    out: dict[str, Any] = {
        "label": column,
        "protocol": protocol,
        "num_clips": int(usable.sum()),
        "num_skipped": int((~usable).sum()),
        "feature_dim": features.dim,
        "num_windows": int(features.features.shape[1]),
    }
    if protocol == "split":
        split = df["split"].to_numpy()
        parts = {s: np.flatnonzero(usable & (split == s)) for s in ("train", "val", "test")}
        result = rows.probe(parts["train"], parts["test"], parts["val"])
        out.update(top1=result.top1, top5=result.top5, result=result.to_dict())
        return out
    fold = df["fold"].to_numpy()
    results = []
    for f in sorted({int(v) for v in fold[usable]}):
        is_test = np.array([v is not pd.NA and v == f for v in fold])
        r = rows.probe(np.flatnonzero(usable & ~is_test), np.flatnonzero(usable & is_test)).to_dict()
        results.append({"fold": f, **r})
    out.update(
        top1=float(np.mean([r["top1"] for r in results])),
        top5=float(np.mean([r["top5"] for r in results])),
        folds=results,
    )
    return out


@dataclass
class _Rows:
    """Probes of one label column on subsets of a manifest's rows."""

    features: Features
    y: np.ndarray
    column: str
    options: ProbeOptions

    def _subset(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.features.features[rows], self.features.mask[rows], self.y[rows]

    def probe(self, train: np.ndarray, test: np.ndarray, val: np.ndarray | None = None) -> ProbeResult:
        (x, mask, y), (x_test, mask_test, y_test) = self._subset(train), self._subset(test)
        if len(y) == 0 or len(y_test) == 0:
            raise ValueError(f"run_probe: {len(y)} training and {len(y_test)} test clips with label {self.column!r}")
        extra = {}
        if val is not None and len(val):
            x_val, mask_val, y_val = self._subset(val)
            extra = {"x_val": x_val, "y_val": y_val, "mask_val": mask_val}
        return probe(x, y, x_test, y_test, mask_train=mask, mask_test=mask_test, **extra, options=self.options)


def probe_manifest(
    model: MMV,
    manifest: pd.DataFrame | str | os.PathLike,
    label: str,
    modality: str = "video",
    *,
    protocol: str = "auto",
    extraction: FeatureOptions | None = None,
    options: ProbeOptions | None = None,
) -> dict[str, Any]:
    """Frozen features of a model on a manifest (cached), then a linear probe of one label.

    Features are extracted for every row once (:func:`mmv.eval.features.extract_features`; with
    ``extraction.cache_dir`` a second probe, of any label, protocol or classifier, reads them from disk) and
    probed with :func:`run_probe`.

    Args:
        model: the model.
        manifest: a manifest path or a loaded table.
        label: the label column (``label_shape`` or ``shape``).
        modality: the representation probed: ``'video'``, ``'audio'`` or ``'image'``.
        protocol: :func:`run_probe`'s.
        extraction: how features are extracted (windows, device, batches, cache; defaults if None).
        options: how the probe fits (classifier, C, aggregation, folds, seed; defaults if None).

    Returns:
        :func:`run_probe`'s dict plus ``modality``, ``features_cache`` (the file or ``None``), ``from_cache``,
        ``extract_s`` and ``probe_s`` (seconds).

    Example::

        model = load_checkpoint("data_samples/demo_model")
        r = probe_manifest(model, "models/toyworld/manifest.parquet", "label_shape",
                           extraction=FeatureOptions(num_windows=4, cache_dir="runs/features"))
        print(r["top1"])
    """
    from mmv.data.manifest import load_manifest

    df = load_manifest(manifest) if isinstance(manifest, (str, os.PathLike)) else manifest.reset_index(drop=True)
    label_column(df, label)  # fail before the slow part
    t0 = time.perf_counter()
    features = extract_features(model, df, modality, extraction)
    t1 = time.perf_counter()
    out = run_probe(features, df, label, protocol=protocol, options=options)
    out.update(
        modality=modality,
        features_cache=features.path,
        from_cache=features.from_cache,
        extract_s=round(t1 - t0, 3),
        probe_s=round(time.perf_counter() - t1, 3),
    )
    return out
