"""The Deflation lab's logic: one still image embedded three ways by a video model, side by side.

For each image (uint8 ``[H, W, 3]``, prepared like the bank's frames: short side to the model's ``frame_size``,
centre crop) the lab computes, with the library's own functions (:mod:`mmv.deflation`, so its numbers are
those of ``training.evaluate --image-mode``, ``training.deflate --report`` and ``benchmarks/deflation.py``):

* the three embeddings of :data:`mmv.deflation.MODES` (:func:`mmv.deflation.compare`): ``inflated`` (the image
  repeated ``T = config.video.num_frames`` times as a static clip through the video tower, the reference),
  ``naive`` (the deflated tower with the video network's BatchNorm gamma/beta) and ``calibrated`` (the deflated
  tower with recalibrated gamma/beta; only when the checkpoint has ``deflation.safetensors``);
* the cosine of each deflated embedding to the inflated one, in ``repr`` (the backbone's pooled feature) and in
  every embedding space (``va``, ``vat``);
* the time per image of each path, measured on this image alone (batch of one, median of ``repeats`` runs after
  one untimed warm-up run that fills the deflated towers' kernel caches);
* image -> text and image -> video neighbours in the bank (:class:`~app.logic.bank_search.BankSearch`), in S_vat
  (the space the paper's image -> text transfer uses; S_va when the bank has no S_vat);
* the three points placed on the bank's map of that space (:meth:`mmv.bank.Bank.project`), so the page can join
  them by arrows.

The page is ``app/views/deflation_lab.py``.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import torch

from app.logic.bank_search import BankSearch, QueryError
from mmv.deflation import MODES, available_modes, compare, frames_from_manifest, prepare_image

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

ROOT = Path(__file__).resolve().parents[2]
#: Column titles of the three paths.
MODE_TITLES = {"inflated": "Inflated (static clip)", "naive": "Naive deflation", "calibrated": "Calibrated deflation"}
#: Colours and marker symbols of the three paths on the map (arrows take the colour of their head).
MODE_COLOURS = {"inflated": "#111111", "naive": "#d62728", "calibrated": "#9467bd"}  # not the modalities' colours
MODE_SYMBOLS = {"inflated": "circle-open", "naive": "x", "calibrated": "diamond"}
#: Images embedded at once at most (each costs about T + 2 image passes per timing run).
MAX_IMAGES = 6
#: Spaces whose cosine to the inflated embedding is reported, in order.
SPACES = ("repr", "va", "vat")


# ---------------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------------


@dataclass
class LabImage:
    """One image of the lab.

    Attributes:
        label: what the page calls it.
        image: uint8 ``[H, W, 3]`` RGB.
        row: the bank row of the clip it is a frame of (``None`` for a bundled still or an upload).
    """

    label: str
    image: np.ndarray
    row: int | None = None


@dataclass(frozen=True)
class Still:
    """A bundled still: the frame shown at ``seconds`` in a clip shipped in ``data_samples/``."""

    label: str
    path: Path
    seconds: float


#: ``data_samples/`` holds no image files, so the bundled stills are frames of its clips.
BUNDLED_STILLS = (
    Still("Big Buck Bunny, 1.0 s", ROOT / "data_samples/real/big_buck_bunny_10s.mp4", 1.0),
    Still("Big Buck Bunny, 3.2 s (the yawn)", ROOT / "data_samples/real/big_buck_bunny_10s.mp4", 3.2),
    Still("Big Buck Bunny, 4.8 s", ROOT / "data_samples/real/big_buck_bunny_10s.mp4", 4.8),
    Still("toy world clip 000000, 2.0 s", ROOT / "data_samples/toyworld/clips/000000.mp4", 2.0),
    Still("toy world clip 000012, 2.0 s", ROOT / "data_samples/toyworld/clips/000012.mp4", 2.0),
    Still("toy world clip 000030, 2.0 s", ROOT / "data_samples/toyworld/clips/000030.mp4", 2.0),
)


def still_images(stills: Sequence[Still]) -> list[LabImage]:
    """The frames of bundled stills at native size (uint8 ``[H, W, 3]`` each).

    Raises:
        ValueError: a still's clip is missing or cannot be decoded (message names the file).
    """
    from mmv.data.media import MediaError, read_frames_at

    out = []
    for still in stills:
        try:
            frame = read_frames_at(still.path, [still.seconds])[0]
        except (MediaError, OSError, ValueError) as e:
            raise ValueError(f"The bundled still '{still.label}' cannot be read ({e}).") from e
        out.append(LabImage(still.label, np.ascontiguousarray(frame)))
    return out


def video_rows(search: BankSearch) -> list[int]:
    """Bank rows whose clip has a video file (the ones a frame can be taken from)."""
    if "video_path" not in search.meta:
        return []
    return np.flatnonzero(search.meta["video_path"].notna().to_numpy()).tolist()


def bank_images(search: BankSearch, rows: Sequence[int], size: int) -> list[LabImage]:
    """The middle frame of each bank clip's window, prepared at ``size`` (uint8 ``[size, size, 3]``).

    The frames are :func:`mmv.deflation.frames_from_manifest`'s with ``position='middle'``: the frames the
    deflation report (``training.deflate --report``) embeds for the same clips. Clips whose media cannot be read
    are left out (:class:`ValueError` when none can).
    """
    rows = [int(r) for r in rows]
    if not rows:
        return []
    frames = frames_from_manifest(search.meta.iloc[rows].reset_index(drop=True), size, position="middle")
    row_of = {str(search.meta.iloc[r]["clip_id"]): r for r in rows}
    return [
        LabImage(f"{clip} (bank frame)", frames.images[i].numpy(), row_of[str(clip)])
        for i, clip in enumerate(frames.labels["clip_id"])
    ]


def prepare_images(images: Sequence[LabImage], size: int) -> torch.Tensor:
    """uint8 ``[N, size, size, 3]``: each image's short side to ``size`` (antialiased), centre crop.

    :func:`mmv.deflation.prepare_image`, the evaluation transform; an image already ``size x size`` is kept as it is
    (the transform would return it unchanged).
    """
    out = []
    for im in images:
        x = np.asarray(im.image)
        if x.ndim != 3 or x.shape[2] != 3 or x.dtype != np.uint8:
            raise ValueError(f"'{im.label}': expected a uint8 [H, W, 3] RGB image, got {x.dtype} {x.shape}")
        t = torch.from_numpy(np.ascontiguousarray(x))
        out.append(t if t.shape[:2] == (size, size) else prepare_image(t, size))
    return torch.stack(out)


# ---------------------------------------------------------------------------------------------------
# Embedding
# ---------------------------------------------------------------------------------------------------


@dataclass
class PathResult:
    """One image through one path.

    Attributes:
        mode: one of :data:`mmv.deflation.MODES`.
        embeddings: ``{'repr': [d_v], 'va': [D_va], 'vat': [D_vat]}`` float32 (the spaces the model has;
            ``va``/``vat`` L2-normalised, ``repr`` raw).
        cosine: ``{space: cosine to the inflated embedding}`` (empty for ``inflated``, the reference).
        ms_per_image: measured milliseconds for this image (preprocessing, tower and heads).
        text_hits / video_hits: top-k bank texts / videos (:meth:`app.logic.bank_search.BankSearch.search_in`), ``None``
            before :func:`add_neighbours` or when the bank has no such vectors.
        xy: the point on the bank's map of ``map_space``, ``None`` before :func:`add_neighbours`.
    """

    mode: str
    embeddings: dict[str, np.ndarray]
    cosine: dict[str, float]
    ms_per_image: float
    text_hits: pd.DataFrame | None = None
    video_hits: pd.DataFrame | None = None
    xy: tuple[float, float] | None = None


@dataclass
class ImageResult:
    """One image: what the model saw (uint8 ``[S, S, 3]``) and its :class:`PathResult` per available mode."""

    image: LabImage
    seen: np.ndarray
    paths: dict[str, PathResult]


@dataclass
class LabResult:
    """The lab's answer for a list of images.

    Attributes:
        images: one :class:`ImageResult` per image, in order.
        modes: the paths computed (``calibrated`` missing when the checkpoint has no calibration).
        num_frames: T of the inflated clip.
        backbone: the video backbone's class name (``S3DG``, ``TSMResNet``).
        calibration: how the attached calibration was learnt (``model.deflation_info``; ``{}`` without one).
        map_space: the space of the neighbours and of the map (``None`` before :func:`add_neighbours`).
        k: neighbours per list.
    """

    images: list[ImageResult]
    modes: list[str]
    num_frames: int
    backbone: str
    calibration: dict[str, Any] = field(default_factory=dict)
    map_space: str | None = None
    k: int = 0

    @property
    def calibrated(self) -> bool:
        return "calibrated" in self.modes

    def summary(self) -> pd.DataFrame:
        """One row per ``(image, mode)``: ``image``, ``mode``, ``cos_<space>``, ``ms_per_image``, top neighbours."""
        rows = []
        for i, res in enumerate(self.images):
            for mode, p in res.paths.items():
                row: dict[str, Any] = {"image": i + 1, "label": res.image.label, "mode": mode}
                row |= {f"cos_{s}": p.cosine.get(s, np.nan) for s in SPACES}
                row["ms_per_image"] = p.ms_per_image
                for name, hits in (("text", p.text_hits), ("video", p.video_hits)):
                    row[f"top_{name}"] = hits["clip_id"].iloc[0] if hits is not None and len(hits) else ""
                rows.append(row)
        return pd.DataFrame(rows)

    def mean_cosines(self) -> pd.DataFrame:
        """Mean cosine to the inflated embedding over the images, one row per deflated mode, a column per space."""
        df = self.summary()
        df = df[df["mode"] != "inflated"]
        cols = [f"cos_{s}" for s in SPACES if df[f"cos_{s}"].notna().any()]
        return df.groupby("mode", sort=False)[[*cols, "ms_per_image"]].mean()


@torch.no_grad()
def embed_three_ways(model: MMV, images: Sequence[LabImage], repeats: int = 3) -> LabResult:
    """Embeds each image inflated, naive and (when the model has one) calibrated, timing each path.

    Args:
        model: an :class:`~mmv.models.mmv.MMV` with a video tower (S3D-G or TSM-ResNet), in eval mode.
        images: at most :data:`MAX_IMAGES` images.
        repeats: timed runs per image and path; the time is their median (the embeddings do not change).

    Returns:
        A :class:`LabResult` without neighbours (:func:`add_neighbours` adds them).

    Raises:
        ValueError: no image, too many, a bad image array, or a model without a video tower.
    """
    if not images:
        raise ValueError("No image to embed.")
    if len(images) > MAX_IMAGES:
        raise ValueError(f"At most {MAX_IMAGES} images at a time, got {len(images)}.")
    if "video" not in model.config.modalities:
        raise ValueError("This model has no video tower: it cannot embed images.")
    x = prepare_images(images, int(model.config.video.frame_size))  # [N, S, S, 3] uint8
    modes = available_modes(model, MODES)
    compare(model, x[:1], modes=modes, batch_size=1)  # warm-up: kernel caches, allocator, lazy towers
    results = []
    for i, image in enumerate(images):
        one = x[i : i + 1]
        runs = [compare(model, one, modes=modes, batch_size=1) for _ in range(max(1, int(repeats)))]
        first = runs[0]
        paths = {}
        for mode in modes:
            emb = {s: v[0].numpy().astype(np.float32) for s, v in first["embeddings"][mode].items()}
            cos = {s: float(c[0]) for s, c in first["cosine"].get(mode, {}).items()}
            ms = 1e3 * statistics.median(r["seconds_per_image"][mode] for r in runs)
            paths[mode] = PathResult(mode, emb, cos, ms)
        results.append(ImageResult(image, one[0].numpy(), paths))
    return LabResult(
        images=results,
        modes=list(modes),
        num_frames=int(model.config.video.num_frames),
        backbone=type(model.video).__name__,
        calibration=dict(model.deflation_info),
    )


# ---------------------------------------------------------------------------------------------------
# Neighbours and the map
# ---------------------------------------------------------------------------------------------------


def lab_space(search: BankSearch) -> str | None:
    """The space of the lab's neighbours and map: S_vat when the bank has video there, else S_va."""
    for space in ("vat", "va"):
        if "video" in search.spaces.get(space, ()):
            return space
    return None


