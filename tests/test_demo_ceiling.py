"""``benchmarks/demo_ceiling.py``: the t2v_attr-like scoring of a classifier on planted log-probabilities, and
the whole script (decode, train, report) on a small generated toy world."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import mmv.toyworld as tw
from benchmarks import demo_ceiling as bench
from mmv.data.manifest import load_manifest


def _one_hot_logp(labels: torch.Tensor, classes: int, sure: float = 0.9) -> torch.Tensor:
    """Log-probabilities ``[N, classes]`` putting ``sure`` on each clip's label, the rest spread evenly."""
    p = torch.full((len(labels), classes), (1 - sure) / (classes - 1), dtype=torch.float64)
    p[torch.arange(len(labels)), labels] = sure
    return p.log()


def _planted() -> dict[str, torch.Tensor]:
    """Two clips of each of the 4 shapes, all red and static, plus two green rightward circles: 10 clips."""
    shape = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 0, 0])
    colour = torch.tensor([0] * 8 + [2, 2])
    motion = torch.tensor([0] * 8 + [1, 1])
    return {"shape": shape, "colour": colour, "motion": motion}


def test_a_perfect_classifier_retrieves_every_triple():
    labels = _planted()
    logp = {a: _one_hot_logp(y, len(bench.ATTRIBUTES[a])) for a, y in labels.items()}
    out = bench.triple_retrieval(logp, labels)
    assert out["acc_joint"] == 1.0 and out["t2v_r1"] == 1.0 and out["t2v_medr"] == 1.0
    assert out["x2t_r1"] == 1.0 and out["x2t_medr"] == 1.0
    assert all(out[f"acc_{a}"] == 1.0 for a in bench.ATTRIBUTES)


def test_a_classifier_blind_to_shape_ranks_behind_every_tie():
    """Uniform over shapes, right on colour and motion: the 8 red static clips tie for every red static query,
    and ties are pessimistic, so each such query's rank is 1 + 6 wrong clips = 7; the green pair still ranks 1
    (the other green circle is correct too). Clip -> triple: the 4 red static triples tie, rank 1 + 3 = 4."""
    labels = _planted()
    logp = {a: _one_hot_logp(y, len(bench.ATTRIBUTES[a])) for a, y in labels.items() if a != "shape"}
    logp = {"shape": torch.full((10, 4), 0.25, dtype=torch.float64).log(), **logp}
    out = bench.triple_retrieval(logp, labels)
    assert out["t2v_r1"] == pytest.approx(2 / 10)
    assert out["t2v_medr"] == 7.0
    assert out["x2t_r1"] == pytest.approx(2 / 10) and out["x2t_medr"] == 4.0
    assert out["acc_shape"] == pytest.approx(4 / 10)  # argmax of a tie is class 0: the four circles
    assert out["acc_colour"] == out["acc_motion"] == 1.0
    assert out["acc_joint"] == pytest.approx(4 / 10)


def test_scores_and_ranks_match_a_naive_loop():
    gen = torch.Generator().manual_seed(3)
    n = 40
    labels = {a: torch.randint(0, len(v), (n,), generator=gen) for a, v in bench.ATTRIBUTES.items()}
    logp = {
        a: torch.randn(n, len(v), generator=gen, dtype=torch.float64).log_softmax(1)
        for a, v in bench.ATTRIBUTES.items()
    }
    out = bench.triple_retrieval(logp, labels)
    ranks = []
    for q in range(n):
        score = [sum(float(logp[a][c, labels[a][q]]) for a in bench.ATTRIBUTES) for c in range(n)]
        same = [all(labels[a][c] == labels[a][q] for a in bench.ATTRIBUTES) for c in range(n)]
        best = max(s for s, ok in zip(score, same) if ok)
        ranks.append(1 + sum(1 for s, ok in zip(score, same) if not ok and s >= best))
    assert out["t2v_r1"] == pytest.approx(np.mean(np.array(ranks) == 1))
    assert out["t2v_r10"] == pytest.approx(np.mean(np.array(ranks) <= 10))
    assert out["t2v_medr"] == pytest.approx(np.median(ranks))
    triples = sorted({tuple(int(labels[a][c]) for a in bench.ATTRIBUTES) for c in range(n)})
    ranks = []
    for c in range(n):
        score = [sum(float(logp[a][c, t[i]]) for i, a in enumerate(bench.ATTRIBUTES)) for t in triples]
        own = score[triples.index(tuple(int(labels[a][c]) for a in bench.ATTRIBUTES))]
        ranks.append(1 + sum(1 for s in score if s >= own) - 1)
    assert out["x2t_r1"] == pytest.approx(np.mean(np.array(ranks) == 1))
    assert out["x2t_medr"] == pytest.approx(np.median(ranks))


@pytest.fixture(scope="module")
def small_world(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("ceiling-world")
    tw.generate(out, 40, 5, workers=1, progress=False)
    return out / "manifest.parquet"


def test_decode_keeps_the_manifest_labels_in_order(small_world):
    from mmv.factory import get_config

    manifest = load_manifest(small_world)
    video_cfg = get_config("tiny_fac", video={"frame_size": 32, "num_frames": 4}).video
    clips, labels = bench.decode(manifest, "train", video_cfg, workers=0)
    rows = manifest[manifest["split"] == "train"]
    assert tuple(clips.shape) == (len(rows), 4, 32, 32, 3) and clips.dtype == torch.uint8
    for a, values in bench.ATTRIBUTES.items():
        assert labels[a].tolist() == [values.index(v) for v in rows[f"label_{a}"]]
    audio_cfg = get_config("tiny_fac").audio
    waves, audio_labels = bench.decode(manifest, "train", workers=0, audio_cfg=audio_cfg)
    assert tuple(waves.shape) == (len(rows), audio_cfg.num_samples) and waves.dtype == torch.float32
    assert all(torch.equal(audio_labels[a], labels[a]) for a in bench.ATTRIBUTES)


@pytest.mark.parametrize("tower", ["video", "audio"])
def test_the_script_reports_at_each_step(small_world, capsys, tower):
    argv = ["--manifest", str(small_world), "--steps", "2,1", "--threads", "1", "--workers", "0", "--tower", tower]
    rows = bench.main(argv)
    assert [r["step"] for r in rows] == [1, 2]
    assert rows[1]["train_s"] >= rows[0]["train_s"] > 0
    for r in rows:
        assert all(
            0.0 <= r[k] <= 1.0 for k in ("acc_shape", "acc_colour", "acc_motion", "acc_joint", "t2v_r1", "x2t_r1")
        )
        assert r["acc_joint"] <= min(r["acc_shape"], r["acc_colour"], r["acc_motion"])
    table = capsys.readouterr().out
    assert "| 1 |" in table and "| 2 |" in table and "budget holds" in table


def test_a_manifest_without_labels_is_refused_before_decoding(small_world, tmp_path):
    manifest = load_manifest(small_world).drop(columns=["label_shape"])
    path = tmp_path / "unlabelled.parquet"
    manifest.to_parquet(path)
    with pytest.raises(SystemExit, match="label_shape"):
        bench.main(["--manifest", str(path), "--steps", "1", "--threads", "1", "--workers", "0"])
