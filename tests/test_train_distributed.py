"""training.main under torchrun: 2 CPU processes with gloo on 127.0.0.1. Both ranks compute the same loss (the
gathered batch) and end with the same weights; only rank 0 writes the run's files."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from train_helpers import ROOT, free_port, read_csv, subprocess_env, tiny_args

FINAL = re.compile(r"^\[rank (\d)\] step (\d+) loss (\S+) weights (\w+)$", re.MULTILINE)


def test_two_gloo_ranks_agree_on_loss_and_weights(tmp_path: Path) -> None:
    run = tmp_path / "run"
    launcher = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1"]
    launcher += ["--master_port", str(free_port()), "-m", "training.main"]
    argv = tiny_args(run, "--data.batch_size", "2", "--train.steps", "2", "--train.checkpoint_every", "1")
    argv += ["--dist.sync_bn", "true"]  # falls back to per-rank BN on CPU, with a warning
    proc = subprocess.run(
        [*launcher, *argv], cwd=ROOT, env=subprocess_env(), capture_output=True, text=True, timeout=240
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output

    finals = {int(m[0]): m[1:] for m in FINAL.findall(proc.stdout)}
    assert sorted(finals) == [0, 1], output
    assert finals[0] == finals[1]  # (step, loss, weights digest)
    assert finals[0][0] == "2"
    assert "SyncBatchNorm needs CUDA" in output

    rows = read_csv(run / "metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2]
    assert float(rows[-1]["loss"]) == float(finals[0][1])
    assert float(rows[0]["clips_per_s"]) > 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_1.pt", "step_2.pt"]
    assert (run / "model" / "model.safetensors").is_file() and (run / "summary.json").is_file()
