"""training.publish_demo: a finished run becomes a shipped folder whose metrics the evaluation CLI reproduces."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest
from train_helpers import SAMPLE, single_thread, tiny_args

from mmv.checkpoint import load_checkpoint
from training import evaluate, publish_demo
from training.main import main as train_main


@pytest.fixture(autouse=True)
def _one_thread():
    single_thread()


def test_a_finished_run_is_published_with_metrics_the_cli_reproduces(tmp_path: Path, capsys) -> None:
    run, out = tmp_path / "run", tmp_path / "shipped"
    summary = train_main(tiny_args(run, "--train.steps", "2"))
    assert publish_demo.main(["--run", str(run), "--manifest", str(SAMPLE), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "config.json", "config.yaml", "metrics.csv", "metrics.json", "model.safetensors", "vocab.txt",
    ]  # fmt: skip
    for name in ("config.json", "model.safetensors", "vocab.txt"):
        assert (out / name).read_bytes() == (run / "model" / name).read_bytes()
    meta = json.loads((out / "metrics.json").read_text())
    assert meta["run"]["weights_digest"] == summary["weights_digest"] and meta["run"]["steps"] == 2
    assert meta["run"]["cpu_threads"] == [1]
    assert meta["split"] == "test" and meta["test_metrics"]["num_clips"] == 5
    capsys.readouterr()
    command = shlex.split(meta["evaluate_command"])  # the command the card tells people to re-score with
    assert command[:3] == ["python", "-m", "training.evaluate"]
    assert evaluate.main([*command[3:], "--json", "--no-progress"]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again == pytest.approx(meta["test_metrics"])
    card = (out / "README.md").read_text()
    assert summary["weights_digest"] in card and "| t2v_attr |" in card and "make demo-model" in card
    assert load_checkpoint(out).config == load_checkpoint(run / "model").config
    from app.logic.model_card import find_run_dir, read_metrics

    assert find_run_dir(out) == out.resolve()  # the app's Model page finds the curves in the shipped folder
    log, source = read_metrics(find_run_dir(out))
    assert source == "metrics.csv" and list(log["step"]) == [1, 2]


def test_an_unfinished_run_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "run"
    train_main(tiny_args(run, "--train.steps", "3", "--train.stop_after", "1"))
    with pytest.raises(SystemExit, match="has not finished"):
        publish_demo.publish(run, SAMPLE, tmp_path / "out")
    assert not (tmp_path / "out").exists()
