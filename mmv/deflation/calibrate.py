"""BatchNorm recalibration of a deflated network: learn only the new gamma/beta (spec section 6).

The objective is the paper's: an L1 distance between (a) the deflated network's output on an image and (b) the
original network's output on the *inflated* input, the same image repeated as a static video of T frames.
Only the deflated network's own BatchNorm scales and offsets are learnt; every other weight is the video
network's, frozen.

Choices where the spec is silent (section 6: "which outputs enter the L1, the data, the optimiser and steps,
and the number of frames are not found"):

* **Output**: the pooled backbone representation ``repr`` (``[B, d_v]``, the feature every downstream use of a
  deflated model reads: linear probes on frozen features, and the video heads for S_va / S_vat). ``target='va'``
  or ``'vat'`` matches the head outputs instead (the heads are not recalibrated either way). The L1 is the mean
  absolute difference over the batch and the features.
* **T**: ``config.video.num_frames``, the clip length the model was trained on.
* **BatchNorm**: inference mode with the video network's running statistics, in both networks (an image batch
  has no temporal statistics, and the reference must not depend on the batch).
* **Optimiser**: Adam, ``lr = 1e-2`` decayed to 0 on a cosine, 2000 steps by default (on the demo model 1e-3
  is too slow and 3e-2 unstable: ``docs/deflation.md``), batches drawn without replacement (a fresh seeded
  permutation per pass over the images). The inflated outputs are computed once per image (the video net is
  frozen and there is no augmentation), so a step costs one image-network forward and backward.
* **Reported**: mean cosine between deflated and inflated outputs on *held-out* images, for naive deflation
  (gamma/beta as in the video network) and after recalibration, in ``repr`` and in each embedding space.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from mmv.deflation.networks import deflate, inflate, video_fingerprint
from mmv.embed import eval_mode

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

#: What the L1 can compare: the pooled representation or an embedding of the video heads.
TARGETS = ("repr", "va", "vat")


@dataclass
class CalibrationReport:
    """What :func:`recalibrate` did and measured.

    Attributes:
        steps: optimisation steps run.
        losses: the L1 loss of every step (``[steps]``).
        cosine: ``{'naive' | 'calibrated': {space: mean cosine to the inflated output}}`` on the held-out images
            (empty when none were given); spaces ``repr`` and the model's embedding spaces (``va``, ``vat``).
        info: JSON-serialisable settings and results, stored with the calibrated parameters.
    """

    steps: int
    losses: list[float]
    cosine: dict[str, dict[str, float]] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def _float_images(images: torch.Tensor, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    if images.dtype == torch.uint8:
        return images.to(device).to(dtype).div_(255.0)
    return images.to(device=device, dtype=dtype)


def _check_images(images: torch.Tensor, name: str) -> None:
    if not isinstance(images, torch.Tensor) or images.dim() != 4 or images.shape[-1] != 3 or len(images) == 0:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected a non-empty [N, H, W, 3] tensor of images, got {shape}")


def _outputs(model: MMV, representation: torch.Tensor, spaces: tuple[str, ...]) -> dict[str, torch.Tensor]:
    """``repr`` and the requested head outputs of a representation ``[B, d_v]``."""
    out = {"repr": representation}
    if any(s != "repr" for s in spaces):
        out |= model._video_heads(representation)
    return {s: out[s] for s in spaces if s in out}


@torch.no_grad()
def _embed(
    model: MMV,
    forward: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    spaces: tuple[str, ...],
    batch_size: int,
    progress: str | None = None,
) -> dict[str, torch.Tensor]:
    """``{space: float32 [N, D]}`` (on the CPU) of ``forward`` (images -> representation) over ``images``.

    ``progress``: a tqdm bar with this description (``None``: no bar).
    """
    from tqdm import tqdm

    ref = next(model.video.parameters())
    parts: dict[str, list[torch.Tensor]] = {}
    starts = range(0, len(images), batch_size)
    for i in tqdm(starts, desc=progress, unit="batch", disable=progress is None, dynamic_ncols=True):
        x = _float_images(images[i : i + batch_size], ref.device, ref.dtype)
        for space, value in _outputs(model, forward(x), spaces).items():
            parts.setdefault(space, []).append(value.float().cpu())
    return {space: torch.cat(values) for space, values in parts.items()}


def inflated_outputs(
    model: MMV,
    images: torch.Tensor,
    num_frames: int,
    spaces: tuple[str, ...] = ("repr",),
    batch_size: int = 16,
    progress: bool = False,
) -> dict[str, torch.Tensor]:
    """The reference: each image as a static ``num_frames``-frame video through the video tower (and heads).

    Args:
        model: an :class:`~mmv.models.mmv.MMV` (used in its current mode; call ``model.eval()`` first).
        images: ``[N, H, W, 3]`` uint8 or float in [0, 1].
        progress: show a tqdm bar (the reference costs about T image passes per image).

    Returns:
        ``{space: float32 [N, D]}`` on the CPU.
    """
    bar = f"inflated reference (T={num_frames})" if progress else None
    return _embed(model, lambda x: model.video(inflate(x, num_frames)), images, spaces, batch_size, bar)


def deflated_outputs(
    model: MMV, tower: nn.Module, images: torch.Tensor, spaces: tuple[str, ...] = ("repr",), batch_size: int = 64
) -> dict[str, torch.Tensor]:
    """``{space: float32 [N, D]}`` of a deflated ``tower`` over ``[N, H, W, 3]`` images, then the video heads."""
    return _embed(model, tower, images, spaces, batch_size)


def mean_cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean over rows of the cosine similarity between ``[N, D]`` tensors."""
    return float(F.cosine_similarity(a.double(), b.double(), dim=-1).mean())


