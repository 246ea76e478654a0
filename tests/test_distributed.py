"""The rank helpers at world size 1, and a 2-process gloo run: the gathered loss and its gradients equal the
single-process ones on the concatenated batch (the convention in ``mmv/distributed.py``'s docstring)."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mmv.distributed import (
    all_gather_no_grad,
    all_gather_with_grad,
    gather_features,
    is_distributed,
    rank,
    world_size,
)
from mmv.losses import MMVLoss, mil_nce_loss

WORLD = 2
N, K = 6, 3  # global batch, narrations per clip
DV, DA, DT = 5, 4, 7  # raw input widths


def test_helpers_without_process_group() -> None:
    assert (rank(), world_size(), is_distributed()) == (0, 1, False)
    x = torch.randn(3, 2, requires_grad=True)
    assert all_gather_with_grad(x) is x
    assert all_gather_no_grad(x) is x
    assert gather_features(x, None) == (x, None)


class _TinyFac(nn.Module):
    """A minimal FAC-shaped model: video_va -> ReLU -> video_vat, audio_va, text_vat."""

    def __init__(self) -> None:
        super().__init__()
        self.video_va = nn.Linear(DV, 4)
        self.va_vat = nn.Linear(4, 3)
        self.audio_va = nn.Linear(DA, 4)
        self.text_vat = nn.Linear(DT, 3)

    def forward(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        video_va = self.video_va(batch["video"])
        return {
            "video_va": video_va,
            "video_vat": self.va_vat(torch.relu(video_va)),
            "audio_va": self.audio_va(batch["audio"]),
            "text_vat": self.text_vat(batch["text"]),
            "text_mask": batch["text_mask"],
            "has_text": batch["has_text"],
        }


def _model() -> _TinyFac:
    torch.manual_seed(0)
    return _TinyFac().double()


def _global_batch() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mask = torch.rand(N, K, generator=g) < 0.7
    mask[:, 0] = True
    return {
        "video": torch.randn(N, DV, generator=g, dtype=torch.float64),
        "audio": torch.randn(N, DA, generator=g, dtype=torch.float64),
        "text": torch.randn(N, K, DT, generator=g, dtype=torch.float64),
        "text_mask": mask,
        # Rank 1's half (rows 3-5) is mostly text-less: AudioSet clips mixed into the batch.
        "has_text": torch.tensor([True, True, False, True, False, False]),
    }


def _leaves(batch: dict[str, torch.Tensor], rows: slice) -> dict[str, torch.Tensor]:
    return {k: v[rows].clone().requires_grad_(v.is_floating_point()) for k, v in batch.items()}


LOSS = {"temperature": 0.1, "lambda_va": 1.0, "lambda_vt": 0.5}
# Two budgets, because starting is slow and running is not. Each rank is a fresh interpreter that imports torch
# (a few seconds on an idle machine, close to a minute on a loaded 2-core one): joining the group may take up to
# STARTUP_S, also the gloo rendezvous's timeout, since one rank can arrive long after the other. The run itself
# takes a second or two; RUN_S, counted from when both ranks have joined, turns a hang into a failure. (A single
# 60 s deadline from the spawn made the test fail on a busy machine while nothing was wrong.)
STARTUP_S = 600.0
RUN_S = 60.0


def _worker(rank_: int, store: str, out_dir: str) -> None:
    dist.init_process_group(
        "gloo",
        init_method=f"file://{store}",
        rank=rank_,
        world_size=WORLD,
        timeout=datetime.timedelta(seconds=STARTUP_S),
    )
    (Path(out_dir) / f"joined{rank_}").touch()
    try:
        torch.set_num_threads(1)
        result: dict = {"rank": rank(), "world_size": world_size(), "is_distributed": is_distributed()}
        b = N // WORLD
        rows = slice(rank_ * b, (rank_ + 1) * b)

        # A DDP-wrapped model: loss values, averaged parameter gradients, gradients on the local inputs.
        ddp = DistributedDataParallel(_model())
        inputs = _leaves(_global_batch(), rows)
        losses = MMVLoss(gather=True, **LOSS)(ddp(inputs))
        losses["loss"].backward()
        result["losses"] = {k: v.detach() for k, v in losses.items()}
        result["param_grads"] = {n: p.grad.clone() for n, p in ddp.module.named_parameters()}
        result["input_grads"] = {k: v.grad for k, v in inputs.items() if v.requires_grad}

        # The gather on leaf tensors: rank order, and the backward's sum over ranks.
        x = torch.full((2, 3), float(rank_ + 1), dtype=torch.float64, requires_grad=True)
        gathered = all_gather_with_grad(x)
        result["gathered"] = gathered.detach()
        (gathered * torch.arange(1.0, 5.0, dtype=torch.float64)[:, None]).sum().backward()
        result["leaf_grad"] = x.grad
        result["mask_gathered"] = all_gather_no_grad(torch.tensor([rank_ == 0, True]))
        text = inputs["text"].detach().clone().requires_grad_()
        video = inputs["text"].detach()[:, 0].flip(-1).requires_grad_()
        mil = mil_nce_loss(video, text, inputs["text_mask"], gather=True)
        mil.backward()
        result["mil"] = (mil.detach(), video.grad, text.grad)

        # Unequal local batches: a clear error on every rank, not a hang or a garbled gather.
        try:
            all_gather_with_grad(torch.zeros(rank_ + 1, 2))
        except ValueError as err:
            result["uneven_error"] = str(err)
        torch.save(result, Path(out_dir) / f"rank{rank_}.pt")
        # Both ranks leave together: a rank that tears the group down while the other still has gloo traffic in
        # flight can abort it ("terminate called without an active exception", seen once on CI).
        dist.barrier()
    finally:
        dist.destroy_process_group()


def _spawn(tmp_path: Path) -> list[dict]:
    """Runs :func:`_worker` on WORLD ranks: STARTUP_S to join the group, then RUN_S to finish."""
    ctx = mp.spawn(_worker, args=(str(tmp_path / "store"), str(tmp_path)), nprocs=WORLD, join=False)
    joined = [tmp_path / f"joined{r}" for r in range(WORLD)]
    stage, end = f"join the process group within {STARTUP_S} s", time.monotonic() + STARTUP_S
    running = False
    while not ctx.join(timeout=1.0):
        if not running and all(p.exists() for p in joined):
            running, stage, end = True, f"finish within {RUN_S} s of joining the group", time.monotonic() + RUN_S
        if time.monotonic() > end:
            for p in ctx.processes:
                p.kill()
            pytest.fail(f"the {WORLD}-process run did not {stage}")
    return [torch.load(tmp_path / f"rank{r}.pt") for r in range(WORLD)]


@pytest.mark.skipif(not dist.is_available() or not dist.is_gloo_available(), reason="needs torch.distributed gloo")
def test_two_process_gather_matches_single_process(tmp_path: Path) -> None:
    results = _spawn(tmp_path)

    # The single-process reference on the concatenated batch (no process group here: gather is the identity).
    model = _model()
    batch = _leaves(_global_batch(), slice(None))
    ref = MMVLoss(gather=True, **LOSS)(model(batch))
    ref["loss"].backward()
    b = N // WORLD

    for r, res in enumerate(results):
        assert (res["rank"], res["world_size"], res["is_distributed"]) == (r, WORLD, True)
        # (a) every rank's loss terms equal the single-process ones.
        assert set(res["losses"]) == {"va_loss", "vt_loss", "loss"}
        for key, value in res["losses"].items():
            torch.testing.assert_close(value, ref[key].detach(), rtol=0, atol=1e-6)
        # (b) DDP-averaged parameter gradients equal the single-process gradients: no correction factor.
        for name, p in model.named_parameters():
            torch.testing.assert_close(res["param_grads"][name], p.grad, rtol=0, atol=1e-6)
        # (c) DDP does not average input gradients: the local slice carries W x the single-process gradient
        # (the W that DDP's 1/W average cancels in the parameter gradients).
        rows = slice(r * b, (r + 1) * b)
        for key, grad in res["input_grads"].items():
            torch.testing.assert_close(grad / WORLD, batch[key].grad[rows], rtol=0, atol=1e-6)

        # Leaf tensors: rank order, and d/dx of Σ_rows c_row * gathered_row summed over both ranks' losses.
        expected = torch.cat([torch.full((2, 3), 1.0), torch.full((2, 3), 2.0)]).double()
        torch.testing.assert_close(res["gathered"], expected)
        coef = torch.arange(1.0, 5.0, dtype=torch.float64)[2 * r : 2 * r + 2, None].expand(2, 3)
        torch.testing.assert_close(res["leaf_grad"], WORLD * coef)
        assert res["mask_gathered"].tolist() == [True, True, False, True]
        # mil_nce_loss(gather=True) on leaves: same value, W x the slice of the single-process gradient.
        text = batch["text"].detach().clone().requires_grad_()
        video = batch["text"].detach()[:, 0].flip(-1).requires_grad_()
        mil = mil_nce_loss(video, text, batch["text_mask"])
        mil.backward()
        torch.testing.assert_close(res["mil"][0], mil.detach(), rtol=0, atol=1e-12)
        torch.testing.assert_close(res["mil"][1] / WORLD, video.grad[rows], rtol=0, atol=1e-12)
        torch.testing.assert_close(res["mil"][2] / WORLD, text.grad[rows], rtol=0, atol=1e-12)

        assert "same shape" in res["uneven_error"] and "[(1, 2), (2, 2)]" in res["uneven_error"]
