"""Toy-world video: how a clip's objects look and move, drawn frame by frame.

Part of :mod:`mmv.toyworld` (which re-exports the public names below). A clip is ``size`` x ``size``
(128 x 128) RGB at ``fps`` (8, i.e. 32 frames in 4 s): one object, sometimes a second one drawn behind it,
on a static background. Positions and radii in a :class:`~mmv.toyworld.spec.ObjectSpec` are fractions of the
frame side, so a spec renders at any ``size``.

How the primary object's attributes are seen (its labels describe it):

==========  ==============================================================================================
attribute   video
==========  ==============================================================================================
shape       circle, square, triangle, star (:data:`UNIT_SHAPES`: polygons of alike areas, with a fixed
            rotation of +-15 degrees except for the circle)
colour      red, yellow, green, cyan, blue, purple (:data:`COLOUR_RGB`: a flat fill, +-8 brightness)
size        small / large (:data:`SIZE_RADIUS`: radius 8.5 % / 14 % of the frame)
motion      static, right (left to right), left, up, down, grow (x0.55 -> x1.45, :data:`GROW_SCALE`),
            shrink, bounce (vertical hops, period 0.75-1.4 s); see :func:`object_trajectory`
==========  ==============================================================================================

Backgrounds (``ClipSpec.background``) are ``plain``, a ``gradient``, smooth ``blotches`` or a low-contrast
checkerboard of ``tiles``, in grey tones. Polygons are drawn anti-aliased at sub-pixel positions
(:func:`render_video`).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from mmv.toyworld.spec import ClipSpec, ObjectSpec, ToyWorldConfig

#: Fill colour of each colour name (sRGB). Hues 0, 52, 127, 183, 222, 275 degrees.
COLOUR_RGB: dict[str, tuple[int, int, int]] = {
    "red": (228, 38, 38),
    "yellow": (240, 208, 32),
    "green": (40, 188, 60),
    "cyan": (30, 198, 210),
    "blue": (40, 78, 236),
    "purple": (168, 52, 220),
}
#: Radius of each size as a fraction of the frame side.
SIZE_RADIUS: dict[str, float] = {"small": 0.085, "large": 0.14}

GROW_SCALE = (0.55, 1.45)  # radius multiplier at the start and end of 'grow' (reversed for 'shrink')

# Unit polygons (circumradius-ish 1, pointing up in image coordinates), scaled so the shapes' areas are
# alike (circle pi, square 3.2, triangle 2.7, star 2.9, in units of radius^2).
_STAR_INNER = 0.45


def _polygon(radii: Sequence[float], start_deg: float) -> np.ndarray:
    n = len(radii)
    angles = np.deg2rad(start_deg + 360.0 * np.arange(n) / n)
    r = np.asarray(radii, dtype=np.float64)
    return np.stack([r * np.cos(angles), -r * np.sin(angles)], axis=1)


UNIT_SHAPES: dict[str, np.ndarray] = {
    "circle": _polygon([1.0] * 48, 90.0),
    "square": _polygon([1.27] * 4, 45.0),
    "triangle": _polygon([1.45] * 3, 90.0),
    "star": _polygon([1.45, 1.45 * _STAR_INNER] * 5, 90.0),
}


def _background(spec: ClipSpec, size: int) -> np.ndarray:
    """The static background, uint8 ``[size, size, 3]``."""
    base = np.asarray(spec.bg_rgb, dtype=np.float32)
    other = np.asarray(spec.bg_rgb2, dtype=np.float32)
    rng = np.random.default_rng(spec.texture_seed)
    if spec.background == "plain":
        img = np.broadcast_to(base, (size, size, 3))
    elif spec.background == "gradient":
        theta = rng.uniform(0, 2 * np.pi)
        coords = np.linspace(-0.5, 0.5, size, dtype=np.float32)
        ramp = np.cos(theta) * coords[None, :] + np.sin(theta) * coords[:, None]  # [H, W] in about [-0.7, 0.7]
        w = np.clip(ramp / 1.4 + 0.5, 0, 1)[..., None]
        img = base * (1 - w) + other * w
    elif spec.background == "blotches":
        grid = rng.uniform(-1, 1, size=(5, 5)).astype(np.float32)
        smooth = cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)[..., None]
        img = base + 0.5 * smooth * (other - base)
    else:  # tiles: a low-contrast checkerboard floor
        tile = max(1, size // int(rng.choice([4, 8])))
        idx = np.arange(size) // tile
        checker = ((idx[:, None] + idx[None, :]) % 2).astype(np.float32)[..., None]
        img = base + 0.35 * checker * (other - base)
    return np.ascontiguousarray(np.clip(img, 0, 255).round().astype(np.uint8))


def object_trajectory(obj: ObjectSpec, times: np.ndarray, clip_seconds: float) -> tuple[np.ndarray, ...]:
    """Where the object is and how big, at each time.

    Args:
        obj: The object.
        times: Seconds, ``[T]``.
        clip_seconds: Clip length (the end of linear motions).

    Returns:
        ``(x, y, scale)``, each ``[T]``: centre as fractions of the frame side and the radius multiplier.
    """
    u = np.clip(np.asarray(times, dtype=np.float64) / clip_seconds, 0.0, 1.0)
    x = obj.x0 + (obj.x1 - obj.x0) * u
    y = obj.y0 + (obj.y1 - obj.y0) * u
    scale = np.ones_like(u)
    if obj.motion in ("grow", "shrink"):
        a, b = GROW_SCALE if obj.motion == "grow" else GROW_SCALE[::-1]
        scale = a + (b - a) * u
    elif obj.motion == "bounce":
        y = obj.y0 - obj.bounce_height * np.abs(np.sin(np.pi * (times / obj.bounce_period + obj.bounce_phase)))
    return x, y, scale


def render_video(spec: ClipSpec, cfg: ToyWorldConfig | None = None) -> np.ndarray:
    """Draws the clip's frames: anti-aliased polygons (sub-pixel positions) on the static background.

    Args:
        spec: The clip.
        cfg: Frame count, rate and size.

    Returns:
        uint8 ``[T, H, W, 3]`` RGB, frame ``i`` at time ``i / fps``.
    """

    cfg = cfg or ToyWorldConfig()
    size, shift = cfg.size, 4  # cv2 fixed point: 4 fractional bits
    times = np.arange(cfg.num_frames) / cfg.fps
    polygons = []  # per object, int32 [T, N, 2] in 1/16 pixel
    for obj in reversed(spec.objects):  # the second object is drawn first, behind the primary
        x, y, scale = object_trajectory(obj, times, cfg.clip_seconds)
        a = np.deg2rad(obj.angle)
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        unit = UNIT_SHAPES[obj.shape] @ rot  # [N, 2]
        pts = np.stack([x, y], axis=1)[:, None, :] + (obj.radius * scale)[:, None, None] * unit[None]  # [T, N, 2]
        polygons.append((np.round(pts * size * (1 << shift)).astype(np.int32), obj.rgb))
    background = _background(spec, size)
    frames = np.empty((cfg.num_frames, size, size, 3), dtype=np.uint8)
    for t in range(cfg.num_frames):
        frame = frames[t]
        frame[...] = background
        for pts, rgb in polygons:
            cv2.fillPoly(frame, [pts[t]], rgb, lineType=cv2.LINE_AA, shift=shift)
    return frames
