"""Deflation: exactness on interior frames, weight sharing, parameters, endpoint shapes, recalibration."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from train_helpers import randomise_bn_, single_thread

from mmv.config import NormConfig, VideoConfig
from mmv.deflation import CalibrationOptions, deflate, image_space_to_depth, inflate, mean_cosine, recalibrate
from mmv.deflation.networks import DeflatedSelfGating, DeflatedUnit
from mmv.models.layers import same_pads
from mmv.models.s3d import S3DG, SelfGating, SUnit3D, space_to_depth
from mmv.models.tsm_resnet import TSMResNet

NORM = NormConfig()


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    single_thread()  # two busy-waiting OpenMP threads on two shared cores can make these tests 10x slower


def _interior(num_frames: int, kernel: int, stride: int) -> list[bool]:
    """For each output frame of a TF SAME temporal conv: does it read only real frames (no zero padding)?"""
    lo, _ = same_pads(num_frames, kernel, stride)
    out = -(-num_frames // stride)
    return [0 <= j * stride - lo and j * stride - lo + kernel - 1 < num_frames for j in range(out)]


def _s3d_cfg(**kw) -> VideoConfig:
    base = dict(backbone="s3d", num_frames=8, frame_size=32, width_mult=0.125)
    return VideoConfig(**{**base, **kw})


# --- Exactness ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kernel", "stride", "separable", "num_frames", "boundary"),
    [
        ((3, 3, 3), (1, 1, 1), True, 6, [0, 5]),  # a separable Inception unit: one padded frame at each end
        ((7, 7, 7), (2, 2, 2), False, 16, [0, 6, 7]),  # the S3D stem: pads (2, 3) in time, stride 2
    ],
)
def test_deflated_block_equals_interior_frames_of_static_video(kernel, stride, separable, num_frames, boundary):
    torch.manual_seed(0)
    unit = SUnit3D(4, 6, kernel, NORM, stride=stride, separable=separable).eval()
    randomise_bn_(unit)
    image = torch.rand(2, 4, 12, 12)  # [B, C, H, W]
    video = image[:, :, None].expand(-1, -1, num_frames, -1, -1)  # static clip [B, C, T, H, W]
    with torch.no_grad():
        out_video = unit(video)  # [B, 6, T', H', W']
        out_image = DeflatedUnit(unit, own_bn=True)(image)  # [B, 6, H', W']
    interior = _interior(num_frames, kernel[0], stride[0])
    # The frames that read zero padding are exactly the boundary frames the arithmetic predicts ...
    assert [j for j, inside in enumerate(interior) if not inside] == boundary
    for j, inside in enumerate(interior):
        err = float((out_video[:, :, j] - out_image).abs().max())
        if inside:  # ... every interior frame equals the 2-D output with the summed kernel ...
            assert err < 1e-5, (j, err)
        else:  # ... and every boundary frame differs, because the padding is zeros, not frames.
            assert err > 1e-3, (j, err)


def test_self_gating_on_a_static_clip_is_the_spatial_gate():
    torch.manual_seed(0)
    gating = SelfGating(5)
    image = torch.randn(2, 5, 4, 4)
    video = image[:, :, None].expand(-1, -1, 3, -1, -1)
    out = gating(video)
    for t in range(3):
        torch.testing.assert_close(out[:, :, t], DeflatedSelfGating(gating)(image), rtol=0, atol=1e-6)


def test_whole_s3d_prefix_is_exact_on_interior_frames_without_gating():
    # Without self-gating (whose mean over T mixes the edge frames into every frame), the deflated network equals
    # the video network on the interior frames of a static clip through the stem, a pool, 1x1 and separable units.
    torch.manual_seed(0)
    video_net = S3DG(_s3d_cfg(s3d_gating_startat=None), NORM).eval()
    randomise_bn_(video_net)
    image = torch.rand(2, 32, 32, 3)
    with torch.no_grad():
        v = video_net.extract_endpoints(inflate(image, 16), "Conv2d_2c_3x3")
        d = deflate(video_net).extract_endpoints(image, "Conv2d_2c_3x3")
    # Stem: 16 -> 8 frames, interior 1..5; Conv2d_2c's 3-tap temporal conv then needs j-1..j+1 interior: 2..4.
    for name, frames in (("Conv2d_1a_7x7", range(1, 6)), ("Conv2d_2b_1x1", range(1, 6)), ("Conv2d_2c_3x3", (2, 3, 4))):
        for t in frames:
            torch.testing.assert_close(v[name][:, t], d[name], rtol=1e-4, atol=1e-5)
    assert not torch.allclose(v["Conv2d_2c_3x3"][:, 0], d["Conv2d_2c_3x3"], atol=1e-3)


def test_space_to_depth_stem_sums_time_taps_and_time_subchannels():
    torch.manual_seed(0)
    video_net = S3DG(_s3d_cfg(space_to_depth=True), NORM).eval()
    randomise_bn_(video_net)
    image = torch.rand(2, 32, 32, 3)
    # The image fold is the dt = 0 half of the video fold of a static clip.
    torch.testing.assert_close(image_space_to_depth(image), space_to_depth(inflate(image, 2))[:, 0, ..., :12])
    tower = deflate(video_net)
    assert tower.stages["Conv2d_1a_7x7"].conv.weight().shape[1] == 12  # [O, 12, 4, 4]
    with torch.no_grad():
        v = video_net.extract_endpoints(inflate(image, 4), "Conv2d_1a_7x7")["Conv2d_1a_7x7"]  # [B, 2, 16, 16, C]
        d = tower.extract_endpoints(image, "Conv2d_1a_7x7")["Conv2d_1a_7x7"]  # [B, 16, 16, C]
    # A 2-tap kernel with TF SAME pads (0, 1) in time: frame 0 is interior, frame 1 reads padding.
    torch.testing.assert_close(v[:, 0], d, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(v[:, 1], d, atol=1e-3)
    assert tower(image).shape == (2, video_net.output_dim)


def test_tsm_deflated_equals_centre_frame_of_long_static_clip():
    # 16 blocks each move information one frame: with T = 33 the centre frame never sees the zero padding.
    torch.manual_seed(0)
    video_net = TSMResNet(VideoConfig(backbone="tsm_resnet", width_mult=0.125), NORM).eval()
    randomise_bn_(video_net)
    image = torch.rand(1, 32, 32, 3)
    with torch.no_grad():
        v = video_net(inflate(image, 33), final_endpoint="last_conv")
        d = deflate(video_net)(image, final_endpoint="last_conv")
    torch.testing.assert_close(v[:, 16], d, rtol=1e-4, atol=1e-5)
    assert not torch.allclose(v[:, 0], d, atol=1e-3)


# --- Structure ------------------------------------------------------------------------------------------------


def _backbones():
    torch.manual_seed(0)
    nets = [
        S3DG(_s3d_cfg(), NORM).eval(),
        TSMResNet(VideoConfig(backbone="tsm_resnet", width_mult=0.125), NORM).eval(),
    ]
    for net in nets:
        randomise_bn_(net)
    return nets


def _differ(a: torch.Tensor, b: torch.Tensor) -> bool:
    return float((a - b).abs().max()) > 1e-3 * float(a.abs().max())


@pytest.mark.parametrize("index", [0, 1], ids=["s3d", "tsm"])
def test_endpoint_shapes_are_the_video_shapes_without_time(index):
    video_net = _backbones()[index]
    tower = deflate(video_net)
    with torch.no_grad():
        v = video_net.extract_endpoints(torch.rand(2, 2, 64, 64, 3))
        d = tower.extract_endpoints(torch.rand(2, 64, 64, 3))
    assert list(d) == list(video_net.ENDPOINTS) == list(v)
    for name in v:
        expected = v[name].shape if name == "Embeddings" else (v[name].shape[0], *v[name].shape[2:])
        assert tuple(d[name].shape) == tuple(expected), name
    with pytest.raises(ValueError, match=r"\[B, H, W"):
        tower(torch.rand(2, 2, 64, 64, 3))


def test_truncated_s3d_keeps_its_endpoints():
    if "s3d_final_endpoint" not in VideoConfig.__dataclass_fields__:
        pytest.skip("VideoConfig has no s3d_final_endpoint")
    video_net = S3DG(_s3d_cfg(s3d_final_endpoint="Mixed_3c"), NORM).eval()
    tower = deflate(video_net)
    d = tower.extract_endpoints(torch.rand(2, 32, 32, 3))
    assert list(d) == list(video_net.ENDPOINTS) and list(d)[-2] == "Mixed_3c"
    assert d["Embeddings"].shape == (2, video_net.output_dim)


@pytest.mark.parametrize("index", [0, 1], ids=["s3d", "tsm"])
def test_only_bn_gamma_and_beta_are_new_parameters(index):
    video_net = _backbones()[index]
    tower = deflate(video_net)
    bn = {
        f"{name}.{p}": getattr(m, p)
        for name, m in video_net.named_modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for p in ("weight", "bias")
    }
    own = dict(tower.named_parameters())
    assert set(own) == set(bn) and set(tower.state_dict()) == set(bn)  # the same names, nothing else
    video_ids = {id(p) for p in video_net.parameters()}
    for name, p in own.items():
        assert id(p) not in video_ids  # new Parameter objects ...
        assert torch.equal(p, bn[name])  # ... initialised from the video network's
    assert list(deflate(video_net, own_bn=False).parameters()) == []  # naive: shares everything


@pytest.mark.parametrize("index", [0, 1], ids=["s3d", "tsm"])
def test_weights_are_shared_with_the_video_network(index):
    video_net = _backbones()[index]
    tower, naive = deflate(video_net), deflate(video_net, own_bn=False)
    first = video_net.ENDPOINTS[0]
    image = torch.rand(2, 32, 32, 3)
    with torch.no_grad():
        before = tower(image, first)
        conv = next(m for m in video_net.modules() if isinstance(m, torch.nn.Conv3d | torch.nn.Conv2d))
        conv.weight.mul_(1.5)  # e.g. an optimiser step on the video network
        after = tower(image, first)
        assert _differ(before, after)  # the cached summed kernels were refreshed
        torch.testing.assert_close(tower(image), deflate(video_net)(image))
        # BN gamma of the video net: the naive tower follows it, the calibrated one owns its own.
        bn = next(m for m in video_net.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm))
        second = video_net.ENDPOINTS[1]  # after the first BN of both networks
        naive_before, own_before = naive(image, second), tower(image, second)
        bn.weight.mul_(0.5)
        torch.testing.assert_close(tower(image, second), own_before)
        assert _differ(naive(image, second), naive_before)


def test_deflate_refuses_other_modules():
    with pytest.raises(TypeError, match="no image version"):
        deflate(torch.nn.Linear(2, 2))


# --- Recalibration --------------------------------------------------------------------------------------------


def _smooth_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """uint8 [n, size, size, 3]: random 4x4 colour fields upsampled (image-like, not white noise)."""
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(n, 3, 4, 4, generator=g)
    x = F.interpolate(low, size=(size, size), mode="bilinear", align_corners=False)
    return (x.permute(0, 2, 3, 1) * 255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def tiny_model():
    from mmv.factory import create_model

    torch.manual_seed(0)
    model = create_model("tiny_fac", video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0}).eval()
    randomise_bn_(model.video)
    return model


def test_recalibration_improves_held_out_cosine_and_trains_only_gamma_beta(tiny_model):
    model = tiny_model
    video_state = {k: v.clone() for k, v in model.video.state_dict().items()}
    flags = [p.requires_grad for p in model.parameters()]
    tower, report = recalibrate(
        model,
        _smooth_images(48, 0),
        CalibrationOptions(steps=20, lr=1e-2, batch_size=16),
        held_out=_smooth_images(16, 1),
        attach=False,
    )
    naive, calibrated = report.cosine["naive"], report.cosine["calibrated"]
    # Measured: repr 0.942 -> 0.989, S_vat 0.970 -> 0.994 (T = 4 leaves every output near the zero padding).
    assert calibrated["repr"] > naive["repr"] + 0.02 and calibrated["vat"] > naive["vat"], (naive, calibrated)
    assert sum(report.losses[-5:]) < sum(report.losses[:5])
    # The video network is untouched and its requires_grad flags restored; only gamma/beta moved.
    for k, v in model.video.state_dict().items():
        assert torch.equal(v, video_state[k]), k
    assert [p.requires_grad for p in model.parameters()] == flags
    moved = [n for n, p in tower.named_parameters() if not torch.equal(p, model.video.get_parameter(n))]
    assert moved and all(n.endswith((".weight", ".bias")) for n in moved)
    assert report.info["num_frames"] == 4 and report.info["steps"] == 20 and len(report.losses) == 20
    # The held-out cosine is the one recomputed from the outputs.
    with torch.no_grad():
        x = _smooth_images(16, 1).float() / 255
        cos = mean_cosine(tower(x), model.video(inflate(x, 4)))
    assert cos == pytest.approx(calibrated["repr"], abs=1e-6)


def test_recalibration_is_deterministic_for_a_seed(tiny_model):
    images = _smooth_images(24, 2)
    options = CalibrationOptions(steps=5, batch_size=8, seed=3)
    a, _ = recalibrate(tiny_model, images, options, attach=False)
    b, _ = recalibrate(tiny_model, images, options, attach=False)
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.equal(p, q), name


def test_recalibration_rejects_bad_arguments(tiny_model):
    with pytest.raises(ValueError, match="target"):
        CalibrationOptions(steps=1, target="logits")
    with pytest.raises(ValueError, match="steps must be >= 0"):
        CalibrationOptions(steps=-1)
    with pytest.raises(ValueError, match=r"\[N, H, W, 3\]"):
        recalibrate(tiny_model, torch.zeros(4, 3, 32, 32), CalibrationOptions(steps=1))
