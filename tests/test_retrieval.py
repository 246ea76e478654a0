"""Retrieval metrics on planted similarity matrices, and multi-window embeddings of a dataset."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset
from train_helpers import single_thread

from mmv import create_model
from mmv.data.collate import collate_clips
from mmv.embed import embed_manifest
from mmv.eval.ranking import ground_truth_mask, retrieval_metrics, retrieval_ranks
from mmv.eval.zero_shot import media_groups, ranks_table, zero_shot_retrieval

# ---------------------------------------------------------------------------------------------- metrics


def test_identity_is_perfect() -> None:
    m = retrieval_metrics(np.eye(7), np.arange(7))
    assert (m["r1"], m["r5"], m["r10"], m["medr"], m["meanr"]) == (1.0, 1.0, 1.0, 1.0, 1.0)
    assert m["ranks"].tolist() == [1] * 7 and (m["num_queries"], m["num_candidates"]) == (7, 7)


def test_reversed_order_has_known_ranks() -> None:
    # Every query prefers the candidates in the order N-1, N-2, ..., 0, so query q's match is ranked N - q.
    n = 10
    sim = np.tile(np.arange(n, dtype=float), (n, 1))
    m = retrieval_metrics(sim, np.arange(n))
    assert m["ranks"].tolist() == list(range(n, 0, -1))
    assert m["medr"] == 5.5 and m["meanr"] == 5.5
    assert (m["r1"], m["r5"], m["r10"]) == (0.1, 0.5, 1.0)
    # An odd number of queries has an integer median.
    assert retrieval_metrics(sim[:9, :], np.arange(9))["medr"] == 6.0  # ranks 10..2


def test_anti_identity_puts_the_match_last() -> None:
    m = retrieval_metrics(-np.eye(5), np.arange(5))
    assert m["ranks"].tolist() == [5] * 5 and m["r1"] == 0.0 and m["medr"] == 5.0


def test_ties_are_pessimistic_and_independent_of_order() -> None:
    # A constant similarity ranks the correct item behind every wrong one it ties with.
    m = retrieval_metrics(np.zeros((4, 6)), [0, 1, 2, 5])
    assert m["ranks"].tolist() == [6, 6, 6, 6] and m["r1"] == 0.0
    # A tie with one wrong item costs one place, whichever index that item has.
    sim = np.array([[0.9, 0.9, 0.1], [0.2, 0.9, 0.9]])
    assert retrieval_ranks(sim, [0, 1]).tolist() == [2, 2]
    assert retrieval_ranks(sim, [1, 2]).tolist() == [2, 2]
    # Permuting the candidates (and the ground truth with them) never changes a rank.
    rng = np.random.default_rng(0)
    sim = rng.integers(0, 4, size=(20, 30)).astype(float)  # many ties
    gt = rng.integers(0, 30, size=20)
    perm = rng.permutation(30)
    inv = np.argsort(perm)
    np.testing.assert_array_equal(retrieval_ranks(sim, gt), retrieval_ranks(sim[:, perm], inv[gt]))
    # Deterministic: the same call twice gives the same ranks.
    np.testing.assert_array_equal(retrieval_ranks(sim, gt), retrieval_ranks(sim, gt))


def test_several_ground_truths_take_the_best_ranked_one() -> None:
    sim = np.array(
        [
            [0.9, 0.8, 0.7, 0.6, 0.5],  # correct {3, 4}: best is 3, behind 3 wrong ones -> rank 4
            [0.1, 0.2, 0.3, 0.4, 0.5],  # correct {0, 4}: 4 is first -> rank 1
            [0.5, 0.5, 0.5, 0.5, 0.5],  # correct {0, 1}: all tie -> behind the 3 wrong ones -> rank 4
            [0.0, 0.9, 0.8, 0.1, 0.2],  # correct {1, 2}: the other correct one never pushes 2 down -> rank 1
        ]
    )
    gt = [{3, 4}, {0, 4}, {0, 1}, {1, 2}]
    m = retrieval_metrics(sim, gt)
    assert m["ranks"].tolist() == [4, 1, 4, 1]
    assert m["r1"] == 0.5 and m["r5"] == 1.0 and m["medr"] == 2.5
    # The same ground truth as a bool mask, and the similarities as a torch tensor.
    mask = np.zeros_like(sim, dtype=bool)
    for q, items in enumerate(gt):
        mask[q, list(items)] = True
    np.testing.assert_array_equal(retrieval_metrics(torch.tensor(sim), mask)["ranks"], m["ranks"])
    np.testing.assert_array_equal(ground_truth_mask(gt, 4, 5), mask)


def test_rectangular_and_chunked() -> None:
    # More queries than one chunk, a rectangular matrix: query q's match is candidate q % 3, planted first.
    q, n = 2500, 3
    sim = np.zeros((q, n))
    sim[np.arange(q), np.arange(q) % n] = 1.0
    m = retrieval_metrics(sim, np.arange(q) % n)
    assert m["r1"] == 1.0 and m["num_candidates"] == 3


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="without a correct candidate"):
        retrieval_metrics(np.eye(3), [{0}, set(), {2}])
    with pytest.raises(ValueError, match="outside"):
        retrieval_metrics(np.eye(3), [0, 1, 3])
    with pytest.raises(ValueError, match="one per query"):
        retrieval_metrics(np.eye(3), [0, 1])
    with pytest.raises(ValueError, match="NaN"):
        retrieval_metrics(np.full((2, 2), np.nan), [0, 1])
    with pytest.raises(ValueError, match=r"\[Q, N\]"):
        retrieval_metrics(np.zeros(3), [0])


# ---------------------------------------------------------------------------------------------- embeddings

T, S, SR = 4, 32, 16000


class _Windows(Dataset):
    """``rows`` clips x ``windows`` windows of random video/audio and two-caption bags (second one masked)."""

    def __init__(self, rows: int, windows: int) -> None:
        g = torch.Generator().manual_seed(0)
        self.rows, self.windows = rows, windows
        self.video = torch.randint(0, 256, (rows, windows, T, S, S, 3), dtype=torch.uint8, generator=g)
        self.audio = torch.rand(rows, windows, SR // 2, generator=g) * 2 - 1
        self.text = torch.randint(2, 50, (rows, windows, 2, 5), generator=g)
        self.num_windows = windows

    def __len__(self) -> int:
        return self.rows * self.windows

    def __getitem__(self, i: int) -> dict:
        row, k = divmod(i, self.windows)
        return {
            "video": self.video[row, k],
            "audio": self.audio[row, k],
            "has_audio": True,
            "text": self.text[row, k],
            "text_mask": torch.tensor([row != 1, False]),  # clip 1 has no valid caption
            "clip_id": f"c{row}",
            "index": row,
            "window": k,
            "labels": {"shape": f"s{row % 2}", "n": row},
        }


@pytest.fixture(scope="module")
def tiny_model():
    single_thread()  # two busy OpenMP threads on two shared cores make these tests several times slower
    torch.manual_seed(0)
    return create_model(
        "tiny_fac", video={"num_frames": T, "frame_size": S}, audio={"duration": 0.5}, text={"vocab_size": 64}
    )


def test_embed_manifest_averages_windows_then_normalises(tiny_model) -> None:
    data = _Windows(rows=3, windows=2)
    tiny_model.train()
    emb = embed_manifest(tiny_model, data, "cpu", num_windows=2, batch_size=4)
    assert tiny_model.training  # mode restored
    assert emb["index"].tolist() == [0, 1, 2] and emb["clip_id"] == ["c0", "c1", "c2"]
    assert emb["num_windows"].tolist() == [2, 2, 2] and emb["labels"] == {"shape": ["s0", "s1", "s0"], "n": [0, 1, 2]}
    assert emb["has_text"].tolist() == [True, False, True] and emb["has_audio"].all()
    for key in ("video_va", "video_vat", "audio_va", "audio_vat"):  # FAC audio reaches S_vat in eval mode
        assert emb[key].dtype == torch.float32
        torch.testing.assert_close(emb[key].norm(dim=1), torch.ones(3))
    # By hand: eval mode, each window embedded alone, raw embeddings averaged, then normalised.
    tiny_model.eval()
    with torch.no_grad():
        for row in range(3):
            v = tiny_model.encode_video(data.video[row])["vat"].mean(0)
            a = tiny_model.encode_audio(data.audio[row])["vat"].mean(0)
            torch.testing.assert_close(emb["video_vat"][row], F.normalize(v, dim=0), atol=1e-5, rtol=1e-4)
            torch.testing.assert_close(emb["audio_vat"][row], F.normalize(a, dim=0), atol=1e-5, rtol=1e-4)
            # Text: only the valid (first) caption of each window, normalised, averaged, normalised.
            t = F.normalize(tiny_model.encode_text(data.text[row, :, :1])["vat"][:, 0], dim=-1).mean(0)
            expected = F.normalize(t, dim=0) if row != 1 else torch.zeros_like(t)
            torch.testing.assert_close(emb["text_vat"][row], expected, atol=1e-5, rtol=1e-4)
    tiny_model.train()


def test_embed_manifest_takes_a_loader_and_checks_windows(tiny_model) -> None:
    data = _Windows(rows=2, windows=3)
    loader = DataLoader(data, batch_size=5, collate_fn=collate_clips)
    emb = embed_manifest(tiny_model, loader, "cpu")
    assert emb["num_windows"].tolist() == [3, 3]
    ref = embed_manifest(tiny_model, data, "cpu", batch_size=2)
    torch.testing.assert_close(emb["video_va"], ref["video_va"], atol=1e-5, rtol=1e-4)
    with pytest.raises(ValueError, match="num_windows"):
        embed_manifest(tiny_model, data, "cpu", num_windows=2)
    with pytest.raises(ValueError, match="num_windows"):
        embed_manifest(tiny_model, loader, "cpu", num_windows=2)


def test_embed_manifest_records_no_autograd_graph(tiny_model) -> None:
    """Embedding a manifest (the bank, every evaluation) runs the towers with gradients off: no graph is kept."""
    seen = []
    hook = tiny_model.video.register_forward_hook(lambda module, args, out: seen.append(torch.is_grad_enabled()))
    try:
        embed_manifest(tiny_model, _Windows(rows=2, windows=1), "cpu", batch_size=2)
    finally:
        hook.remove()
    assert seen == [False]
    assert torch.is_grad_enabled()  # restored for the caller


# ---------------------------------------------------------------------------------------------- directions


def _planted(video: np.ndarray, text: np.ndarray, audio: np.ndarray | None = None, **flags) -> dict:
    """An :func:`embed_manifest`-like result from given (already normalised) embeddings."""
    n = len(video)
    emb = {
        "index": torch.arange(n),
        "clip_id": [f"c{i}" for i in range(n)],
        "video_vat": torch.tensor(video, dtype=torch.float32),
        "text_vat": torch.tensor(text, dtype=torch.float32),
        "has_text": torch.tensor(flags.get("has_text", [True] * n)),
        "has_audio": torch.tensor(flags.get("has_audio", [audio is not None] * n)),
    }
    if audio is not None:
        emb["video_va"] = emb["video_vat"]
        emb["audio_va"] = emb["audio_vat"] = torch.tensor(audio, dtype=torch.float32)
    return emb


def test_every_direction_on_identity_embeddings_is_perfect() -> None:
    eye = np.eye(6)
    results = zero_shot_retrieval(_planted(eye, eye, eye))
    assert list(results) == ["t2v", "v2t", "v2a", "a2v", "a2t", "t2a"]  # no image embeddings: no i2t
    for name, m in results.items():
        assert (m["r1"], m["medr"], m["num_queries"], m["num_candidates"]) == (1.0, 1.0, 6, 6), name
        assert m["top1"].tolist() == m["query_rows"].tolist()
    assert results["v2a"]["space"] == "va" and results["t2a"]["space"] == "vat"


def test_reversed_order_has_the_known_median_rank() -> None:
    # Every text query is the same unit vector; candidate j's cosine with it grows with j, so every query ranks
    # the videos N-1, ..., 0 and clip q's own video comes at rank N - q: MedR 5.5 and R@1 0.1 for N = 10.
    n = 10
    angles = np.linspace(1.5, 0.1, n)
    video = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    text = np.tile([1.0, 0.0], (n, 1))
    m = zero_shot_retrieval(_planted(video, text), directions=["t2v"])["t2v"]
    assert m["ranks"].tolist() == list(range(n, 0, -1))
    assert (m["medr"], m["r1"], m["r5"], m["r10"]) == (5.5, 0.1, 0.5, 1.0)
    assert m["top1"].tolist() == [n - 1] * n


def test_all_ties_give_the_worst_rank_deterministically() -> None:
    same = np.tile([0.6, 0.8], (5, 1))
    for _ in range(2):
        m = zero_shot_retrieval(_planted(same, same), directions=["t2v", "v2t"])
        assert m["t2v"]["ranks"].tolist() == [5] * 5 and m["v2t"]["ranks"].tolist() == [5] * 5
        # The exported top-1 is a wrong candidate, consistently with the pessimistic rank.
        assert all(t != q for t, q in zip(m["t2v"]["top1"], m["t2v"]["query_rows"]))


def test_missing_modalities_and_shared_media() -> None:
    eye = np.eye(4)
    # Clip 1 has no text (not a text query, not a v2t query), clip 3 no audio (not an audio item).
    emb = _planted(eye, eye, eye, has_text=[True, False, True, True], has_audio=[True, True, True, False])
    r = zero_shot_retrieval(emb)
    assert r["t2v"]["query_rows"].tolist() == [0, 2, 3] and r["t2v"]["num_candidates"] == 4
    assert r["v2t"]["query_rows"].tolist() == [0, 2, 3] and r["v2t"]["candidate_rows"].tolist() == [0, 2, 3]
    assert r["a2t"]["query_rows"].tolist() == [0, 2] and r["t2a"]["candidate_rows"].tolist() == [0, 1, 2]
    # Rows 0 and 1 are one video with two captions: one video candidate, two correct captions for it.
    video = np.stack([eye[0], eye[0], eye[2], eye[3]])
    text = np.stack([eye[1], eye[0], eye[2], eye[3]])  # caption 0 is off, caption 1 is the video's
    shared = zero_shot_retrieval(_planted(video, text), groups=np.array([0, 0, 1, 2]))
    assert shared["t2v"]["num_candidates"] == 3 and shared["t2v"]["num_queries"] == 4
    assert shared["v2t"]["num_queries"] == 3 and shared["v2t"]["ranks"].tolist() == [1, 1, 1]
    table = ranks_table(shared, [f"c{i}" for i in range(4)])
    assert table[table["direction"] == "v2t"]["query"].tolist() == ["c0", "c2", "c3"]
    assert table["top1_correct"].tolist() == (table["rank"] == 1).tolist()
    df = pd.DataFrame({"video_path": ["a", "a", "b", "a"], "start": [0.0, 0.0, 0.0, 5.0], "end": [np.nan] * 4})
    assert media_groups(df).tolist() == [0, 0, 1, 2]


def test_audio_text_prefers_the_disjoint_space() -> None:
    eye = np.eye(3)
    emb = _planted(eye, eye, eye)
    emb["audio_at"] = torch.tensor(eye[::-1].copy(), dtype=torch.float32)  # audio i points at caption 2 - i
    emb["text_at"] = torch.tensor(eye, dtype=torch.float32)
    r = zero_shot_retrieval(emb, directions=["a2t"])["a2t"]
    assert r["space"] == "at" and r["ranks"].tolist() == [3, 1, 3]


def test_embed_manifest_representations_and_images(tiny_model) -> None:
    data = _Windows(rows=2, windows=2)
    emb = embed_manifest(tiny_model, data, "cpu", outputs={"video_repr", "audio_va"})
    assert set(emb) & {"video_repr", "video_va", "audio_va", "text_vat"} == {"video_repr", "audio_va"}
    tiny_model.eval()
    with torch.no_grad():
        ref = tiny_model.encode_video(data.video[1])["repr"].mean(0)  # averaged, not normalised
    torch.testing.assert_close(emb["video_repr"][1], ref, atol=1e-5, rtol=1e-4)

    class Stills(Dataset):
        num_windows = 1

        def __len__(self) -> int:
            return 2

        def __getitem__(self, i: int) -> dict:
            return {"image": data.video[i, 0, 0], "clip_id": f"c{i}", "index": i, "window": 0, "labels": {}}

    img = embed_manifest(tiny_model, Stills(), "cpu", outputs={"image_vat"}, image_mode="naive")
    with torch.no_grad():
        ref = tiny_model.encode_image(data.video[:, 0, 0], mode="naive")["vat"]
    torch.testing.assert_close(img["image_vat"], F.normalize(ref, dim=-1), atol=1e-5, rtol=1e-4)
    assert img["has_image"].all()
    with pytest.raises(ValueError, match="unknown"):
        embed_manifest(tiny_model, data, "cpu", outputs={"video_embedding"})
