"""``python -m training.evaluate`` end to end: probes and retrieval of a tiny random model on the bundled toy world,
and the ESC-50 reader + audio probe on a generated ESC-50-like folder of pure tones."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
from train_helpers import SAMPLE, single_thread

from mmv import create_model
from mmv.checkpoint import load_checkpoint, save_checkpoint
from mmv.data.manifest import load_manifest
from mmv.embed import embed_sentences
from mmv.eval.features import load_features
from mmv.eval.linear_probe import run_probe
from mmv.tokenizer import Vocabulary
from mmv.toyworld.narration import vocabulary_words
from mmv.toyworld.tasks import clean_description
from training.evaluate import main

SR = 16000


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random-init tiny_fac (4 x 32 x 32 video, 1 s audio) with the toy world's vocabulary, saved."""
    single_thread()
    torch.manual_seed(0)
    vocab = Vocabulary.from_words(vocabulary_words())
    model = create_model(
        "tiny_fac", video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0}, text={"vocab_size": len(vocab)}
    )
    model.vocab = vocab
    return save_checkpoint(model, tmp_path_factory.mktemp("ckpt") / "model")


def _run(*argv: str) -> int:
    return main([*argv, "--no-progress"])


def test_probe_on_the_toy_world_and_the_cache(checkpoint: Path, tmp_path: Path, capsys) -> None:
    cache, out = tmp_path / "features", tmp_path / "shape.json"
    args = ["probe", "--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--num-windows", "2"]
    assert _run(*args, "--label", "shape", "--cache-dir", str(cache), "--out", str(out)) == 0
    assert "probe label_shape on the video representation" in capsys.readouterr().out
    result = json.loads(out.read_text())
    r = result["result"]
    assert (result["protocol"], result["num_clips"], result["num_windows"]) == ("split", 48, 2)
    assert (r["num_train"], r["num_val"], r["num_test"], r["selection"]) == (38, 5, 5, "val")
    assert r["num_classes"] == 4 and r["top5"] is None  # 4 shapes: top-5 is meaningless (NaN, null in JSON)
    assert not result["from_cache"] and Path(result["features_cache"]).is_file()
    # The reference: the same probe by hand on the cached features gives the same numbers.
    features = load_features(result["features_cache"])
    assert features.features.shape == (48, 2, result["feature_dim"]) and features.mask.all()
    again = run_probe(features, load_manifest(SAMPLE), "label_shape")
    assert again["top1"] == result["top1"] and again["result"]["C"] == r["C"]
    # A second probe (another label, another classifier) reads the features from the cache.
    out2 = tmp_path / "colour.json"
    args2 = ["--label", "label_colour", "--classifier", "logreg", "--C", "0.01", "--cache-dir", str(cache)]
    assert _run(*args, *args2, "--out", str(out2)) == 0
    colour = json.loads(out2.read_text())
    assert colour["from_cache"] and colour["features_cache"] == result["features_cache"]
    assert (colour["result"]["C"], colour["result"]["selection"], colour["result"]["classifier"]) == (
        0.01,
        "fixed",
        "logreg",
    )


def test_retrieval_every_direction_and_the_ranks_export(checkpoint: Path, tmp_path: Path) -> None:
    out, ranks = tmp_path / "r.json", tmp_path / "ranks.csv"
    argv = ["retrieval", "--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--split", "all"]
    argv += ["--num-windows", "1", "--images", "frames", "--image-mode", "naive"]
    assert _run(*argv, "--ranks-out", str(ranks), "--out", str(out)) == 0
    result = json.loads(out.read_text())
    directions = result["directions"]
    assert list(directions) == ["t2v", "v2t", "v2a", "a2v", "a2t", "t2a", "i2t"]
    assert directions["v2a"]["num_queries"] == 48 and directions["t2v"]["num_candidates"] == 48
    # The per-query export holds every query once and the same metrics.
    table = pd.read_csv(ranks)
    for name, m in directions.items():
        rows = table[table["direction"] == name]
        assert len(rows) == m["num_queries"] and rows["rank"].between(1, m["num_candidates"]).all()
        assert (rows["rank"] <= 5).mean() == pytest.approx(m["r5"]) and rows["rank"].median() == m["medr"]
        assert (rows["top1_correct"] == (rows["rank"] == 1)).all()
        own = rows["top1"] == rows["query"]  # clip level: the correct item is the query's own clip
        assert (own == rows["top1_correct"]).all()


def _rank_by_hand(sim: np.ndarray, correct: np.ndarray) -> np.ndarray:
    """1 + the wrong candidates scoring at least the best correct one, query by query."""
    return np.array([1 + int(((s >= s[c].max()) & ~c).sum()) for s, c in zip(sim, correct)])


