"""training.audio_warmup: the views, the NT-Xent loss against a naive loop, and the stage on planted sounds."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from mmv.factory import create_model, get_config
from training.audio_warmup import ViewOptions, audio_views, nt_xent, warm_up_audio


def test_a_view_is_a_shifted_crop_with_gain_and_noise() -> None:
    audio = torch.linspace(-0.5, 0.5, 400).repeat(3, 1)  # a ramp: every sample says where it came from
    quiet = ViewOptions(crop=0.5, gain_db=0.0, snr_db=(200.0, 200.0))
    view = audio_views(audio, torch.Generator().manual_seed(0), quiet)
    assert view.shape == (3, 400)
    for row in view:
        nonzero = torch.nonzero(row.abs() > 1e-6).flatten()
        assert len(nonzero) == 200  # the crop, everything else silence
        assert int(nonzero[-1] - nonzero[0]) == 199  # in one piece
        piece = row[nonzero]
        steps = piece[1:] - piece[:-1]
        assert torch.allclose(steps, torch.full_like(steps, 1.0 / 399), atol=1e-5)  # consecutive source samples
    loud = audio_views(audio, torch.Generator().manual_seed(0), ViewOptions(crop=1.0, gain_db=6.0, snr_db=(20, 20)))
    ratio = loud.abs().max(1).values / audio.abs().max(1).values
    assert ((ratio > 10 ** (-6.5 / 20)) & (ratio < 10 ** (6.5 / 20) * 1.2)).all()


def test_nt_xent_matches_a_naive_loop() -> None:
    g = torch.Generator().manual_seed(1)
    z1, z2 = torch.randn(5, 7, generator=g), torch.randn(5, 7, generator=g)
    t = 0.2
    z = [v / v.norm() for v in torch.cat([z1, z2])]
    total = 0.0
    for i in range(10):
        j = (i + 5) % 10
        logits = [float(z[i] @ z[k]) / t for k in range(10) if k != i]
        positive = float(z[i] @ z[j]) / t
        total += -(positive - math.log(sum(math.exp(x) for x in logits)))
    assert float(nt_xent(z1, z2, t)) == pytest.approx(total / 10, rel=1e-5)


def _planted_sounds(n: int, rate: int, samples: int, seed: int) -> tuple[torch.Tensor, np.ndarray]:
    """Half sine tones, half square waves, each at a random pitch: the timbre is the only class."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / rate
    waves, kinds = [], []
    for i in range(n):
        f = rng.uniform(200, 800)
        phase = np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi))
        kind = i % 2
        waves.append(0.5 * (phase if kind == 0 else np.sign(phase)))
        kinds.append(kind)
    return torch.tensor(np.stack(waves), dtype=torch.float32), np.array(kinds)


def test_the_stage_teaches_the_audio_tower_to_tell_sounds_apart_from_audio_alone() -> None:
    torch.manual_seed(0)
    cfg = get_config("tiny_fac", audio={"duration": 0.5, "sample_rate": 8000, "fmax": 3800.0})
    model = create_model(cfg)
    train, _ = _planted_sounds(64, 8000, cfg.audio.num_samples, seed=0)
    held_out, _ = _planted_sounds(40, 8000, cfg.audio.num_samples, seed=1)

    def view_matching() -> float:
        """Held-out sounds: how often a view's nearest other-view (of 40) is its own sound's."""
        model.eval()
        g = torch.Generator().manual_seed(5)
        with torch.no_grad():
            a, b = (
                torch.nn.functional.normalize(model.audio(model.audio_frontend(audio_views(held_out, g))), dim=1)
                for _ in range(2)
            )
        return float(((a @ b.T).argmax(1) == torch.arange(40)).float().mean())

    before = view_matching()
    gen = torch.Generator().manual_seed(0)

    def batches():
        while True:
            yield {"audio": train[torch.randperm(64, generator=gen)[:32]]}

    losses = warm_up_audio(model, batches(), steps=60, lr=3e-3, warmup_steps=5, seed=0)
    assert len(losses) == 60
    assert np.mean(losses[-10:]) < np.mean(losses[:10]) - 0.5
    after = view_matching()
    assert after > before + 0.3  # measured 0.40 -> 0.875 on one thread; no label was used
    assert not model.training  # the mode it was given (eval, by view_matching) is restored
