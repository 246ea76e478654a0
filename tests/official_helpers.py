"""The official-parity reference in the tests: regenerate official parameters, write them as the released files do.

``tests/data/official_parity`` holds, per model, the official leaf list (``<model>.json.gz``) and the inputs and
official outputs (``<model>.npz``), copied from ``shared/official_parity`` by ``make_subset.py`` there. The
parameters are not stored: :func:`make_leaf` regenerates each from its Haiku name and shape (recipe version 1 of
``shared/official_parity/README.md``), and :func:`official_tree` checks every leaf against the reference's crc32
so a numpy change can never pass silently.
"""

from __future__ import annotations

import gzip
import json
import math
import pickle
import zlib
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data" / "official_parity"
SEED, GAIN_CONV3D, EMA_COUNTER = 20201125, 1.7, 1000
F64_GATE, F32_GATE = 1e-9, 1e-4  # relative: max|ours - official| / max|official| (README's suggested gates)


def _rng(name: str) -> np.random.Generator:
    return np.random.default_rng([SEED, zlib.crc32(name.encode("utf-8"))])


def make_leaf(name: str, shape) -> np.ndarray:
    """One official parameter or BatchNorm-state leaf of recipe v1 (float32; int32 for EMA counters)."""
    shape = tuple(int(s) for s in shape)
    module, _, leaf = name.rpartition(":")
    r = _rng(name)
    if leaf == "w":
        gain = GAIN_CONV3D if len(shape) == 5 else 1.0
        value = r.standard_normal(shape) * (gain / math.sqrt(math.prod(shape[:-1])))
    elif leaf in ("b", "offset"):
        value = 0.1 * r.standard_normal(shape)
    elif leaf in ("scale",) or (leaf == "average" and module.endswith("var_ema")):
        value = r.uniform(0.5, 1.5, shape)
    elif leaf == "embeddings":
        value = r.standard_normal(shape)
    elif leaf == "average":
        value = 0.1 * r.standard_normal(shape)
    elif leaf == "hidden":
        return make_leaf(f"{module}:average", shape)
    elif leaf == "counter":
        return np.full(shape, EMA_COUNTER, dtype=np.int32)
    else:
        raise KeyError(f"recipe v1 has no rule for {name!r}")
    return value.astype(np.float32)


def meta(model: str) -> dict:
    with gzip.open(DATA / f"{model}.json.gz", "rt", encoding="utf-8") as f:
        return json.load(f)


def reference(model: str) -> dict[str, np.ndarray]:
    """``in:<key>``, ``out64:<name>`` and ``out32:<name>`` arrays of one reference model."""
    with np.load(DATA / f"{model}.npz") as ref:
        return {k: ref[k] for k in ref.files}


def official_tree(model: str) -> dict[str, dict[str, dict[str, np.ndarray]]]:
    """``{'params': {module: {leaf: array}}, 'state': {...}}``, the layout of a released ``.pkl``; crc-checked."""
    tree: dict[str, dict[str, dict[str, np.ndarray]]] = {"params": {}, "state": {}}
    for record in meta(model)["leaves"]:
        value = make_leaf(record["name"], record["shape"])
        crc = zlib.crc32(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes())
        assert crc == record["crc32"], f"recipe does not reproduce {record['name']}"
        module, _, leaf = record["name"].rpartition(":")
        tree[record["collection"]].setdefault(module, {})[leaf] = value
    return tree


def flat_tree(model: str) -> dict[str, np.ndarray]:
    """The same leaves as ``{'module/path:leaf': array}`` (the layout of an ``.npz`` export)."""
    tree = official_tree(model)
    return {f"{m}:{leaf}": v for part in tree.values() for m, leaves in part.items() for leaf, v in leaves.items()}


def write_official_pickle(model: str, path: Path) -> Path:
    """Writes the regenerated tree as a released checkpoint is written: a pickle of the nested params/state dict."""
    path.write_bytes(pickle.dumps(official_tree(model), protocol=4))
    return path