def add_neighbours(result: LabResult, search: BankSearch, k: int = 5) -> LabResult:
    """A copy of ``result`` with each path's image -> text and image -> video neighbours and its point on the map.

    ``result`` itself is left as it is (the app caches it and shares it between sessions with different ``k``).

    The image is a ``video`` query (it went through the video tower), so each hit's percentile is against
    random video-text (video-video) pairs of the bank. Every path of every image is placed in one
    :meth:`mmv.bank.Bank.project` call.

    Raises:
        app.logic.bank_search.QueryError: the bank's vectors do not have the model's dimensions (another model's
            bank), or the bank has no space with video vectors.
    """
    space = lab_space(search)
    if space is None:
        raise QueryError("This bank has no video vectors: image queries cannot be compared with it.")
    text_space = "vat" if "text" in search.spaces.get("vat", ()) else None
    result = copy.deepcopy(result)
    points = []
    for res in result.images:
        for p in res.paths.values():
            if space not in p.embeddings:
                raise QueryError(f"This model has no S_{space} embedding for images; the bank's map is in S_{space}.")
            if text_space is not None and text_space in p.embeddings:
                p.text_hits = search.search_in(text_space, p.embeddings[text_space], "video", "text", k)
            p.video_hits = search.search_in(space, p.embeddings[space], "video", "video", k)
            points.append(p)
    xy = np.asarray(search.bank.project(space, np.stack([p.embeddings[space] for p in points])), dtype=np.float64)
    for p, (x, y) in zip(points, xy):
        p.xy = (float(x), float(y))
    result.map_space, result.k = space, int(k)
    return result


