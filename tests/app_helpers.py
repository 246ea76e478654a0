"""Helpers shared by the app tests (``tests/test_app_*.py``, ``tests/e2e/``): a tiny model, its bank, bad uploads.

* :func:`tiny_model_and_bank` builds, once per test process, a random-init ``tiny_fac`` checkpoint (4 frames of
  32 px, 1 s of audio, a vocabulary from the bundled toy world's narrations) and an embedding bank over the 48
  bundled toy-world clips (``data_samples/toyworld``). Nothing under ``models/`` is used.
* :func:`bad_corpus` writes the issue's corpus of bad uploads (and the good ones the app must convert), each
  with what the app must say about it.
"""

from __future__ import annotations

import io
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TOYWORLD = ROOT / "data_samples" / "toyworld"
SAMPLE_MANIFEST = TOYWORLD / "manifest.parquet"
REAL_CLIP = ROOT / "data_samples" / "real" / "big_buck_bunny_10s.mp4"
TINY_OVERRIDES = {"video": {"num_frames": 4, "frame_size": 32}, "audio": {"duration": 1.0}}

_BUILT: dict[str, tuple[Path, Path]] = {}


def tiny_vocabulary():
    """The toy world's words plus every word of the bundled narrations."""
    import pandas as pd

    from mmv.tokenizer import Vocabulary
    from mmv.toyworld.narration import vocabulary_words

    df = pd.read_parquet(SAMPLE_MANIFEST)
    captions = [c["text"] for caps in df["captions"] for c in caps]
    built = Vocabulary.build(captions, remove_stop_words=True)
    return Vocabulary.from_words([*vocabulary_words(), *built.words])


def make_tiny_checkpoint(directory: Path, seed: int = 0) -> Path:
    """A random-init ``tiny_fac`` (small input) with a toy-world vocabulary, saved as an mmv checkpoint."""
    import torch

    from mmv import create_model
    from mmv.checkpoint import save_checkpoint

    torch.manual_seed(seed)
    vocab = tiny_vocabulary()
    model = create_model("tiny_fac", **TINY_OVERRIDES, text={"vocab_size": len(vocab)})
    model.vocab = vocab
    model.eval()
    return save_checkpoint(model, directory, metadata={"note": "random init, for the app tests"})


def tiny_model_and_bank(root: Path) -> tuple[Path, Path]:
    """``(checkpoint dir, bank dir)`` under ``root``, built once per process (later calls reuse the first)."""
    if "tiny" in _BUILT:
        return _BUILT["tiny"]
    import torch

    from mmv.bank import BankOptions, build_bank
    from mmv.checkpoint import load_checkpoint
    from training.build_bank import describe_toyworld_clip

    torch.set_num_threads(1)
    model_dir = make_tiny_checkpoint(Path(root) / "model")
    model = load_checkpoint(model_dir)
    bank_dir = Path(root) / "bank"
    options = BankOptions(progress=False, checkpoint_path=model_dir)
    build_bank(model, SAMPLE_MANIFEST, bank_dir, options, describe=describe_toyworld_clip)
    _BUILT["tiny"] = (model_dir, bank_dir)
    return _BUILT["tiny"]


