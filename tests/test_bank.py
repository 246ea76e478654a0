"""The bank without a model (``mmv/bank``): planted vectors with known neighbours, the save -> load round trip,
IVF recall, maps reproducible from the stored seed, placing points, random-pair statistics, bad directories.

Banks here are written by :func:`mmv.bank.write_bank` from synthetic vectors; ``tests/test_build_bank.py`` builds
them from a model and media.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mmv.bank import Bank, BankError, write_bank
from mmv.bank.index import Searcher, ivf_nlist, normalize, recall_at_k
from mmv.bank.options import NO_MEDIA
from mmv.bank.project import fit_map, membership_weights, place_points

D = 16


pytestmark = pytest.mark.usefixtures("one_faiss_thread")


def _clustered(n: int, clusters: int, d: int = D, noise: float = 0.3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors around ``clusters`` random unit centres, and each vector's cluster."""
    rng = np.random.default_rng(seed)
    centres = normalize(rng.standard_normal((clusters, d)))
    label = np.arange(n) % clusters
    return normalize(centres[label] + noise * rng.standard_normal((n, d)) / np.sqrt(d)), label


def _meta(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "clip_id": [f"clip/{i:04d}" for i in range(n)],
            "split": ["train" if i % 5 else "test" for i in range(n)],
            "captions": [[f"caption {i}", "another one"] if i % 2 == 0 else [] for i in range(n)],
            "label_shape": [["circle", "square"][i % 2] for i in range(n)],
        }
    )


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory) -> tuple[Bank, dict]:
    """60 clips: video for all, text for even rows only, in two spaces of different widths."""
    n = 60
    video, label = _clustered(n, 6)
    text = normalize(video[::2] + 0.05 * np.random.default_rng(1).standard_normal((n // 2, D)))
    audio = normalize(np.random.default_rng(2).standard_normal((n, 8)))
    data = {
        ("vat", "video"): (video, np.arange(n)),
        ("vat", "text"): (text, np.arange(0, n, 2)),
        ("va", "video"): (normalize(video[:, :8]), np.arange(n)),
        ("va", "audio"): (audio, np.arange(n)),
    }
    path = tmp_path_factory.mktemp("bank") / "bank"
    extra = {"model_config": {"name": "planted"}, "manifest": {"root": "/data"}, "custom": {"x": 1}}
    bank = write_bank(path, _meta(n), data, replace(NO_MEDIA, seed=3, umap_params={"n_neighbors": 8}), provenance=extra)
    return bank, {"data": data, "label": label, "meta": _meta(n), "extra": extra}


def test_planted_vectors_return_their_known_neighbours(planted) -> None:
    bank, p = planted
    video = p["data"][("vat", "video")][0]
    # Queries: near-copies of video vectors 7 and 30 (not normalised: the bank normalises them).
    queries = 3.0 * (video[[7, 30]] + 0.01 * np.random.default_rng(5).standard_normal((2, D)))
    scores, rows = bank.search("vat", "video", queries, k=5)
    assert rows[:, 0].tolist() == [7, 30]
    # Against a naive reference: cosine with every stored vector, sorted.
    ref = normalize(queries) @ video.T
    order = np.argsort(-ref, axis=1)[:, :5]
    np.testing.assert_array_equal(rows, order)
    np.testing.assert_allclose(scores, np.take_along_axis(ref, order, axis=1), atol=1e-5)
    assert scores.dtype == np.float32 and rows.dtype == np.int64


def test_search_returns_meta_rows_and_pads_past_the_stored_vectors(planted) -> None:
    bank, p = planted
    text, text_rows = p["data"][("vat", "text")]
    scores, rows = bank.search("vat", "text", text[4], k=40)  # a [D] query; 30 text vectors only
    assert rows.shape == (1, 40)
    assert rows[0, 0] == 8  # text vector 4 belongs to meta row 8
    assert set(rows[0, :30].tolist()) == set(text_rows.tolist())
    assert (rows[0, 30:] == -1).all() and np.isneginf(scores[0, 30:]).all()
    assert bank.meta.loc[rows[0, 0], "clip_id"] == "clip/0008"


def test_search_rejects_bad_queries(planted) -> None:
    bank, _ = planted
    with pytest.raises(ValueError, match="dimension 16"):
        bank.search("vat", "video", np.ones((1, 8), np.float32), k=3)
    with pytest.raises(KeyError, match="no space 'vt'"):
        bank.search("vt", "video", np.ones((1, D), np.float32), k=3)
    with pytest.raises(KeyError, match="no 'text' vectors in space 'va'"):
        bank.vectors("va", "text")
    with pytest.raises(ValueError, match="k: must be a positive int"):
        bank.search("vat", "video", np.ones((1, D), np.float32), k=0)


def test_save_load_round_trip(planted) -> None:
    bank, p = planted
    again = Bank.load(bank.dir)
    assert again.spaces == {"va": ["video", "audio"], "vat": ["video", "text"]}
    assert again.dim("va") == 8 and again.dim("vat") == D
    for (space, mod), (x, rows) in p["data"].items():
        np.testing.assert_array_equal(again.vectors(space, mod), x)
        np.testing.assert_array_equal(again.rows(space, mod), rows)
        assert again.vectors(space, mod).dtype == np.float32
    meta = again.meta
    for col in ("clip_id", "split", "label_shape"):
        assert meta[col].tolist() == p["meta"][col].tolist()
    assert meta["captions"].tolist() == p["meta"]["captions"].tolist()  # lists of str, empty ones kept
    assert meta["thumbnail"].tolist() == [""] * 60 and meta["narration"].tolist() == [""] * 60  # defaults
    for space in again.spaces:
        pd.testing.assert_frame_equal(again.coords(space), bank.coords(space))
    assert again.provenance == json.loads((bank.dir / "provenance.json").read_text())
    assert again.provenance["custom"] == {"x": 1} and again.config == {"name": "planted"}
    params = again.provenance["parameters"]  # write_bank records its own options only, whole
    assert params == replace(NO_MEDIA, seed=3, umap_params={"n_neighbors": 8}).recorded("write")
    assert (
        params["seed"] == 3 and params["umap_params"]["n_neighbors"] == 8 and params["umap_params"]["min_dist"] == 0.1
    )
    assert not params["thumbnails"] and not params["previews"] and not (bank.dir / "thumbs").exists()
    assert again.root_of_media == Path("/data")
    assert again.provenance["counts"]["vectors"] == {"va/video": 60, "va/audio": 60, "vat/video": 60, "vat/text": 30}
    assert not list(bank.dir.parent.glob(".bank.*"))  # the temporary directory was renamed away


def test_coords_are_reproducible_from_the_stored_seed_and_params(planted) -> None:
    bank, _ = planted
    for space, mods in bank.spaces.items():
        info = bank.provenance["maps"][space]
        assert info["method"] == "umap" and info["seed"] == 3 and info["params"]["n_neighbors"] == 8
        coords = bank.coords(space)
        assert coords.columns.tolist() == ["row", "clip_id", "modality", "x", "y"]
        assert coords["modality"].tolist() == [m for m in mods for _ in bank.rows(space, m)]
        stacked = np.concatenate([bank.vectors(space, m) for m in mods])
        xy, _ = fit_map(stacked, seed=info["seed"], params=info["params"])
        np.testing.assert_array_equal(coords[["x", "y"]].to_numpy(np.float32), xy)  # bit for bit


def test_map_keeps_clusters_together(planted) -> None:
    bank, p = planted
    coords = bank.coords("vat")
    video = coords[coords["modality"] == "video"].sort_values("row")
    xy, label = video[["x", "y"]].to_numpy(), p["label"]
    centre = np.stack([xy[label == c].mean(0) for c in range(6)])
    nearest = np.linalg.norm(xy[:, None] - centre[None], axis=-1).argmin(1)
    assert (nearest == label).mean() >= 0.9


def test_project_places_stored_vectors_on_their_coordinates_and_new_ones_in_their_cluster(planted) -> None:
    bank, p = planted
    coords = bank.coords("vat")
    video = coords[coords["modality"] == "video"].sort_values("row")
    stored = np.asarray(bank.vectors("vat", "video"))
    np.testing.assert_array_equal(bank.project("vat", stored[:5]), video[["x", "y"]].to_numpy(np.float32)[:5])
    # A new vector near clip 12's lands nearer the centre of clip 12's cluster than any other cluster's.
    label = p["label"]
    xy = video[["x", "y"]].to_numpy()
    centre = np.stack([xy[label == c].mean(0) for c in range(6)])
    new = stored[[12, 13, 40]] + 0.1 * np.random.default_rng(9).standard_normal((3, D)) / np.sqrt(D)
    placed = bank.project("vat", new)
    assert placed.shape == (3, 2) and placed.dtype == np.float32
    assert np.linalg.norm(placed[:, None] - centre[None], axis=-1).argmin(1).tolist() == label[[12, 13, 40]].tolist()


def test_membership_weights_sum_to_log2_k_and_fall_with_distance() -> None:
    d = np.sort(np.random.default_rng(0).uniform(0.1, 0.9, (4, 15)), axis=1)
    w = membership_weights(d)
    np.testing.assert_allclose(w.sum(1), np.log2(15), rtol=1e-6)
    assert (np.diff(w, axis=1) <= 0).all() and (w > 0).all() and (w <= 1).all()
    # Placement is the weighted mean: with two reference points, one at distance 0.
    ref = normalize(np.array([[1.0, 0.0], [0.0, 1.0]], np.float32))
    out = place_points(normalize(np.array([[1.0, 0.0], [1.0, 1.0]], np.float32)), ref, np.array([[0, 0], [4, 2]]), 2)
    np.testing.assert_allclose(out, [[0, 0], [2, 1]], atol=1e-5)  # equal point snaps; the midpoint is halfway


def test_random_pair_scores_exclude_same_clip_pairs_and_are_seeded(tmp_path: Path) -> None:
    # One-hot vectors: a clip's video and text are equal (cosine 1), different clips are orthogonal (0).
    n = 20
    eye = np.eye(n, dtype=np.float32)
    data = {("vat", "video"): (eye, np.arange(n)), ("vat", "text"): (eye[:10], np.arange(10))}
    bank = write_bank(tmp_path / "b", _meta(n), data)
    scores = bank.random_pair_scores("vat", "video", "text", n=500, seed=1)
    assert scores.shape == (500,) and scores.dtype == np.float32
    np.testing.assert_array_equal(scores, 0.0)  # no pair of one clip (score 1) was drawn
    np.testing.assert_array_equal(bank.random_pair_scores("vat", "video", "text", n=500, seed=1), scores)
    # Small maps fall back to PCA (too few points for UMAP's spectral initialisation).
    small = write_bank(tmp_path / "s", _meta(4), {("va", "video"): (eye[:4, :4], np.arange(4))})
    assert small.provenance["maps"]["va"]["method"] == "pca" and len(small.coords("va")) == 4


def test_random_pair_scores_are_sorted_cosines_of_different_clips(planted) -> None:
    bank, p = planted
    scores = bank.random_pair_scores("vat", "video", "text", n=2000, seed=0)
    assert (np.diff(scores) >= 0).all()
    video, text = p["data"][("vat", "video")][0], p["data"][("vat", "text")][0]
    all_pairs = video @ text.T
    different = all_pairs[np.arange(60)[:, None] != np.arange(0, 60, 2)[None]]
    assert abs(np.median(scores) - np.median(different)) < 0.05  # the distribution of different-clip pairs


def test_ivf_index_above_the_exact_threshold_stores_its_measured_recall(tmp_path: Path) -> None:
    n = 4000
    x, _ = _clustered(n, 40, d=D, noise=0.5)
    # UMAP fits 300 of the 4000 points and places the others (keeps the test fast, exercises placing).
    data = {("vat", "video"): (x, np.arange(n))}
    bank = write_bank(tmp_path / "ivf", _meta(n), data, replace(NO_MEDIA, exact_max=1000, max_fit_points=300))
    assert (
        bank.provenance["maps"]["vat"]["fit_points"] == 300 and bank.provenance["maps"]["vat"]["placed_points"] == 3700
    )
    assert np.isfinite(bank.coords("vat")[["x", "y"]].to_numpy()).all()
    info = bank.index_info("vat", "video")
    assert info["type"] == "IndexIVFFlat" and not info["exact"]
    assert info["nlist"] == ivf_nlist(n) == min(round(4 * np.sqrt(n)), n // 39)
    assert info["recall_at_10"] >= 0.95 and info["recall_queries"] == 1000
    assert info["recall_curve"][str(info["nprobe"])] == info["recall_at_10"]
    assert (bank.dir / "index" / "vat-video.faiss").is_file()
    # An independent measurement on other queries (noisy copies of stored vectors) agrees with the stored one.
    rng = np.random.default_rng(7)
    picked = rng.choice(n, 300, replace=False)
    queries = normalize(x[picked] + 0.05 * rng.standard_normal((300, D)) / np.sqrt(D))
    _, rows = Bank.load(bank.dir).search("vat", "video", queries, k=10)
    exact = np.argsort(-(queries @ x.T), axis=1)[:, :10]
    assert recall_at_k(rows, exact) >= 0.9
    assert (rows[:, 0] == picked).mean() >= 0.95  # planted near-duplicates are found


def test_sharded_flat_search_equals_one_index() -> None:
    x, _ = _clustered(3000, 30)
    x[1500] = x[10]  # a tie across shards: the lower position comes first
    q = normalize(np.concatenate([x[:20] + 0.1, x[10:11]]))
    ref_s, ref_p = Searcher(x).search(q, 7)
    sharded = Searcher(x, shards=3)
    s, pos = sharded.search(q, 7)
    assert len(sharded.parts) == 3 and [o for o, _ in sharded.parts] == [0, 1000, 2000]
    np.testing.assert_array_equal(pos, ref_p)
    np.testing.assert_allclose(s, ref_s, atol=1e-6)
    assert pos[-1, :2].tolist() == [10, 1500]
    # Batches are split between the search threads: the same answers.
    many = normalize(np.repeat(q, 10, axis=0))
    s2, p2 = Searcher(x).search(many, 7)
    np.testing.assert_array_equal(p2, np.repeat(ref_p, 10, axis=0))


def test_load_refuses_what_is_not_a_bank(planted, tmp_path: Path) -> None:
    bank, _ = planted
    with pytest.raises(BankError, match="not an mmv bank"):
        Bank.load(tmp_path / "nowhere")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "provenance.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(BankError, match="format='something-else'"):
        Bank.load(tmp_path / "other")
    newer = json.loads((bank.dir / "provenance.json").read_text()) | {"format_version": 99}
    (tmp_path / "newer").mkdir()
    (tmp_path / "newer" / "provenance.json").write_text(json.dumps(newer))
    with pytest.raises(BankError, match="newer"):
        Bank.load(tmp_path / "newer")
    (tmp_path / "newer" / "provenance.json").write_text(json.dumps(newer | {"format_version": 1}))
    with pytest.raises(BankError, match="incomplete bank, missing"):
        Bank.load(tmp_path / "newer")


def test_write_bank_rejects_malformed_vectors(tmp_path: Path) -> None:
    x = normalize(np.eye(4, dtype=np.float32))
    with pytest.raises(ValueError, match="rows must be distinct meta rows"):
        write_bank(tmp_path / "a", _meta(3), {("va", "video"): (x, np.arange(4))})
    with pytest.raises(ValueError, match="unknown modality 'smell'"):
        write_bank(tmp_path / "b", _meta(4), {("va", "smell"): (x, np.arange(4))})
    with pytest.raises(ValueError, match="mixes widths"):
        write_bank(
            tmp_path / "c", _meta(4), {("va", "video"): (x, np.arange(4)), ("va", "audio"): (x[:, :2], np.arange(4))}
        )
    with pytest.raises(ValueError, match="umap_params: unknown parameter 'neighbours'"):
        write_bank(
            tmp_path / "d",
            _meta(4),
            {("va", "video"): (x, np.arange(4))},
            replace(NO_MEDIA, umap_params={"neighbours": 5}),
        )
    assert not (tmp_path / "a").exists()


def test_narration_bag_matches_the_evaluation() -> None:
    import inspect

    from mmv.bank import NARRATION_CAPTIONS
    from mmv.embed import eval_clips

    # the evaluation and the bank both read clips through eval_clips with its default bag
    eval_captions = inspect.signature(eval_clips).parameters["num_captions"].default
    assert NARRATION_CAPTIONS == eval_captions


def test_umap_kernels_cached_on_disk_give_the_same_map_as_umap_learns_own(monkeypatch) -> None:
    """mmv.bank.project.cache_umap_kernels swaps where UMAP's machine code comes from, not what it computes."""
    import importlib

    from numba.core.caching import NullCache

    from mmv.bank import project
    from mmv.bank.project import ORIGINAL_UMAP_KERNELS, UNCACHED_UMAP_KERNELS, cache_umap_kernels

    x = np.random.default_rng(5).standard_normal((200, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    cache_umap_kernels()
    cached_xy, _ = fit_map(x, seed=2)
    assert cache_umap_kernels() == []  # idempotent: every kernel is swapped already
    for module_name, attr in UNCACHED_UMAP_KERNELS:
        module = importlib.import_module(module_name)
        kernel = getattr(module, attr)
        kernel = getattr(kernel, "dispatcher", kernel)  # the parallel graph kernels are called under a lock
        assert not isinstance(kernel._cache, NullCache) and kernel.targetoptions["nogil"] is True
        original = ORIGINAL_UMAP_KERNELS[(module_name, attr)]  # umap-learn's own dispatcher, uncached
        assert isinstance(original._cache, NullCache) and original.py_func.__code__ is kernel.py_func.__code__
        assert original.targetoptions["parallel"] is (attr != "_nb_optimize_layout_euclidean_single_epoch")
        assert {k: v for k, v in kernel.targetoptions.items() if k != "nogil"} == original.targetoptions
        monkeypatch.setattr(module, attr, original)
    monkeypatch.setattr(project, "cache_umap_kernels", lambda: [])  # fit_map would swap them back
    reference_xy, _ = fit_map(x, seed=2)
    np.testing.assert_array_equal(cached_xy, reference_xy)


def test_maps_fitted_side_by_side_equal_maps_fitted_one_at_a_time() -> None:
    """fit_maps runs one thread per space; the maps, and the process's warning filters, are as if it did not."""
    import warnings

    from mmv.bank.project import fit_maps

    rng = np.random.default_rng(9)
    stacks = {}
    for name, (n, d) in {"va": (260, 24), "vat": (330, 16), "tiny": (3, 16)}.items():
        v = rng.standard_normal((n, d)).astype(np.float32)
        stacks[name] = v / np.linalg.norm(v, axis=1, keepdims=True)
    filters = list(warnings.filters)
    together = fit_maps(stacks, seed=4, params={"n_neighbors": 10})
    assert warnings.filters == filters
    for name, v in stacks.items():
        xy, info = fit_map(v, seed=4, params={"n_neighbors": 10})
        np.testing.assert_array_equal(together[name][0], xy)
        assert together[name][1] == info
    assert together["tiny"][1]["method"] == "pca" and together["va"][1]["method"] == "umap"