def run_lab(
    model: MMV, search: BankSearch | None, images: Sequence[LabImage], k: int = 5, repeats: int = 3
) -> LabResult:
    """:func:`embed_three_ways`, then :func:`add_neighbours` when a bank is given."""
    result = embed_three_ways(model, images, repeats)
    return add_neighbours(result, search, k) if search is not None else result


def overlap(hits: pd.DataFrame | None, reference: pd.DataFrame | None) -> int | None:
    """How many of ``hits``' clips are also in ``reference`` (the inflated path's list), or ``None``."""
    if hits is None or reference is None:
        return None
    return len(set(hits["clip_id"]) & set(reference["clip_id"]))


def map_frame(result: LabResult) -> pd.DataFrame:
    """The lab's points: ``image`` (1-based), ``mode``, ``x``, ``y``, one row per placed path."""
    rows = [
        {"image": i + 1, "mode": m, "x": p.xy[0], "y": p.xy[1]}
        for i, res in enumerate(result.images)
        for m, p in res.paths.items()
        if p.xy is not None
    ]
    return pd.DataFrame(rows, columns=["image", "mode", "x", "y"])


def zoom_ranges(points: Any, result: LabResult, share: float = 0.12) -> tuple[list[float], list[float]]:
    """``(x range, y range)`` around the lab's points: their bounding box, padded by at least ``share`` of the
    whole map's extent on each side (the three points of an image often lie within a marker's width)."""
    df = map_frame(result)
    full = points.frame
    ranges = []
    for axis in ("x", "y"):
        lo, hi = float(df[axis].min()), float(df[axis].max())
        extent = float(full[axis].max() - full[axis].min()) if len(full) else 1.0
        pad = max(0.5 * (hi - lo), share * max(extent, 1e-6))
        ranges.append([lo - pad, hi + pad])
    return ranges[0], ranges[1]


