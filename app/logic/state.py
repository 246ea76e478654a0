"""Where the app finds its model and bank, and the names of the values it keeps per session.

No Streamlit here. The defaults are the demo's: the shipped model ``data_samples/demo_model`` and its bank
``models/demo/bank``, which ``make demo`` builds when missing; ``MMV_APP_MODEL`` / ``MMV_APP_BANK`` override
them (the e2e tests and the benchmark point the app at a tiny model and bank this way). The sidebar also offers
every checkpoint and bank found under ``models/`` and any path typed in.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = ROOT / "models"
DEFAULT_MODEL = ROOT / "data_samples" / "demo_model"  # shipped with the repository (make demo-model rebuilds it)
DEFAULT_BANK = MODELS_DIR / "demo" / "bank"
ENV_MODEL = "MMV_APP_MODEL"
ENV_BANK = "MMV_APP_BANK"
#: Uploaded media are stored here, one sub-directory per distinct file (:func:`prune_uploads` bounds it).
UPLOAD_DIR = Path(os.environ.get("MMV_APP_UPLOADS", Path(tempfile.gettempdir()) / "mmv-app-uploads"))
MAX_UPLOAD_DIRS = 32

# Session-state keys shared by the pages.
MODEL_PATH = "model_path"
BANK_PATH = "bank_path"
SELECTED_ROWS = "selected_rows"  # clips selected on the Spaces page (box / lasso), list[int]
INSPECT = "inspect"  # (row, modality) of the clicked point, or None
PLAYING = "playing"  # which result's player is open: (page, row, modality)


def default_model() -> Path:
    return Path(os.environ.get(ENV_MODEL) or DEFAULT_MODEL)


def default_bank() -> Path:
    return Path(os.environ.get(ENV_BANK) or DEFAULT_BANK)


def is_checkpoint(path: Path) -> bool:
    """A directory holding an mmv checkpoint (cheap: reads only ``config.json``'s format field)."""
    try:
        header = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(header, dict) and header.get("format") == "mmv-checkpoint" and (path / "model.safetensors").is_file()
    )


def is_bank(path: Path) -> bool:
    """A directory that looks like an embedding bank (its provenance file and metadata table)."""
    return path.is_dir() and (path / "provenance.json").is_file() and any(path.glob("meta*.parquet"))


def _find(root: Path, test, depth: int = 3) -> list[Path]:
    found: list[Path] = []
    if not root.is_dir():
        return found
    stack = [(root, 0)]
    while stack:
        directory, level = stack.pop()
        try:
            children = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
        except OSError:
            continue
        for child in children:
            if test(child):
                found.append(child)
            elif level + 1 < depth and child.name not in ("checkpoints", "tensorboard", "clips", "skips"):
                stack.append((child, level + 1))
    return sorted(found)


def find_checkpoints(root: Path = MODELS_DIR) -> list[Path]:
    """Checkpoint directories under ``root`` (three levels deep)."""
    return _find(root, is_checkpoint)


def find_banks(root: Path = MODELS_DIR) -> list[Path]:
    """Bank directories under ``root`` (three levels deep)."""
    return _find(root, is_bank)


def same_place(path: str | Path) -> str:
    """One spelling per directory (the resolved absolute path), so ``models/demo/bank`` and its absolute path are
    one choice in the sidebar and one entry of the server's model and bank caches."""
    try:
        return str(Path(path).resolve())
    except OSError:
        return str(path)


def options(found: list[Path], default: Path) -> list[str]:
    """Choices for a sidebar select box: the default first, then what was found, each directory once.

    The default keeps the spelling it was given (``MMV_APP_MODEL``, often relative); a found directory that is the
    same place (found ones are absolute) is not listed again.
    """
    out, seen = [str(default)], {same_place(default)}
    for p in found:
        if same_place(p) not in seen:
            seen.add(same_place(p))
            out.append(str(p))
    return out


def display_path(path: str | Path) -> str:
    """A path relative to the repository when it is inside it (shorter in the sidebar)."""
    p = Path(path)
    try:
        return str(p.resolve().relative_to(ROOT))
    except ValueError:
        return str(p)


def missing_message(model: Path, bank: Path) -> str | None:
    """What to do when the model or the bank is missing (Markdown), or ``None`` when both are there."""
    problems = []
    if not is_checkpoint(model):
        problems.append(f"no checkpoint at `{display_path(model)}`")
    if not is_bank(bank):
        problems.append(f"no embedding bank at `{display_path(bank)}`")
    if not problems:
        return None
    return (
        f"The app needs a model and its bank: {' and '.join(problems)}.\n\n"
        "Run `make demo` (it trains the demo model when missing, builds its bank, then starts the app), or build "
        "a bank with `python -m training.build_bank --checkpoint <model> --manifest <manifest.parquet> --out <dir>` "
        "and choose it in the sidebar."
    )


def prune_uploads(directory: Path = UPLOAD_DIR, keep: int = MAX_UPLOAD_DIRS) -> int:
    """Deletes the oldest upload directories beyond ``keep``; returns how many were removed."""
    if not directory.is_dir():
        return 0
    dirs = sorted((p for p in directory.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime, reverse=True)
    removed = 0
    for old in dirs[keep:]:
        shutil.rmtree(old, ignore_errors=True)
        removed += 1
    return removed


def touch(path: Path) -> None:
    """Marks an upload directory as recently used."""
    now = time.time()
    try:
        os.utime(path, (now, now))
    except OSError:
        pass
