"""Toy-world video: what is drawn in the raw frames (colours, trajectories, sizes, the second object)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from toyworld_helpers import CFG, centroid, clean, find_spec, object_mask

import mmv.toyworld as tw
from mmv.toyworld import render


def test_colour_table_is_well_separated() -> None:
    rgb = np.array([render.COLOUR_RGB[c] for c in tw.COLOURS], dtype=float)
    dists = np.linalg.norm(rgb[:, None] - rgb[None], axis=-1) + 1e9 * np.eye(len(rgb))
    assert dists.min() > 80  # well separated colours


def test_render_shapes() -> None:
    spec = tw.clip_spec(0, 0, CFG)
    frames = render.render_video(spec, CFG)
    assert frames.shape == (32, 128, 128, 3) and frames.dtype == np.uint8
    small = render.render_video(spec, dataclasses.replace(CFG, size=64))  # specs are resolution independent
    assert small.shape == (32, 64, 64, 3)


@pytest.mark.parametrize("motion", tw.MOTIONS)
def test_drawn_object_follows_its_trajectory(motion: str) -> None:
    _, spec = find_spec(clean(motion))
    obj = spec.primary
    frames = render.render_video(spec, CFG)
    bg = np.asarray(spec.bg_rgb, dtype=np.uint8)
    masks = [object_mask(f, bg) for f in frames]
    # the interior is exactly the object's fill colour
    interior = object_mask(frames[0], bg, erode=2)
    np.testing.assert_array_equal(np.unique(frames[0][interior], axis=0), [obj.rgb])
    # the centroid is where the trajectory says (polygon centroid = centre for these symmetric shapes,
    # up to the triangle's and star's top-heavy outline)
    x, y, scale = render.object_trajectory(obj, np.arange(32) / CFG.fps, CFG.clip_seconds)
    cx, cy = np.array([centroid(m) for m in masks]).T
    tol = 1.0 if obj.shape in ("circle", "square") else 0.35 * obj.radius * 128
    np.testing.assert_allclose(cx, x * 128 - 0.5, atol=tol)
    np.testing.assert_allclose(cy, y * 128 - 0.5, atol=tol)
    area = np.array([m.sum() for m in masks], dtype=float)
    if motion == "right":
        assert np.all(np.diff(cx) > 0) and cx[-1] - cx[0] > 25
    elif motion == "left":
        assert np.all(np.diff(cx) < 0) and cx[0] - cx[-1] > 25
    elif motion == "up":
        assert np.all(np.diff(cy) < 0) and cy[0] - cy[-1] > 25
    elif motion == "down":
        assert np.all(np.diff(cy) > 0) and cy[-1] - cy[0] > 25
    elif motion == "grow":
        assert np.all(np.diff(area) > 0) and area[-1] / area[0] > 5
    elif motion == "shrink":
        assert np.all(np.diff(area) < 0) and area[0] / area[-1] > 5
    elif motion == "bounce":
        assert cy.max() - cy.min() > 0.5 * obj.bounce_height * 128
    else:
        assert np.ptp(cx) == 0 and np.ptp(cy) == 0 and np.ptp(area) == 0


def test_second_object_is_drawn_behind_in_another_colour() -> None:
    _, spec = find_spec(lambda s: len(s.objects) == 2 and s.background == "plain")
    assert spec.objects[1].colour != spec.primary.colour
    frames = render.render_video(spec, CFG)
    colours = {tuple(c) for c in frames.reshape(-1, 3)}
    assert spec.primary.rgb in colours and spec.objects[1].rgb in colours
