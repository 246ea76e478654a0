"""The Metrics page's logic (``app/logic/bank_metrics.py``) on planted banks whose answers are known and a real bank.

Planted banks are written by :func:`mmv.bank.write_bank` from chosen vectors: identical video, audio and text
(every rank 1); text placed between its own clip and the next one (every text->video rank 2); one candidate
near every query (a hub); audio equal to video up to noise but for one clip (alignment far above the shuffled
baseline, that clip the worst). On the tiny model's toy-world bank the test-split metrics equal the evaluation's
(``mmv.eval.evaluate_zero_shot`` run on the clips with the model), which is what "the evaluation's ranking"
means.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from app.logic import bank_metrics as metrics
from app.logic.bank_search import BankSearch
from mmv.bank import write_bank
from mmv.bank.index import normalize
from mmv.bank.options import NO_MEDIA
from mmv.eval.ranking import retrieval_metrics

FAST_MAP = {"n_epochs": 10}


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def _meta(n: int, split_every: int = 3) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": [f"clip/{i:04d}" for i in range(n)],
            "split": ["test" if i % split_every == 0 else "train" for i in range(n)],
        }
    )


def _bank(path, meta: pd.DataFrame, video, audio, text, text_rows=None) -> BankSearch:
    n = len(meta)
    text_rows = np.arange(n) if text_rows is None else np.asarray(text_rows)
    data = {
        ("va", "video"): (normalize(video), np.arange(n)),
        ("va", "audio"): (normalize(audio), np.arange(n)),
        ("vat", "video"): (normalize(video), np.arange(n)),
        ("vat", "audio"): (normalize(audio), np.arange(n)),
        ("vat", "text"): (normalize(text), text_rows),
    }
    return BankSearch(write_bank(path, meta, data, replace(NO_MEDIA, umap_params=FAST_MAP)))


@pytest.fixture(scope="module")
def identity(tmp_path_factory) -> BankSearch:
    """60 clips whose video, audio and text vectors are one random unit vector each."""
    v = normalize(np.random.default_rng(0).standard_normal((60, 24)))
    return _bank(tmp_path_factory.mktemp("identity") / "bank", _meta(60), v, v, v)


@pytest.fixture(scope="module")
def shifted(tmp_path_factory) -> BankSearch:
    """Video = one-hot e_i; text_i = 0.6 e_i + 0.8 e_(i+1): every text's own video comes second (0.6 < 0.8)."""
    n = 30
    eye = np.eye(n, dtype=np.float32)
    text = 0.6 * eye + 0.8 * np.roll(eye, 1, axis=1)
    return _bank(tmp_path_factory.mktemp("shifted") / "bank", _meta(n), eye, eye, text.astype(np.float32))


def test_identity_bank_ranks_every_pair_first(identity):
    scope = metrics.scope_rows(identity.meta, "test")
    assert scope.rows.tolist() == list(range(0, 60, 3)) and scope.requested == 20 and not scope.note
    ev = metrics.evaluate(identity, scope.rows)
    table = ev.table.set_index("direction")
    assert sorted(table.index) == ["a2t", "a2v", "t2a", "t2v", "v2a", "v2t"]
    assert table.loc["a2t", "space"] == "vat" and table.loc["v2a", "space"] == "va"
    np.testing.assert_array_equal(table[["r1", "r5", "r10", "medr", "meanr"]].to_numpy(), 1.0)
    np.testing.assert_array_equal(table["queries"], 20)
    np.testing.assert_array_equal(table["candidates"], 20)
    ranks = ev.ranks
    assert len(ranks) == 6 * 20 and (ranks["rank"] == 1).all()
    assert set(ranks["clip_id"]) == {f"clip/{i:04d}" for i in range(0, 60, 3)}


def test_known_ranks_and_the_evaluation_agree(shifted):
    ev = metrics.evaluate(shifted, np.arange(30))
    t = ev.table.set_index("direction")
    for d in ("t2v", "v2t", "t2a", "a2t"):  # audio = video here
        assert t.loc[d, "r1"] == 0.0 and t.loc[d, "r5"] == 1.0 and t.loc[d, "medr"] == 2.0, d
        assert (ev.results[d].metrics["ranks"] == 2).all()
    assert t.loc["v2a", "r1"] == 1.0 and t.loc["a2v", "medr"] == 1.0
    # The top of every text query is the next clip's video.
    np.testing.assert_array_equal(ev.results["t2v"].top[:, 0], (np.arange(30) + 1) % 30)


