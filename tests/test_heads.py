"""Projection heads: each mode builds the layers the spec lists, with the released settings."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from mmv.config import HeadConfig, NormConfig
from mmv.factory import create_model
from mmv.models.heads import FacActivation, ProjectionHead


def _layers(head: ProjectionHead) -> list[str]:
    out = []
    for m in head.net:
        if isinstance(m, nn.Linear):
            out.append(f"Linear({m.in_features}->{m.out_features}, bias={m.bias is not None})")
        elif isinstance(m, nn.BatchNorm1d):
            out.append(f"BN({m.num_features})")
        else:
            out.append(type(m).__name__)
    return out


@pytest.mark.parametrize(
    "cfg, expected",
    [
        (HeadConfig("linear", 8, False), ["Linear(16->8, bias=True)"]),
        (HeadConfig("linear", 8, True), ["Linear(16->8, bias=False)", "BN(8)"]),
        (
            HeadConfig("mlp@12", 8, True),
            ["Linear(16->12, bias=True)", "BN(12)", "ReLU", "Linear(12->8, bias=False)", "BN(8)"],
        ),
        (
            HeadConfig("mlp@12@10", 8, False),
            ["Linear(16->12, bias=True)", "BN(12)", "ReLU", "Linear(12->10, bias=True)", "BN(10)", "ReLU"]
            + ["Linear(10->8, bias=True)"],
        ),
        (HeadConfig("mlp_nobn@12", 8, False), ["Linear(16->12, bias=True)", "ReLU", "Linear(12->8, bias=True)"]),
    ],
)
def test_head_modes(cfg, expected):
    head = ProjectionHead(16, cfg, NormConfig())
    assert _layers(head) == expected
    assert head(torch.randn(5, 16)).shape == (5, 8)
    assert head(torch.randn(3, 4, 16)).shape == (3, 4, 8)  # leading dims (B, K) are kept


def test_leading_dims_match_flat_call():
    head = ProjectionHead(16, HeadConfig("mlp@12", 8, True), NormConfig()).eval()
    x = torch.randn(3, 4, 16)
    assert torch.allclose(head(x), head(x.reshape(12, 16)).reshape(3, 4, 8))


def test_released_heads_of_s3d_fac():
    with torch.device("meta"):
        model = create_model("s3d_fac")
    layers = {role: _layers(h) for role, h in model.heads.items()}
    assert layers == {
        "video_va": ["Linear(1024->512, bias=True)", "BN(512)", "ReLU", "Linear(512->512, bias=False)", "BN(512)"],
        "va_vat": ["Linear(512->256, bias=False)", "BN(256)"],
        "audio_va": ["Linear(2048->512, bias=True)"],
        "text_vat": ["Linear(2048->256, bias=True)"],
    }
    assert model.fac_activation.kind == "relu"


def test_fac_activations():
    x = torch.tensor([[-1.0, 2.0]])
    assert torch.equal(FacActivation("none", 2, NormConfig())(x), x)
    assert torch.equal(FacActivation("relu", 2, NormConfig())(x), torch.tensor([[0.0, 2.0]]))
    bnrelu = FacActivation("bnrelu", 2, NormConfig()).train()
    y = bnrelu(torch.tensor([[-1.0, 2.0], [1.0, 0.0]]))
    assert torch.allclose(y, torch.tensor([[0.0, 1.0], [1.0, 0.0]]), atol=1e-4)  # BN to +-1, then ReLU
