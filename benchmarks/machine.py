"""What the benchmark scripts print about the machine they ran on (docs/benchmarks.md names it with every number)."""

from __future__ import annotations

import os
import platform

import torch


def load_average() -> str:
    """The 1, 5 and 15 minute load averages (a busy machine explains a slow run), or ``'n/a'`` where unknown."""
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def device_name(device: torch.device) -> str:
    """The GPU's name for a CUDA device, else the CPU's (``platform.processor()``, or ``'cpu'`` when empty)."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu"
