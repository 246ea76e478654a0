"""Video augmentations: pure functions on ``[..., T, H, W, 3]`` tensors plus thin ``nn.Module`` wrappers.

Every function takes the clip channels-last, as the loader and the model carry it (``[T, H, W, 3]``, or
``[B, T, H, W, 3]`` where it says so), and the *same* parameters are used for every frame of a clip.
Randomness always comes from an explicit ``np.random.Generator`` (the dataset seeds one per
``(seed, epoch, index)``), and each random function draws a fixed number of values whatever it decides,
so the streams of later transforms do not depend on earlier outcomes.

Geometry (crops, resizes, flips) works on ``uint8`` and float tensors alike (``torch.nn.functional.
interpolate`` has a fast uint8 bilinear path). Colour works on float ``[0, 1]`` tensors.

Choices where ``shared/mmv_spec.md`` section 1.1 is silent:

* **Random-resized-crop scale range ``(0.3, 1.0)``** of the frame area, aspect ratios ``(3/4, 4/3)``.
  MMV's own range is not known. DMVR's pipeline (short side to 224, scale jitter 0.8-1.2, 200 crop)
  keeps 55-100 % of a square frame's area and 28-70 % of a 16:9 frame's; ``(0.3, 1.0)`` spans both while
  keeping, on the 128-px toy world, crops large enough that the objects named in the narration usually
  stay in view. VATT's ``(0.08, 1)`` is for 224-px crops of real video and is not used.
* **Scale jitter** (DMVR's ``scale_jitter_augm``: with p = 0.8 resize H and W by independent factors in
  U(0.8, 1.2)) is available, but :class:`TrainVideoTransform` leaves it off by default: the random
  resized crop's aspect range already distorts the frame by up to 1.78x, more than the jitter's 1.5x.
* **Colour** follows DMVR's ``color_default_augm`` (TensorFlow ops): brightness ``+U(-32/255, 32/255)``,
  saturation ``x U(0.6, 1.4)``, contrast ``x U(0.6, 1.4)`` around each frame's per-channel mean, hue
  ``+U(-0.2, 0.2)`` of a full turn, in that order, no clipping in between, then a clip to ``[0, 1]``.
  Saturation and hue are done in HSV exactly as TensorFlow's CPU kernels do: hue is rotated keeping each
  pixel's min and max channel (so out-of-range values after the brightness shift are handled), saturation
  is scaled and clamped to ``[0, 1]`` keeping the max channel (value). A hue shift of 1.0 is a full turn.
* **Flips** default to off (``flip_prob = 0``) because the toy world's narrations say "left"/"right".
* **Where the colour augmentation runs**: in the loader, by default (``TrainVideoTransform(...,
  color_in_loader=True)``): the cropped clip goes to float once, is augmented in a planar layout and is
  rounded back to uint8 (about 6 ms per 16x112x112 clip on one core, next to about 5 ms of decoding), so the
  loader keeps its contract (uint8 out, the model converts to float). For large GPU runs pass
  ``color_in_loader=False``: the transform then only draws the parameters and returns
  ``(video, color_params)``; the dataset returns them as ``color_params`` (float32 ``[4]``, batched
  ``[B, 4]``) and the training step applies them on the device with :class:`ColorAugment` /
  :func:`apply_color`. Either way the augmentation is deterministic per sample.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

Size = int | tuple[int, int]

# Colour augmentation defaults (DMVR color_default_augm, quoted by VATT as MMV's).
BRIGHTNESS_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.6, 1.4)
CONTRAST_RANGE = (0.6, 1.4)
HUE_DELTA = 0.2
#: Parameters of :func:`apply_color` that change nothing: brightness delta, saturation, contrast, hue delta.
IDENTITY_COLOR = (0.0, 1.0, 1.0, 0.0)


def _pair(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"size: must be positive, got {size!r}")
    return h, w


def _check_video(video: torch.Tensor) -> None:
    if video.dim() < 3 or video.shape[-1] != 3:
        raise ValueError(f"video: expected [..., H, W, 3], got shape {tuple(video.shape)}")


# ---------------------------------------------------------------------------------------------------
# Geometry
# ---------------------------------------------------------------------------------------------------


def resize(video: torch.Tensor, size: Size, antialias: bool = True) -> torch.Tensor:
    """Bilinear resize of every frame to ``size``.

    Args:
        video: ``[..., H, W, 3]``, uint8 or float.
        size: ``(h, w)`` or one int for a square.
        antialias: low-pass when shrinking (as PIL and TensorFlow's ``antialias=True`` do).

    Returns:
        ``[..., h, w, 3]``, same dtype (uint8 is rounded), contiguous.
    """
    _check_video(video)
    h, w = _pair(size)
    lead, (H, W) = video.shape[:-3], video.shape[-3:-1]
    if (H, W) == (h, w):
        return video.contiguous()
    x = video.reshape(-1, H, W, 3).permute(0, 3, 1, 2)  # [N, 3, H, W] view, channels-last memory
    floating = x.is_floating_point()
    y = F.interpolate(x if floating or x.dtype == torch.uint8 else x.float(), size=(h, w), mode="bilinear",
                      align_corners=False, antialias=antialias)  # fmt: skip
    y = y.permute(0, 2, 3, 1)
    if y.dtype != video.dtype:
        y = y.round().clamp(0, 255).to(video.dtype)
    return y.reshape(*lead, h, w, 3).contiguous()


def resize_short_side(video: torch.Tensor, size: int, antialias: bool = True) -> torch.Tensor:
    """Resizes so that the shorter side is ``size``, keeping the aspect ratio (long side rounded).

    Args:
        video: ``[..., H, W, 3]``.
        size: the new short side.

    Returns:
        ``[..., h, w, 3]`` with ``min(h, w) == size``.
    """
    _check_video(video)
    H, W = video.shape[-3:-1]
    if H <= W:
        h, w = size, max(size, int(round(W * size / H)))
    else:
        h, w = max(size, int(round(H * size / W))), size
    return resize(video, (h, w), antialias)


def crop(video: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The same ``[top:top+height, left:left+width]`` box of every frame (a view, no copy)."""
    _check_video(video)
    H, W = video.shape[-3:-1]
    if not (0 <= top and 0 <= left and 0 < height and 0 < width and top + height <= H and left + width <= W):
        raise ValueError(f"crop box (top={top}, left={left}, {height}x{width}) outside a {H}x{W} frame")
    return video[..., top : top + height, left : left + width, :]


def center_crop(video: torch.Tensor, size: Size) -> torch.Tensor:
    """The central ``size`` box of every frame (offsets rounded down); the frame must be at least that big."""
    h, w = _pair(size)
    H, W = video.shape[-3:-1]
    if h > H or w > W:
        raise ValueError(f"center_crop: {h}x{w} larger than the {H}x{W} frame")
    return crop(video, (H - h) // 2, (W - w) // 2, h, w)


def random_crop_box(
    height: int,
    width: int,
    scale: tuple[float, float],
    ratio: tuple[float, float],
    rng: np.random.Generator,
    attempts: int = 10,
) -> tuple[int, int, int, int]:
    """A box covering a random fraction of the frame area with a random aspect ratio (Inception-style).

    Up to ``attempts`` draws of (area fraction ~ U(scale), log aspect ~ U(log ratio)); the first box that
    fits is placed uniformly. If none fits, the largest central box whose aspect is clamped into ``ratio``
    is used (as torchvision does).

    Args:
        height: frame height H.
        width: frame width W.
        scale: range of the box area as a fraction of ``H * W``.
        ratio: range of the box's width / height.
        rng: random source.
        attempts: draws before the fallback.

    Returns:
        ``(top, left, h, w)``.
    """
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale: need 0 < lo <= hi <= 1, got {scale!r}")
    if not 0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio: need 0 < lo <= hi, got {ratio!r}")
    area = height * width
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(attempts):
        target = area * rng.uniform(scale[0], scale[1])
        aspect = math.exp(rng.uniform(*log_ratio))
        w = int(round(math.sqrt(target * aspect)))
        h = int(round(math.sqrt(target / aspect)))
        if 0 < w <= width and 0 < h <= height:
            top = int(rng.integers(0, height - h + 1))
            left = int(rng.integers(0, width - w + 1))
            return top, left, h, w
    in_ratio = width / height
    if in_ratio < ratio[0]:
        w, h = width, int(round(width / ratio[0]))
    elif in_ratio > ratio[1]:
        h, w = height, int(round(height * ratio[1]))
    else:
        h, w = height, width
    return (height - h) // 2, (width - w) // 2, h, w


def random_resized_crop(
    video: torch.Tensor,
    size: Size,
    rng: np.random.Generator,
    scale: tuple[float, float] = (0.3, 1.0),
    ratio: tuple[float, float] = (3.0 / 4.0, 4.0 / 3.0),
) -> torch.Tensor:
    """Crops one random box (:func:`random_crop_box`) from every frame and resizes it to ``size``.

    Args:
        video: ``[..., H, W, 3]``, uint8 or float.
        size: output ``(h, w)`` or one int.
        rng: random source.
        scale: box area range as a fraction of the frame (see the module docstring for ``(0.3, 1.0)``).
        ratio: box aspect (width / height) range.

    Returns:
        ``[..., h, w, 3]``, same dtype.
    """
    _check_video(video)
    H, W = video.shape[-3:-1]
    top, left, h, w = random_crop_box(H, W, scale, ratio, rng)
    return resize(crop(video, top, left, h, w), size)


def horizontal_flip(video: torch.Tensor) -> torch.Tensor:
    """Mirrors every frame left-right (exact: a reversal of the W axis)."""
    _check_video(video)
    return video.flip(-2)


def random_horizontal_flip(video: torch.Tensor, rng: np.random.Generator, p: float = 0.5) -> torch.Tensor:
    """:func:`horizontal_flip` with probability ``p`` (one draw, always)."""
    return horizontal_flip(video) if rng.random() < p else video


def scale_jitter(
    video: torch.Tensor,
    rng: np.random.Generator,
    p: float = 0.8,
    factors: tuple[float, float] = (0.8, 1.2),
) -> torch.Tensor:
    """With probability ``p``, resizes H and W by independent factors drawn from ``U(factors)``.

    DMVR's ``scale_jitter_augm``. Three draws, always.

    Args:
        video: ``[..., H, W, 3]``.
        rng: random source.
        p: probability of jittering.
        factors: range of each axis' factor.

    Returns:
        ``[..., round(H * fy), round(W * fx), 3]``, or ``video`` itself.
    """
    _check_video(video)
    apply = rng.random() < p
    fy, fx = rng.uniform(factors[0], factors[1], size=2)
    if not apply:
        return video
    H, W = video.shape[-3:-1]
    return resize(video, (max(1, int(round(H * fy))), max(1, int(round(W * fx)))))


# ---------------------------------------------------------------------------------------------------
# Colour (float [0, 1] tensors)
#
# Internally the clip is *planar* ([3, ...], one contiguous plane per channel): the per-pixel max/min and
# hue arithmetic then runs on contiguous memory, several times faster than on interleaved RGB.
# ---------------------------------------------------------------------------------------------------


def _planar(video: torch.Tensor) -> torch.Tensor:
    """``[..., 3]`` -> a new contiguous float ``[3, ...]`` (uint8 is scaled to ``[0, 1]``)."""
    dtype = video.dtype if video.is_floating_point() else torch.float32
    x = torch.empty((3, *video.shape[:-1]), dtype=dtype, device=video.device)
    x.copy_(video.movedim(-1, 0))
    return x if video.is_floating_point() else x.div_(255.0)


def _interleaved(x: torch.Tensor) -> torch.Tensor:
    """``[3, ...]`` -> contiguous ``[..., 3]``."""
    return x.movedim(0, -1).contiguous()


def _per_sample(value: torch.Tensor | float, plane: torch.Tensor) -> torch.Tensor | float:
    """Shapes a ``[B]`` parameter to broadcast against a ``[B, ...]`` plane; floats pass through."""
    if not isinstance(value, torch.Tensor) or value.dim() == 0:
        return value
    return value.reshape(*value.shape, *([1] * (plane.dim() - value.dim())))


def _max_min(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    vmax = torch.maximum(x[0], x[1])
    vmin = torch.minimum(x[0], x[1])
    return torch.maximum(vmax, x[2], out=vmax), torch.minimum(vmin, x[2], out=vmin)


# The colour kernels below work in place and reuse their temporaries: on CPU a fresh 1-MB temporary costs
# more (page faults) than the arithmetic, and torch.where is several times slower than a blend.


def _saturation_(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    # At fixed hue and value each channel is vmax - span * w(hue), so scaling the HSV saturation scales
    # (vmax - c) by new_span / span, with new_span = clamp(span * factor, 0, max(vmax, 0)): TensorFlow's
    # clamp(s * factor, 0, 1) * v without dividing by v (s = 0 for v <= 0).
    vmax, vmin = _max_min(x)
    span = vmin.neg_().add_(vmax)
    ratio = torch.mul(span, _per_sample(factor, span))
    ratio = torch.minimum(ratio, vmax.clamp_min(0.0), out=ratio).clamp_min_(0.0).div_(span.clamp_min_(1e-12))
    return x.sub_(vmax).mul_(ratio).add_(vmax)


def _contrast_(x: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    mean = x.mean(dim=(-2, -1), keepdim=True)  # per channel and frame
    return x.sub_(mean).mul_(_per_sample(factor, x[0])).add_(mean)


def _hue_(x: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    # TensorFlow's rgb_to_hv_range / hv_range_to_rgb: hue in sextants [0, 6), each pixel's min and max kept.
    r, g, b = x[0], x[1], x[2]
    vmax, vmin = _max_min(x)
    span = vmax - vmin
    inv = span.clamp_min(1e-12).reciprocal_()  # grey pixels (span 0) come back grey whatever the hue
    # The sextant formula of the max channel, as a blend: hue = h_b + is_r (h_r - h_b) + is_g (h_g - h_b).
    is_r = torch.sub(r, vmax).sign_().add_(1.0)  # 1 where r is the max
    is_g = torch.sub(g, vmax).sign_().add_(1.0).sub_(is_r).clamp_min_(0.0)  # 1 where g is, and r is not
    hue = torch.sub(r, g).mul_(inv).add_(4.0)  # h_b
    h_r = torch.sub(g, b).mul_(inv).sub_(hue).mul_(is_r)
    h_g = torch.sub(b, r).mul_(inv).add_(2.0).sub_(hue).mul_(is_g)
    hue.add_(h_r).add_(h_g)  # in [-1, 5)
    shift = _per_sample(delta, hue)
    hue.add_(shift * 6.0 if isinstance(shift, torch.Tensor) else 6.0 * shift)
    hue.sub_(torch.mul(hue, 1.0 / 6.0, out=h_r).floor_().mul_(6.0))  # mod 6
    # c = vmin + span * clamp(t(hue), 0, 1) with t_R = |h - 3| - 1, t_G = 2 - |h - 2|, t_B = 2 - |h - 4|.
    torch.sub(hue, 3.0, out=r).abs_().sub_(1.0)
    torch.sub(hue, 2.0, out=g).abs_().neg_().add_(2.0)
    torch.sub(hue, 4.0, out=b).abs_().neg_().add_(2.0)
    return x.clamp_(0.0, 1.0).mul_(span).add_(vmin)


def _color_(x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
    """Applies brightness, saturation, contrast and hue in place to a planar float clip, then clips."""
    if params.dim() == 1:  # one clip: skip the steps whose parameter is the identity
        b, s, c, h = (float(v) for v in params)
        if b != 0.0:
            x.add_(b)
        if s != 1.0:
            _saturation_(x, s)
        if c != 1.0:
            _contrast_(x, c)
        if h != 0.0:
            _hue_(x, h)
    else:
        b, s, c, h = params.unbind(-1)
        x.add_(_per_sample(b, x[0]))
        _hue_(_contrast_(_saturation_(x, s), c), h)
    return x.clamp_(0.0, 1.0)


def adjust_brightness(video: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """``video + delta`` (no clipping, as ``tf.image.adjust_brightness``).

    Args:
        video: float ``[T, H, W, 3]``, or ``[B, T, H, W, 3]`` with ``delta`` a float or ``[B]`` tensor
            (the same holds for every ``adjust_*`` function).
        delta: the shift.

    Returns:
        float, ``video``-shaped.
    """
    if isinstance(delta, torch.Tensor):
        delta = _per_sample(delta, video[..., 0]).unsqueeze(-1)
    return video + delta


def adjust_contrast(video: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """``(x - mean) * factor + mean`` with the mean of each frame and channel (``tf.image.adjust_contrast``)."""
    return _interleaved(_contrast_(_planar(video), factor))


def adjust_saturation(video: torch.Tensor, factor: torch.Tensor | float) -> torch.Tensor:
    """Scales the HSV saturation by ``factor``, clamped to ``[0, 1]``, keeping hue and value (max channel).

    Matches TensorFlow's ``adjust_saturation`` kernel, including pixels outside ``[0, 1]``.
    """
    return _interleaved(_saturation_(_planar(video), factor))


def adjust_hue(video: torch.Tensor, delta: torch.Tensor | float) -> torch.Tensor:
    """Rotates the HSV hue by ``delta`` turns (1.0 = 360 degrees), keeping each pixel's min and max channel.

    Matches TensorFlow's ``adjust_hue`` kernel, including pixels outside ``[0, 1]``.
    """
    return _interleaved(_hue_(_planar(video), delta))


def sample_color_params(
    rng: np.random.Generator,
    p: float = 0.8,
    brightness: float = BRIGHTNESS_DELTA,
    saturation: tuple[float, float] = SATURATION_RANGE,
    contrast: tuple[float, float] = CONTRAST_RANGE,
    hue: float = HUE_DELTA,
) -> torch.Tensor:
    """Draws one clip's colour parameters (five draws, always).

    Returns:
        float32 ``[4]``: brightness delta ~ U(-brightness, brightness), saturation factor ~ U(saturation),
        contrast factor ~ U(contrast), hue delta ~ U(-hue, hue); with probability ``1 - p``
        :data:`IDENTITY_COLOR`.
    """
    apply = rng.random() < p
    u = rng.random(4)
    params = (
        brightness * (2.0 * u[0] - 1.0),
        saturation[0] + (saturation[1] - saturation[0]) * u[1],
        contrast[0] + (contrast[1] - contrast[0]) * u[2],
        hue * (2.0 * u[3] - 1.0),
    )
    return torch.tensor(params if apply else IDENTITY_COLOR, dtype=torch.float32)


def _check_params(video: torch.Tensor, params: torch.Tensor | Sequence[float]) -> torch.Tensor:
    _check_video(video)
    params = torch.as_tensor(params, dtype=torch.float32, device=video.device)
    if params.shape[-1] != 4 or video.dim() - params.dim() != 3:
        raise ValueError(f"params: expected [4] for [T, H, W, 3] or [B, 4] for [B, T, H, W, 3], got {params.shape}")
    return params


def apply_color(video: torch.Tensor, params: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """Brightness, saturation, contrast, hue (in that order, DMVR's), then a clip to ``[0, 1]``.

    Args:
        video: float ``[T, H, W, 3]`` with ``params`` ``[4]``, or ``[B, T, H, W, 3]`` with ``params``
            ``[B, 4]`` (one set per clip, e.g. on the GPU in the training step).
        params: see :func:`sample_color_params`.

    Returns:
        float ``video``-shaped, in ``[0, 1]``. For a single clip, steps whose parameter is the identity are
        skipped (identity parameters return ``video.clamp(0, 1)`` exactly).
    """
    if not video.is_floating_point():
        raise TypeError(f"apply_color: needs a float video in [0, 1], got {video.dtype}")
    params = _check_params(video, params).to(video.dtype)
    return _interleaved(_color_(_planar(video), params))


def apply_color_uint8(video: torch.Tensor, params: torch.Tensor | Sequence[float]) -> torch.Tensor:
    """:func:`apply_color` for a uint8 clip: to float ``[0, 1]``, augment, round back to uint8.

    The loader's path (one conversion each way, in the planar layout). Identity parameters return the
    input unchanged.
    """
    if video.dtype != torch.uint8:
        raise TypeError(f"apply_color_uint8: needs a uint8 video, got {video.dtype}")
    params = _check_params(video, params)
    if params.dim() == 1 and torch.equal(params, torch.tensor(IDENTITY_COLOR, device=params.device)):
        return video
    x = _color_(_planar(video), params).mul_(255.0).round_()
    return x.to(torch.uint8).movedim(0, -1).contiguous()


def color_augment(video: torch.Tensor, rng: np.random.Generator, p: float = 0.8, **ranges: float) -> torch.Tensor:
    """:func:`apply_color` with parameters from :func:`sample_color_params` (``ranges`` are its keywords).

    Args:
        video: float ``[T, H, W, 3]`` in ``[0, 1]`` (uint8 goes through :func:`apply_color_uint8`).
        rng: random source.
        p: probability of augmenting; otherwise the clip is returned clipped to ``[0, 1]``.

    Returns:
        ``video``-shaped, same dtype.
    """
    params = sample_color_params(rng, p, **ranges)
    return apply_color_uint8(video, params) if video.dtype == torch.uint8 else apply_color(video, params)


def to_float(video: torch.Tensor) -> torch.Tensor:
    """uint8 ``[0, 255]`` -> float32 ``[0, 1]``."""
    return video.float().div_(255.0) if video.dtype == torch.uint8 else video


def to_uint8(video: torch.Tensor) -> torch.Tensor:
    """float ``[0, 1]`` -> uint8, rounded to the nearest level."""
    return video.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)


# ---------------------------------------------------------------------------------------------------
# Modules
# ---------------------------------------------------------------------------------------------------


def _rng(rng: np.random.Generator | None) -> np.random.Generator:
    return rng if rng is not None else np.random.default_rng()


class ResizeShortSide(nn.Module):
    """:func:`resize_short_side` as a module."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.size = size

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return resize_short_side(video, self.size)


class CenterCrop(nn.Module):
    """:func:`center_crop` as a module."""

    def __init__(self, size: Size) -> None:
        super().__init__()
        self.size = size

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        return center_crop(video, self.size)


class RandomResizedCrop(nn.Module):
    """:func:`random_resized_crop` as a module; ``forward(video, rng=None)``."""

    def __init__(
        self, size: Size, scale: tuple[float, float] = (0.3, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3)
    ) -> None:
        super().__init__()
        self.size, self.scale, self.ratio = size, tuple(scale), tuple(ratio)

    def forward(self, video: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return random_resized_crop(video, self.size, _rng(rng), self.scale, self.ratio)


class RandomHorizontalFlip(nn.Module):
    """:func:`random_horizontal_flip` as a module."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        self.p = p

    def forward(self, video: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return random_horizontal_flip(video, _rng(rng), self.p)


class ScaleJitter(nn.Module):
    """:func:`scale_jitter` as a module."""

    def __init__(self, p: float = 0.8, factors: tuple[float, float] = (0.8, 1.2)) -> None:
        super().__init__()
        self.p, self.factors = p, tuple(factors)

    def forward(self, video: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        return scale_jitter(video, _rng(rng), self.p, self.factors)


class ColorAugment(nn.Module):
    """Colour augmentation of float clips.

    ``forward(video, params=None, rng=None)``: with ``params`` (``[4]`` or ``[B, 4]``, e.g. the loader's
    ``color_params``) applies them; otherwise draws them from ``rng`` (one set per clip of a
    ``[B, T, H, W, 3]`` batch). Works on any device.
    """

    def __init__(self, p: float = 0.8) -> None:
        super().__init__()
        self.p = p

    def forward(
        self, video: torch.Tensor, params: torch.Tensor | None = None, rng: np.random.Generator | None = None
    ) -> torch.Tensor:
        if params is None:
            rng = _rng(rng)
            if video.dim() == 5:
                params = torch.stack([sample_color_params(rng, self.p) for _ in range(video.shape[0])])
            else:
                params = sample_color_params(rng, self.p)
        return apply_color(video, params.to(video.device))


class TrainVideoTransform(nn.Module):
    """The training clip transform: uint8 ``[T, H, W, 3]`` in, uint8 ``[T, S, S, 3]`` out.

    Steps: optional scale jitter, random resized crop to ``frame_size``, optional horizontal flip, then
    colour: applied here (``color_in_loader=True``), or only drawn, in which case ``forward`` returns
    ``(video, color_params)`` and the dataset passes ``color_params`` (float32 ``[4]``) on to the training
    step, which applies them batched with :class:`ColorAugment`. The draw order is fixed, so a given ``rng``
    state always yields the same clip and parameters either way.

    Args:
        frame_size: S.
        scale: random-resized-crop area range.
        ratio: random-resized-crop aspect range.
        flip_prob: horizontal flip probability (0: off, the toy-world default).
        color_prob: colour augmentation probability (0: off).
        jitter_prob: scale-jitter probability (0: off; 0.8 for DMVR's pipeline).
        color_in_loader: see above.
    """

    def __init__(
        self,
        frame_size: int,
        scale: tuple[float, float] = (0.3, 1.0),
        ratio: tuple[float, float] = (3 / 4, 4 / 3),
        flip_prob: float = 0.0,
        color_prob: float = 0.8,
        jitter_prob: float = 0.0,
        color_in_loader: bool = True,
    ) -> None:
        super().__init__()
        for name, p in (("flip_prob", flip_prob), ("color_prob", color_prob), ("jitter_prob", jitter_prob)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name}: must be in [0, 1], got {p!r}")
        self.frame_size = frame_size
        self.scale, self.ratio = tuple(scale), tuple(ratio)
        self.flip_prob, self.color_prob, self.jitter_prob = flip_prob, color_prob, jitter_prob
        self.color_in_loader = color_in_loader

    def extra_repr(self) -> str:
        return (
            f"frame_size={self.frame_size}, scale={self.scale}, ratio={self.ratio}, flip_prob={self.flip_prob}, "
            f"color_prob={self.color_prob}, jitter_prob={self.jitter_prob}, color_in_loader={self.color_in_loader}"
        )

    def forward(
        self, video: torch.Tensor, rng: np.random.Generator | None = None
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Augments one clip.

        Args:
            video: uint8 ``[T, H, W, 3]``.
            rng: random source (a fresh one when ``None``).

        Returns:
            uint8 ``[T, S, S, 3]``; with ``color_in_loader=False`` also the float32 ``[4]`` colour parameters.
        """
        rng = _rng(rng)
        if self.jitter_prob > 0:
            video = scale_jitter(video, rng, self.jitter_prob)
        video = random_resized_crop(video, self.frame_size, rng, self.scale, self.ratio)
        if self.flip_prob > 0:
            video = random_horizontal_flip(video, rng, self.flip_prob)
        if self.color_prob > 0:
            params = sample_color_params(rng, self.color_prob)
        else:
            params = torch.tensor(IDENTITY_COLOR, dtype=torch.float32)
        if self.color_in_loader:
            return apply_color_uint8(video, params).contiguous()
        return video.contiguous(), params


class EvalVideoTransform(nn.Module):
    """The evaluation clip transform: resize the short side to ``resize_size``, centre-crop ``frame_size``.

    Args:
        frame_size: S of the ``[T, S, S, 3]`` output.
        resize_size: short side before the crop (default ``frame_size``: the whole short side is kept).
    """

    def __init__(self, frame_size: int, resize_size: int | None = None) -> None:
        super().__init__()
        self.frame_size = frame_size
        self.resize_size = frame_size if resize_size is None else resize_size
        if self.resize_size < frame_size:
            raise ValueError(f"resize_size ({self.resize_size}) must be >= frame_size ({frame_size})")

    def forward(self, video: torch.Tensor, rng: np.random.Generator | None = None) -> torch.Tensor:
        """uint8/float ``[T, H, W, 3]`` -> ``[T, S, S, 3]``, same dtype; ``rng`` is accepted and ignored."""
        return center_crop(resize_short_side(video, self.resize_size), self.frame_size).contiguous()
