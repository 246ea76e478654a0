"""Embedding graphs: parameter sharing and gradient routing are what each graph says."""

from __future__ import annotations

import pytest
import torch

from mmv.factory import create_model

EQUAL_DIMS = {
    "heads": {"video_va": {"dim": 32}, "audio_va": {"dim": 32}, "va_vat": {"dim": 32}, "text_vat": {"dim": 32}}
}


def _batch(model, b=4, k=3):
    cfg = model.config
    g = torch.Generator().manual_seed(0)
    return {
        "video": torch.rand(b, cfg.video.num_frames, cfg.video.frame_size, cfg.video.frame_size, 3, generator=g),
        "audio": torch.rand(b, cfg.audio.num_samples, generator=g) * 2 - 1,
        "text": torch.randint(2, cfg.text.vocab_size, (b, k, cfg.text.max_words), generator=g),
    }


def _small(graph, **kw):
    torch.manual_seed(0)
    return create_model("tiny_fac", graph=graph, video={"num_frames": 4, "frame_size": 32}, **EQUAL_DIMS, **kw)


def test_shared_graph_has_one_head_per_modality():
    model = _small("shared")
    assert sorted(model.heads) == ["audio_va", "text_vat", "video_va"]
    out = model.eval()(_batch(model))
    assert out["video_va"] is out["video_vat"]  # one space: the same embedding serves both pairings
    assert out["audio_va"] is out["audio_vat"]
    assert out["text_va"] is out["text_vat"]
    assert not hasattr(model, "fac_activation")


def test_shared_graph_needs_equal_dims():
    with pytest.raises(ValueError, match="MMVConfig.heads: the shared graph"):
        create_model("tiny_fac", graph="shared")


def test_disjoint_graph_has_separate_heads():
    model = _small("disjoint")
    assert sorted(model.heads) == ["audio_va", "text_vat", "va_vat", "video_va"]
    assert model.heads["va_vat"].in_dim == model.video.output_dim  # reads f_v, not S_va
    out = model.eval()(_batch(model))
    assert not torch.allclose(out["video_va"], out["video_vat"])
    assert "audio_vat" not in out and "text_va" not in out  # audio and text cannot be compared
    model_at = _small("disjoint", use_audio_text=True).eval()
    out = model_at(_batch(model_at))
    assert out["audio_at"].shape == out["text_at"].shape[:1] + out["text_at"].shape[2:]


@pytest.mark.parametrize("graph", ["fac", "fac_relu", "fac_bnrelu"])
def test_fac_routes_video_through_va_to_vat(graph):
    model = _small(graph).eval()
    batch = _batch(model)
    v = model.encode_video(batch["video"])
    act = model.fac_activation
    assert torch.allclose(v["vat"], model.heads["va_vat"](act(v["va"])))
    a = model.encode_audio(batch["audio"])  # eval: audio reaches S_vat through the video's va->vat head
    assert torch.allclose(a["vat"], model.heads["va_vat"](act(a["va"])))
    assert model.heads["va_vat"].in_dim == model.config.heads["video_va"].dim


def test_fac_audio_skips_vat_in_training_unless_configured():
    model = _small("fac_relu").train()
    batch = _batch(model)
    assert "vat" not in model.encode_audio(batch["audio"])
    trained = _small("fac_relu", use_audio_text=True).train()
    assert "vat" in trained.encode_audio(batch["audio"])


@pytest.mark.parametrize("graph, reaches", [("fac_relu", True), ("fac", True), ("disjoint", False)])
def test_text_loss_gradient_reaches_video_va_head_only_in_fac(graph, reaches):
    model = _small(graph).train()
    out = model(_batch(model))
    (out["video_vat"][:, None] * out["text_vat"]).sum().backward()  # a video-text-only objective
    grads = [p.grad for p in model.heads["video_va"].parameters()]
    if reaches:
        assert all(g is not None and g.abs().sum() > 0 for g in grads)
    else:
        assert all(g is None for g in grads)
    assert all(p.grad is None for p in model.heads["audio_va"].parameters())
    assert all(p.grad is None for p in model.audio.parameters())


def test_video_audio_only_model():
    torch.manual_seed(0)
    model = create_model("tiny_fac", modalities=["video", "audio"], video={"num_frames": 4, "frame_size": 32})
    assert sorted(model.heads) == ["audio_va", "video_va"]
    batch = _batch(model)
    del batch["text"]
    out = model.train()(batch)
    assert sorted(k for k in out if not k.endswith("_repr")) == ["audio_va", "video_va"]
    assert out["video_va"].shape == out["audio_va"].shape == (4, 128)


def test_forward_masks_and_uint8_video():
    model = _small("fac_relu").eval()
    batch = _batch(model)
    batch["has_text"] = torch.tensor([True, False, True, True])
    batch["text_mask"] = torch.tensor([[1, 1, 0]] * 4, dtype=torch.bool)
    out = model(batch)
    assert out["text_mask"].tolist() == [[True, True, False], [False, False, False]] + [[True, True, False]] * 2
    assert out["has_text"].tolist() == [True, False, True, True]
    assert out["text_vat"].shape == (4, 3, 32)
    as_uint8 = (batch["video"] * 255).round().to(torch.uint8)
    assert torch.allclose(
        model.encode_video(as_uint8)["repr"], model.encode_video(as_uint8.float() / 255)["repr"], atol=1e-6
    )
