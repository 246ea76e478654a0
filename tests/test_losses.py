"""NCE / MIL-NCE against a loop-based reference, the analytic limit, symmetry, masking, dtypes and MMVLoss."""

from __future__ import annotations

import math

import pytest
import torch

from mmv.losses import MMVLoss, mil_nce_loss, nce_loss


def _lse(xs: list[torch.Tensor]) -> torch.Tensor:
    """log Σ exp over a Python list of scalar tensors, written out (no torch.logsumexp)."""
    m = max(float(x.detach()) for x in xs)
    return m + torch.log(sum(torch.exp(x - m) for x in xs))


def naive_mil_nce(
    video: torch.Tensor,
    text: torch.Tensor,
    mask: torch.Tensor,
    tau: float,
    normalize: bool = True,
    duplicate_positives: bool = False,
) -> torch.Tensor:
    """MIL-NCE with explicit loops over i, j, k (masked entries simply skipped).

    The denominator is every pair of row i and column i, each once; with ``duplicate_positives`` the column
    keeps the diagonal too, as the reference code's concatenation does.
    """
    b, k_max, _ = text.shape
    has = [bool(mask[i].any()) for i in range(b)]

    def z(x: torch.Tensor) -> torch.Tensor:
        return x / torch.sqrt(torch.dot(x, x)) if normalize else x

    def s(i: int, j: int, k: int) -> torch.Tensor:  # video i against narration k of clip j
        return torch.dot(z(video[i]), z(text[j, k])) / tau

    terms = []
    for i in range(b):
        if not has[i]:
            continue
        pos = [s(i, i, k) for k in range(k_max) if mask[i, k]]
        row = [s(i, j, k) for j in range(b) for k in range(k_max) if mask[j, k]]
        col = [
            s(j, i, k)
            for j in range(b)
            if has[j] and (j != i or duplicate_positives)
            for k in range(k_max)
            if mask[i, k]
        ]
        terms.append(_lse(row + col) - _lse(pos))
    return sum(terms) / len(terms)


def _random_case(b: int, k: int, d: int, masked: bool, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    video = torch.randn(b, d, generator=g, dtype=torch.float64)
    text = torch.randn(b, k, d, generator=g, dtype=torch.float64)
    mask = torch.ones(b, k, dtype=torch.bool)
    if masked:
        mask = torch.rand(b, k, generator=g) < 0.6
        mask[0, 0] = True  # at least one clip with text
        if b > 2:
            mask[-1] = False  # and one without any (an AudioSet clip)
    return video.requires_grad_(), text.requires_grad_(), mask


def _grads(loss: torch.Tensor, *inputs: torch.Tensor) -> tuple[torch.Tensor, ...]:
    return torch.autograd.grad(loss, inputs, allow_unused=True, materialize_grads=True)


@pytest.mark.parametrize("dup", [False, True], ids=["once", "duplicated"])
@pytest.mark.parametrize("masked", [False, True], ids=["full", "masked"])
@pytest.mark.parametrize(("b", "k"), [(1, 1), (2, 3), (4, 1), (5, 4)])
def test_matches_naive_reference(b: int, k: int, masked: bool, dup: bool) -> None:
    video, text, mask = _random_case(b, k, d=6, masked=masked, seed=10 * b + k)
    tau = 0.07
    ours = mil_nce_loss(video, text, mask if masked else None, temperature=tau, duplicate_positives=dup)
    ref = naive_mil_nce(video, text, mask, tau, duplicate_positives=dup)
    assert ours.dtype == torch.float64 and ours.shape == ()
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, video, text), _grads(ref, video, text)):
        torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-10)


@pytest.mark.parametrize("tau", [1.0, 0.2])
def test_unnormalised_matches_naive_reference(tau: float) -> None:
    video, text, mask = _random_case(4, 3, d=5, masked=True, seed=3)
    ours = mil_nce_loss(video * 0.3, text * 0.3, mask, temperature=tau, normalize=False)
    ref = naive_mil_nce(video * 0.3, text * 0.3, mask, tau, normalize=False)
    torch.testing.assert_close(ours, ref, rtol=0, atol=1e-10)
    for g_ours, g_ref in zip(_grads(ours, video, text), _grads(ref, video, text)):
        torch.testing.assert_close(g_ours, g_ref, rtol=0, atol=1e-10)


def test_k1_equals_nce_and_nce_is_symmetric() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(6, 8, generator=g, dtype=torch.float64), torch.randn(6, 8, generator=g, dtype=torch.float64)
    mask = torch.tensor([True, True, False, True, False, True])
    for m in (None, mask):
        nce = nce_loss(a, b, temperature=0.1, mask=m)
        mil = mil_nce_loss(a, b[:, None], None if m is None else m[:, None], temperature=0.1)
        torch.testing.assert_close(nce, mil, rtol=0, atol=0)
        torch.testing.assert_close(nce, nce_loss(b, a, temperature=0.1, mask=m), rtol=0, atol=1e-12)