def lab_figure(points: Any, result: LabResult, height: int = 560, zoom: bool = False) -> Any:
    """The bank's map (:func:`app.logic.maps.build_map`) with each image's three points, inflated -> deflated arrows.

    Args:
        points: :func:`app.logic.maps.map_points` of the bank's ``result.map_space`` coordinates.
        result: after :func:`add_neighbours`.
        height: pixels.
        zoom: show only the neighbourhood of the lab's points (:func:`zoom_ranges`; double-click shows all).

    Returns:
        A plotly figure: the bank's traces, one ``Scatter`` per mode (text = the image's number) and one arrow
        annotation per deflated path, from the inflated point to the deflated one.
    """
    import plotly.graph_objects as go

    from app.logic.maps import build_map

    fig = build_map(points, result.map_space or "vat", height=height)
    df = map_frame(result)
    for mode in result.modes:
        sub = df[df["mode"] == mode]
        fig.add_trace(
            go.Scatter(
                x=sub["x"], y=sub["y"], mode="markers+text", name=MODE_TITLES[mode], text=sub["image"].astype(str),
                textposition="top center", hovertemplate=f"image %{{text}}<br>{MODE_TITLES[mode]}<extra></extra>",
                marker={"symbol": MODE_SYMBOLS[mode], "size": 14, "color": MODE_COLOURS[mode],
                        "line": {"width": 2, "color": MODE_COLOURS[mode]}},
            )
        )  # fmt: skip
    for i in df["image"].unique():
        mine = df[df["image"] == i].set_index("mode")
        if "inflated" not in mine.index:
            continue
        x0, y0 = mine.loc["inflated", ["x", "y"]]
        for mode in ("naive", "calibrated"):
            if mode in mine.index:
                x1, y1 = mine.loc[mode, ["x", "y"]]
                fig.add_annotation(
                    x=x1, y=y1, ax=x0, ay=y0, xref="x", yref="y", axref="x", ayref="y", text="", showarrow=True,
                    arrowhead=3, arrowsize=1.2, arrowwidth=2, arrowcolor=MODE_COLOURS[mode], opacity=0.9,
                )  # fmt: skip
    if zoom and len(df):
        xr, yr = zoom_ranges(points, result)
        fig.update_layout(xaxis={"range": xr, "autorange": False}, yaxis={"range": yr, "autorange": False},
                          title={"text": f"{fig.layout.title.text}: around the image(s)"})  # fmt: skip
    return fig
