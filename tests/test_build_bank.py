"""Building a bank from a model and media (``mmv/bank/build.py``, ``training/build_bank.py``).

A tiny random-init ``tiny_fac`` (4 x 32 x 32 video, 1 s of audio, a vocabulary of the captions) embeds the 48
bundled toy-world clips plus: the real Big Buck Bunny clip cut to [1, 3] s (its preview is re-encoded), a
silent video (no audio vector), a truncated mp4 and a missing file (both skipped and counted). The values are
checked against the model run by hand; a second build must give identical files.
"""

from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import cv2
import faiss
import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from mmv import create_model
from mmv.bank import Bank, BankOptions, build_bank
from mmv.checkpoint import load_checkpoint, save_checkpoint
from mmv.data import media
from mmv.data.dataset import ClipDataset
from mmv.data.manifest import load_manifest, save_manifest
from mmv.tokenizer import Vocabulary
from mmv.toyworld.tasks import clean_description
from training.build_bank import describe_toyworld_clip, main

ROOT = Path(__file__).resolve().parents[1]
TOY = ROOT / "data_samples" / "toyworld" / "manifest.parquet"
BBB = ROOT / "data_samples" / "real" / "big_buck_bunny_10s.mp4"
WINDOWS = 2


def _extra_rows(tmp: Path) -> pd.DataFrame:
    captions = json.loads((BBB.parent / "captions.json").read_text())
    silent = tmp / "silent.mp4"
    frames = np.zeros((16, 64, 64, 3), np.uint8)
    for i in range(16):
        frames[i, 20:40, 4 * i : 4 * i + 12] = (255, 64, 0)  # an orange square moving right
    media.write_video(silent, frames, 8.0)
    truncated = tmp / "truncated.mp4"
    truncated.write_bytes((TOY.parent / "clips" / "000000.mp4").read_bytes()[:3000])
    base = {"dataset": "folder", "audio_path": None, "image_path": None, "captions": [], "fold": None}
    return pd.DataFrame(
        [
            base | {"clip_id": "bbb_1000", "video_path": str(BBB), "start": 1.0, "end": 3.0, "split": "test",
                    "captions": captions},
            base | {"clip_id": "silent", "video_path": str(silent), "start": 0.0, "end": math.nan, "split": "val",
                    "captions": [{"start": 0.0, "end": 2.0, "text": "an orange square moves to the right"}]},
            base | {"clip_id": "broken/truncated", "video_path": str(truncated), "start": 0.0, "end": 4.0,
                    "split": "train"},
            base | {"clip_id": "broken/missing", "video_path": str(tmp / "gone.mp4"), "start": 0.0, "end": 4.0,
                    "split": "train"},
        ]
    )  # fmt: skip


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("build")
    threads, faiss_threads = torch.get_num_threads(), faiss.omp_get_max_threads()
    torch.set_num_threads(1)  # spinning OpenMP threads on 2 shared cores slow tiny models down many times
    faiss.omp_set_num_threads(1)
    toy = load_manifest(TOY)
    df = pd.concat([toy, _extra_rows(tmp)], ignore_index=True)
    manifest = tmp / "manifest.parquet"
    save_manifest(df, manifest)
    vocab = Vocabulary.build([c["text"] for cs in load_manifest(manifest)["captions"] for c in cs])
    torch.manual_seed(0)
    model = create_model(
        "tiny_fac", video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0}, text={"vocab_size": len(vocab)}
    )
    model.vocab = vocab
    save_checkpoint(model, tmp / "ckpt")
    model = load_checkpoint(tmp / "ckpt")
    options = BankOptions(
        num_windows=WINDOWS, batch_size=8, progress=False, checkpoint_path=tmp / "ckpt", cache_dir=tmp / "c"
    )
    bank = build_bank(model, manifest, tmp / "bank", options, describe=describe_toyworld_clip)
    again = build_bank(model, manifest, tmp / "again", options, describe=describe_toyworld_clip)
    yield {"bank": bank, "again": again, "model": model, "manifest": manifest, "tmp": tmp}
    torch.set_num_threads(threads)
    faiss.omp_set_num_threads(faiss_threads)