@pytest.mark.parametrize("dup", [False, True], ids=["once", "duplicated"])
def test_aligned_orthogonal_embeddings_reach_the_analytic_limit(dup: bool) -> None:
    """S[i,i,:] = 1/τ, 0 elsewhere: loss_i = log(c + e^{-1/τ} (Σ_{j≠i} K_j / K_i + B - 1)) -> log c.

    c = 1 when each pair counts once (the loss tends to 0), c = 2 with duplicated positives (floor log 2).
    """
    c = 2.0 if dup else 1.0
    b, k = 4, 3
    video = torch.eye(b, 6, dtype=torch.float64)
    text = video[:, None, :].expand(b, k, 6).clone()  # every narration equals its clip's video
    mask = torch.tensor([[1, 1, 1], [1, 0, 0], [1, 1, 0], [0, 1, 1]], dtype=torch.bool)
    counts = mask.sum(1).double()
    previous = math.inf
    for tau in [1.0, 0.5, 0.2, 0.1, 0.07, 0.03, 0.01]:
        loss = mil_nce_loss(video, text, mask, temperature=tau, duplicate_positives=dup)
        others = counts.sum() - counts
        expected = torch.log(c + math.exp(-1 / tau) * (others / counts + b - 1)).mean()
        torch.testing.assert_close(loss, expected, rtol=0, atol=1e-12)
        assert loss < previous
        previous = loss.item()
    assert previous == pytest.approx(math.log(c), abs=1e-12)  # e^{-100} is far below float64 resolution
    # NCE (K = 1): log(c + 2 (B - 1) e^{-1/τ}).
    for tau in [0.5, 0.07]:
        loss = nce_loss(video, video.clone(), temperature=tau, duplicate_positives=dup)
        assert loss.item() == pytest.approx(math.log(c + 2 * (b - 1) * math.exp(-1 / tau)), abs=1e-12)


def test_masked_samples_contribute_nothing() -> None:
    video, text, mask = _random_case(6, 3, d=5, masked=False, seed=7)
    mask = mask.clone()
    mask[1] = False  # clip 1 has no text at all
    mask[4] = False
    mask[2, 1] = False  # one padded narration
    with torch.no_grad():
        text[1] = float("nan")  # garbage in padding must not leak into the loss or the gradients
        text[2, 1] = float("inf")
    loss = mil_nce_loss(video, text, mask)
    gv, gt = _grads(loss, video, text)
    assert torch.isfinite(loss)
    for i in (1, 4):
        assert torch.equal(gv[i], torch.zeros_like(gv[i]))
        assert torch.equal(gt[i], torch.zeros_like(gt[i]))
    assert torch.equal(gt[2, 1], torch.zeros_like(gt[2, 1]))
    assert bool(torch.isfinite(gv).all() and torch.isfinite(gt).all())

    keep = torch.tensor([0, 2, 3, 5])
    text_clean = text.detach().clone()
    text_clean[2, 1] = 0.0
    removed = mil_nce_loss(video.detach()[keep], text_clean[keep], mask[keep])
    torch.testing.assert_close(loss.detach(), removed, rtol=0, atol=1e-12)
    # A narration masked in every bag is the same as that candidate not existing.
    all_k1 = mask.clone()
    all_k1[:, 1] = False
    dropped = mil_nce_loss(video.detach(), text_clean[:, [0, 2]], all_k1[:, [0, 2]])
    torch.testing.assert_close(mil_nce_loss(video.detach(), text_clean, all_k1), dropped, rtol=0, atol=1e-12)
    # NCE's mask removes whole pairs.
    a, b_ = video.detach(), text_clean[:, 0]
    pair_mask = torch.tensor([True, False, True, True, False, True])
    torch.testing.assert_close(nce_loss(a, b_, mask=pair_mask), nce_loss(a[keep], b_[keep]), rtol=0, atol=1e-12)


def test_no_valid_clip_gives_connected_zero() -> None:
    video, text, _ = _random_case(3, 2, d=4, masked=False, seed=1)
    loss = mil_nce_loss(video, text, torch.zeros(3, 2, dtype=torch.bool))
    assert loss.item() == 0.0 and loss.grad_fn is not None
    gv, gt = torch.autograd.grad(loss, (video, text))
    assert torch.equal(gv, torch.zeros_like(gv)) and torch.equal(gt, torch.zeros_like(gt))


