"""One optimizer step: precision, the optimizer and its schedule, accumulation, clipping.

Precision is one string (``fp32``, ``bf16``, ``fp16``): bf16 and fp16 run the forward under autocast; only
fp16 needs a ``GradScaler``, which is built for every precision with ``enabled=fp16`` so the step has no
branches (a disabled scaler passes ``backward``/``step`` straight through). Gradients are unscaled before
clipping. The losses themselves compute in float32 (:mod:`mmv.losses` upcasts the B x B x K scores).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from mmv.data.transforms import ColorAugment
from training.config import Config

MODEL_KEYS = ("video", "audio", "text", "text_mask", "has_text")

# ---------------------------------------------------------------------------------------------------
# Precision
# ---------------------------------------------------------------------------------------------------


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """Autocast to bf16/fp16 on ``device`` (a no-op context for fp32)."""
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """A loss scaler, enabled for fp16 only (bf16 has fp32's exponent range and needs none)."""
    return torch.amp.GradScaler(device.type, enabled=precision == "fp16")


# ---------------------------------------------------------------------------------------------------
# Optimizer and schedule
# ---------------------------------------------------------------------------------------------------


def param_groups(model: nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    """Two groups of trainable parameters: matrices and conv kernels (``dim >= 2``) decay, biases and
    BatchNorm scales/offsets (``dim < 2``) do not. Frozen parameters (word vectors) are left out."""
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, cfg: Config, device: torch.device) -> torch.optim.Optimizer:
    """AdamW (decoupled decay; plain Adam when ``optim.weight_decay`` is 0, the default), fused on CUDA."""
    o = cfg.optim
    kwargs: dict[str, Any] = {"fused": True} if device.type == "cuda" else {}
    return torch.optim.AdamW(
        param_groups(model, o.weight_decay), lr=o.lr, betas=(o.betas[0], o.betas[1]), eps=o.eps, **kwargs
    )


class WarmupCosine:
    """Learning-rate factor: linear warm-up, then a half-period cosine from 1 down to ``final``.

    Called by ``LambdaLR`` with the number of optimizer steps already taken ``n``; update ``n + 1`` uses::

        s = n + 1
        s <= warmup:  s / warmup
        s >  warmup:  final + (1 - final) * (1 + cos(pi * (s - warmup) / (total - warmup))) / 2

    so the first update has lr ``peak / warmup`` and the last one (``s = total``) lr ``final * peak`` (0 by
    default, as in the spec). A plain object, so ``LambdaLR.state_dict()`` stores its numbers and nothing else.
    """

    def __init__(self, warmup_steps: int, total_steps: int, final: float = 0.0) -> None:
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.final = float(final)

    def __call__(self, n: int) -> float:
        s = n + 1
        if s <= self.warmup_steps:
            return s / self.warmup_steps
        span = max(1, self.total_steps - self.warmup_steps)
        progress = min(1.0, (s - self.warmup_steps) / span)
        return self.final + (1.0 - self.final) * 0.5 * (1.0 + math.cos(math.pi * progress))


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: Config) -> torch.optim.lr_scheduler.LambdaLR:
    fn = WarmupCosine(cfg.optim.warmup_steps, cfg.train.steps, cfg.optim.final_lr_fraction)
    return torch.optim.lr_scheduler.LambdaLR(optimizer, fn)


# ---------------------------------------------------------------------------------------------------
# Model preparation
# ---------------------------------------------------------------------------------------------------


def set_conv_memory_format(model: nn.Module, channels_last: bool = True) -> nn.Module:
    """Conv kernels in channels-last memory (``channels_last`` for 2-D convs, ``channels_last_3d`` for 3-D),
    or back to the default layout with ``channels_last=False`` (safetensors saves contiguous tensors only).

    The towers take channels-last clips ``[B, T, H, W, 3]`` and permute them to ``[B, C, T, H, W]`` views,
    whose memory already is channels-last, so channels-last kernels let cuDNN skip the layout conversions.
    (``model.to(memory_format=...)`` cannot do it: it applies one format to 4-D and 5-D tensors alike.)
    """
    for module in model.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            fmt = torch.channels_last if isinstance(module, nn.Conv2d) else torch.channels_last_3d
            fmt = fmt if channels_last else torch.contiguous_format
            module.weight.data = module.weight.data.contiguous(memory_format=fmt)
    return model


