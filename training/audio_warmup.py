"""A curriculum stage before MMV training: the audio tower learns what sounds differ by, from audio alone.

**Why.** In MMV training the audio tower only ever meets the video: it learns a sound's timbre as fast as the
video network learns the shape that timbre stands for, and the video network learns shape only as fast as
its partners (text and audio) separate shapes. Each waits for the other. A self-supervised signal that needs
no partner breaks the wait: *instance discrimination* on audio (two views of each clip's sound must match each
other and not the other clips' sounds, SimCLR's NT-Xent) learns the features that tell sounds apart: timbre,
pitch, rhythm, loudness, whatever distractor is mixed in. No labels and no other modality are used. When MMV
training starts, the audio embeddings already differ by timbre, so every clip's sound (all clips have one, unlike
narration) asks the video network for shape from the first step.

**Views** (:func:`audio_views`), from the training batch's own 2-s windows ``[B, S]``: a random crop of
``crop`` (0.75) of the window placed at a random offset in silence (a time shift and a shorter context), a gain
of +-``gain_db`` dB and white noise ``snr_db`` (15-35 dB) below the view's RMS. Pitch is never shifted: pitch is
what a colour sounds like, and shifting it would teach the tower to ignore it.

**Loss** (:func:`nt_xent`): the two views' embeddings through a small projection MLP (dropped afterwards, as in
SimCLR), L2-normalised, cosine / ``temperature``; each view's positive is the other view of its clip, the other
``2B - 2`` views are negatives, averaged over the ``2B`` views.

The stage runs once, before step 1 of a fresh run (``train.audio_warmup_steps``), with its own Adam at
``optim.lr`` and a linear warm-up of ``optim.warmup_steps``; the audio front end has no weights. A run resumed
from a checkpoint has it in its weights already. Only the audio network's parameters and BatchNorm statistics
change; the projection is discarded.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mmv.models.mmv import MMV


@dataclass(frozen=True)
class ViewOptions:
    """How the two views of a clip's audio differ (module docstring)."""

    crop: float = 0.75
    gain_db: float = 6.0
    snr_db: tuple[float, float] = (15.0, 35.0)


def audio_views(audio: torch.Tensor, gen: torch.Generator, options: ViewOptions = ViewOptions()) -> torch.Tensor:
    """One augmented view of each waveform.

    Args:
        audio: ``[B, S]`` waveforms in [-1, 1].
        gen: the random generator (views differ by the draws).
        options: crop, gain and noise.

    Returns:
        ``[B, S]``: for each row a crop of ``round(crop * S)`` samples from a random start, written at a random
        offset into silence, scaled by a random gain and with white noise at a random SNR.
    """
    b, s = audio.shape
    n = max(1, round(options.crop * s))
    src = torch.randint(0, s - n + 1, (b,), generator=gen)
    dst = torch.randint(0, s - n + 1, (b,), generator=gen)
    idx = torch.arange(n)
    crops = audio.gather(1, src[:, None] + idx[None])  # [B, n]
    out = torch.zeros_like(audio)
    out.scatter_(1, dst[:, None] + idx[None], crops)
    gain = 10.0 ** ((torch.rand(b, 1, generator=gen) * 2 - 1) * options.gain_db / 20.0)
    out = out * gain
    lo, hi = options.snr_db
    snr = lo + (hi - lo) * torch.rand(b, 1, generator=gen)
    rms = out.pow(2).mean(1, keepdim=True).sqrt()
    noise = torch.randn(b, s, generator=gen) * rms * 10.0 ** (-snr / 20.0)
    return (out + noise).clamp_(-1.0, 1.0)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """SimCLR's loss: ``z1[i]`` and ``z2[i]`` are positives, every other view a negative.

    Args:
        z1, z2: ``[B, D]`` embeddings of the two views (any norm: they are L2-normalised here).
        temperature: the softmax temperature of the cosine similarities.

    Returns:
        The mean over the ``2B`` views of ``-log softmax`` of the positive among the other ``2B - 1`` views.
    """
    z = F.normalize(torch.cat([z1, z2]), dim=1)  # [2B, D]
    b = z1.shape[0]
    sim = z @ z.T / temperature
    sim.fill_diagonal_(float("-inf"))  # a view is not its own candidate
    target = torch.cat([torch.arange(b, 2 * b), torch.arange(0, b)]).to(z.device)
    return F.cross_entropy(sim, target)


class Projection(nn.Module):
    """SimCLR's projection head: Linear -> BatchNorm -> ReLU -> Linear (``[B, d_in] -> [B, dim]``)."""

    def __init__(self, d_in: int, dim: int = 64) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d_in, d_in), nn.BatchNorm1d(d_in), nn.ReLU(), nn.Linear(d_in, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def warm_up_audio(
    model: MMV,
    batches: Iterator[dict[str, Any]],
    steps: int,
    lr: float,
    warmup_steps: int = 0,
    temperature: float = 0.1,
    seed: int = 0,
    device: torch.device | str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
) -> list[float]:
    """Trains ``model.audio`` by instance discrimination for ``steps`` steps (module docstring).

    Args:
        model: the (plain, not DDP-wrapped) MMV model with an audio tower; its train/eval mode is restored.
        batches: training batches with ``audio`` ``[B, S]`` (the MMV loader's); ``steps`` of them are taken.
        steps: optimizer steps.
        lr: Adam's learning rate after the warm-up.
        warmup_steps: linear warm-up of the rate.
        temperature: of :func:`nt_xent`.
        seed: the views' random generator.
        device: where the audio runs.
        on_step: called with ``(step, loss)`` after each step (progress, logs).

    Returns:
        The loss of each step.
    """
    if "audio" not in model.modalities:
        raise ValueError("audio warm-up: the model has no audio tower")
    device = torch.device(device)
    head = Projection(model.audio.output_dim).to(device)
    frozen = [p for p in model.audio.parameters() if not p.requires_grad]
    model.audio.requires_grad_(True)  # a tower kept fixed in MMV training (train.audio_warmup_freeze) learns here
    params = list(model.audio.parameters()) + list(head.parameters())
    optimizer = torch.optim.Adam(params, lr=lr)
    gen = torch.Generator().manual_seed(seed)
    was_training = model.training
    model.train()
    losses: list[float] = []
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * min(1.0, step / warmup_steps) if warmup_steps > 0 else lr
        audio = next(batches)["audio"].float()
        views = torch.cat([audio_views(audio, gen), audio_views(audio, gen)]).to(device)  # [2B, S]
        z = head(model.audio(model.audio_frontend(views)))  # [2B, dim]
        z1, z2 = z.chunk(2)
        loss = nt_xent(z1, z2, temperature)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise FloatingPointError(f"audio warm-up: the loss is {value} at step {step}")
        losses.append(value)
        if on_step is not None:
            on_step(step, value)
    model.train(was_training)
    for p in frozen:
        p.requires_grad_(False)
        p.grad = None
    return losses