def _row(bank: Bank, clip_id: str) -> int:
    return int(np.flatnonzero(bank.meta["clip_id"].to_numpy() == clip_id)[0])


def test_spaces_modalities_and_skipped_clips(built) -> None:
    bank: Bank = built["bank"]
    assert bank.spaces == {"va": ["video", "audio"], "vat": ["video", "audio", "text"]}  # FAC: audio in S_vat
    assert len(bank) == 50 and "broken/truncated" not in set(bank.meta["clip_id"])
    skipped = bank.provenance["skipped"]
    assert skipped["count"] == 2 and skipped["partial"] == 0
    reasons = {s["clip_id"]: s["reason"] for s in skipped["clips"]}
    assert set(reasons) == {"broken/truncated", "broken/missing"}
    assert reasons["broken/missing"] == "file not found" and reasons["broken/truncated"]
    for space, mods in bank.spaces.items():
        for mod in mods:
            x = bank.vectors(space, mod)
            np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
            assert bank.provenance["indexes"][f"{space}/{mod}"]["type"] == "IndexFlatIP"


def test_clips_lacking_a_modality_have_no_vector_there(built) -> None:
    bank: Bank = built["bank"]
    meta = bank.meta
    silent = _row(bank, "silent")
    assert not meta.loc[silent, "has_audio"] and meta["has_audio"].sum() == 49
    assert silent not in set(bank.rows("va", "audio")) and silent not in set(bank.rows("vat", "audio"))
    assert silent in set(bank.rows("vat", "video"))
    narrated = meta["captions"].map(len).to_numpy() > 0
    assert meta["has_text"].tolist() == narrated.tolist()  # every toy caption has a known word
    assert bank.rows("vat", "text").tolist() == np.flatnonzero(narrated).tolist()
    toy_silent_text = meta[(meta["dataset"] == "toyworld") & ~meta["has_text"]]
    assert len(toy_silent_text) == 7 and (toy_silent_text["narration"] == "").all()


def test_vectors_are_the_models_embeddings_averaged_over_windows(built) -> None:
    bank, model = built["bank"], built["model"]
    row = _row(bank, "toyworld/000000")
    cfg = model.config
    data = ClipDataset(load_manifest(TOY).iloc[:1], cfg.video, cfg.audio, model.vocab, cfg.text, num_captions=8,
                       mode="eval", num_windows=WINDOWS)  # fmt: skip
    items = [data[k] for k in range(WINDOWS)]
    with torch.no_grad():
        video = torch.stack([it["video"] for it in items])
        audio = torch.stack([it["audio"] for it in items])
        v, a = model.encode_video(video), model.encode_audio(audio)  # eval mode: FAC audio reaches vat
        texts = [F.normalize(model.encode_text(it["text"][it["text_mask"]])["vat"], dim=-1) for it in items]
    t = F.normalize(torch.cat(texts).mean(0), dim=0)
    expected = {
        ("va", "video"): F.normalize(v["va"].mean(0), dim=0),
        ("vat", "video"): F.normalize(v["vat"].mean(0), dim=0),
        ("va", "audio"): F.normalize(a["va"].mean(0), dim=0),
        ("vat", "audio"): F.normalize(a["vat"].mean(0), dim=0),
        ("vat", "text"): t,
    }
    for (space, mod), ref in expected.items():
        pos = int(np.flatnonzero(bank.rows(space, mod) == row)[0])
        np.testing.assert_allclose(bank.vectors(space, mod)[pos], ref.numpy(), atol=1e-5, rtol=1e-4)
    # Search: the clip's own video vector is its own top hit.
    scores, rows = bank.search("vat", "video", expected[("vat", "video")].numpy(), k=3)
    assert rows[0, 0] == row and scores[0, 0] == pytest.approx(1.0, abs=1e-5)