def test_dtype_follows_inputs() -> None:
    g = torch.Generator().manual_seed(0)
    v, t = torch.randn(4, 8, generator=g), torch.randn(4, 2, 8, generator=g)
    assert mil_nce_loss(v.double(), t.double()).dtype == torch.float64
    assert mil_nce_loss(v, t).dtype == torch.float32
    ref = mil_nce_loss(v, t)
    # bf16 directly: computed in float32 after the cast, so close to the float32 value of the rounded inputs.
    vb, tb = v.bfloat16().requires_grad_(), t.bfloat16().requires_grad_()
    lb = mil_nce_loss(vb, tb)
    lb.backward()
    assert lb.dtype == torch.float32 and torch.isfinite(lb)
    assert vb.grad.dtype == torch.bfloat16 and bool(torch.isfinite(vb.grad).all() and torch.isfinite(tb.grad).all())
    torch.testing.assert_close(lb, mil_nce_loss(vb.detach().float(), tb.detach().float()), rtol=0, atol=1e-6)
    # Under CPU autocast with float32 leaves.
    v32 = v.clone().requires_grad_()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        la = nce_loss(v32 @ torch.eye(8), t[:, 0] @ torch.eye(8))
    la.backward()
    assert torch.isfinite(la) and bool(torch.isfinite(v32.grad).all())
    assert abs(la.item() - nce_loss(v, t[:, 0]).item()) < 0.1
    assert abs(lb.item() - ref.item()) < 0.1


def test_argument_checks() -> None:
    v, t = torch.randn(3, 4), torch.randn(3, 2, 4)
    with pytest.raises(ValueError, match="temperature"):
        mil_nce_loss(v, t, temperature=0.0)
    with pytest.raises(ValueError, match="pair up"):
        mil_nce_loss(v, t[:2])
    with pytest.raises(ValueError, match="text_mask"):
        mil_nce_loss(v, t, torch.ones(3, 3, dtype=torch.bool))
    with pytest.raises(ValueError, match="no loss term"):
        MMVLoss()({"video_va": v})


def test_gather_is_identity_without_process_group() -> None:
    video, text, mask = _random_case(4, 2, d=5, masked=True, seed=2)
    torch.testing.assert_close(mil_nce_loss(video, text, mask, gather=True), mil_nce_loss(video, text, mask))


def _embeddings(b: int = 5, k: int = 3) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(4)
    return {
        "video_va": torch.randn(b, 6, generator=g),
        "audio_va": torch.randn(b, 6, generator=g),
        "video_vat": torch.randn(b, 4, generator=g),
        "text_vat": torch.randn(b, k, 4, generator=g),
        "audio_vat": torch.randn(b, 4, generator=g),
        "text_mask": torch.rand(b, k, generator=g) < 0.7,
        "has_text": torch.tensor([True, False, True, True, False]),
        "video_repr": torch.randn(b, 9, generator=g),  # extra keys are ignored
    }


def test_mmv_loss_terms_weights_and_keys() -> None:
    emb = _embeddings()
    tau = 0.1
    mask = emb["text_mask"] & emb["has_text"][:, None]
    va = nce_loss(emb["video_va"], emb["audio_va"], temperature=tau)
    vt = mil_nce_loss(emb["video_vat"], emb["text_vat"], mask, temperature=tau)
    at = mil_nce_loss(emb["audio_vat"], emb["text_vat"], mask, temperature=tau)

    out = MMVLoss(temperature=tau, lambda_va=2.0, lambda_vt=0.5)(emb)
    assert set(out) == {"va_loss", "vt_loss", "loss"}  # λ_at = 0: no audio-text term even with audio_vat
    torch.testing.assert_close(out["va_loss"], 2.0 * va)
    torch.testing.assert_close(out["vt_loss"], 0.5 * vt)
    torch.testing.assert_close(out["loss"], 2.0 * va + 0.5 * vt)

    out = MMVLoss(temperature=tau, lambda_at=3.0)(emb)
    assert set(out) == {"va_loss", "vt_loss", "at_loss", "loss"}
    torch.testing.assert_close(out["at_loss"], 3.0 * at)
    torch.testing.assert_close(out["loss"], va + vt + 3.0 * at)

    audioset_only = {k: emb[k] for k in ("video_va", "audio_va")}
    out = MMVLoss(temperature=tau)(audioset_only)
    assert set(out) == {"va_loss", "loss"}
    torch.testing.assert_close(out["loss"], va)

    no_masks = {k: emb[k] for k in ("video_vat", "text_vat")}
    out = MMVLoss(temperature=tau)(no_masks)
    assert set(out) == {"vt_loss", "loss"}
    torch.testing.assert_close(out["vt_loss"], mil_nce_loss(emb["video_vat"], emb["text_vat"], temperature=tau))


def test_mmv_loss_default_temperature_and_gradients_reach_every_input() -> None:
    emb = {k: v.requires_grad_() if v.is_floating_point() else v for k, v in _embeddings().items()}
    loss = MMVLoss()(emb)["loss"]
    torch.testing.assert_close(
        loss,
        nce_loss(emb["video_va"], emb["audio_va"])
        + mil_nce_loss(
            emb["video_vat"], emb["text_vat"], emb["text_mask"] & emb["has_text"][:, None], temperature=0.07
        ),
    )
    loss.backward()
    for key in ("video_va", "audio_va", "video_vat", "text_vat"):
        assert emb[key].grad is not None and emb[key].grad.abs().sum() > 0
    # Clips without text get no video-text gradient.
    assert torch.equal(emb["video_vat"].grad[~emb["has_text"]], torch.zeros(2, 4))