def model_inputs(batch: dict[str, Any], device: torch.device, keep: int | None = None) -> dict[str, torch.Tensor]:
    """The model's inputs moved to ``device`` (``non_blocking`` from pinned memory), first ``keep`` clips.

    The video stays uint8 on the way (4x less to copy); the model converts it to float in [0, 1]. When the
    loader drew colour parameters instead of applying them (``data.color_on_device``), they are applied here,
    batched on the device, in float32 outside autocast.
    """
    out = {}
    for key in (*MODEL_KEYS, "color_params"):
        if key in batch:
            value = batch[key] if keep is None else batch[key][:keep]
            out[key] = value.to(device, non_blocking=True)
    params = out.pop("color_params", None)
    if params is not None and "video" in out:
        out["video"] = ColorAugment()(out["video"].float().div_(255.0), params)
    return out


# ---------------------------------------------------------------------------------------------------
# The step
# ---------------------------------------------------------------------------------------------------


class TrainStep:
    """Forward, loss and backward over ``accum_steps`` micro-batches, then one optimizer update.

    Each micro-batch's loss is divided by the number of micro-batches, so the accumulated gradient is their
    mean. Under DDP the gradient all-reduce runs only on the last micro-batch (``no_sync`` before), while the
    embedding gathers of :mod:`mmv.losses` run on every micro-batch: negatives come from one micro-batch of
    every rank.

    Args:
        model: the module to call (DDP-wrapped and/or compiled).
        raw_model: the plain model (its parameters are clipped).
        criterion: ``emb -> {'*_loss', 'loss'}``.
        optimizer, scheduler, scaler: as built above.
        precision: ``fp32``, ``bf16`` or ``fp16``.
        clip_grad_norm: maximum global gradient norm (0: no clipping).
    """

    def __init__(
        self,
        model: nn.Module,
        raw_model: nn.Module,
        criterion: Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]],
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        scaler: torch.amp.GradScaler,
        precision: str,
        device: torch.device,
        clip_grad_norm: float = 0.0,
    ) -> None:
        self.model, self.raw_model, self.criterion = model, raw_model, criterion
        self.optimizer, self.scheduler, self.scaler = optimizer, scheduler, scaler
        self.precision, self.device = precision, device
        self.clip_grad_norm = clip_grad_norm

    def _no_sync(self, last: bool) -> contextlib.AbstractContextManager:
        if not last and hasattr(self.model, "no_sync"):
            return self.model.no_sync()
        return contextlib.nullcontext()

    def __call__(self, micro_batches: list[dict[str, torch.Tensor]]) -> dict[str, float | torch.Tensor]:
        """One update from ``micro_batches`` (model inputs already on the device).

        Returns:
            The loss terms averaged over the micro-batches (detached tensors: reading them syncs the device,
            so the caller does it only when it logs), ``lr`` (the rate this update used) and ``grad_norm``
            (before clipping; only when clipping).
        """
        n = len(micro_batches)
        totals: dict[str, torch.Tensor] = {}
        for i, inputs in enumerate(micro_batches):
            with self._no_sync(last=i == n - 1):
                with autocast(self.precision, self.device):
                    losses = self.criterion(self.model(inputs))
                self.scaler.scale(losses["loss"] / n).backward()
            for key, value in losses.items():
                totals[key] = totals.get(key, 0.0) + value.detach().float() / n
        out: dict[str, Any] = dict(totals)
        if self.clip_grad_norm > 0:
            self.scaler.unscale_(self.optimizer)
            params = [p for p in self.raw_model.parameters() if p.grad is not None]
            out["grad_norm"] = torch.nn.utils.clip_grad_norm_(params, self.clip_grad_norm)
        out["lr"] = self.optimizer.param_groups[0]["lr"]
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return out
