"""Audio ResNet-V2 on log-mel spectrograms: endpoint shapes, parameter counts, projections, gradients."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import AudioConfig, NormConfig
from mmv.models.audio_resnet import AudioResNet


def _build_fast(cfg: AudioConfig) -> AudioResNet:
    """Builds on the meta device, then materialises on CPU with PyTorch's (fast) default init.

    ``haiku_init_``'s ``trunc_normal_`` takes seconds per 25M weights on CPU; shape tests need no real init.
    """
    with torch.device("meta"):
        model = AudioResNet(cfg, NormConfig())
    model = model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model.eval()


def _check_table(endpoints: dict[str, torch.Tensor], table: list[tuple[str, tuple[int, ...]]]) -> None:
    assert list(endpoints) == [name for name, _ in table]
    for name, shape in table:
        assert tuple(endpoints[name].shape) == shape, name


R50_SMALL = [  # [1, 48, 40]: conv 24x20, pool 12x10
    ("resnet_stem", (1, 12, 10, 64)),
    ("resnet_unit_0", (1, 12, 10, 256)),
    ("resnet_unit_1", (1, 6, 5, 512)),
    ("resnet_unit_2", (1, 3, 3, 1024)),
    ("resnet_unit_3", (1, 2, 2, 2048)),
    ("last_conv", (1, 2, 2, 2048)),
    ("Embeddings", (1, 2048)),
]
R18_SMALL = [
    ("resnet_stem", (1, 12, 10, 64)),
    ("resnet_unit_0", (1, 12, 10, 64)),
    ("resnet_unit_1", (1, 6, 5, 128)),
    ("resnet_unit_2", (1, 3, 3, 256)),
    ("resnet_unit_3", (1, 2, 2, 512)),
    ("last_conv", (1, 2, 2, 512)),
    ("Embeddings", (1, 512)),
]
R50_FULL = [  # [2, 150, 80]: conv 75x40, pool 38x20
    ("resnet_stem", (2, 38, 20, 64)),
    ("resnet_unit_0", (2, 38, 20, 256)),
    ("resnet_unit_1", (2, 19, 10, 512)),
    ("resnet_unit_2", (2, 10, 5, 1024)),
    ("resnet_unit_3", (2, 5, 3, 2048)),
    ("last_conv", (2, 5, 3, 2048)),
    ("Embeddings", (2, 2048)),
]


# --- Endpoint shapes ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("depth", "table"), [(50, R50_SMALL), (18, R18_SMALL)])
def test_endpoint_shapes_small_input(depth, table):
    model = _build_fast(AudioConfig(depth=depth))
    assert model.ENDPOINTS == tuple(name for name, _ in table)
    assert model.output_dim == table[-1][1][-1]
    spec = torch.randn(1, 48, 40)
    with torch.no_grad():
        endpoints = model.extract_endpoints(spec)
        _check_table(endpoints, table)
        # last_conv is the map before the final BN-ReLU; Embeddings pools ReLU(BN(last_conv)).
        last = endpoints["last_conv"].permute(0, 3, 1, 2)
        torch.testing.assert_close(endpoints["Embeddings"], F.relu(model.final_bn(last)).mean(dim=(2, 3)))
        torch.testing.assert_close(endpoints["last_conv"], endpoints["resnet_unit_3"])
        # A trailing channel axis of 1 is accepted.
        torch.testing.assert_close(model(spec.unsqueeze(-1)), endpoints["Embeddings"])


def test_endpoint_shapes_full_size_on_meta():
    try:
        with torch.device("meta"):
            model = AudioResNet(AudioConfig(), NormConfig())
            endpoints = model.extract_endpoints(torch.empty(2, 150, 80))
    except (NotImplementedError, RuntimeError) as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f"meta device unsupported here: {e}")
    _check_table(endpoints, R50_FULL)


def test_invalid_endpoint_and_input():
    model = AudioResNet(AudioConfig(depth=18, width_mult=0.125), NormConfig()).eval()
    spec = torch.randn(1, 48, 40)
    with torch.no_grad():
        assert tuple(model(spec, final_endpoint="resnet_unit_1").shape) == (1, 6, 5, 16)
    with pytest.raises(ValueError, match="final_endpoint"):
        model(spec, final_endpoint="output")
    with pytest.raises(ValueError, match="final_endpoint"):
        model.extract_endpoints(spec, final_endpoint="tsm_resnet_stem")
    with pytest.raises(ValueError):
        model(torch.randn(1, 48, 40, 2))


# --- Parameter counts ---------------------------------------------------------------------------------------


def _analytic_r50(in_channels: int = 1) -> int:
    """ResNet-V2-50's parameter count, from its architecture table.

    Stem 7x7 in->64; units (blocks, out) = (3, 256), (4, 512), (6, 1024), (3, 2048); bottleneck out/4; BN
    (2 params/channel) before each of the three convs, a projection in every unit's first block (the width
    always changes there), and a final BN.
    """
    total = 7 * 7 * in_channels * 64
    c_in = 64
    for blocks, c_out in [(3, 256), (4, 512), (6, 1024), (3, 2048)]:
        mid = c_out // 4
        for b in range(blocks):
            total += 2 * c_in + c_in * mid + 2 * mid + 9 * mid * mid + 2 * mid + mid * c_out
            if b == 0:
                total += c_in * c_out
            c_in = c_out
    return total + 2 * c_in


def _analytic_r18(in_channels: int = 1) -> int:
    """MMV's ResNet-V2-18 parameter count, from its architecture table.

    Stem 7x7 in->64; units of two blocks at 64, 128, 256, 512; block = BN, 1x1 conv (c_in->c), BN, 3x3 conv
    (c->c); projection only where the width changes (not in unit 0); final BN.
    """
    total = 7 * 7 * in_channels * 64
    c_in = 64
    for c_out in (64, 128, 256, 512):
        for b in range(2):
            total += 2 * c_in + c_in * c_out + 2 * c_out + 9 * c_out * c_out
            if b == 0 and c_in != c_out:
                total += c_in * c_out
            c_in = c_out
    return total + 2 * c_in


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts():
    with torch.device("meta"):
        r50 = AudioResNet(AudioConfig(depth=50), NormConfig())
        r18 = AudioResNet(AudioConfig(depth=18), NormConfig())
    print(f"audio ResNet-50 (1 input channel): {_count(r50):,}; ResNet-18: {_count(r18):,}")
    assert _count(r50) == _analytic_r50()
    assert _count(r18) == _analytic_r18()


def test_projection_rule():
    with torch.device("meta"):
        r50 = AudioResNet(AudioConfig(depth=50), NormConfig())
        r18 = AudioResNet(AudioConfig(depth=18), NormConfig())
        r34 = AudioResNet(AudioConfig(depth=34), NormConfig())
    assert [[b.shortcut_conv is not None for b in u] for u in r50.units] == [
        [True, False, False],
        [True, False, False, False],
        [True] + [False] * 5,
        [True, False, False],
    ]
    assert [[b.shortcut_conv is not None for b in u] for u in r18.units] == [[False, False]] + [[True, False]] * 3
    assert r18.units[0][0].shortcut_conv is None
    assert r50.units[0][0].shortcut_conv is not None
    # MMV's basic block: a 1x1 conv then a 3x3 with the stride, no third conv.
    block = r18.units[1][0]
    assert block.conv_0.kernel == (1, 1) and block.conv_0.stride == (1, 1)
    assert block.conv_1.kernel == (3, 3) and block.conv_1.stride == (2, 2)
    assert not hasattr(block, "conv_2")
    assert [len(u) for u in r34.units] == [3, 4, 6, 3] and r34.output_dim == 512


# --- Training behaviour ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [18, 50])
def test_every_parameter_gets_a_gradient(depth):
    torch.manual_seed(0)
    model = AudioResNet(AudioConfig(depth=depth, width_mult=0.25), NormConfig()).train()
    std = 1 / math.sqrt(7 * 7 * 1)
    assert model.initial_conv.weight.abs().max() <= 2 * std + 1e-6  # Haiku's truncated-normal init
    out = model(torch.randn(2, 48, 40))
    assert out.shape == (2, 512 if depth == 50 else 128)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
