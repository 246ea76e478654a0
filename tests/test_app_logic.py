"""The app's retrieval and map logic (app/logic/bank_search.py, app/logic/maps.py) on a planted bank with known answers.

The planted bank implements the bank interface in numpy: 6 clips whose video, audio and text vectors are
built so that every nearest neighbour is known; clip 5 has no narration (no text vector).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from app.logic.bank_search import BankSearch, Direction, directions, percentiles, space_for, targets_for
from app.logic.maps import NAMED_COLOURS, build_map, clicked_point, colour_options, is_click, map_points, selected_rows

FAC = {"va": ["video", "audio"], "vat": ["video", "audio", "text"]}


def _unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


class PlantedBank:
    """Clip ``i``'s vectors point along axis ``i`` plus a little of a modality-specific axis."""

    def __init__(self) -> None:
        n = 6
        self.meta = pd.DataFrame(
            {
                "clip_id": [f"clip/{i}" for i in range(n)],
                "split": ["train", "train", "val", "val", "test", "test"],
                "description": [f"thing {i}" for i in range(n)],
                "narration": [f"narration {i}" if i != 5 else "" for i in range(n)],
                "label_shape": ["circle", "square", "circle", "star", "square", "circle"],
                "label_pitch_hz": np.linspace(200, 800, n),
            }
        )
        self.spaces = FAC
        self.dir = "."
        eye = np.eye(10, dtype=np.float32)
        self._vec: dict[tuple[str, str], tuple[np.ndarray, np.ndarray]] = {}
        offsets = {"video": 6, "audio": 7, "text": 8}
        for space, mods in FAC.items():
            for m in mods:
                rows = np.arange(n) if m != "text" else np.arange(5)
                vecs = _unit(eye[rows] + 0.3 * eye[offsets[m]] + (0.05 if space == "vat" else 0.0) * eye[9])
                self._vec[(space, m)] = (vecs, rows)

    def vectors(self, space, modality):
        return self._vec[(space, modality)][0]

    def rows(self, space, modality):
        return self._vec[(space, modality)][1]

    def search(self, space, modality, queries, k):
        vecs, rows = self._vec[(space, modality)]
        sims = _unit(np.asarray(queries)) @ vecs.T
        order = np.argsort(-sims, axis=1, kind="stable")[:, :k]
        scores = np.take_along_axis(sims, order, 1)
        out_rows = rows[order]
        if k > len(rows):
            pad = k - len(rows)
            scores = np.pad(scores, ((0, 0), (0, pad)))
            out_rows = np.pad(out_rows, ((0, 0), (0, pad)), constant_values=-1)
        return scores.astype(np.float32), out_rows.astype(np.int64)

    def random_pair_scores(self, space, a, b, n, seed):
        return np.linspace(-0.2, 0.6, 1000)  # a known reference distribution

    def coords(self, space):
        frames = []
        for m in FAC[space]:
            rows = self.rows(space, m)
            frames.append(pd.DataFrame({"row": rows, "modality": m, "x": rows * 1.0, "y": len(frames) * 1.0}))
        df = pd.concat(frames, ignore_index=True)
        df.insert(1, "clip_id", self.meta["clip_id"].to_numpy()[df["row"]])
        return df


@pytest.fixture()
def search() -> BankSearch:
    return BankSearch(PlantedBank())


def test_directions_follow_the_graph():
    dirs = {(d.query, d.target): d.space for d in directions(FAC)}
    assert dirs == {
        ("video", "audio"): "va",
        ("video", "text"): "vat",
        ("audio", "video"): "va",
        ("audio", "text"): "vat",
        ("text", "video"): "vat",
        ("text", "audio"): "vat",
    }
    assert Direction("text", "video", "vat").label == "text \u2192 video (S_vat)"
    assert space_for({"shared": ["video", "audio", "text"]}, "audio", "text") == "shared"
    disjoint = {"va": ["video", "audio"], "vat": ["video", "text"]}
    assert space_for(disjoint, "audio", "text") is None and targets_for(disjoint, "audio") == ["video"]
    assert targets_for(FAC, "text", same_modality=True) == ["video", "audio", "text"]


