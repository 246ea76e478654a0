"""Process group setup from torchrun's environment, device choice, and the DDP wrap.

Without torchrun (no ``RANK``/``WORLD_SIZE`` in the environment) training is one process and no process group
is created: :mod:`mmv.distributed` answers rank 0 / world size 1 and every gather is the identity. Under
torchrun each process reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` and joins the group (``env://``
rendezvous: torchrun sets ``MASTER_ADDR``/``MASTER_PORT``): NCCL with one GPU per process on CUDA
(``cuda:LOCAL_RANK``), gloo on CPU.

Checkpoints are written by rank 0 and read by every rank at resume, so a multi-node run needs its
``run_dir`` on a file system that every node sees.
"""

from __future__ import annotations

import datetime
import logging
import os
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands: its rank, the world, and its device."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    initialized: bool = False  # whether setup() created a process group (and cleanup() must destroy it)
    cpu_group: Any = None  # a gloo group for small host-side collectives (None: the default group is gloo)

    @property
    def is_main(self) -> bool:
        """Rank 0: the process that logs, evaluates and writes files."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Whether torchrun (or another env:// launcher) started this process."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def select_device(preference: str, local_rank: int = 0) -> torch.device:
    """``auto``: ``cuda:LOCAL_RANK`` when CUDA is available, else the CPU; ``cuda`` fails without CUDA."""
    if preference == "cpu":
        return torch.device("cpu")
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank)
    if preference == "cuda":
        raise RuntimeError("train.device is 'cuda' but torch.cuda.is_available() is False")
    return torch.device("cpu")


def setup(device: str = "auto", backend: str = "auto", timeout_minutes: float = 30.0) -> DistEnv:
    """Joins torchrun's process group if launched by it; otherwise a single process.

    Args:
        device: ``auto``, ``cpu`` or ``cuda`` (see :func:`select_device`).
        backend: ``auto`` (NCCL on CUDA, gloo on CPU), ``nccl`` or ``gloo``.
        timeout_minutes: collective timeout; rank 0's evaluation runs while the others wait in a barrier, so
            it must exceed the evaluation time.
    """
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        local_rank = int(os.environ.get("LOCAL_RANK", 0))
        return DistEnv(device=select_device(device, local_rank))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    dev = select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if backend == "auto":
        backend = "nccl" if dev.type == "cuda" else "gloo"
    kwargs = {"device_id": dev} if backend == "nccl" else {}
    timeout = datetime.timedelta(minutes=timeout_minutes)
    dist.init_process_group(backend, timeout=timeout, **kwargs)
    # Per-step bookkeeping (the batch-size minimum) goes through gloo on the host: through NCCL, reading the
    # result back would make the CPU wait for the GPU's queued work at every step.
    cpu_group = dist.new_group(backend="gloo", timeout=timeout) if backend != "gloo" else None
    logger.info("rank %d/%d (local %d) on %s, backend %s", rank, world, local_rank, dev, backend)
    return DistEnv(rank, world, local_rank, dev, initialized=True, cpu_group=cpu_group)


def barrier(env: DistEnv) -> None:
    if env.initialized:
        if env.device.type == "cuda":
            dist.barrier(device_ids=[env.device.index])
        else:
            dist.barrier()


def cleanup(env: DistEnv) -> None:
    """Waits for every rank, then destroys the process group (if :func:`setup` created one)."""
    if env.initialized and dist.is_initialized():
        barrier(env)
        dist.destroy_process_group()


def broadcast_object(env: DistEnv, obj: object) -> object:
    """Rank 0's ``obj`` on every rank (a small picklable Python value, e.g. a resolved path)."""
    if not env.initialized:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=env.device if env.device.type == "cuda" else None)
    return box[0]


def all_reduce_min(env: DistEnv, value: int) -> int:
    """The minimum of an integer over ranks (``value`` itself in one process)."""
    if not env.initialized:
        return value
    t = torch.tensor([value], dtype=torch.int64)
    dist.all_reduce(t, op=dist.ReduceOp.MIN, group=env.cpu_group)
    return int(t.item())


def convert_sync_batchnorm(model: nn.Module, env: DistEnv) -> nn.Module:
    """Every BatchNorm becomes a SyncBatchNorm (the paper's cross-replica BN), where that can work.

    PyTorch's SyncBatchNorm synchronises only CUDA (and XPU/HPU) tensors and raises on CPU ones under a process
    group, so on CPU the model keeps per-process statistics, with a warning. Parameter names do not change, so
    checkpoints load into the plain model either way.
    """
    if env.distributed and env.device.type != "cuda":
        logger.warning("dist.sync_bn: SyncBatchNorm needs CUDA; BatchNorm statistics stay per process on CPU")
        return model
    return nn.SyncBatchNorm.convert_sync_batchnorm(model)


def wrap_ddp(model: nn.Module, env: DistEnv, find_unused_parameters: bool = False) -> nn.Module:
    """DistributedDataParallel around ``model`` (returned unchanged in one process).

    ``find_unused_parameters`` stays False for MMV: every trainable parameter takes part in the training loss.
    FAC's audio -> S_vat path (which would leave the va->vat head unused by audio) runs only at evaluation,
    and frozen word vectors have no gradient to reduce.
    """
    if not env.distributed:
        return model
    device_ids = [env.device.index] if env.device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, find_unused_parameters=find_unused_parameters)