def test_meta_columns_captions_and_descriptions(built) -> None:
    bank: Bank = built["bank"]
    meta = bank.meta
    contract = ["clip_id", "split", "video_path", "start", "end", "captions", "narration", "has_audio", "has_text"]
    contract += ["description", "thumbnail", "preview", "label_shape", "label_colour", "label_motion"]
    assert set(contract) <= set(meta.columns), set(contract) - set(meta.columns)
    assert meta["clip_id"].is_unique and meta.index.tolist() == list(range(len(meta)))
    toy = load_manifest(TOY)
    first = meta.iloc[0]
    assert first["clip_id"] == "toyworld/000000" and Path(first["video_path"]).is_file()
    assert first["captions"] == [c["text"] for c in sorted(toy["captions"][0], key=lambda c: (c["start"], c["end"]))]
    assert first["narration"] == " / ".join(first["captions"])
    labels = (toy["label_shape"][0], toy["label_colour"][0], toy["label_motion"][0])
    assert first["description"] == clean_description(*labels)
    bbb = meta.loc[_row(bank, "bbb_1000")]
    assert bbb["description"] == "" and pd.isna(bbb["label_shape"])
    # Windows [1, 2] and [2, 3] s: the 8 captions nearest each (all five), nearest first, ties by start time.
    texts = [c["text"] for c in json.loads((BBB.parent / "captions.json").read_text())]
    assert bbb["captions"] == texts
    assert math.isnan(meta.loc[_row(bank, "silent"), "end"])
    sentences, vectors = bank.descriptions()
    assert sentences == sorted({d for d in meta["description"] if d}) and vectors.shape == (len(sentences), 64)
    model = built["model"]
    ids = model.tokenize(sentences[:2])
    with torch.no_grad():
        ref = F.normalize(model.encode_text(ids)["vat"], dim=-1).numpy()
    np.testing.assert_allclose(vectors[:2], ref, atol=1e-5)