def test_percentiles_match_a_naive_count():
    ref = np.random.default_rng(0).normal(size=500)
    scores = np.array([-5.0, 0.0, 0.3, 5.0, ref[17]])
    naive = [100.0 * np.mean(ref < s) for s in scores]
    np.testing.assert_allclose(percentiles(ref, scores), naive)
    assert np.isnan(percentiles(np.array([]), np.array([0.5]))).all()


def test_search_finds_the_planted_neighbours(search):
    query = search.row_vectors(2, "audio")
    assert set(query) == {"va", "vat"}
    hits = search.search(query, "audio", "video", k=3)
    assert hits["clip_id"].tolist()[0] == "clip/2" and hits["space"].unique().tolist() == ["va"]
    assert hits["rank"].tolist() == [1, 2, 3]
    expected = float(search.vector("va", "audio", 2) @ search.vector("va", "video", 2))
    assert hits["score"].iloc[0] == pytest.approx(expected, abs=1e-6)
    assert hits["percentile"].iloc[0] == 100.0  # above every random pair of the reference
    assert hits["score"].is_monotonic_decreasing
    assert hits["description"].iloc[0] == "thing 2"


def test_search_excludes_the_query_and_drops_padding(search):
    hits = search.search(search.row_vectors(1, "video"), "video", "video", k=10, exclude_row=1)
    assert 1 not in hits["row"].tolist() and len(hits) == 5  # 6 clips minus itself, no -1 padding
    text_hits = search.search(search.row_vectors(0, "video"), "video", "text", k=10)
    assert len(text_hits) == 5 and 5 not in text_hits["row"].tolist()  # clip 5 has no text


def test_clips_without_a_modality_have_no_vector(search):
    assert search.row_vectors(5, "text") == {}
    assert search.modalities_of(5) == ["video", "audio"]
    assert search.modalities_of(0) == ["video", "audio", "text"]
    assert search.row_of("clip/3") == 3 and search.row_of("nope") is None


def test_neighbours_in_every_space(search):
    out = search.neighbours(4, "video", k=2)
    assert set(out) == {("va", "video"), ("va", "audio"), ("vat", "video"), ("vat", "audio"), ("vat", "text")}
    assert 4 not in out[("va", "video")]["row"].tolist()  # itself left out of its own modality
    assert out[("va", "audio")]["row"].iloc[0] == 4  # its own audio is its nearest audio
    assert out[("vat", "text")]["row"].iloc[0] == 4


def test_search_all_covers_every_direction_of_a_query(search):
    query = {"video": search.row_vectors(3, "video"), "audio": search.row_vectors(3, "audio")}
    results = search.search_all(query, k=2)
    assert [(d.query, d.target) for d in results] == [
        ("video", "audio"), ("video", "text"), ("audio", "video"), ("audio", "text"),
    ]  # fmt: skip
    assert all(r["row"].iloc[0] == 3 for r in results.values())


def test_map_points_and_sampling(search):
    bank = search.bank
    coords = bank.coords("vat")
    assert colour_options(bank.meta) == ["modality", "split", "label_shape", "label_pitch_hz"]
    full = map_points(coords, bank.meta, "label_shape")
    assert not full.sampled and len(full.frame) == 17 and "17 points" in full.caption
    assert full.frame.loc[full.frame["row"] == 3, "colour"].unique().tolist() == ["star"]
    sample = map_points(coords, bank.meta, "modality", max_points=6, keep_rows=[5])
    assert sample.sampled and "random sample" in sample.caption
    assert 5 in set(sample.frame["row"])  # the selected clip is always drawn
    per_clip = sample.frame.groupby("row")["modality"].count()
    assert (per_clip == coords.groupby("row")["modality"].count()[per_clip.index]).all()  # whole clips
    with pytest.raises(ValueError, match="unknown column"):
        map_points(coords, bank.meta, "nope")


