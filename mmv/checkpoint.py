"""Save and load models as safetensors + JSON: a checkpoint never runs code when it is read.

A checkpoint is a directory (see ``docs/formats.md``)::

    my_model/
      config.json          {"format": "mmv-checkpoint", "format_version": 1, "config": {...MMVConfig...}, ...}
      model.safetensors    every parameter and persistent buffer (BN running statistics included)
      vocab.txt            the text vocabulary, one word per line, when the model has one
      deflation.safetensors  recalibrated BN gamma/beta of the deflated (image) video tower, when
                           ``training.deflate`` has run (:func:`save_deflation`; see ``mmv.deflation``)

Pickle-based files (``.pt``, ``.pth``, ``.ckpt``, ``.pkl``, or anything that starts like a pickle or a
``torch.save`` zip) are refused by :func:`load_checkpoint`. A plain PyTorch state dict from elsewhere can
be converted once with :func:`convert_torch_state_dict`, which reads it with ``torch.load(weights_only=True)``
(PyTorch's restricted unpickler: tensors and containers only, no arbitrary callables).
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model

from mmv.config import MMVConfig
from mmv.fileio import atomic_dir, atomic_file

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

FORMAT = "mmv-checkpoint"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
VOCAB_FILE = "vocab.txt"
DEFLATION_FILE = "deflation.safetensors"
DEFLATION_FORMAT = "mmv-deflation"
DEFLATION_FORMAT_VERSION = 1
PICKLE_SUFFIXES = (".pt", ".pth", ".ckpt", ".pkl", ".pickle", ".bin", ".tar")


class CheckpointError(ValueError):
    """A checkpoint is missing, malformed, or in a format mmv refuses to read."""


def _looks_like_pickle(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4)
    # Protocol 2+ pickles start with 0x80; torch.save writes a zip archive ("PK\x03\x04").
    return head[:1] == b"\x80" or head == b"PK\x03\x04"


def save_checkpoint(model: MMV, path: str | os.PathLike, metadata: dict[str, Any] | None = None) -> Path:
    """Writes ``model`` (an :class:`~mmv.models.mmv.MMV`) to the directory ``path``, atomically.

    The files are written into a temporary sibling directory which then replaces ``path``, so a reader
    never sees a half-written checkpoint.

    Args:
        model: the model; ``model.config`` and (if set) ``model.vocab`` are stored with the weights.
        path: target directory (created; an existing checkpoint there is replaced).
        metadata: extra JSON-serialisable information (training step, data, metrics...).

    Returns:
        The checkpoint directory.
    """
    from mmv import __version__

    path = Path(path)
    with atomic_dir(path) as tmp:
        header = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "mmv_version": __version__,
            "torch_version": torch.__version__,
            "config": model.config.to_dict(),
            "metadata": metadata or {},
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(header, indent=2, sort_keys=True))
        save_model(model, str(tmp / WEIGHTS_FILE), metadata={"format": FORMAT})
        if model.vocab is not None:
            model.vocab.save(tmp / VOCAB_FILE)
        if model.calibrated_deflation is not None:
            _write_deflation(model, tmp / DEFLATION_FILE)
    return path


def read_checkpoint_header(path: str | os.PathLike) -> dict[str, Any]:
    """The parsed ``config.json`` of a checkpoint directory (cheap: no weights are read)."""
    directory = _checkpoint_dir(Path(path))
    try:
        header = json.loads((directory / CONFIG_FILE).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: cannot read checkpoint config ({e})") from e
    if header.get("format") != FORMAT:
        raise CheckpointError(f"{directory / CONFIG_FILE}: not an mmv checkpoint (format={header.get('format')!r})")
    if header.get("format_version", 0) > FORMAT_VERSION:
        raise CheckpointError(
            f"{directory}: format_version {header['format_version']} is newer than this mmv reads ({FORMAT_VERSION})"
        )
    return header


def _checkpoint_dir(path: Path) -> Path:
    if path.is_file():
        if path.suffix in PICKLE_SUFFIXES or _looks_like_pickle(path):
            raise CheckpointError(
                f"{path}: refusing a pickle-based file; mmv never unpickles checkpoints because unpickling "
                "can run arbitrary code. If you trust it and it holds a plain state dict, convert it once with "
                "mmv.checkpoint.convert_torch_state_dict (torch.load with weights_only=True)."
            )
        if path.name == WEIGHTS_FILE or path.name == CONFIG_FILE:
            return path.parent
        raise CheckpointError(f"{path}: expected a checkpoint directory holding {CONFIG_FILE} and {WEIGHTS_FILE}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint")
    return path


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> MMV:
    """Builds the model from ``config.json`` and loads its weights; never executes code from the files.

    Args:
        path: the checkpoint directory (or its ``model.safetensors`` / ``config.json``).
        map_location: device for the weights.

    Returns:
        The :class:`~mmv.models.mmv.MMV` in eval mode, with ``.vocab`` set when the checkpoint has one
        and ``.checkpoint_metadata`` holding the stored metadata.

    Raises:
        CheckpointError: pickle-based file, missing files, or weights that do not match the config.
    """
    from mmv.models.mmv import MMV
    from mmv.tokenizer import Vocabulary

    directory = _checkpoint_dir(Path(path))
    header = read_checkpoint_header(directory)
    try:
        config = MMVConfig.from_dict(header["config"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{directory / CONFIG_FILE}: invalid model config ({e})") from e
    vocab = Vocabulary.load(directory / VOCAB_FILE) if (directory / VOCAB_FILE).exists() else None
    model = MMV(config, load_word_vectors=False, vocab=vocab)
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing weights file")
    try:
        missing, unexpected = load_model(model, str(weights), strict=False, device=str(map_location))
    except (SafetensorError, RuntimeError, OSError) as e:
        raise CheckpointError(f"{weights}: cannot load weights ({e})") from e
    if missing or unexpected:
        raise CheckpointError(
            f"{weights}: weights do not match the config (missing {sorted(missing)[:5]}, "
            f"unexpected {sorted(unexpected)[:5]})"
        )
    model.checkpoint_metadata = header.get("metadata", {})
    model = model.to(map_location).eval()
    if "video" in config.modalities and (directory / DEFLATION_FILE).exists():
        load_deflation(model, directory)
    return model


def _write_deflation(model: MMV, path: Path) -> None:
    """Writes the attached calibrated tower's gamma/beta and how they were learnt to ``path`` (one file)."""
    tower = model.calibrated_deflation
    info = dict(model.deflation_info)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in tower.state_dict().items()}
    metadata = {
        "format": DEFLATION_FORMAT,
        "format_version": str(DEFLATION_FORMAT_VERSION),
        "backbone": type(model.video).__name__,
        # The video weights the calibration belongs to (hash at calibration time): a retrained model must not
        # silently use gamma/beta learnt for other weights.
        "video_fingerprint": str(info.get("video_fingerprint", "")),
        "info": json.dumps(info, sort_keys=True, default=str),
    }
    save_file(tensors, str(path), metadata=metadata)