def test_a_subset_scope_ranks_only_among_its_clips(shifted):
    rows = np.array([2, 3, 7, 11, 12, 20])
    ev = metrics.evaluate(shifted, rows[::-1])  # any order
    t2v = ev.results["t2v"]
    np.testing.assert_array_equal(t2v.query_rows, rows)
    np.testing.assert_array_equal(t2v.candidate_rows, rows)
    assert set(np.unique(t2v.top)) <= set(rows.tolist())
    # text_i is nearest video_(i+1) only where that clip is in the scope: 2 -> 3 and 11 -> 12 rank 2, others 1.
    expected = {2: 2, 3: 1, 7: 1, 11: 2, 12: 1, 20: 1}
    assert dict(zip(t2v.query_rows.tolist(), t2v.metrics["ranks"].tolist())) == expected
    # The same numbers as the evaluation's function on the sub-matrix.
    video = np.eye(30)[rows]
    text = normalize((0.6 * np.eye(30) + 0.8 * np.roll(np.eye(30), 1, axis=1))[rows])
    ref = retrieval_metrics(text @ video.T, np.arange(len(rows)))
    for key in ("r1", "r5", "r10", "medr", "meanr"):
        assert ev.table.set_index("direction").loc["t2v", key] == pytest.approx(ref[key])
    assert ev.table["candidates"].max() == len(rows)


def test_scope_rows_selection_and_sample(identity, monkeypatch):
    s = metrics.scope_rows(identity.meta, "selection", [5, 3, 3, -1, 999, 7])
    assert s.rows.tolist() == [3, 5, 7] and s.name == "selection"
    assert metrics.scope_rows(identity.meta, "selection", []).rows.size == 0
    assert metrics.scope_rows(identity.meta, "selection", None).rows.size == 0
    monkeypatch.setattr(metrics, "MAX_SCOPE_ROWS", 10)
    big = metrics.scope_rows(identity.meta, "selection", range(60))
    assert len(big.rows) == 10 and big.requested == 60 and "sample of 10" in big.note
    assert np.array_equal(big.rows, metrics.scope_rows(identity.meta, "selection", range(60)).rows)  # seeded


def test_clips_without_text_are_no_queries_and_no_candidates(tmp_path):
    n = 24
    v = normalize(np.random.default_rng(3).standard_normal((n, 16)))
    search = _bank(tmp_path / "b", _meta(n, 1), v, v, v[::2], text_rows=np.arange(0, n, 2))
    ev = metrics.evaluate(search, np.arange(n))
    t = ev.table.set_index("direction")
    assert t.loc["t2v", "queries"] == 12 and t.loc["t2v", "candidates"] == 24
    assert t.loc["v2t", "queries"] == 12 and t.loc["v2t", "candidates"] == 12  # videos without text left out
    assert t.loc["v2a", "queries"] == 24 and (t["r1"] == 1.0).all()


def test_same_media_rows_are_one_candidate():
    meta = pd.DataFrame({"video_path": ["a.mp4", "a.mp4", "b.mp4", None], "audio_path": [None] * 4,
                         "start": [0.0, 0.0, 0.0, 0.0], "end": [np.nan] * 4})  # fmt: skip
    groups = metrics.clip_groups(meta)
    assert groups[0] == groups[1] and len(set(groups.tolist())) == 3  # the path-less row is its own group


def test_a_planted_hub_is_found(tmp_path):
    n, d = 100, 16
    rng = np.random.default_rng(5)
    hub = normalize(rng.standard_normal((1, d)))[0]
    video = normalize(rng.standard_normal((n, d)))
    video[17] = hub  # clip 17's video is near every text
    text = normalize(normalize(rng.standard_normal((n, d))) + 0.9 * hub)
    search = _bank(tmp_path / "b", _meta(n, 1), video, video, text)
    ev = metrics.evaluate(search, np.arange(n), k=10)
    occ = metrics.k_occurrence(ev.results["t2v"])
    assert occ["count"].sum() == n * 10 and occ["count"].mean() == pytest.approx(10.0)
    top = occ.sort_values("count", ascending=False).iloc[0]
    assert int(top["row"]) == 17 and top["count"] >= 0.95 * n and top["z"] > 5
    summary, hubs = metrics.hubs(ev)
    s = summary.set_index("direction")
    assert s.loc["t2v", "expected"] == pytest.approx(10.0) and s.loc["t2v", "skewness"] > 3
    t2v = hubs[hubs["direction"] == "t2v"]
    assert t2v["clip_id"].iloc[0] == "clip/0017" and t2v["count"].iloc[0] == top["count"]
    # No hub when every candidate is in every list (5 clips, top-k capped at 5).
    summary_id, _ = metrics.hubs(metrics.evaluate(search, np.arange(5), k=10))
    assert (summary_id["hubs"] == 0).all() and (summary_id["skewness"] == 0).all()


