"""Video transforms: exact geometry, colour against naive references and analytic identities."""

from __future__ import annotations

import colorsys
import math

import numpy as np
import pytest
import torch

from mmv.data import color as C
from mmv.data import transforms as T


def _ramp_video(t: int = 4, h: int = 24, w: int = 32, step: float = 0.01) -> torch.Tensor:
    """float [T, H, W, 3]: one random picture, frame t brightened by t * step (so frames differ by constants)."""
    base = torch.rand(h, w, 3, generator=torch.Generator().manual_seed(0)) * 0.8
    return torch.stack([base + k * step for k in range(t)])


def _colorsys_reference(video: torch.Tensor, hue: float = 0.0, saturation: float = 1.0) -> torch.Tensor:
    flat = video.double().reshape(-1, 3).numpy().copy()
    for i, (r, g, b) in enumerate(flat):
        h, s, v = colorsys.rgb_to_hsv(r, g, b)
        flat[i] = colorsys.hsv_to_rgb((h + hue) % 1.0, min(1.0, max(0.0, s * saturation)), v)
    return torch.from_numpy(flat.reshape(video.shape))


# ------------------------------------------------------------------------------------------------ geometry


@pytest.mark.parametrize(
    ("hw", "size", "out"),
    [
        ((128, 128), 112, (112, 112)),
        ((240, 320), 112, (112, 149)),
        ((320, 240), 112, (149, 112)),
        ((50, 60), 100, (100, 120)),
    ],
)
def test_resize_short_side_shapes(hw: tuple[int, int], size: int, out: tuple[int, int]) -> None:
    for dtype in (torch.uint8, torch.float32):
        video = torch.zeros(3, *hw, 3, dtype=dtype)
        got = T.resize_short_side(video, size)
        assert tuple(got.shape) == (3, *out, 3) and got.dtype == dtype and got.is_contiguous()


def test_resize_keeps_constants_and_same_size_is_identity() -> None:
    video = torch.full((2, 30, 40, 3), 77, dtype=torch.uint8)
    assert torch.equal(T.resize(video, (17, 13)), torch.full((2, 17, 13, 3), 77, dtype=torch.uint8))
    v = _ramp_video()
    assert torch.equal(T.resize(v, (24, 32)), v)


def test_center_crop_is_exact_slice() -> None:
    video = torch.arange(2 * 10 * 12 * 3, dtype=torch.int32).reshape(2, 10, 12, 3).to(torch.uint8)
    assert torch.equal(T.center_crop(video, 4), video[:, 3:7, 4:8])
    assert torch.equal(T.center_crop(video, (5, 12)), video[:, 2:7, :])
    with pytest.raises(ValueError):
        T.center_crop(video, 11)


def test_random_crop_box_respects_ranges() -> None:
    rng = np.random.default_rng(0)
    for _ in range(300):
        top, left, h, w = T.random_crop_box(120, 160, (0.3, 1.0), (3 / 4, 4 / 3), rng)
        assert 0 <= top and top + h <= 120 and 0 <= left and left + w <= 160
        assert 0.3 * 0.9 <= h * w / (120 * 160) <= 1.0
        assert 3 / 4 * 0.9 <= w / h <= 4 / 3 * 1.1
    # A frame whose aspect is far outside the ratio range falls back to the largest central box in range.
    assert T.random_crop_box(10, 100, (0.9, 1.0), (3 / 4, 4 / 3), rng) == (0, 43, 10, 13)


def test_random_resized_crop_same_region_for_every_frame() -> None:
    video = _ramp_video(t=5)
    for seed in range(10):
        out = T.random_resized_crop(video, 16, np.random.default_rng(seed))
        assert tuple(out.shape) == (5, 16, 16, 3)
        # Bilinear resizing is linear and keeps constants: frame k - frame 0 is exactly k * step everywhere.
        for k in range(5):
            torch.testing.assert_close(out[k] - out[0], torch.full_like(out[0], 0.01 * k), atol=1e-5, rtol=0)
    # uint8: identical frames stay identical; the result is determined by the generator.
    frames = (_ramp_video(t=1)[0] * 255).to(torch.uint8).expand(6, -1, -1, -1)
    a = T.random_resized_crop(frames, (12, 20), np.random.default_rng(3))
    assert a.dtype == torch.uint8 and tuple(a.shape) == (6, 12, 20, 3)
    assert all(torch.equal(a[0], a[k]) for k in range(6))
    assert torch.equal(a, T.random_resized_crop(frames, (12, 20), np.random.default_rng(3)))


def test_random_resized_crop_full_frame_is_plain_resize() -> None:
    video = (_ramp_video(h=24, w=24) * 255).round().to(torch.uint8)
    out = T.random_resized_crop(video, 24, np.random.default_rng(0), scale=(1.0, 1.0), ratio=(1.0, 1.0))
    assert torch.equal(out, video)


