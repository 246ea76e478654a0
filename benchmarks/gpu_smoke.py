"""The GPU training path in one process: NCCL process group, SyncBatchNorm, DDP, bf16 autocast, gathered MMV loss.

Usage::

    python benchmarks/gpu_smoke.py --preset s3d_fac --batch 8 --steps 6     # needs CUDA

``training.distributed.setup`` joins NCCL only under torchrun with two or more ranks, and NCCL refuses two ranks
on one GPU, so on a one-GPU machine this script builds the same stack by hand with a one-rank NCCL group:
``nn.SyncBatchNorm`` (``training.distributed.convert_sync_batchnorm``), ``DistributedDataParallel``, the loss with
negatives gathered through ``mmv.distributed.all_gather_with_grad`` (NCCL all-gather), bf16 autocast and Adam.
It prints the loss per step (finite, falling on the repeated batch), the step time and clips/s, and checks that
every trainable parameter got a finite gradient. Random inputs of the preset's own size (video uint8).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.machine import device_name  # noqa: E402
from benchmarks.model_step import random_batch  # noqa: E402
from mmv.factory import create_model  # noqa: E402
from mmv.losses import MMVLoss  # noqa: E402
from training.distributed import DistEnv, convert_sync_batchnorm  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="s3d_fac")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--steps", type=int, default=6)
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("gpu_smoke: no CUDA device")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", "29511")
    device = torch.device("cuda", 0)
    torch.cuda.set_device(device)
    dist.init_process_group("nccl", rank=0, world_size=1, device_id=device)
    env = DistEnv(0, 1, 0, device, initialized=True)
    torch.manual_seed(0)
    model = convert_sync_batchnorm(create_model(args.preset, load_word_vectors=False), env).to(device).train()
    synced = sum(isinstance(m, torch.nn.SyncBatchNorm) for m in model.modules())
    ddp = DistributedDataParallel(model, device_ids=[0])
    criterion = MMVLoss(gather=True)
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    batch = random_batch(model, args.batch, device=device)
    times, losses = [], []
    for _ in range(args.steps):
        torch.cuda.synchronize()
        start = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            loss = criterion(ddp(batch))["loss"]
        loss.backward()
        optimizer.step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
        losses.append(float(loss))
    bad = [
        n for n, p in model.named_parameters() if p.requires_grad and (p.grad is None or not p.grad.isfinite().all())
    ]
    step = statistics.median(times[1:])
    nccl = ".".join(map(str, torch.cuda.nccl.version()))
    print(f"device: {device_name(device)}; torch {torch.__version__}; NCCL {nccl}")
    print(f"{args.preset}: {synced} SyncBatchNorm layers, DDP + all_gather_with_grad over NCCL, bf16 autocast")
    print("loss per step: " + ", ".join(f"{v:.4f}" for v in losses))
    print(f"step (median of steps 2..{args.steps}): {step * 1000:.0f} ms, {args.batch / step:.1f} clips/s")
    print(f"parameters without a finite gradient: {len(bad)} {bad[:3]}")
    print(f"peak memory: {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