# ---------------------------------------------------------------------------------------------------
# The corpus of uploads
# ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """One file of the corpus and what the app must do with it.

    Attributes:
        name: the file name as uploaded.
        data: its bytes.
        accepted: the app uses it (possibly after converting it) rather than refusing it.
        says: words the app's message (error or note) must contain.
    """

    name: str
    data: bytes
    accepted: bool
    says: tuple[str, ...]


def _video_bytes(path: Path, seconds: float, fps: float, size: int, sound: bool, sample_rate: int = 16000) -> bytes:
    from mmv.data.media import write_video

    n = max(1, int(round(seconds * fps)))
    t = np.arange(n)[:, None, None, None]
    frames = np.broadcast_to((t * 37 % 256).astype(np.uint8), (n, size, size, 3)).copy()
    audio = None
    if sound:
        s = np.arange(int(seconds * sample_rate)) / sample_rate
        audio = (0.3 * np.sin(2 * np.pi * 440 * s)).astype(np.float32)
    write_video(path, frames, fps, audio=audio, sample_rate=sample_rate)
    return path.read_bytes()


def _png(image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


def bad_corpus(directory: Path) -> list[Upload]:
    """The issue's bad files (plus two unreadable kinds), generated into ``directory``.

    0-byte, truncated mp4, mp4 without audio, image named .mp4, 10-minute clip, 96 kHz stereo wav, CMYK JPEG,
    PNG with alpha, non-UTF-8 text, UTF-16 text, random bytes.
    """
    import soundfile as sf
    from PIL import Image

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    good = (TOYWORLD / "clips" / "000001.mp4").read_bytes()
    rgb = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cmyk = io.BytesIO()
    Image.fromarray(rgb).convert("CMYK").save(cmyk, format="JPEG")
    rgba = np.concatenate([rgb, np.full((48, 64, 1), 255, np.uint8)], axis=2)
    rgba[:, :32, 3] = 0  # the left half transparent
    wav = io.BytesIO()
    t = np.arange(96000) / 96000
    sf.write(wav, np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 660 * t)], 1) * 0.3, 96000,
             format="WAV", subtype="PCM_16")  # fmt: skip
    return [
        Upload("empty.mp4", b"", False, ("empty", "0 bytes")),
        Upload("truncated.mp4", good[: len(good) // 2], False, ("incomplete", "truncated")),
        Upload("silent.mp4", _video_bytes(directory / "silent.mp4", 3.0, 8, 64, False), True, ("no sound track",)),
        Upload("picture.mp4", _png(Image.fromarray(rgb)), False, ("named like an MP4", "PNG image")),
        Upload(
            "ten_minutes.mp4",
            _video_bytes(directory / "long.mp4", 600.0, 1, 32, False),
            False,
            ("600 s long", "at most 120 s"),
        ),  # fmt: skip
        Upload("stereo_96k.wav", wav.getvalue(), True, ("96000 Hz", "mixed to mono")),
        Upload("cmyk.jpg", cmyk.getvalue(), True, ("CMYK",)),
        Upload("alpha.png", _png(Image.fromarray(rgba, "RGBA")), True, ("Transparent pixels",)),
        Upload("latin1.txt", "un cercle rouge, café crème".encode("latin-1"), False, ("not UTF-8", "0xE9")),
        Upload("utf16.txt", "a red circle".encode("utf-16"), False, ("not UTF-8",)),
        Upload("noise.bin", b"\x00\x01" + np.random.default_rng(1).bytes(4094), False, ("unknown format",)),
    ]


@contextmanager
def app_environment(model: Path, bank: Path, uploads: Path | None = None, clear_choices: bool = False):
    """The app pointed at ``model`` and ``bank`` (``MMV_APP_MODEL`` / ``MMV_APP_BANK``, and the upload directory
    when ``uploads`` is given) for an AppTest module; everything is restored on exit.

    ``clear_choices`` empties Streamlit's data cache on entry and exit: the sidebar's checkpoint and bank lists
    (default first) are cached for 30 s per process, so a module whose default differs from an earlier
    module's must not read that module's lists.
    """
    import streamlit as st

    from app.logic import state

    saved = {k: os.environ.get(k) for k in (state.ENV_MODEL, state.ENV_BANK)}
    os.environ[state.ENV_MODEL], os.environ[state.ENV_BANK] = str(model), str(bank)
    saved_uploads = state.UPLOAD_DIR
    if uploads is not None:
        state.UPLOAD_DIR = uploads
    if clear_choices:
        st.cache_data.clear()
    try:
        yield
    finally:
        if clear_choices:
            st.cache_data.clear()
        state.UPLOAD_DIR = saved_uploads
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
