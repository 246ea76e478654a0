"""Colour augmentation of clips: pure functions on float ``[0, 1]`` (or uint8) ``[..., T, H, W, 3]`` tensors.

Parameters are drawn from an explicit ``np.random.Generator`` (:func:`sample_color_params`, a fixed number of
draws whatever it decides) and applied to every frame of a clip alike (:func:`apply_color`,
:func:`apply_color_uint8`); :mod:`mmv.data.transforms` wraps them in its modules (``ColorAugment``,
``TrainVideoTransform``). Choices where ``shared/mmv_spec.md`` section 1.1 is silent:

* **Colour** follows DMVR's ``color_default_augm`` (TensorFlow ops): brightness ``+U(-32/255, 32/255)``,
  saturation ``x U(0.6, 1.4)``, contrast ``x U(0.6, 1.4)`` around each frame's per-channel mean, hue
  ``+U(-0.2, 0.2)`` of a full turn, in that order, no clipping in between, then a clip to ``[0, 1]``.
  Saturation and hue are done in HSV exactly as TensorFlow's CPU kernels do: hue is rotated keeping each
  pixel's min and max channel (so out-of-range values after the brightness shift are handled), saturation
  is scaled and clamped to ``[0, 1]`` keeping the max channel (value). A hue shift of 1.0 is a full turn.
* **Where the colour augmentation runs**: in the loader, by default (``TrainVideoTransform(...,
  color_in_loader=True)``): the cropped clip goes to float once, is augmented in a planar layout and is
  rounded back to uint8 (about 6 ms per 16x112x112 clip on one core, next to about 5 ms of decoding), so the
  loader keeps its contract (uint8 out, the model converts to float). For large GPU runs pass
  ``color_in_loader=False``: the transform then only draws the parameters and returns
  ``(video, color_params)``; the dataset returns them as ``color_params`` (float32 ``[4]``, batched
  ``[B, 4]``) and the training step applies them on the device with :class:`mmv.data.transforms.ColorAugment`
  / :func:`apply_color`. Either way the augmentation is deterministic per sample.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

# Colour augmentation defaults (DMVR color_default_augm, quoted by VATT as MMV's).
BRIGHTNESS_DELTA = 32.0 / 255.0
SATURATION_RANGE = (0.6, 1.4)
CONTRAST_RANGE = (0.6, 1.4)
HUE_DELTA = 0.2
#: Parameters of :func:`apply_color` that change nothing: brightness delta, saturation, contrast, hue delta.
IDENTITY_COLOR = (0.0, 1.0, 1.0, 0.0)


def check_video(video: torch.Tensor) -> None:
    """Raises ``ValueError`` unless ``video`` is channels-last RGB, ``[..., H, W, 3]`` (every transform's input)."""
    if video.dim() < 3 or video.shape[-1] != 3:
        raise ValueError(f"video: expected [..., H, W, 3], got shape {tuple(video.shape)}")


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
    check_video(video)
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
