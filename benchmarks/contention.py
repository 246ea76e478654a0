"""Sharing the CPU: how much slower training, bank building and the app get beside another busy process.

Usage::

    python benchmarks/contention.py                  # every workload beside every competitor
    python benchmarks/contention.py --seconds 4 --workloads train-auto train-2

The workloads, each timed alone and then beside each competitor, side by side in one run:

==============  ===================================================================================================
workload        what is timed (the demo recipe's model, ``training/configs/demo_cpu.yaml``)
==============  ===================================================================================================
train-2         one training step (batch 32, forward, backward, Adam) at 2 fixed torch threads: the old behaviour
train-auto      the same step under :class:`mmv.threads.ThreadGovernor` (``train.cpu_threads: auto``, the default)
bank            embedding 32 clips' video and audio in eval mode at 1 thread (``training.build_bank``'s default)
app             one typed query and one uploaded clip embedded at 1 thread (the app's default, MMV_APP_THREADS)
==============  ===================================================================================================

The competitors are separate processes started for each cell and killed after it: ``spin`` (a single-threaded
Python busy loop), ``numpy`` (600 x 600 matrix products in a loop on numpy's BLAS threads, 2 here) and ``torch``
(the same in torch, 2 threads). Each cell first runs its workload for ``--settle`` seconds (the governor needs
one or two 2-s windows to see the competitor), then counts how many units it finishes in ``--seconds``.

It prints seconds per unit and the slow-down against the *idle* ``train-auto`` time for the training rows (the
speed a user gets from an idle machine) and against the workload's own idle time otherwise; the issue's bar is a
slow-down of at most 3x beside one competing process. Numbers and the machine go into docs/benchmarks.md
("Sharing the CPU").
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import load_average  # noqa: E402
from benchmarks.model_step import random_batch  # noqa: E402
from mmv.factory import create_model, get_config  # noqa: E402
from mmv.losses import MMVLoss  # noqa: E402
from mmv.threads import ThreadGovernor  # noqa: E402
from training import recipe as recipe_lib  # noqa: E402

COMPETITORS: dict[str, str] = {
    "spin": "while True:\n    pass",
    "numpy": "import numpy as np\na = np.random.rand(600, 600)\nwhile True:\n    a @ a",
    "torch": "import torch\ntorch.set_num_threads(2)\na = torch.rand(600, 600)\nwhile True:\n    a @ a",
}
WORKLOADS = ("train-2", "train-auto", "bank", "app")


def demo_model(recipe: str) -> torch.nn.Module:
    cfg = recipe_lib.parse_args(["--config", recipe])
    torch.manual_seed(0)
    return create_model(get_config(cfg.model.name, **cfg.model.overrides))


def workload(name: str, model: torch.nn.Module) -> tuple[Callable[[], None], ThreadGovernor | None]:
    """``(one unit of work, the governor that picks its threads or None)``; sets the thread count it starts at."""
    if name.startswith("train"):
        torch.set_num_threads(2)
        criterion = MMVLoss()
        optimizer = torch.optim.Adam(model.parameters(), 1e-4)
        batch = random_batch(model, 32)
        governor = ThreadGovernor(max_threads=2) if name == "train-auto" else None

        def step() -> None:
            if governor is not None:
                governor.update()
            model.train()
            optimizer.zero_grad(set_to_none=True)
            criterion(model(batch))["loss"].backward()
            optimizer.step()

        return step, governor
    torch.set_num_threads(1)
    if name == "bank":
        batch = random_batch(model, 32)

        @torch.no_grad()
        def embed() -> None:
            model.eval()
            model.encode_video(batch["video"])
            model.encode_audio(batch["audio"])

        return embed, None
    one = random_batch(model, 1)

    @torch.no_grad()
    def query() -> None:
        model.eval()
        model.encode_text(one["text"][:, 0])
        model.encode_video(one["video"])

    return query, None


def timed(unit: Callable[[], None], seconds: float, settle: float) -> float:
    end = time.perf_counter() + settle
    while time.perf_counter() < end:
        unit()
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or n < 2:
        unit()
        n += 1
    return (time.perf_counter() - start) / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="training/configs/demo_cpu.yaml")
    parser.add_argument("--workloads", nargs="+", default=list(WORKLOADS), choices=WORKLOADS)
    parser.add_argument("--competitors", nargs="+", default=list(COMPETITORS), choices=list(COMPETITORS))
    parser.add_argument("--seconds", type=float, default=6.0, help="timed seconds per cell")
    parser.add_argument("--settle", type=float, default=4.0, help="untimed seconds before each cell")
    args = parser.parse_args(argv)

    model = demo_model(args.recipe)
    print(f"machine: {os.cpu_count()} cores, load average before {load_average()}, torch {torch.__version__}")
    rows: dict[str, dict[str, tuple[float, int]]] = {}
    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2", MKL_NUM_THREADS="2")
    for competitor in ["none", *args.competitors]:
        proc = None
        if competitor != "none":
            proc = subprocess.Popen([sys.executable, "-c", COMPETITORS[competitor]], env=env)
            time.sleep(1.0)  # let it start its threads
        try:
            for name in args.workloads:
                unit, governor = workload(name, model)
                s = timed(unit, args.seconds, args.settle)
                rows.setdefault(name, {})[competitor] = (s, torch.get_num_threads())
                seen = f", others {governor.others:.2f} cores" if governor is not None else ""
                print(
                    f"  {name:<10} beside {competitor:<6} {s:.3f} s/unit, {torch.get_num_threads()} thr{seen}",
                    flush=True,
                )
        finally:
            if proc is not None:
                proc.kill()
                proc.wait()

    header = ["workload", "idle s/unit"] + [f"beside {c}" for c in args.competitors]
    print("\n| " + " | ".join(header) + " |\n|" + "---|" * len(header))
    worst = 0.0
    for name, cells in rows.items():
        base_name = "train-auto" if name.startswith("train") and "train-auto" in rows else name
        base = rows[base_name]["none"][0]
        out = [name, f"{cells['none'][0]:.3f} ({cells['none'][1]} thr)"]
        for c in args.competitors:
            s, thr = cells[c]
            out.append(f"{s:.3f} s = {s / base:.1f}x ({thr} thr)")
            if name != "train-2":
                worst = max(worst, s / base)
        print("| " + " | ".join(out) + " |")
    print(f"\nworst slow-down of the default settings (all but train-2): {worst:.1f}x (the bar: 3x)")
    print(f"load average after: {load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