def test_crop_takes_the_named_box() -> None:
    video = _ramp_video()
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    top, left, h, w = T.random_crop_box(24, 32, (0.3, 1.0), (3 / 4, 4 / 3), rng_a)
    expected = T.resize(video[:, top : top + h, left : left + w], 10)
    torch.testing.assert_close(T.random_resized_crop(video, 10, rng_b), expected)


def test_horizontal_flip_is_exact() -> None:
    video = torch.randint(0, 256, (3, 5, 7, 3), dtype=torch.uint8)
    flipped = T.horizontal_flip(video)
    for x in range(7):
        assert torch.equal(flipped[:, :, x], video[:, :, 6 - x])
    assert torch.equal(T.horizontal_flip(flipped), video)
    rng = np.random.default_rng(0)
    assert torch.equal(T.random_horizontal_flip(video, rng, p=0.0), video)
    assert torch.equal(T.random_horizontal_flip(video, rng, p=1.0), flipped)
    flips = [not torch.equal(T.random_horizontal_flip(video, rng, 0.5), video) for _ in range(400)]
    assert 0.4 < np.mean(flips) < 0.6


def test_scale_jitter_factors() -> None:
    video = torch.zeros(2, 100, 200, 3, dtype=torch.uint8)
    rng = np.random.default_rng(0)
    assert T.scale_jitter(video, rng, p=0.0) is video
    sizes = [tuple(T.scale_jitter(video, rng, p=1.0).shape[1:3]) for _ in range(100)]
    hs, ws = np.array(sizes).T
    assert hs.min() >= 80 and hs.max() <= 120 and ws.min() >= 160 and ws.max() <= 240
    assert len(set(hs / 100 - ws / 200)) > 10  # independent factors per axis


# ------------------------------------------------------------------------------------------------ colour


def test_identity_colour_parameters_change_nothing() -> None:
    video = _ramp_video()
    assert torch.equal(C.apply_color(video, C.IDENTITY_COLOR), video.clamp(0, 1))
    u8 = (video * 255).to(torch.uint8)
    assert C.apply_color_uint8(u8, C.IDENTITY_COLOR) is u8
    # The batched path computes every step; identity parameters still give the clip back.
    batch = torch.stack([video, video * 0.5])
    params = torch.tensor([C.IDENTITY_COLOR, C.IDENTITY_COLOR])
    torch.testing.assert_close(C.apply_color(batch, params), batch.clamp(0, 1), atol=1e-6, rtol=0)


def test_brightness_adds_exactly() -> None:
    video = _ramp_video() * 0.5
    out = C.apply_color(video, (0.1, 1.0, 1.0, 0.0))
    assert torch.equal(out, (video + 0.1).clamp(0, 1))
    assert torch.equal(C.adjust_brightness(video, -0.2), video - 0.2)


def test_contrast_scales_around_each_frames_channel_mean() -> None:
    video = _ramp_video()
    out = C.adjust_contrast(video, 1.3)
    mean = video.mean(dim=(1, 2), keepdim=True)
    torch.testing.assert_close(out, (video - mean) * 1.3 + mean, atol=1e-6, rtol=0)
    torch.testing.assert_close(out.mean(dim=(1, 2)), video.mean(dim=(1, 2)), atol=1e-6, rtol=0)