def test_thumbnails_show_the_middle_frame(built) -> None:
    bank: Bank = built["bank"]
    for clip_id, t in (("toyworld/000006", 2.0), ("bbb_1000", 2.0)):  # 6 moves right
        row = bank.meta.loc[_row(bank, clip_id)]
        img = cv2.imread(str(bank.dir / row["thumbnail"]))[:, :, ::-1]
        assert max(img.shape[:2]) == 128
        frame = media.read_frames_at(row["video_path"], [t])[0]
        ref = cv2.resize(frame, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
        assert np.abs(img.astype(float) - ref).mean() < 6  # JPEG noise only
        other = media.read_frames_at(row["video_path"], [0.0])[0]
        other = cv2.resize(other, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
        assert np.abs(img.astype(float) - other).mean() > np.abs(img.astype(float) - ref).mean()


def test_previews_are_linked_when_the_clip_is_one_and_encoded_otherwise(built) -> None:
    bank: Bank = built["bank"]
    made = bank.provenance["media"]["previews"]
    assert made.get("linked", 0) + made.get("copied", 0) == 49 and made["encoded"] == 1  # copied across devices
    assert bank.provenance["media"]["thumbnails"] == 50 and bank.provenance["media"]["skipped"] == []
    toy = bank.meta.loc[0]
    assert (bank.dir / toy["preview"]).read_bytes() == Path(toy["video_path"]).read_bytes()
    bbb = bank.meta.loc[_row(bank, "bbb_1000")]
    info = media.video_info(bank.dir / bbb["preview"])
    assert info.has_audio and (info.width, info.height) == (284, 160) and info.fps == 25.0
    assert info.duration == pytest.approx(2.0, abs=0.05)
    # Its first frame is the source's frame at 1 s.
    first = media.read_frames_at(bank.dir / bbb["preview"], [0.0])[0].astype(float)
    src = cv2.resize(media.read_frames_at(BBB, [1.0])[0], (284, 160), interpolation=cv2.INTER_AREA)
    assert np.abs(first - src).mean() < 8
    sound = media.read_audio(bank.dir / bbb["preview"], 0.0, 1.5, 16000, built["tmp"] / "c")
    source = media.read_audio(BBB, 1.0, 1.5, 16000, built["tmp"] / "c")
    assert np.corrcoef(sound[2000:22000], source[2000:22000])[0, 1] > 0.9


def test_rebuilding_gives_the_same_bank(built) -> None:
    a, b = built["bank"], built["again"]
    for space, mods in a.spaces.items():
        for mod in mods:
            np.testing.assert_array_equal(a.vectors(space, mod), b.vectors(space, mod))
            np.testing.assert_array_equal(a.rows(space, mod), b.rows(space, mod))
        pd.testing.assert_frame_equal(a.coords(space), b.coords(space))
    pd.testing.assert_frame_equal(a.meta, b.meta)
    for rel in a.meta["thumbnail"]:
        assert (a.dir / rel).read_bytes() == (b.dir / rel).read_bytes()
    volatile = {"created", "build_seconds", "timings"}
    pa = {k: v for k, v in a.provenance.items() if k not in volatile}
    pb = {k: v for k, v in b.provenance.items() if k not in volatile}
    assert pa == pb


def test_provenance_records_checkpoint_config_and_parameters(built) -> None:
    bank, tmp = built["bank"], built["tmp"]
    p = bank.provenance
    weights = (tmp / "ckpt" / "model.safetensors").read_bytes()
    assert p["checkpoint"] == {"path": str((tmp / "ckpt").resolve()), "sha256": hashlib.sha256(weights).hexdigest()}
    assert bank.config == built["model"].config.to_dict()
    assert p["manifest"]["sha256"] == hashlib.sha256(built["manifest"].read_bytes()).hexdigest()
    assert p["manifest"]["rows"] == 52 and p["manifest"]["selected"] == 52
    assert p["parameters"]["num_windows"] == WINDOWS and p["parameters"]["seed"] == 0
    assert p["parameters"]["splits"] is None and p["parameters"]["batch_size"] == 8 and p["parameters"]["thumbnails"]
    assert set(p["parameters"]) == {"splits", "num_windows", "batch_size", "narration_captions", "device", "seed",
                                    "umap_params", "max_fit_points", "exact_max", "target_recall", "thumbnails",
                                    "previews", "thumb_size", "preview_seconds"}  # fmt: skip
    assert p["parameters"]["umap_params"]["n_neighbors"] == 15 and p["maps"]["vat"]["seed"] == 0
    assert {"torch", "numpy", "faiss", "umap-learn", "python"} <= set(p["versions"])
    assert p["counts"]["vectors"]["vat/text"] == int(bank.meta["has_text"].sum())
    assert p["build_seconds"] > 0 and {"embed", "index", "maps", "media", "total"} <= set(p["timings"])
    assert bank.matches_checkpoint(tmp / "ckpt") and not bank.matches_checkpoint(tmp / "manifest.parquet")


def test_cli_builds_a_bank_of_some_splits(built, capsys: pytest.CaptureFixture[str]) -> None:
    tmp = built["tmp"]
    out = tmp / "cli_bank"
    args = ["--checkpoint", str(tmp / "ckpt"), "--manifest", str(built["manifest"]), "--out", str(out)]
    assert main([*args, "--splits", "val", "test", "--num-windows", "2", "--no-previews", "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert f"bank: {out}" in printed and "vat/text" in printed and "skipped clips (unreadable): 0" in printed
    bank = Bank.load(out)
    assert set(bank.meta["split"]) == {"val", "test"} and len(bank) == 12  # 5 + 5 toy clips, bbb, silent
    assert (bank.meta["preview"] == "").all() and (bank.meta["thumbnail"] != "").all()
    # Same model, same clips: the vectors equal those of the full bank's rows.
    full: Bank = built["bank"]
    rows = [_row(full, c) for c in bank.meta["clip_id"]]
    np.testing.assert_allclose(bank.vectors("va", "video"), full.vectors("va", "video")[rows], atol=1e-6)
    assert main([*args, "--splits", "nope", "--quiet"]) == 2
    assert "no clip in split(s) ['nope']" in capsys.readouterr().err
    assert main(["--checkpoint", str(tmp / "none"), "--manifest", str(built["manifest"]), "--out", str(out)]) == 2
    assert "no such checkpoint" in capsys.readouterr().err
    assert Bank.load(out).meta.equals(bank.meta)  # a failed build leaves the old bank in place
    shutil.rmtree(out)


@pytest.mark.parametrize(
    ("graph", "heads", "spaces"),
    [
        ("disjoint", {}, {"va": ["video", "audio"], "vat": ["video", "text"]}),  # S_vt is stored as "vat"
        ("shared", {"text_vat": {"dim": 128}}, {"va": ["video", "audio"], "vat": ["video", "audio", "text"]}),
    ],
)
def test_spaces_follow_the_models_graph(built, graph: str, heads: dict, spaces: dict) -> None:
    vocab = built["model"].vocab
    torch.manual_seed(0)
    model = create_model(
        "tiny_fac", graph=graph, heads=heads, video={"num_frames": 4, "frame_size": 32}, audio={"duration": 1.0},
        text={"vocab_size": len(vocab)},
    )  # fmt: skip
    model.vocab = vocab
    df = load_manifest(TOY).iloc[:12]
    options = BankOptions(thumbnails=False, previews=False, progress=False)
    bank = build_bank(model, df, built["tmp"] / graph, options)
    assert bank.spaces == spaces and bank.provenance["manifest"]["path"] is None
    if graph == "shared":  # one space under two names
        np.testing.assert_array_equal(bank.vectors("va", "video"), bank.vectors("vat", "video"))


def test_descriptions_come_only_from_the_callers_hook(built) -> None:
    """mmv.bank knows no dataset: toy labels without a hook give no descriptions; the toy hook ignores clips
    without toy labels; any hook's sentences are stored with their S_vat text vectors."""
    model, tmp = built["model"], built["tmp"]
    toy = load_manifest(TOY).iloc[:9]  # train clips and two test clips
    unlabelled = toy.drop(columns=["label_shape", "label_colour", "label_motion"])
    options = BankOptions(thumbnails=False, previews=False, progress=False, umap_params={"n_epochs": 10})
    for name, df, describe in (("no_hook", toy, None), ("no_labels", unlabelled, describe_toyworld_clip)):
        bank = build_bank(model, df, tmp / name, options, describe=describe)
        assert (bank.meta["description"] == "").all() and bank.provenance["descriptions"] == []
        assert bank.descriptions()[0] == [] and not (bank.dir / "vectors" / "descriptions.npy").exists()

    def by_split(row) -> str | None:
        return {"test": "a red circle", "val": "a blue square"}.get(row["split"])

    bank = build_bank(model, unlabelled, tmp / "by_split", options, describe=by_split)
    expected = [by_split(r) or "" for r in unlabelled.to_dict("records")]
    assert bank.meta["description"].tolist() == expected and "" in expected
    sentences, vectors = bank.descriptions()
    assert sentences == sorted(set(expected) - {""}) and len(sentences) >= 1
    with torch.no_grad():
        ref = F.normalize(model.encode_text(model.tokenize(sentences))["vat"], dim=-1).numpy()
    np.testing.assert_allclose(vectors, ref, atol=1e-5)


def test_toyworld_describer_reads_the_three_labels() -> None:
    row = {"label_shape": "circle", "label_colour": "red", "label_motion": "static", "dataset": "folder"}
    assert describe_toyworld_clip(row) == clean_description("circle", "red", "static")
    assert describe_toyworld_clip(row | {"label_motion": None}) is None
    assert describe_toyworld_clip(row | {"label_shape": "dodecahedron"}) is None  # not a toy-world shape
    assert describe_toyworld_clip({"dataset": "toyworld"}) is None


def test_options_are_checked_and_recorded_by_step() -> None:
    with pytest.raises(ValueError, match="num_windows, batch_size and exact_max must be >= 1"):
        BankOptions(num_windows=0)
    with pytest.raises(ValueError, match="umap_params: unknown parameter 'neighbours'"):
        BankOptions(umap_params={"neighbours": 5})
    options = BankOptions(splits=("val",), device=torch.device("cpu"), num_workers=3, cache_dir="/tmp/x")
    assert options.recorded("embed") == {"splits": ["val"], "num_windows": 1, "batch_size": 32, "device": "cpu"}
    written = options.recorded("write")
    assert list(written) == ["seed", "umap_params", "max_fit_points", "exact_max", "target_recall", "thumbnails",
                             "previews", "thumb_size", "preview_seconds"]  # fmt: skip
    assert written["umap_params"]["n_neighbors"] == 15 and written["thumbnails"] is True
    # Running options never reach the provenance: they change how long a build takes, not what it writes.
    assert not {"progress", "num_workers", "media_workers", "cache_dir", "checkpoint_path"} & set(written)