def test_figures_carry_clip_ids_and_selections_read_them_back(search):
    bank = search.bank
    points = map_points(bank.coords("va"), bank.meta, "label_shape")
    fig = build_map(points, "va", selected_rows=[2], links=True)
    traces = [t for t in fig.data if t.customdata is not None]
    assert len(traces) >= 2 and all(t.type == "scattergl" for t in fig.data)
    assert {t.marker.symbol for t in traces} == {"circle", "diamond"}
    rows = sorted(int(r) for t in traces for r in np.asarray(t.customdata)[:, 0])
    assert rows == sorted(points.frame["row"].tolist())
    assert fig.data[0].mode == "lines"  # the video-audio links
    # A box selection: point indices restart in every trace, so only custom data identifies the clip.
    event = {
        "selection": {
            "points": [
                {"curve_number": 1, "point_index": 0, "customdata": [4, "clip/4", "video"]},
                {"curve_number": 2, "point_index": 0, "customdata": [2, "clip/2", "audio"]},
                {"curve_number": 2, "point_index": 1, "customdata": [4, "clip/4", "audio"]},
                {"curve_number": 0, "point_index": 3},  # a link line: no custom data
            ],
            "box": [{"x": [0, 1], "y": [0, 1]}],
            "lasso": [],
        }
    }
    assert selected_rows(event) == [4, 2] and not is_click(event) and clicked_point(event) is None
    click = {"selection": {"points": [{"custom_data": [3, "clip/3", "text"]}], "box": [], "lasso": []}}
    assert is_click(click) and clicked_point(click) == (3, "text") and selected_rows(click) == [3]
    assert selected_rows(None) == [] and selected_rows({"selection": {"points": []}}) == []


def test_colour_labels_are_drawn_in_their_own_colour():
    colours = ["red", "purple", "yellow", "cyan", "blue", "green"]
    meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(6)], "label_colour": colours, "split": ["test"] * 6})
    coords = pd.DataFrame({"row": np.arange(6), "modality": ["video"] * 6, "x": np.arange(6.0), "y": 0.0})
    coords.insert(1, "clip_id", meta["clip_id"].to_numpy()[coords["row"]])
    fig = build_map(map_points(coords, meta, "label_colour"), "va")
    drawn = {t.name.split(" \u00b7 ")[0]: t.marker.color for t in fig.data if t.customdata is not None}
    assert drawn == {c: NAMED_COLOURS[c] for c in colours}
    # Other categories (splits) take palette colours none of which is a named colour's.
    fig = build_map(map_points(coords, meta, "split"), "va")
    assert [t.marker.color for t in fig.data if t.customdata is not None][0] not in NAMED_COLOURS.values()


def test_continuous_labels_get_a_colour_scale():
    n = 30
    meta = pd.DataFrame({"clip_id": [f"c{i}" for i in range(n)], "label_pitch_hz": np.linspace(100, 900, n)})
    coords = pd.DataFrame(
        {"row": np.r_[np.arange(n), np.arange(n)], "modality": ["video"] * n + ["audio"] * n, "x": 0.0, "y": 0.0}
    )
    coords.insert(1, "clip_id", meta["clip_id"].to_numpy()[coords["row"]])
    fig = build_map(map_points(coords, meta, "label_pitch_hz"), "va")
    assert [t.name for t in fig.data] == ["video", "audio"]  # one trace per modality, not per value
    assert fig.data[0].marker.showscale and not fig.data[1].marker.showscale
    assert (fig.data[0].marker.cmin, fig.data[0].marker.cmax) == (100.0, 900.0)
    np.testing.assert_allclose(fig.data[1].marker.color, meta["label_pitch_hz"])


def test_a_directory_is_one_sidebar_choice_however_it_is_spelt(tmp_path, monkeypatch):
    from pathlib import Path

    from app.logic import state

    (tmp_path / "models" / "demo" / "bank").mkdir(parents=True)
    (tmp_path / "models" / "other").mkdir()
    monkeypatch.chdir(tmp_path)
    found = [tmp_path / "models" / "demo" / "bank", tmp_path / "models" / "other"]
    # The default as MMV_APP_BANK usually spells it (relative), then what the search found (absolute).
    assert state.options(found, Path("models/demo/bank")) == ["models/demo/bank", str(tmp_path / "models" / "other")]
    assert state.same_place("models/demo/bank") == state.same_place(tmp_path / "models" / "demo" / "bank")
    assert state.same_place("models/other") != state.same_place("models/demo/bank")
