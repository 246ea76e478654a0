"""TSM-ResNet-V2 video backbone: endpoint shapes, parameter counts, the permuting temporal shift, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from mmv.config import NormConfig, VideoConfig
from mmv.models.tsm_resnet import TemporalShift, TSMResNet, set_static_shift_

TORCHVISION_R50_NO_FC = 25_557_032 - 2_049_000  # torchvision resnet50 minus its 2048x1000 fc (+ bias)


def _cfg(**kw) -> VideoConfig:
    return VideoConfig(backbone="tsm_resnet", **kw)


def _build_fast(cfg: VideoConfig) -> TSMResNet:
    """Builds on the meta device, then materialises on CPU with PyTorch's (fast) default init.

    ``haiku_init_``'s ``trunc_normal_`` takes seconds per 25M weights on CPU; shape tests need no real init.
    """
    with torch.device("meta"):
        model = TSMResNet(cfg, NormConfig())
    model = model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return model.eval()


def _tsm_table(batch: int, frames: int, size: int, w: int) -> list[tuple[str, tuple[int, ...]]]:
    s = [math.ceil(size / 4 / 2**i) for i in range(4)]  # stem conv /2 + pool /2; units 1-3 stride 2
    return [
        ("tsm_resnet_stem", (batch, frames, s[0], s[0], 64 * w)),
        ("tsm_resnet_unit_0", (batch, frames, s[0], s[0], 256 * w)),
        ("tsm_resnet_unit_1", (batch, frames, s[1], s[1], 512 * w)),
        ("tsm_resnet_unit_2", (batch, frames, s[2], s[2], 1024 * w)),
        ("tsm_resnet_unit_3", (batch, frames, s[3], s[3], 2048 * w)),
        ("last_conv", (batch, frames, s[3], s[3], 2048 * w)),
        ("Embeddings", (batch, 2048 * w)),
    ]


def _check_table(endpoints: dict[str, torch.Tensor], table: list[tuple[str, tuple[int, ...]]]) -> None:
    assert list(endpoints) == [name for name, _ in table]
    for name, shape in table:
        assert tuple(endpoints[name].shape) == shape, name


# --- Endpoint shapes ------------------------------------------------------------------------------------------


def test_table_helper_matches_original_test():
    # The original's tsm_resnet_test.py: [2, 32, 224, 224, 3] -> 56/56/28/14/7 and (2, 2048).
    assert _tsm_table(2, 32, 224, 1) == [
        ("tsm_resnet_stem", (2, 32, 56, 56, 64)),
        ("tsm_resnet_unit_0", (2, 32, 56, 56, 256)),
        ("tsm_resnet_unit_1", (2, 32, 28, 28, 512)),
        ("tsm_resnet_unit_2", (2, 32, 14, 14, 1024)),
        ("tsm_resnet_unit_3", (2, 32, 7, 7, 2048)),
        ("last_conv", (2, 32, 7, 7, 2048)),
        ("Embeddings", (2, 2048)),
    ]


@pytest.mark.parametrize("width", [1, 2])
def test_endpoint_shapes_small_input(width):
    model = _build_fast(_cfg(width_mult=float(width)))
    assert model.ENDPOINTS == tuple(name for name, _ in _tsm_table(1, 4, 32, width))
    assert model.output_dim == 2048 * width
    with torch.no_grad():
        endpoints = model.extract_endpoints(torch.randn(1, 4, 32, 32, 3))
    _check_table(endpoints, _tsm_table(1, 4, 32, width))
    # Embeddings = mean over H, W per frame, then over T, of last_conv.
    torch.testing.assert_close(endpoints["Embeddings"], endpoints["last_conv"].mean(dim=(1, 2, 3)))


@pytest.mark.parametrize("width", [1, 2])
def test_endpoint_shapes_full_size_on_meta(width):
    try:
        with torch.device("meta"):
            model = TSMResNet(_cfg(width_mult=float(width)), NormConfig())
            endpoints = model.extract_endpoints(torch.empty(2, 32, 224, 224, 3))
    except (NotImplementedError, RuntimeError) as e:  # pragma: no cover - depends on the torch build
        pytest.skip(f"meta device unsupported here: {e}")
    _check_table(endpoints, _tsm_table(2, 32, 224, width))


def test_intermediate_final_endpoint_and_invalid_endpoint():
    model = TSMResNet(_cfg(width_mult=0.125), NormConfig()).eval()
    x = torch.randn(1, 2, 32, 32, 3)
    with torch.no_grad():
        assert tuple(model(x, final_endpoint="tsm_resnet_unit_1").shape) == (1, 2, 4, 4, 64)
        assert list(model.extract_endpoints(x, "tsm_resnet_unit_0")) == ["tsm_resnet_stem", "tsm_resnet_unit_0"]
    with pytest.raises(ValueError, match="final_endpoint"):
        model(x, final_endpoint="Mixed_5c")
    with pytest.raises(ValueError, match="final_endpoint"):
        model.extract_endpoints(x, final_endpoint="logits")
    with pytest.raises(ValueError):
        model(torch.randn(2, 32, 32, 3))  # an image batch is not a clip


# --- Parameter counts ---------------------------------------------------------------------------------------


def _analytic_counts(w: int, in_channels: int = 3) -> tuple[int, int]:
    """(pre-activation V2 count, torchvision-style V1 count) of a bottleneck ResNet-50, from the table.

    Architecture table, written out: stem 7x7 conv in->64w; units of (blocks, out channels) =
    (3, 256w), (4, 512w), (6, 1024w), (3, 2048w); bottleneck = out / 4; the first block of every unit has a
    1x1 projection. V2: BN (2 params per channel) before each block on its input, before conv_1 and
    conv_2, plus a final BN. V1: BN after the stem conv, after each of the three convs and the projection.
    """
    units = [(3, 256 * w), (4, 512 * w), (6, 1024 * w), (3, 2048 * w)]
    stem = 64 * w
    convs = 7 * 7 * in_channels * stem
    v2_bn = 0
    v1_bn = 2 * stem
    c_in = stem
    for blocks, c_out in units:
        mid = c_out // 4
        for b in range(blocks):
            convs += c_in * mid + 3 * 3 * mid * mid + mid * c_out
            v2_bn += 2 * c_in + 2 * mid + 2 * mid
            v1_bn += 2 * mid + 2 * mid + 2 * c_out
            if b == 0:
                convs += c_in * c_out
                v1_bn += 2 * c_out
            c_in = c_out
    v2_bn += 2 * c_in
    return convs + v2_bn, convs + v1_bn


def _count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_count_r50():
    expected_v2, expected_v1 = _analytic_counts(1)
    # The same table with V1 BN positions reproduces torchvision's resnet50 (the table is right).
    assert expected_v1 == TORCHVISION_R50_NO_FC
    with torch.device("meta"):
        model = TSMResNet(_cfg(), NormConfig())
    n = _count(model)
    rel = (n - TORCHVISION_R50_NO_FC) / TORCHVISION_R50_NO_FC
    print(f"TSM-ResNet-50 parameters: {n:,} (torchvision R50 w/o fc {TORCHVISION_R50_NO_FC:,}, {rel:+.4%})")
    assert n == expected_v2
    assert abs(rel) < 0.005


def test_parameter_count_r50x2():
    expected_v2, _ = _analytic_counts(2)
    with torch.device("meta"):
        model = TSMResNet(_cfg(width_mult=2.0), NormConfig())
    n = _count(model)
    print(f"TSM-ResNet-50x2 parameters: {n:,}")
    assert n == expected_v2


def test_r101_has_23_blocks_in_unit_2():
    with torch.device("meta"):
        model = TSMResNet(_cfg(depth=101), NormConfig())
    assert [len(u) for u in model.units] == [3, 4, 23, 3]


def test_projection_in_first_block_of_every_unit():
    with torch.device("meta"):
        model = TSMResNet(_cfg(), NormConfig())
    for unit in model.units:
        assert [b.shortcut_conv is not None for b in unit] == [True] + [False] * (len(unit) - 1)


# --- Temporal shift -----------------------------------------------------------------------------------------


def _clip(batch: int = 1, frames: int = 3, channels: int = 8) -> torch.Tensor:
    # value = 100 * b + 10 * (t + 1) + c: every entry distinct and non-zero. [B*T, C, 1, 1]
    b = torch.arange(batch).view(batch, 1, 1)
    t = torch.arange(frames).view(1, frames, 1)
    c = torch.arange(channels).view(1, 1, channels)
    return (100 * b + 10 * (t + 1) + c).float().reshape(batch * frames, channels, 1, 1)


def test_temporal_shift_exact_channel_order():
    out = TemporalShift(0.125)(_clip(), num_frames=3)  # n = int(8 * 0.125) = 1
    assert out.shape == (3, 8, 1, 1)
    expected = torch.tensor(
        [
            # ch 0 <- ch 7 of t+1 | ch 1..6 <- same frame | ch 7 <- ch 0 of t-1
            [27, 11, 12, 13, 14, 15, 16, 0],  # t = 0: nothing before it
            [37, 21, 22, 23, 24, 25, 26, 10],  # t = 1
            [0, 31, 32, 33, 34, 35, 36, 20],  # t = 2: nothing after it
        ],
        dtype=torch.float32,
    )
    torch.testing.assert_close(out[:, :, 0, 0], expected, rtol=0, atol=0)


def test_temporal_shift_two_channels_and_no_leak_across_clips():
    x = _clip(batch=2, frames=3, channels=8)
    out = TemporalShift(0.25)(x, num_frames=3)  # n = 2
    first = out[:3, :, 0, 0]
    torch.testing.assert_close(
        first,
        torch.tensor(
            [[26, 27, 12, 13, 14, 15, 0, 0], [36, 37, 22, 23, 24, 25, 10, 11], [0, 0, 32, 33, 34, 35, 20, 21]],
            dtype=torch.float32,
        ),
        rtol=0,
        atol=0,
    )
    # The second clip is shifted on its own: its ends are zero-padded, not filled from clip 0.
    second = TemporalShift(0.25)(x[3:], num_frames=3)
    torch.testing.assert_close(out[3:], second, rtol=0, atol=0)
    assert (out[3, 6:] == 0).all() and (out[5, :2] == 0).all()


def test_temporal_shift_zero_fraction_is_identity():
    x = torch.randn(6, 8, 2, 2)
    assert torch.equal(TemporalShift(0.0)(x, num_frames=3), x)
    assert torch.equal(TemporalShift(0.0, static=True)(x), x)
    assert torch.equal(TemporalShift(0.125)(torch.ones(3, 4, 1, 1), num_frames=3), torch.ones(3, 4, 1, 1))  # n = 0


def test_static_shift_is_the_permutation_and_matches_interior_frames():
    static = TemporalShift(0.125, static=True)
    frame = torch.arange(8).float().view(1, 8, 1, 1)
    assert static(frame)[0, :, 0, 0].tolist() == [7, 1, 2, 3, 4, 5, 6, 0]
    image = torch.randn(2, 16, 3, 3)
    video = image.unsqueeze(1).expand(2, 5, 16, 3, 3).reshape(10, 16, 3, 3)  # each image as a static 5-frame clip
    shifted = TemporalShift(0.125)(video, num_frames=5).view(2, 5, 16, 3, 3)
    expected = static(image)
    for t in range(1, 4):
        torch.testing.assert_close(shifted[:, t], expected, rtol=0, atol=0)
    assert not torch.equal(shifted[:, 0], expected) and not torch.equal(shifted[:, 4], expected)


def test_temporal_shift_needs_num_frames_and_divisible_batch():
    with pytest.raises(ValueError):
        TemporalShift(0.125)(torch.randn(4, 8, 1, 1))
    with pytest.raises(ValueError):
        TemporalShift(0.125)(torch.randn(4, 8, 1, 1), num_frames=3)
    with pytest.raises(ValueError):
        TemporalShift(0.75)


def test_deflated_model_on_image_equals_video_model_on_static_clip_centre():
    # 16 blocks each move information one frame, so with T = 33 the centre frame never sees the zero padding.
    torch.manual_seed(0)
    model = TSMResNet(_cfg(width_mult=0.125), NormConfig()).eval()
    image = torch.randn(1, 1, 32, 32, 3)
    with torch.no_grad():
        video_maps = model(image.expand(1, 33, 32, 32, 3), final_endpoint="last_conv")
        set_static_shift_(model)
        assert all(m.static for m in model.modules() if isinstance(m, TemporalShift))
        image_maps = model(image, final_endpoint="last_conv")
    torch.testing.assert_close(video_maps[:, 16], image_maps[:, 0], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(video_maps[:, 0], image_maps[:, 0], atol=1e-3)  # edges do differ


# --- Training behaviour ---------------------------------------------------------------------------------------


def test_every_parameter_gets_a_gradient_and_haiku_init():
    torch.manual_seed(0)
    model = TSMResNet(_cfg(width_mult=0.25), NormConfig()).train()
    std = 1 / math.sqrt(7 * 7 * 3)
    assert model.stem.weight.abs().max() <= 2 * std + 1e-6  # truncated normal at two standard deviations
    out = model(torch.randn(2, 4, 32, 32, 3))
    assert out.shape == (2, 512)
    (out * torch.randn_like(out)).sum().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name