def test_aligned_pairs_beat_the_shuffled_baseline(tmp_path):
    n, d = 80, 32
    rng = np.random.default_rng(7)
    video = normalize(rng.standard_normal((n, d)))
    audio = normalize(video + 0.3 * rng.standard_normal((n, d)) / np.sqrt(d))
    audio[11] = normalize(-video[11:12])[0]  # one clip whose sound is the opposite of its picture
    search = _bank(tmp_path / "b", _meta(n, 1), video, audio, video)
    aligned = metrics.alignment(search, np.arange(n))
    va = aligned[aligned["space"] == "va"]
    assert len(va) == n and va["pair"].iloc[0] == "video\u00b7audio"
    np.testing.assert_allclose(va["cosine"], np.einsum("nd,nd->n", video, audio), atol=1e-5)
    summary = metrics.alignment_summary(aligned).set_index("space")
    assert summary.loc["va", "cosine"] > 0.9 and abs(summary.loc["va", "shuffled"]) < 0.1
    assert summary.loc["va", "gap"] > 0.8 and summary.loc["va", "auc"] > 0.95
    assert summary.loc["vat", "cosine"] == pytest.approx(1.0, abs=1e-5)  # text = video
    worst = metrics.worst_aligned(aligned, 3)
    assert worst[worst["space"] == "va"]["clip_id"].iloc[0] == "clip/0011"
    assert worst[worst["space"] == "va"]["percentile"].iloc[0] == 0.0
    # The baseline pairs each clip's video with another clip's audio (seeded).
    again = metrics.alignment(search, np.arange(n))
    np.testing.assert_array_equal(again["shuffled"], aligned["shuffled"])


def test_derangement_has_no_fixed_point():
    for n in (2, 3, 10, 257):
        p = metrics.derangement(n, seed=n)
        assert sorted(p.tolist()) == list(range(n)) and not (p == np.arange(n)).any()
    np.testing.assert_array_equal(metrics.derangement(50, 1), metrics.derangement(50, 1))
    assert metrics.derangement(1).tolist() == [0]


def test_deltas_of_a_bank_with_itself_are_zero_and_clips_match_by_id(identity, shifted, tmp_path):
    rows = np.arange(0, 60, 2)
    d, matched = metrics.compare_banks(identity, identity, rows)
    assert matched == 30 and len(d) == 6
    for m in metrics.COMPARED:
        np.testing.assert_array_equal(d[f"{m}_delta"], 0.0)
    # The same clips in another row order: matched by clip id, so still no difference.
    perm = np.random.default_rng(0).permutation(60)
    v = np.asarray(identity.bank.vectors("va", "video"))
    meta = identity.meta[["clip_id", "split"]].iloc[perm].reset_index(drop=True)
    shuffled = _bank(tmp_path / "perm", meta, v[perm], v[perm], v[perm])
    d2, matched2 = metrics.compare_banks(identity, shuffled, rows)
    assert matched2 == 30 and (d2[[f"{m}_delta" for m in metrics.COMPARED]].to_numpy() == 0).all()
    # A worse bank B: the shifted one renamed to the identity's first 30 clips -> R@1 drops by 1 in t2v.
    d3, matched3 = metrics.compare_banks(identity, shifted, np.arange(30))
    t = d3.set_index("direction")
    assert matched3 == 30  # clip ids clip/0000 .. clip/0029 exist in both
    assert t.loc["t2v", "r1_a"] == 1.0 and t.loc["t2v", "r1_b"] == 0.0 and t.loc["t2v", "r1_delta"] == -1.0
    assert t.loc["t2v", "medr_delta"] == 1.0


def test_test_split_metrics_equal_the_evaluation(tmp_path_factory):
    """The tiny model's bank on its test split gives ``evaluate_zero_shot``'s numbers for the same clips."""
    from app_helpers import SAMPLE_MANIFEST, tiny_model_and_bank

    from mmv.bank import Bank
    from mmv.checkpoint import load_checkpoint
    from mmv.eval.zero_shot import evaluate_zero_shot

    model_dir, bank_dir = tiny_model_and_bank(tmp_path_factory.mktemp("app"))
    search = BankSearch(Bank.load(bank_dir))
    windows = int(search.bank.provenance["parameters"]["num_windows"])
    model = load_checkpoint(model_dir).eval()
    results, _ = evaluate_zero_shot(model, SAMPLE_MANIFEST, split="test", num_windows=windows, images="none")
    ev = metrics.evaluate(search, metrics.scope_rows(search.meta, "test").rows)
    table = ev.table.set_index("direction")
    assert sorted(table.index) == sorted(results)
    for name, ref in results.items():
        assert table.loc[name, "queries"] == ref["num_queries"]
        assert table.loc[name, "candidates"] == ref["num_candidates"]
        for key in ("r1", "r5", "r10", "medr", "meanr"):
            assert table.loc[name, key] == pytest.approx(ref[key], abs=1e-9), (name, key)
        np.testing.assert_array_equal(ev.results[name].metrics["ranks"], ref["ranks"])