@torch.no_grad()
def _spaces(model: MMV) -> tuple[str, ...]:
    """``repr`` and the embedding spaces the model's video heads reach (the model must be in eval mode)."""
    ref = next(model.video.parameters())
    probe = model._video_heads(torch.zeros(1, model.video.output_dim, device=ref.device, dtype=ref.dtype))
    return ("repr", *[s for s in ("va", "vat") if s in probe])


@dataclass(frozen=True)
class CalibrationOptions:
    """How :func:`recalibrate` learns (the defaults are the module docstring's choices).

    Attributes:
        steps: Adam steps (0: no training; the report then holds naive deflation twice).
        lr: Adam learning rate.
        batch_size: images per step.
        num_frames: T of the inflated reference (default ``model.config.video.num_frames``).
        target: ``'repr'`` (default), ``'va'`` or ``'vat'``: which output enters the L1.
        seed: seeds the batch order (the result is deterministic for a seed on a given machine).
        progress: show a tqdm bar with the loss.
    """

    steps: int = 2000
    lr: float = 1e-2
    batch_size: int = 32
    num_frames: int | None = None
    target: str = "repr"
    seed: int = 0
    progress: bool = False

    def __post_init__(self) -> None:
        if self.target not in TARGETS:
            raise ValueError(f"recalibrate: target must be one of {TARGETS}, got {self.target!r}")
        if self.steps < 0 or self.batch_size < 1:
            raise ValueError(
                f"recalibrate: steps must be >= 0 and batch_size >= 1, got {self.steps}, {self.batch_size}"
            )

    def settings(self, num_frames: int) -> dict[str, Any]:
        """The objective and the settings as stored with the result (``num_frames``: T as resolved)."""
        return {
            "objective": f"L1(deflated {self.target}, inflated {self.target})",
            "target": self.target,
            "num_frames": num_frames,
            "steps": self.steps,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "seed": self.seed,
        }


