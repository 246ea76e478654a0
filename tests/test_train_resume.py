"""Resuming training: a run stopped after step 2 and resumed equals an uninterrupted run bit for bit (weights,
Adam moments, losses, data order across an epoch boundary), a finished run can be extended, and a process
killed in the middle of writing a checkpoint resumes from the previous complete one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from train_helpers import ROOT, read_csv, single_thread, steps_of, subprocess_env, tiny_args

from training.checkpointing import STALL_ENV, read_state
from training.main import main


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    single_thread()
    yield
    torch.set_num_threads(threads)


# 38 training clips in batches of 4: 9 batches per epoch. Two micro-batches per step, so step 5 ends on batch
# 10, in the second epoch; the stop after step 2 (batch 4) falls in the middle of the first.
SCHEDULE = ["--train.steps", "5", "--train.accum_steps", "2", "--train.checkpoint_every", "2", "--train.keep", "2"]


def _assert_same_state(a: dict, b: dict) -> None:
    for key, value in a["model"].items():
        assert torch.equal(value, b["model"][key]), key
    for pid, sa in a["optimizer"]["state"].items():
        sb = b["optimizer"]["state"][pid]
        assert torch.equal(sa["step"], sb["step"])
        assert torch.equal(sa["exp_avg"], sb["exp_avg"]) and torch.equal(sa["exp_avg_sq"], sb["exp_avg_sq"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"]
    assert (a["step"], a["batches"], a["epoch"]) == (b["step"], b["batches"], b["epoch"])


def test_stopped_and_resumed_run_equals_the_uninterrupted_one(tmp_path: Path) -> None:
    full, parts = tmp_path / "full", tmp_path / "parts"
    main(tiny_args(full, *SCHEDULE))
    first = main(tiny_args(parts, *SCHEDULE, "--train.stop_after", "2"))
    assert (first["step"], first["completed"], first["model_dir"]) == (2, False, None)
    at_stop = read_state(parts / "checkpoints" / "step_2.pt")
    resumed = main(tiny_args(parts, *SCHEDULE, "--resume", "latest"))

    assert resumed["resumed_from"] == str(parts / "checkpoints" / "step_2.pt") and resumed["completed"]
    want = read_state(full / "checkpoints" / "step_5.pt")
    got = read_state(parts / "checkpoints" / "step_5.pt")
    assert (got["step"], got["batches"], got["epoch"]) == (5, 10, 1)
    _assert_same_state(got, want)
    adam = next(iter(got["optimizer"]["state"].values()))
    assert int(adam["step"]) == 5  # continued from the saved 2, not restarted
    assert int(next(iter(at_stop["optimizer"]["state"].values()))["step"]) == 2
    # The same batches in the same order: every logged loss equals the uninterrupted run's.
    rows_full, rows_parts = read_csv(full / "metrics.csv"), read_csv(parts / "metrics.csv")
    assert steps_of(parts) == [1, 2, 3, 4, 5]
    for a, b in zip(rows_full, rows_parts):
        assert (a["step"], a["lr"], a["loss"], a["va_loss"], a["vt_loss"]) == (
            b["step"],
            b["lr"],
            b["loss"],
            b["va_loss"],
            b["vt_loss"],
        )
    assert sorted(p.name for p in (parts / "checkpoints").glob("step_*.pt")) == ["step_4.pt", "step_5.pt"]

    # A finished run extended by one step (resumed from an explicit path): counters and moments go on from 5.
    step5 = str(parts / "checkpoints" / "step_5.pt")
    extended = main(tiny_args(parts, *SCHEDULE, "--train.steps", "6", "--resume", step5))
    assert extended["step"] == 6 and steps_of(parts) == [1, 2, 3, 4, 5, 6]
    state6 = read_state(parts / "checkpoints" / "step_6.pt")
    assert int(next(iter(state6["optimizer"]["state"].values()))["step"]) == 6
    assert state6["scheduler"]["last_epoch"] == 6
    assert sorted(p.name for p in (parts / "checkpoints").glob("step_*.pt")) == ["step_5.pt", "step_6.pt"]


def test_killed_while_writing_a_checkpoint_resumes_from_the_previous_one(tmp_path: Path) -> None:
    run, marker = tmp_path / "run", tmp_path / "stalled"
    argv = tiny_args(run, "--train.steps", "4", "--train.checkpoint_every", "2")
    env = subprocess_env() | {STALL_ENV: f"4:{marker}"}  # the writer of step 4 stops half-way
    proc = subprocess.Popen(
        [sys.executable, "-m", "training.main", *argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "the checkpoint writer never stalled"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    ckpt = run / "checkpoints"
    partial = [p for p in ckpt.iterdir() if p.name.startswith(".step_4.pt")]
    assert len(partial) == 1 and partial[0].stat().st_size >= 1 << 16  # half a file, never renamed
    assert not (ckpt / "step_4.pt").exists()
    assert (ckpt / "latest").read_text().strip() == "step_2.pt"
    assert steps_of(run) == [1, 2, 3, 4]  # the CSV got step 4 before the kill

    summary = main([*argv, "--resume", "latest"])
    assert summary["resumed_from"] == str(ckpt / "step_2.pt") and summary["completed"]
    assert steps_of(run) == [1, 2, 3, 4]  # rows 3 and 4 replaced, none duplicated
    assert sorted(p.name for p in ckpt.iterdir()) == ["latest", "step_2.pt", "step_4.pt"]
    assert read_state(ckpt / "step_4.pt")["step"] == 4


def test_a_run_of_another_recipe_is_not_resumed(tmp_path: Path) -> None:
    from training.config import ConfigError

    run = tmp_path / "run"
    main(tiny_args(run, "--train.steps", "2", "--train.checkpoint_every", "1"))
    with pytest.raises(ConfigError, match=r"another recipe \(it differs in optim.lr\)"):
        main(tiny_args(run, "--train.steps", "3", "--optim.lr", "0.5", "--resume", "latest"))
    # How a run is carried out (threads, logs, checkpoints) and its length may change on resume.
    extended = main(tiny_args(run, "--train.steps", "3", "--train.cpu_threads", "1", "--resume", "latest"))
    assert extended["step"] == 3 and extended["completed"]