def relative_error(ours, official: np.ndarray) -> float:
    ours = np.asarray(ours.detach().cpu().numpy() if hasattr(ours, "detach") else ours, dtype=np.float64)
    assert ours.shape == official.shape, f"shape {ours.shape} != official {official.shape}"
    return float(np.max(np.abs(ours - official)) / np.max(np.abs(official)))


def srt_from_captions(captions: list[dict]) -> str:
    """An ``.srt`` sidecar from ``[{'start', 'end', 'text'}]`` (seconds)."""

    def stamp(t: float) -> str:
        ms = int(round(t * 1000))
        return f"{ms // 3_600_000:02d}:{ms // 60_000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    cues = (f"{i}\n{stamp(c['start'])} --> {stamp(c['end'])}\n{c['text']}\n\n" for i, c in enumerate(captions, 1))
    return "".join(cues)


def official_model_and_bank(root: Path, vocab: Path | None = None) -> tuple[Path, Path]:
    """The documented path on a converted official-format checkpoint, run through the three CLIs.

    ``fac_s3d``'s regenerated tree as a released ``.pkl`` -> ``training.convert_official`` -> a folder of videos
    (the bundled Big Buck Bunny clip with an ``.srt`` of its captions, and a toy-world clip) ->
    ``training.prepare folder`` -> ``training.build_bank``. Returns ``(checkpoint dir, bank dir)``.
    """
    import shutil

    from training import build_bank, convert_official, prepare

    here = Path(__file__).resolve().parents[1]
    real = here / "data_samples" / "real"
    videos = root / "videos"
    videos.mkdir(parents=True)
    shutil.copy(real / "big_buck_bunny_10s.mp4", videos / "big_buck_bunny.mp4")
    (videos / "big_buck_bunny.srt").write_text(srt_from_captions(json.loads((real / "captions.json").read_text())))
    shutil.copy(here / "data_samples" / "toyworld" / "clips" / "000000.mp4", videos / "toy_clip.mp4")
    source = write_official_pickle("fac_s3d", root / "mmv_s3d_recipe.pkl")
    model, manifest, bank = root / "mmv_s3d", root / "videos.parquet", root / "bank"
    argv = ["--checkpoint", str(source), "--out", str(model), "--quiet"] + (["--vocab", str(vocab)] if vocab else [])
    assert convert_official.main(argv) == 0
    assert prepare.main(["folder", str(videos), "--out", str(manifest)]) == 0
    argv = ["--checkpoint", str(model), "--manifest", str(manifest), "--out", str(bank), "--num-workers", "0"]
    assert build_bank.main([*argv, "--quiet"]) == 0
    return model, bank


def fac_outputs(model, ref: dict[str, np.ndarray], dtype, device="cpu") -> dict[str, np.ndarray]:
    """Our model's counterparts of the official output dict (``txt_embd.toaud`` has none: its head is dropped)."""
    with torch.no_grad():
        video = model.encode_video(torch.from_numpy(ref["in:images"]).to(device, dtype))
        audio_repr = model.audio(torch.from_numpy(ref["in:audio_spectrogram"]).to(device, dtype))
        audio_va = model.heads["audio_va"](audio_repr)
        audio_vat = model.heads["va_vat"](model.fac_activation(audio_va))
        text = model.encode_text(torch.from_numpy(ref["in:word_ids"]).long().to(device))
    out = {
        "vid_repr": video["repr"],
        "vid_embd.toaud": video["va"],
        "vid_embd.totxt": video["vat"],
        "aud_repr": audio_repr,
        "aud_embd.tovid": audio_va,
        "aud_embd.totxt": audio_vat,
        "txt_embd.tovid": text["vat"],
    }
    return {k: v.float().cpu().numpy() if v.dtype == torch.bfloat16 else v.cpu().numpy() for k, v in out.items()}