def test_attribute_level_retrieval_by_hand(checkpoint: Path, tmp_path: Path) -> None:
    """``--attributes --flat``: the keys the shipped metrics.json holds, and t2v_attr / v2t_attr recomputed here
    from the clean descriptions of the clips' (shape, colour, motion) and the clip-level embeddings."""
    out = tmp_path / "flat.json"
    argv = ["retrieval", "--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--split", "all"]
    argv += ["--num-windows", "1", "--images", "none", "--attributes", "--flat", "--batch-size", "32"]
    assert _run(*argv, "--out", str(out)) == 0
    flat = json.loads(out.read_text())
    shipped = json.loads((Path(__file__).parents[1] / "data_samples/demo_model/metrics.json").read_text())
    assert set(flat) == set(shipped["test_metrics"])  # what the app's Model page and the paper report read
    assert flat["num_clips"] == 48

    from mmv.eval.zero_shot import evaluate_zero_shot

    model = load_checkpoint(checkpoint)
    _, emb = evaluate_zero_shot(model, SAMPLE, split=None, num_windows=1, images="none", batch_size=32)
    labels = emb["labels"]
    triples = list(zip(labels["shape"], labels["colour"], labels["motion"]))
    distinct = sorted(set(triples))
    assert flat["num_descriptions"] == len(distinct) and flat["num_narrated"] == int(emb["has_text"].sum())
    text = embed_sentences(model, [clean_description(*t) for t in distinct]).double().numpy()
    video = emb["video_vat"].double().numpy()
    cls = np.array([distinct.index(t) for t in triples])
    same = cls[:, None] == cls[None, :]
    t2v = _rank_by_hand(text[cls] @ video.T, same)
    v2t = _rank_by_hand(video @ text.T, cls[:, None] == np.arange(len(distinct))[None, :])
    for name, ranks in (("t2v_attr", t2v), ("v2t_attr", v2t)):
        assert flat[f"{name}_r1"] == pytest.approx(np.mean(ranks == 1)) and flat[f"{name}_medr"] == np.median(ranks)
        assert flat[f"{name}_r10"] == pytest.approx(np.mean(ranks <= 10))
    top = (video @ text.T).argmax(axis=1)  # no exact ties among random embeddings
    assert flat["v2t_attr_top1_shape"] == pytest.approx(
        np.mean([distinct[t][0] == s for t, s in zip(top, labels["shape"])])
    )


def test_bad_input_is_one_clear_error(checkpoint: Path, tmp_path: Path, capsys) -> None:
    base = ["probe", "--checkpoint", str(checkpoint), "--manifest", str(SAMPLE)]
    assert _run(*base, "--label", "flavour") == 2
    assert "no label column 'flavour'" in capsys.readouterr().err
    assert _run(*base) == 2
    assert "--label is required" in capsys.readouterr().err
    assert _run("probe", "--checkpoint", str(tmp_path / "nope"), "--manifest", str(SAMPLE), "--label", "shape") == 2
    assert "no such checkpoint" in capsys.readouterr().err
    ret = ["retrieval", "--checkpoint", str(checkpoint), "--manifest", str(SAMPLE), "--split", "dev"]
    assert _run(*ret) == 2
    assert "no clip in split 'dev'" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------------
# ESC-50 end to end
# ---------------------------------------------------------------------------------------------------

TONES = {"dog": 300.0, "rain": 1200.0, "siren": 4000.0}  # class -> tone (Hz); target = position


def esc50_tones(root: Path, per_fold: int = 2, seconds: float = 1.5) -> Path:
    """An ESC-50 layout: 5 folds x 3 classes x ``per_fold`` WAVs, each a pure tone of its class (+-3 % pitch,
    random level and a little noise), listed in ``meta/esc50.csv`` like the real file."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True)
    (root / "meta").mkdir()
    lines = ["filename,fold,target,category,esc10,src_file,take"]
    t = np.arange(int(seconds * SR)) / SR
    for fold in range(1, 6):
        for target, (category, hz) in enumerate(TONES.items()):
            for k in range(per_fold):
                src = 1000 * fold + 10 * target + k
                name = f"{fold}-{src}-A-{target}.wav"
                f = hz * rng.uniform(0.97, 1.03)
                wave = rng.uniform(0.2, 0.8) * np.sin(2 * np.pi * f * t) + 0.01 * rng.standard_normal(len(t))
                sf.write(str(root / "audio" / name), wave.astype(np.float32), SR, subtype="PCM_16")
                lines.append(f"{name},{fold},{target},{category},False,{src},A")
    (root / "meta" / "esc50.csv").write_text("\n".join(lines) + "\n")
    return root


def test_esc50_audio_probe_end_to_end(checkpoint: Path, tmp_path: Path) -> None:
    root = esc50_tones(tmp_path / "ESC-50-master")
    out = tmp_path / "esc.json"
    argv = ["probe", "--checkpoint", str(checkpoint), "--dataset", "esc50", "--root", str(root)]
    assert _run(*argv, "--num-windows", "1", "--out", str(out)) == 0
    result = json.loads(out.read_text())
    assert (result["modality"], result["protocol"], result["label"]) == ("audio", "folds", "label_class")
    assert [f["fold"] for f in result["folds"]] == [1, 2, 3, 4, 5]
    assert all((f["num_train"], f["num_test"]) == (24, 6) for f in result["folds"])
    assert result["top1"] == pytest.approx(np.mean([f["top1"] for f in result["folds"]]))
    # Three pure tones a decade apart: even a random audio network's features separate them (chance is 1/3).
    assert result["top1"] >= 0.9