def save_deflation(model: MMV, path: str | os.PathLike) -> Path:
    """Stores the model's calibrated deflation as ``deflation.safetensors`` in the checkpoint directory ``path``.

    The file holds one float32 tensor per recalibrated BatchNorm gamma/beta, named like the video tower's BN
    parameters (``stages.Mixed_3b.branch_0.bn.weight``, ...), and string metadata: ``format``
    (``"mmv-deflation"``), ``format_version``, ``backbone`` (``S3DG`` / ``TSMResNet``), ``video_fingerprint``
    (:func:`mmv.deflation.video_fingerprint` of the video weights it was learnt for) and ``info`` (JSON: the
    objective, T, steps, data, cosines). Written atomically; the rest of the checkpoint is untouched.

    Raises:
        ValueError: the model has no calibrated deflation attached.
    """
    if model.calibrated_deflation is None:
        raise ValueError("save_deflation: the model has no calibrated deflation (see mmv.deflation.recalibrate)")
    directory = _checkpoint_dir(Path(path))
    with atomic_file(directory / DEFLATION_FILE) as tmp:
        _write_deflation(model, tmp)
    return directory / DEFLATION_FILE


def load_deflation(model: MMV, path: str | os.PathLike) -> bool:
    """Attaches the calibrated deflation stored with a checkpoint to ``model`` (``load_checkpoint`` calls this).

    A missing file returns ``False`` silently (``encode_image`` then deflates naively and says so). A file that
    cannot be used (unreadable, another format, another backbone, parameters that do not match, or learnt for
    different video weights) returns ``False`` with a warning that says why: the video model itself is fine,
    and only the image tower falls back to naive deflation.

    Returns:
        Whether a calibrated tower is now attached.
    """
    from mmv.deflation.networks import deflate, video_fingerprint

    p = Path(path)
    file = p / DEFLATION_FILE if p.is_dir() else p
    if not file.is_file():
        return False

    def refuse(reason: str) -> bool:
        warnings.warn(f"{file}: {reason}; encode_image falls back to naive deflation", stacklevel=3)
        return False

    try:
        with safe_open(str(file), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError) as e:
        return refuse(f"cannot read ({e})")
    if meta.get("format") != DEFLATION_FORMAT:
        return refuse(f"not an mmv deflation file (format={meta.get('format')!r})")
    if int(meta.get("format_version", "0")) > DEFLATION_FORMAT_VERSION:
        return refuse(f"format_version {meta['format_version']} is newer than this mmv reads")
    if meta.get("backbone") != type(model.video).__name__:
        return refuse(f"learnt for a {meta.get('backbone')} video tower, this model has {type(model.video).__name__}")
    if meta.get("video_fingerprint") != video_fingerprint(model.video):
        return refuse("learnt for other video weights (the model was retrained since `training.deflate` ran); rerun it")
    tower = deflate(model.video, own_bn=True)
    try:
        tower.load_state_dict(tensors, strict=True)
    except RuntimeError as e:
        return refuse(f"parameters do not match the model ({str(e).splitlines()[0]})")
    try:
        info = json.loads(meta.get("info", "{}"))
    except json.JSONDecodeError:
        info = {}
    ref = next(model.video.parameters())
    model.set_calibrated_deflation(tower.to(device=ref.device, dtype=ref.dtype), info)
    return True


def convert_torch_state_dict(
    source: str | os.PathLike, destination: str | os.PathLike, config: MMVConfig, vocab: Any = None
) -> Path:
    """Converts a trusted ``torch.save``-d state dict into an mmv checkpoint directory.

    The file is read with ``torch.load(weights_only=True)``, which only rebuilds tensors and plain
    containers and raises on anything else, so a malicious pickle cannot run code here either.
    """
    from mmv.models.mmv import MMV

    try:
        state = torch.load(source, map_location="cpu", weights_only=True)
    except Exception as e:  # the restricted unpickler raises UnpicklingError/RuntimeError on foreign objects
        raise CheckpointError(f"{source}: not a plain tensor state dict ({type(e).__name__}: {e})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{source}: expected a state dict, found {type(state).__name__}")
    model = MMV(config, load_word_vectors=False, vocab=vocab)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise CheckpointError(f"{source}: state dict does not match the config ({e})") from e
    return save_checkpoint(model, destination, metadata={"converted_from": str(source)})