def recalibrate(
    model: MMV,
    images: torch.Tensor,
    options: CalibrationOptions | None = None,
    *,
    held_out: torch.Tensor | None = None,
    attach: bool = True,
    info: dict[str, Any] | None = None,
) -> tuple[nn.Module, CalibrationReport]:
    """Learns the deflated network's BN gamma/beta so that its output on an image matches the inflated one.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with a video tower (run in eval mode here, mode restored after;
            its parameters are frozen during the call and their ``requires_grad`` restored after).
        images: unlabelled training images ``[N, H, W, 3]``, uint8 or float in [0, 1] (on the CPU; moved to the
            model's device a batch at a time).
        options: steps, learning rate, batch size, T, target, seed, progress bar (defaults if None).
        held_out: images ``[M, H, W, 3]`` never trained on, for the cosine report (``None``: no report).
        attach: attach the result to ``model`` (:meth:`~mmv.models.mmv.MMV.set_calibrated_deflation`), so
            ``encode_image`` and ``save_checkpoint`` use it.
        info: extra JSON-serialisable facts to store with the result (the data source, ...).

    Returns:
        ``(tower, report)``: the deflated backbone with learnt gamma/beta (its only parameters) and a
        :class:`CalibrationReport`.

    Raises:
        ValueError: bad images, or a target the model's video heads do not produce.
    """
    o = options or CalibrationOptions()
    _check_images(images, "images")
    if held_out is not None:
        _check_images(held_out, "held_out")
    t = int(o.num_frames or model.config.video.num_frames)
    started = time.perf_counter()
    with eval_mode(model), _frozen(model):
        spaces = _spaces(model)
        if o.target not in spaces:
            raise ValueError(f"recalibrate: this model's video heads have no {o.target!r} output (it has {spaces})")
        tower = deflate(model.video, own_bn=True)
        ref = next(model.video.parameters())
        tower.to(device=ref.device, dtype=ref.dtype)
        cosine: dict[str, dict[str, float]] = {}
        if held_out is not None:
            held_reference = inflated_outputs(model, held_out, t, spaces)
            cosine["naive"] = _held_out_cosine(model, tower, held_out, held_reference)  # the video net's gamma/beta
        losses = _optimise(model, tower, images, t, o)
        if held_out is not None:
            cosine["calibrated"] = _held_out_cosine(model, tower, held_out, held_reference)
    report = CalibrationReport(steps=o.steps, losses=losses, cosine=cosine)
    report.info = {
        **(info or {}),
        **o.settings(t),
        "num_images": len(images),
        "num_held_out": 0 if held_out is None else len(held_out),
        "final_loss": losses[-1] if losses else None,
        "cosine": cosine,
        "seconds": round(time.perf_counter() - started, 2),
        "video_fingerprint": video_fingerprint(model.video),
    }
    if attach:
        model.set_calibrated_deflation(tower, report.info)
    return tower, report


@contextmanager
def _frozen(model: MMV) -> Iterator[None]:
    """Every parameter of ``model`` without ``requires_grad`` inside the block, the flags restored after."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def _held_out_cosine(
    model: MMV, tower: nn.Module, held_out: torch.Tensor, reference: dict[str, torch.Tensor]
) -> dict[str, float]:
    """``{space: mean cosine}`` between ``tower``'s outputs on the held-out images and the inflated reference."""
    spaces = tuple(reference)
    outputs = deflated_outputs(model, tower, held_out, spaces)
    return {s: mean_cosine(outputs[s], reference[s]) for s in spaces}


def _optimise(
    model: MMV, tower: nn.Module, images: torch.Tensor, num_frames: int, o: CalibrationOptions
) -> list[float]:
    """The Adam loop of :func:`recalibrate`; returns the loss of every step."""
    if o.steps == 0:
        return []
    from tqdm import tqdm

    ref = next(model.video.parameters())
    spaces = (o.target,)
    # The reference never changes (frozen video net, no augmentation): compute it once per image.
    reference = inflated_outputs(model, images, num_frames, spaces, progress=o.progress)[o.target]
    params = list(tower.parameters())
    optimizer = torch.optim.Adam(params, lr=o.lr)
    # Cosine decay to 0: a constant rate large enough to move gamma/beta quickly then hovers around the minimum.
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda i: 0.5 * (1 + math.cos(math.pi * i / o.steps)))
    generator = torch.Generator().manual_seed(o.seed)
    order = torch.empty(0, dtype=torch.int64)
    losses: list[float] = []
    bar = tqdm(range(o.steps), desc="recalibrating BN", unit="step", disable=not o.progress, dynamic_ncols=True)
    for _ in bar:
        if len(order) < min(o.batch_size, len(images)):
            order = torch.cat([order, torch.randperm(len(images), generator=generator)])
        idx, order = order[: o.batch_size], order[o.batch_size :]
        x = _float_images(images[idx], ref.device, ref.dtype)
        with torch.enable_grad():
            out = _outputs(model, tower(x), spaces)[o.target]
            loss = (out.float() - reference[idx].to(out.device)).abs().mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(float(loss.detach()))
        bar.set_postfix(l1=f"{losses[-1]:.4g}", refresh=False)
    bar.close()
    return losses
