"""S3D-G: endpoint shape tables, TF SAME padding, space-to-depth, parameter count, gradients, switches."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mmv.config import S3D_STAGES, NormConfig, VideoConfig
from mmv.models.layers import scaled
from mmv.models.s3d import INCEPTION_CHANNELS, S3DG, SelfGating, SUnit3D, space_to_depth

NORM = NormConfig()

# The original's s3d_test.py table for a [2, 16, 224, 224, 3] clip.
FULL_SIZE_TABLE = [
    ("Conv2d_1a_7x7", (2, 8, 112, 112, 64)),
    ("MaxPool_2a_3x3", (2, 8, 56, 56, 64)),
    ("Conv2d_2b_1x1", (2, 8, 56, 56, 64)),
    ("Conv2d_2c_3x3", (2, 8, 56, 56, 192)),
    ("MaxPool_3a_3x3", (2, 8, 28, 28, 192)),
    ("Mixed_3b", (2, 8, 28, 28, 256)),
    ("Mixed_3c", (2, 8, 28, 28, 480)),
    ("MaxPool_4a_3x3", (2, 4, 14, 14, 480)),
    ("Mixed_4b", (2, 4, 14, 14, 512)),
    ("Mixed_4c", (2, 4, 14, 14, 512)),
    ("Mixed_4d", (2, 4, 14, 14, 512)),
    ("Mixed_4e", (2, 4, 14, 14, 528)),
    ("Mixed_4f", (2, 4, 14, 14, 832)),
    ("MaxPool_5a_2x2", (2, 2, 7, 7, 832)),
    ("Mixed_5b", (2, 2, 7, 7, 832)),
    ("Mixed_5c", (2, 2, 7, 7, 1024)),
    ("Embeddings", (2, 1024)),
]

# torchvision.models.video.s3d(): 8,320,048 parameters, of which its classifier Conv3d(1024, 400, bias) holds
# 1024 * 400 + 400 = 410,000. Its trunk is ours without self-gating, except for the stem (see the test).
TORCHVISION_S3D_PARAMS = 8_320_048
TORCHVISION_CLASSIFIER_PARAMS = 1024 * 400 + 400


def _ceil(a: int, b: int) -> int:
    return -(-a // b)


def expected_table(b: int, t: int, h: int, w: int, width_mult: float) -> list[tuple[str, tuple[int, ...]]]:
    """Endpoint shapes from the architecture's arithmetic: TF SAME gives ceil(size / stride) everywhere."""

    def ch(c: int) -> int:
        return scaled(c, width_mult)

    table = []
    t, h, w = _ceil(t, 2), _ceil(h, 2), _ceil(w, 2)
    table.append(("Conv2d_1a_7x7", (b, t, h, w, ch(64))))
    h, w = _ceil(h, 2), _ceil(w, 2)
    table.append(("MaxPool_2a_3x3", (b, t, h, w, ch(64))))
    table.append(("Conv2d_2b_1x1", (b, t, h, w, ch(64))))
    table.append(("Conv2d_2c_3x3", (b, t, h, w, ch(192))))
    c = ch(192)
    for name in S3D_STAGES[4:]:
        if name.startswith("MaxPool"):
            if name != "MaxPool_3a_3x3":
                t = _ceil(t, 2)
            h, w = _ceil(h, 2), _ceil(w, 2)
        else:
            b0, _, b1, _, b2, b3 = INCEPTION_CHANNELS[name]
            c = ch(b0) + ch(b1) + ch(b2) + ch(b3)
        table.append((name, (b, t, h, w, c)))
    table.append(("Embeddings", (b, c)))
    return table


def _shapes(endpoints: dict[str, torch.Tensor]) -> list[tuple[str, tuple[int, ...]]]:
    return [(name, tuple(v.shape)) for name, v in endpoints.items()]


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_expected_table_reproduces_the_original_full_size_table():
    assert expected_table(2, 16, 224, 224, 1.0) == FULL_SIZE_TABLE


def test_full_size_endpoint_table_on_meta_device():
    with torch.device("meta"):
        model = S3DG(VideoConfig(), NORM)
        endpoints = model.extract_endpoints(torch.empty(2, 16, 224, 224, 3))
    assert _shapes(endpoints) == FULL_SIZE_TABLE
    assert model.output_dim == 1024


