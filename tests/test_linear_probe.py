"""Linear probes on planted features: separable classes reach 100 %, random labels stay at chance, window
aggregation and top-k match naive references, and the cross-validation protocol averages its folds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import LinearSVC

from mmv.eval.features import Features
from mmv.eval.linear_probe import (
    C_GRID,
    ProbeOptions,
    label_column,
    probe,
    resolve_protocol,
    run_probe,
    topk_accuracy,
)


def separable(n: int, classes: int = 4, dim: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Class ``c`` is a Gaussian blob around ``4 e_c`` (unit noise): linearly separable with a wide margin."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = rng.normal(size=(n, dim))
    x[np.arange(n), y] += 8.0
    return x, np.array([f"class{c}" for c in y], dtype=object)


C_001 = ProbeOptions(C=0.01)


# ---------------------------------------------------------------------------------------------- top-k


def test_topk_on_planted_scores() -> None:
    scores = np.array(
        [
            [0.9, 0.1, 0.0, 0.0],  # true 0: first
            [0.5, 0.5, 0.0, 0.0],  # true 1: tied with class 0 -> pessimistic rank 2
            [0.3, 0.2, 0.1, 0.4],  # true 2: rank 4
            [0.1, 0.2, 0.3, 0.4],  # true -1: a class the classifier never saw -> always wrong
        ]
    )
    y = np.array([0, 1, 2, -1])
    assert topk_accuracy(scores, y, 1) == 0.25
    assert topk_accuracy(scores, y, 2) == 0.5
    assert topk_accuracy(scores, y, 4) == 0.75
    # Pessimistic ties do not depend on the class order: swapping classes 0 and 1 changes nothing.
    assert topk_accuracy(scores[:, [1, 0, 2, 3]], np.array([1, 0, 2, -1]), 1) == 0.25
    assert topk_accuracy(np.zeros((3, 5)), np.array([0, 2, 4]), 4) == 0.0  # all tie: rank 5 for everyone


# ---------------------------------------------------------------------------------------------- probe


@pytest.mark.parametrize("classifier", ["svm", "logreg"])
def test_separable_features_reach_100_percent(classifier: str) -> None:
    x, y = separable(400)
    r = probe(x[:300], y[:300], x[300:], y[300:], options=ProbeOptions(classifier))
    assert (r.top1, r.selection, r.num_train, r.num_test) == (1.0, "cv", 300, 100)
    assert np.isnan(r.top5) and r.classes == ["class0", "class1", "class2", "class3"]
    assert set(r.val_top1) == set(C_GRID) and r.predictions == list(y[300:])
    # With a validation split, C is chosen on it; with one C there is no search.
    v = probe(x[:200], y[:200], x[300:], y[300:], x_val=x[200:300], y_val=y[200:300], options=ProbeOptions(classifier))
    assert (v.top1, v.selection, v.num_val) == (1.0, "val", 100)
    f = probe(x[:300], y[:300], x[300:], y[300:], options=ProbeOptions(classifier, C=0.001))
    assert (f.top1, f.C, f.selection, f.val_top1) == (1.0, 0.001, "fixed", {})


def test_random_labels_stay_at_chance() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=(1600, 32))
    y = rng.integers(0, 4, 1600)
    r = probe(x[:800], y[:800], x[800:], y[800:], options=ProbeOptions(C=[1e-3, 1e-1]))
    assert abs(r.top1 - 0.25) < 0.06  # 800 test clips: the standard error of chance is 0.015


def test_top5_and_unseen_classes() -> None:
    x, y = separable(240, classes=8)
    y_test = y[200:].copy()
    y_test[:5] = "never_trained"  # classes absent from training can never be predicted
    r = probe(x[:200], y[:200], x[200:], y_test, options=ProbeOptions(C=0.01))
    assert r.top1 == pytest.approx(35 / 40) and r.top5 == pytest.approx(35 / 40)
    assert len(r.classes) == 8


def test_window_scores_are_averaged_like_the_reference() -> None:
    # Each window alone is noisy; 'scores' trains on every window and averages a test clip's window scores.
    rng = np.random.default_rng(2)
    n, w, dim = 120, 3, 16
    y = np.arange(n) % 3
    x = rng.normal(size=(n, w, dim)) * 2.0
    x[np.arange(n), :, y] += 1.5
    mask = np.ones((n, w), dtype=bool)
    mask[::4, 2] = False  # some windows unread
    x_masked = np.where(mask[..., None], x, 1e6)  # what a masked window holds must not matter
    r = probe(x_masked[:80], y[:80], x_masked[80:], y[80:], mask_train=mask[:80], mask_test=mask[80:],
              options=ProbeOptions(C=0.01, aggregate="scores"))  # fmt: skip
    # Naive reference: a pipeline fitted on every read window, decision scores averaged per clip.
    ref = make_pipeline(StandardScaler(), LinearSVC(C=0.01, dual="auto", max_iter=2000, random_state=0))
    rows, k = np.nonzero(mask[:80])
    ref.fit(x[:80][rows, k], y[:80][rows])
    scores = np.stack([ref.decision_function(x[80 + i][mask[80 + i]]).mean(0) for i in range(40)])
    assert r.predictions == scores.argmax(1).tolist()
    assert r.top1 == pytest.approx(np.mean(scores.argmax(1) == y[80:]))
    # 'mean' averages the window features first: the same as probing the per-clip means.
    m = probe(x_masked[:80], y[:80], x_masked[80:], y[80:], mask_train=mask[:80], mask_test=mask[80:], options=C_001)
    means = (x * mask[..., None]).sum(1) / mask.sum(1, keepdims=True)
    assert m.predictions == probe(means[:80], y[:80], means[80:], y[80:], options=C_001).predictions


def test_bad_inputs_are_refused() -> None:
    x, y = separable(20)
    with pytest.raises(ValueError, match="2 or more"):
        probe(x, ["a"] * 20, x, y)
    with pytest.raises(ValueError, match="differ in length"):
        probe(x, y[:10], x, y)
    with pytest.raises(ValueError, match="classifier"):
        probe(x, y, x, y, options=ProbeOptions(classifier="knn"))
    with pytest.raises(ValueError, match="aggregate"):
        ProbeOptions(aggregate="max")
    with pytest.raises(ValueError, match="> 0"):
        ProbeOptions(C=[0.1, 0.0])
    with pytest.raises(ValueError, match="NaN"):
        probe(np.full_like(x, np.nan), y, x, y)
    with pytest.raises(ValueError, match="no window"):
        probe(x[:, None], y, x, y, mask_train=np.zeros((20, 1), dtype=bool))


# ---------------------------------------------------------------------------------------------- protocols


def _planted(folds: bool) -> tuple[Features, pd.DataFrame]:
    x, y = separable(60, classes=3, dim=8)
    df = pd.DataFrame(
        {
            "clip_id": [f"c{i}" for i in range(60)],
            "split": ["train"] * 40 + ["val"] * 10 + ["test"] * 10 if not folds else ["train"] * 60,
            "fold": pd.array(np.arange(60) % 5 + 1 if folds else [pd.NA] * 60, dtype="Int64"),
            "label_kind": y,
        }
    )
    df.loc[3, "label_kind"] = None  # a clip without a label is left out
    mask = np.ones((60, 1), dtype=bool)
    mask[7] = False  # so is a clip whose media could not be read
    return Features(x[:, None].astype(np.float32), mask, df["clip_id"].tolist()), df


def test_run_probe_split_protocol() -> None:
    features, df = _planted(folds=False)
    out = run_probe(features, df, "kind")
    r = out["result"]
    assert (out["protocol"], out["label"], out["num_clips"], out["num_skipped"]) == ("split", "label_kind", 58, 2)
    assert (r["num_train"], r["num_val"], r["num_test"], r["selection"], out["top1"]) == (38, 10, 10, "val", 1.0)


def test_run_probe_folds_protocol_is_the_mean_of_leave_one_fold_out() -> None:
    features, df = _planted(folds=True)
    assert resolve_protocol(df) == "folds"
    out = run_probe(features, df, "label_kind", options=C_001)
    assert [f["fold"] for f in out["folds"]] == [1, 2, 3, 4, 5]
    usable = df["label_kind"].notna().to_numpy() & features.valid
    for f in out["folds"]:  # the reference: each fold probed by hand
        test = usable & (df["fold"] == f["fold"]).to_numpy()
        train = usable & ~test
        x = features.features[:, 0]
        ref = probe(x[train], df["label_kind"][train], x[test], df["label_kind"][test], options=C_001)
        assert (f["top1"], f["num_train"], f["num_test"]) == (ref.top1, ref.num_train, ref.num_test)
    assert out["top1"] == pytest.approx(np.mean([f["top1"] for f in out["folds"]]))
    with pytest.raises(ValueError, match="no label column 'colour'"):
        label_column(df, "colour")
    with pytest.raises(ValueError, match="another manifest"):
        run_probe(features, df.iloc[::-1], "label_kind")
