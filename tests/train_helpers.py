"""Helpers shared by the training tests (``tests/test_train_*.py``): a tiny recipe on the bundled toy world."""

from __future__ import annotations

import csv
import os
import socket
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "data_samples" / "toyworld" / "manifest.parquet"  # 48 clips: 38 train, 5 val, 5 test

# tiny_fac at 4 x 32 x 32 video and 1 s of audio, batch 4, one process on the CPU, no bar, no TensorBoard.
TINY = [
    "--model.name", "tiny_fac",
    "--model.overrides", "{video: {num_frames: 4, frame_size: 32}, audio: {duration: 1.0}}",
    "--data.train", f"[{{manifest: '{SAMPLE}', proportion: 1.0, split: train}}]",
    "--data.batch_size", "4",
    "--data.num_workers", "0",
    "--optim.warmup_steps", "2",
    "--train.device", "cpu",
    "--eval.at_end", "false",
    "--log.progress", "false",
    "--log.tensorboard", "false",
]  # fmt: skip


def tiny_args(run_dir: Path, *extra: str) -> list[str]:
    return [*TINY, "--run_dir", str(run_dir), *extra]


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def steps_of(run_dir: Path) -> list[int]:
    return [int(r["step"]) for r in read_csv(run_dir / "metrics.csv")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def subprocess_env() -> dict[str, str]:
    """The environment for a training subprocess: the repo importable, one thread (2 shared cores)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env["OMP_NUM_THREADS"] = "1"
    return env


def single_thread() -> None:
    # Two busy-waiting OpenMP threads on two shared cores can make a step 100x slower.
    torch.set_num_threads(1)


def randomise_bn_(module: torch.nn.Module, seed: int = 0) -> None:
    """Random running statistics and affine parameters, so BN is not the identity."""
    g = torch.Generator().manual_seed(seed)
    for m in module.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            c = m.num_features
            m.running_mean.copy_(torch.randn(c, generator=g) * 0.2)
            m.running_var.copy_(torch.rand(c, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(c, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(c, generator=g) * 0.2)