@pytest.mark.parametrize(
    ("shape", "width_mult"),
    [((1, 16, 32, 32, 3), 1.0), ((2, 8, 64, 64, 3), 0.125), ((1, 5, 33, 47, 3), 0.125)],
)
def test_endpoint_table(shape, width_mult):
    torch.manual_seed(0)
    model = S3DG(VideoConfig(width_mult=width_mult), NORM).eval()
    with torch.no_grad():
        endpoints = model.extract_endpoints(torch.rand(shape))
    table = expected_table(*shape[:4], width_mult)
    assert list(endpoints) == [name for name, _ in table] == list(S3DG.ENDPOINTS)
    assert _shapes(endpoints) == table
    assert model.output_dim == table[-1][1][1]
    torch.testing.assert_close(endpoints["Embeddings"], endpoints["Mixed_5c"].mean(dim=(1, 2, 3)))


def test_tiny_width_output_dim():
    assert S3DG(VideoConfig(width_mult=0.125), NORM).output_dim == 48 + 48 + 16 + 16


def test_space_to_depth_channel_order():
    t, h, w, c = 4, 4, 6, 3
    grid = torch.meshgrid(torch.arange(t), torch.arange(h), torch.arange(w), torch.arange(c), indexing="ij")
    code = grid[0] * 1000 + grid[1] * 100 + grid[2] * 10 + grid[3]  # value names its (t, h, w, c)
    video = torch.stack([code, code + 10_000])  # [2, T, H, W, C]
    out = space_to_depth(video)
    assert out.shape == (2, t // 2, h // 2, w // 2, 8 * c)
    # Block (0, 0, 0): channels run over (dt, dh, dw, c) with c fastest.
    assert out[0, 0, 0, 0].tolist() == [
        0, 1, 2, 10, 11, 12, 100, 101, 102, 110, 111, 112,
        1000, 1001, 1002, 1010, 1011, 1012, 1100, 1101, 1102, 1110, 1111, 1112,
    ]  # fmt: skip
    for bt in range(t // 2):
        for bh in range(h // 2):
            for bw in range(w // 2):
                for k in range(8 * c):
                    dt, dh, dw, cc = k // (4 * c), k // (2 * c) % 2, k // c % 2, k % c
                    want = (2 * bt + dt) * 1000 + (2 * bh + dh) * 100 + (2 * bw + dw) * 10 + cc
                    assert out[1, bt, bh, bw, k].item() == want + 10_000


def test_space_to_depth_rejects_odd_sizes():
    with pytest.raises(ValueError, match="even"):
        space_to_depth(torch.zeros(1, 3, 4, 4, 3))


def test_space_to_depth_stem():
    torch.manual_seed(0)
    model = S3DG(VideoConfig(space_to_depth=True, width_mult=0.125), NORM).eval()
    stem = model.stages["Conv2d_1a_7x7"].conv.weight
    assert stem.shape == (8, 24, 2, 4, 4)
    rgb = torch.rand(2, 16, 32, 32, 3)
    with torch.no_grad():
        folded = model.forward(space_to_depth(rgb), "Conv2d_1a_7x7")
        raw = model.forward(rgb, "Conv2d_1a_7x7")  # the model folds an RGB clip itself
    assert folded.shape == (2, 8, 16, 16, 8)
    torch.testing.assert_close(raw, folded, rtol=0, atol=0)
    with torch.device("meta"):
        full = S3DG(VideoConfig(space_to_depth=True), NORM)
        assert full(torch.empty(2, 8, 112, 112, 24), "Conv2d_1a_7x7").shape == (2, 8, 112, 112, 64)


def test_wrong_input_channels_raise():
    model = S3DG(VideoConfig(width_mult=0.125), NORM)
    with pytest.raises(ValueError, match="input channels"):
        model(torch.zeros(1, 4, 16, 16, 24))
    with pytest.raises(ValueError, match=r"\[B, T, H, W, C\]"):
        model(torch.zeros(4, 16, 16, 3))


def test_same_padding_matches_manual_pad():
    torch.manual_seed(0)
    # RGB stem: 7-tap stride-2 conv; TF SAME on 32 (T) and 16 (H, W) pads (2, 3) on every axis.
    model = S3DG(VideoConfig(width_mult=0.125), NORM)
    conv = model.stages["Conv2d_1a_7x7"].conv
    x = torch.randn(1, 3, 32, 16, 16)
    want = F.conv3d(F.pad(x, (2, 3, 2, 3, 2, 3)), conv.weight, stride=2)
    got = conv(x)
    assert got.shape == (1, 8, 16, 8, 8)
    torch.testing.assert_close(got, want)
    # Space-to-depth stem: kernel (2, 4, 4), stride 1 pads (0, 1) in time and (1, 2) in space.
    s2d = S3DG(VideoConfig(space_to_depth=True, width_mult=0.125), NORM).stages["Conv2d_1a_7x7"].conv
    x = torch.randn(1, 24, 8, 10, 10)
    torch.testing.assert_close(s2d(x), F.conv3d(F.pad(x, (1, 2, 1, 2, 0, 1)), s2d.weight))


def test_parameter_count_matches_torchvision_s3d():
    model = S3DG(VideoConfig(), NORM)
    total = _count(model)
    gating = sum(_count(m) for m in model.modules() if isinstance(m, SelfGating))
    # Gated units: Conv2d_2c (192) and, per Inception block, b0, b1b, b2b and b3.
    gated = [192] + [c for s in INCEPTION_CHANNELS.values() for c in (s[0], s[2], s[4], s[5])]
    assert gating == sum(c * c + c for c in gated)
    # The one difference from torchvision's trunk is the stem: the original's Conv2d_1a_7x7 is a full 7x7x7
    # conv + BN, torchvision's a separable one (1x7x7 conv + BN + ReLU, 7x1x1 conv + BN + ReLU).
    ours_stem = 7 * 7 * 7 * 3 * 64 + 2 * 64
    torchvision_stem = 7 * 7 * 3 * 64 + 2 * 64 + 7 * 64 * 64 + 2 * 64
    assert _count(model.stages["Conv2d_1a_7x7"]) == ours_stem
    torchvision_trunk = TORCHVISION_S3D_PARAMS - TORCHVISION_CLASSIFIER_PARAMS
    print(
        f"\nS3D-G params: total {total:,}, self-gating {gating:,}, without gating {total - gating:,}; "
        f"torchvision trunk {torchvision_trunk:,}; stem ours {ours_stem:,} vs torchvision {torchvision_stem:,}"
    )
    assert total - gating - (ours_stem - torchvision_stem) == torchvision_trunk == 7_910_048
    assert total == 9_162_704


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    model = S3DG(VideoConfig(width_mult=0.125), NORM).train()
    out = model(torch.rand(2, 8, 32, 32, 3))
    (out * torch.randn_like(out)).sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_final_endpoint():
    torch.manual_seed(0)
    model = S3DG(VideoConfig(width_mult=0.125), NORM).eval()
    x = torch.rand(1, 8, 32, 32, 3)
    with pytest.raises(ValueError, match="final_endpoint"):
        model(x, "Mixed_6a")
    with torch.no_grad():
        endpoints = model.extract_endpoints(x)
        torch.testing.assert_close(model(x, "Mixed_3b"), endpoints["Mixed_3b"])
        torch.testing.assert_close(model(x), endpoints["Embeddings"])
        assert list(model.extract_endpoints(x, "Mixed_3b")) == list(S3D_STAGES[:6])


@pytest.mark.parametrize("last", ["Conv2d_2c_3x3", "Mixed_3c", "Mixed_4f"])
def test_truncated_network_is_the_prefix_of_the_whole_one(last):
    # s3d_final_endpoint builds only the stages up to ``last``: same endpoints, shapes and (same seed) values
    # as the whole network's prefix, Embeddings the mean of ``last``, no parameter of a later stage.
    x = torch.rand(1, 8, 32, 32, 3)
    torch.manual_seed(0)
    whole = S3DG(VideoConfig(width_mult=0.25), NORM).eval()
    torch.manual_seed(0)
    cut = S3DG(VideoConfig(width_mult=0.25, s3d_final_endpoint=last), NORM).eval()
    prefix = list(S3D_STAGES[: S3D_STAGES.index(last) + 1])
    assert list(cut.ENDPOINTS) == [*prefix, "Embeddings"] and list(cut.stages) == prefix
    cut.load_state_dict({k: v for k, v in whole.state_dict().items() if k.split(".")[1] in prefix})
    with torch.no_grad():
        a, b = whole.extract_endpoints(x), cut.extract_endpoints(x)
    assert list(b) == [*prefix, "Embeddings"]
    for name in prefix:
        torch.testing.assert_close(b[name], a[name])
    torch.testing.assert_close(b["Embeddings"], a[last].mean(dim=(1, 2, 3)))
    assert cut.output_dim == a[last].shape[-1]
    with pytest.raises(ValueError, match="s3d_final_endpoint"):
        VideoConfig(s3d_final_endpoint="Mixed_9z").validate()


def _gated_units(model: S3DG) -> list[str]:
    return [name for name, m in model.named_modules() if isinstance(m, SUnit3D) and m.gating is not None]


def test_default_switches():
    model = S3DG(VideoConfig(width_mult=0.125), NORM)
    gated = _gated_units(model)
    assert len(gated) == 1 + 4 * len(INCEPTION_CHANNELS)
    assert gated[0] == "stages.Conv2d_2c_3x3"
    stem, conv_2c = model.stages["Conv2d_1a_7x7"], model.stages["Conv2d_2c_3x3"]
    assert stem.temporal is None and stem.conv.weight.shape[2:] == (7, 7, 7)
    assert conv_2c.conv.weight.shape[2:] == (1, 3, 3) and conv_2c.temporal.weight.shape[2:] == (3, 1, 1)
    temporal = [m.temporal for m in model.modules() if isinstance(m, SUnit3D) and m.temporal is not None]
    assert len(temporal) == 1 + 2 * len(INCEPTION_CHANNELS)
    assert all(conv.weight.shape[2:] == (3, 1, 1) for conv in temporal)


def test_no_gating_and_no_temporal_conv():
    model = S3DG(VideoConfig(width_mult=0.125, s3d_gating_startat=None, s3d_temporal_conv_startat=None), NORM)
    assert not any(isinstance(m, SelfGating) for m in model.modules())
    # Only the stem keeps a temporal extent (s3d_first_temporal_kernel), as in the original.
    deep = [m for name, m in model.named_modules() if isinstance(m, nn.Conv3d) and "Conv2d_1a" not in name]
    assert deep and all(m.weight.shape[2] == 1 for m in deep)
    # A [1, 3, 3] separable unit is still split, with a 1-tap temporal conv.
    assert model.stages["Conv2d_2c_3x3"].temporal.weight.shape[2:] == (1, 1, 1)
    with torch.no_grad():
        assert model.eval()(torch.rand(1, 4, 32, 32, 3)).shape == (1, 128)


def test_later_start_layers():
    model = S3DG(
        VideoConfig(width_mult=0.125, s3d_gating_startat="Mixed_4b", s3d_temporal_conv_startat="Mixed_4b"), NORM
    )
    gated = {name.split(".")[1] for name in _gated_units(model)}
    assert gated == {"Mixed_4b", "Mixed_4c", "Mixed_4d", "Mixed_4e", "Mixed_4f", "Mixed_5b", "Mixed_5c"}
    kt = {name.split(".")[1]: m.weight.shape[2] for name, m in model.named_modules() if name.endswith(".temporal")}
    assert kt["Conv2d_2c_3x3"] == kt["Mixed_3b"] == kt["Mixed_3c"] == 1
    assert kt["Mixed_4b"] == kt["Mixed_5c"] == 3
    # The switch applies to every unit from its layer on, the stem included (as the original's layer walk).
    assert _gated_units(S3DG(VideoConfig(width_mult=0.125, s3d_gating_startat="Conv2d_1a_7x7"), NORM))[:2] == [
        "stages.Conv2d_1a_7x7",
        "stages.Conv2d_2b_1x1",
    ]


def test_channels_last_3d_model_matches_default():
    torch.manual_seed(0)
    model = S3DG(VideoConfig(width_mult=0.125), NORM).eval()
    x = torch.rand(2, 8, 32, 32, 3)
    with torch.no_grad():
        want = model(x)
        model.to(memory_format=torch.channels_last_3d)
        assert model._memory_format() == torch.channels_last_3d
        torch.testing.assert_close(model(x), want, rtol=1e-4, atol=1e-5)