@pytest.mark.parametrize("delta", [0.13, -0.2, 0.5, -0.75])
def test_hue_matches_colorsys(delta: float) -> None:
    video = torch.rand(2, 6, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(C.adjust_hue(video, delta), _colorsys_reference(video, hue=delta), atol=1e-12, rtol=0)


@pytest.mark.parametrize("delta", [0.0, 1.0, -1.0])
def test_hue_whole_turns_are_identity(delta: float) -> None:
    video = _ramp_video()
    torch.testing.assert_close(C.adjust_hue(video, delta), video, atol=2e-6, rtol=0)


def test_hue_keeps_min_and_max_outside_unit_range() -> None:
    video = torch.rand(3, 8, 8, 3) * 1.4 - 0.2  # brightness-shifted values, as before the final clip
    out = C.adjust_hue(video, 0.3)
    torch.testing.assert_close(out.amax(-1), video.amax(-1), atol=1e-6, rtol=0)
    torch.testing.assert_close(out.amin(-1), video.amin(-1), atol=1e-6, rtol=0)
    assert torch.equal(C.adjust_hue(torch.full((1, 2, 2, 3), 0.4), 0.3), torch.full((1, 2, 2, 3), 0.4))  # grey


@pytest.mark.parametrize("factor", [0.0, 0.6, 1.4, 3.0])
def test_saturation_matches_colorsys(factor: float) -> None:
    video = torch.rand(2, 6, 5, 3, dtype=torch.float64)
    torch.testing.assert_close(
        C.adjust_saturation(video, factor), _colorsys_reference(video, saturation=factor), atol=1e-12, rtol=0
    )


def test_saturation_of_non_positive_value_is_grey() -> None:
    pixel = torch.tensor([[[[-0.1, -0.3, -0.2]]]])
    torch.testing.assert_close(C.adjust_saturation(pixel, 1.2), torch.full_like(pixel, -0.1))


def test_apply_color_order_and_batching() -> None:
    video = _ramp_video()
    params = torch.tensor([0.05, 1.3, 0.7, 0.15])
    expected = C.adjust_hue(C.adjust_contrast(C.adjust_saturation(video + 0.05, 1.3), 0.7), 0.15).clamp(0, 1)
    torch.testing.assert_close(C.apply_color(video, params), expected, atol=1e-6, rtol=0)
    other = torch.tensor([-0.1, 0.6, 1.4, -0.2])
    batch = C.apply_color(torch.stack([video, video.flip(1)]), torch.stack([params, other]))
    torch.testing.assert_close(batch[0], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(batch[1], C.apply_color(video.flip(1), other), atol=1e-6, rtol=0)
    u8 = (video * 255).round().to(torch.uint8)
    assert torch.equal(C.apply_color_uint8(u8, params), C.to_uint8(C.apply_color(C.to_float(u8), params)))


def test_sample_color_params_ranges_and_probability() -> None:
    rng = np.random.default_rng(0)
    draws = torch.stack([C.sample_color_params(rng, p=0.8) for _ in range(2000)])
    identity = torch.tensor(C.IDENTITY_COLOR)
    applied = draws[~(draws == identity).all(dim=1)]
    assert abs(len(applied) / 2000 - 0.8) < 0.03
    assert applied[:, 0].abs().max() <= 32 / 255 + 1e-6
    for col, (lo, hi) in ((1, (0.6, 1.4)), (2, (0.6, 1.4)), (3, (-0.2, 0.2))):
        assert lo - 1e-6 <= applied[:, col].min() and applied[:, col].max() <= hi + 1e-6
    assert torch.equal(C.sample_color_params(rng, p=0.0), identity)


def test_color_augment_stays_in_unit_range() -> None:
    video = _ramp_video(step=0.05)
    rng = np.random.default_rng(1)
    for _ in range(20):
        out = C.color_augment(video, rng, p=1.0)
        assert out.shape == video.shape and out.min() >= 0 and out.max() <= 1


# ------------------------------------------------------------------------------------------------ modules


def test_train_transform_shapes_determinism_and_deferred_colour() -> None:
    video = torch.randint(0, 256, (8, 40, 60, 3), dtype=torch.uint8)
    transform = T.TrainVideoTransform(24)
    a = transform(video, np.random.default_rng([1, 2, 3]))
    b = transform(video, np.random.default_rng([1, 2, 3]))
    assert a.dtype == torch.uint8 and tuple(a.shape) == (8, 24, 24, 3) and a.is_contiguous()
    assert torch.equal(a, b)
    deferred = T.TrainVideoTransform(24, color_in_loader=False)
    plain, params = deferred(video, np.random.default_rng([1, 2, 3]))
    assert params.shape == (4,) and params.dtype == torch.float32
    # Same draws: applying the returned parameters reproduces the in-loader result up to uint8 rounding.
    assert torch.equal(C.apply_color_uint8(plain, params), a)
    no_colour = T.TrainVideoTransform(24, color_prob=0.0)(video, np.random.default_rng([1, 2, 3]))
    assert torch.equal(no_colour, plain)
    flipped = T.TrainVideoTransform(24, color_prob=0.0, flip_prob=1.0)(video, np.random.default_rng([1, 2, 3]))
    assert torch.equal(flipped, plain.flip(2))


def test_eval_transform_resizes_then_centre_crops() -> None:
    video = torch.randint(0, 256, (4, 60, 80, 3), dtype=torch.uint8)
    out = T.EvalVideoTransform(30)(video)
    assert tuple(out.shape) == (4, 30, 30, 3) and out.dtype == torch.uint8
    assert torch.equal(out, T.center_crop(T.resize(video, (30, 40)), 30))
    assert tuple(T.EvalVideoTransform(30, resize_size=36)(video).shape) == (4, 30, 30, 3)


def test_module_wrappers_match_functions() -> None:
    video = _ramp_video()
    rng = lambda: np.random.default_rng(9)  # noqa: E731
    assert torch.equal(T.RandomResizedCrop(10)(video, rng()), T.random_resized_crop(video, 10, rng()))
    assert torch.equal(T.ResizeShortSide(12)(video), T.resize_short_side(video, 12))
    assert torch.equal(T.CenterCrop(8)(video), T.center_crop(video, 8))
    assert torch.equal(T.RandomHorizontalFlip(1.0)(video, rng()), T.horizontal_flip(video))
    assert torch.equal(T.ScaleJitter(1.0)(video, rng()), T.scale_jitter(video, rng(), 1.0))
    batch = torch.stack([video, video])
    params = torch.tensor([[0.1, 1.2, 0.8, 0.1], [0.0, 1.0, 1.0, 0.0]])
    out = T.ColorAugment()(batch, params)
    assert out.shape == batch.shape
    torch.testing.assert_close(out, C.apply_color(batch, params))
    assert T.ColorAugment(p=0.0)(video, rng=np.random.default_rng(0)).equal(video.clamp(0, 1))
    assert math.isclose(C.BRIGHTNESS_DELTA, 32 / 255)
