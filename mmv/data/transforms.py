"""Video augmentations: geometry as pure functions on ``[..., T, H, W, 3]`` tensors, thin ``nn.Module``
wrappers, and the clip pipelines (:class:`TrainVideoTransform`, :class:`EvalVideoTransform`).

Every function takes the clip channels-last, as the loader and the model carry it (``[T, H, W, 3]``, or
``[B, T, H, W, 3]`` where it says so), and the *same* parameters are used for every frame of a clip.
Randomness always comes from an explicit ``np.random.Generator`` (the dataset seeds one per
``(seed, epoch, index)``), and each random function draws a fixed number of values whatever it decides,
so the streams of later transforms do not depend on earlier outcomes.

Geometry (crops, resizes, flips) works on ``uint8`` and float tensors alike (``torch.nn.functional.
interpolate`` has a fast uint8 bilinear path). Colour, on float ``[0, 1]`` tensors, is :mod:`mmv.data.color`
(DMVR's ``color_default_augm``, and where it runs: the loader or the training step); the modules here apply it.

Choices where ``shared/mmv_spec.md`` section 1.1 is silent:

* **Random-resized-crop scale range ``(0.3, 1.0)``** of the frame area, aspect ratios ``(3/4, 4/3)``.
  MMV's own range is not known. DMVR's pipeline (short side to 224, scale jitter 0.8-1.2, 200 crop)
  keeps 55-100 % of a square frame's area and 28-70 % of a 16:9 frame's; ``(0.3, 1.0)`` spans both while
  keeping, on the 128-px toy world, crops large enough that the objects named in the narration usually
  stay in view. VATT's ``(0.08, 1)`` is for 224-px crops of real video and is not used.
* **Scale jitter** (DMVR's ``scale_jitter_augm``: with p = 0.8 resize H and W by independent factors in
  U(0.8, 1.2)) is available, but :class:`TrainVideoTransform` leaves it off by default: the random
  resized crop's aspect range already distorts the frame by up to 1.78x, more than the jitter's 1.5x.
* **Flips** default to off (``flip_prob = 0``) because the toy world's narrations say "left"/"right".
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmv.data.color import IDENTITY_COLOR, apply_color, apply_color_uint8, check_video, sample_color_params

Size = int | tuple[int, int]


def _pair(size: Size) -> tuple[int, int]:
    h, w = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if h < 1 or w < 1:
        raise ValueError(f"size: must be positive, got {size!r}")
    return h, w


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
    check_video(video)
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
    check_video(video)
    H, W = video.shape[-3:-1]
    if H <= W:
        h, w = size, max(size, int(round(W * size / H)))
    else:
        h, w = max(size, int(round(H * size / W))), size
    return resize(video, (h, w), antialias)


def crop(video: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """The same ``[top:top+height, left:left+width]`` box of every frame (a view, no copy)."""
    check_video(video)
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
    check_video(video)
    H, W = video.shape[-3:-1]
    top, left, h, w = random_crop_box(H, W, scale, ratio, rng)
    return resize(crop(video, top, left, h, w), size)


def horizontal_flip(video: torch.Tensor) -> torch.Tensor:
    """Mirrors every frame left-right (exact: a reversal of the W axis)."""
    check_video(video)
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
    check_video(video)
    apply = rng.random() < p
    fy, fx = rng.uniform(factors[0], factors[1], size=2)
    if not apply:
        return video
    H, W = video.shape[-3:-1]
    return resize(video, (max(1, int(round(H * fy))), max(1, int(round(W * fx)))))


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
