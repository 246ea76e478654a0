"""Build a clip manifest (``docs/formats.md``) from a dataset on disk.

Usage::

    python -m training.prepare toyworld data/toyworld --out data/toyworld.parquet
    python -m training.prepare howto100m videos/ caption.json --out howto.parquet [--clip-seconds 3.2 | --per-video]
    python -m training.prepare audioset eval_segments.csv clips/ --labels class_labels_indices.csv --out as.parquet
    python -m training.prepare folder my_videos/ --out mine.parquet
    python -m training.prepare classes images/ --modality image --out images.csv
    python -m training.prepare esc50 ESC-50-master/ --test-fold 5 --out esc50.parquet
    python -m training.prepare ucf101 UCF-101/ ucfTrainTestlist/ --split-index 1 --out ucf101.parquet
    python -m training.prepare hmdb51 hmdb51/ testTrainMulti_7030_splits/ --out hmdb51.parquet
    python -m training.prepare msrvtt MSRVTT/videos/all MSRVTT_JSFUSION_test.csv --out msrvtt.parquet
    python -m training.prepare youcook2 YouCook2/videos validation_youcook.csv --out youcook2.parquet

SOURCE is any layout of the registry (:mod:`mmv.data.readers.registry`), whose paths and options are the
subcommand's (``python -m training.prepare SOURCE --help``). The layout's reader lists the clips; then every
referenced file is checked to exist and, with ``--probe``, opened (``mmv.data.media.video_info`` /
``audio_info``; images: OpenCV's header check) so unreadable files are dropped before training finds them.
Prints the clips per split and what was skipped, and writes the manifest (``.parquet`` or ``.csv``, paths
relative to its directory when inside it).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

import pandas as pd
from tqdm import tqdm

from mmv.data import media
from mmv.data.manifest import PATH_COLUMNS, SPLITS, save_manifest
from mmv.data.readers.registry import LAYOUTS, Layout


def _add_layout(sub: argparse._SubParsersAction, layout: Layout, common: argparse.ArgumentParser) -> None:
    """The subcommand of one layout: its paths as positionals, its options as ``--flags`` (the registry's spec)."""
    p = sub.add_parser(layout.name, parents=[common], help=layout.summary)
    for arg in layout.paths:
        p.add_argument(arg.name, help=arg.help)
    groups: dict[str, argparse._MutuallyExclusiveGroup] = {}
    for arg in layout.options:
        if arg.group is not None and arg.group not in groups:
            groups[arg.group] = p.add_mutually_exclusive_group()
        target = p if arg.group is None else groups[arg.group]
        flag = "--" + arg.name.replace("_", "-")
        if arg.switch:
            target.add_argument(flag, action="store_true", help=arg.help)
        else:
            target.add_argument(flag, type=arg.type, default=arg.default, choices=arg.choices, help=arg.help)


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.prepare", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", required=True, help="the manifest to write (.parquet or .csv)")
    common.add_argument("--probe", action="store_true", help="open every media file and drop unreadable ones")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="source", required=True, metavar="SOURCE")
    for layout in LAYOUTS.values():
        _add_layout(sub, layout, common)
    return parser


def read_source(args: argparse.Namespace) -> pd.DataFrame:
    """Runs the reader of the layout ``args.source`` names, on its paths and options from ``args``."""
    layout = LAYOUTS[args.source]
    return layout.read(*(getattr(args, arg.name) for arg in layout.paths), **layout.pick(vars(args)))


def _probers() -> dict[str, Callable[[str], object]]:
    """``column -> function raising MediaError on an unreadable file``."""

    def image_info(path: str) -> object:
        import cv2

        if not cv2.haveImageReader(path):
            raise media.MediaError(path, "not a readable image")
        return None

    return {"video_path": media.video_info, "audio_path": media.audio_info, "image_path": image_info}


def check_files(df: pd.DataFrame, probe: bool = False, progress: bool = True) -> tuple[pd.DataFrame, int, int]:
    """Drops rows with a missing file, and with ``probe`` a file that cannot be opened.

    Each distinct file is checked once (HowTo100M clips of one video share it), under a progress bar.

    Returns:
        ``(kept rows, rows dropped for a missing file, rows dropped for an unreadable one)``; ``attrs`` are kept.
    """
    probers = _probers() if probe else {}
    errors: tuple[type[BaseException], ...] = (OSError, ValueError)
    if probe:
        errors = (media.MediaError, *errors)
    files = list(dict.fromkeys((col, p) for col in PATH_COLUMNS for p in df[col] if p is not None))
    status: dict[tuple[str, str], str] = {}  # "ok", "missing" or "unreadable"
    for col, path in tqdm(files, desc="checking files", unit="file", disable=not progress):
        if not os.path.isfile(path):
            status[col, path] = "missing"
            continue
        status[col, path] = "ok"
        if probe:
            try:
                probers[col](path)
            except errors as err:
                logging.getLogger(__name__).info("unreadable %s: %s", path, err)
                status[col, path] = "unreadable"

    keep, missing, unreadable = [], 0, 0
    for paths in zip(*(df[c] for c in PATH_COLUMNS)):
        states = {status[col, p] for col, p in zip(PATH_COLUMNS, paths) if p is not None}
        missing += "missing" in states
        unreadable += "unreadable" in states and "missing" not in states
        keep.append(states <= {"ok"})
    kept = df[pd.Series(keep, index=df.index, dtype=bool)].reset_index(drop=True)
    kept.attrs = dict(df.attrs)
    return kept, missing, unreadable


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m training.prepare``; returns the exit status."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    args = _build_parser().parse_args(argv)
    try:
        df = read_source(args)
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    not_found = int(df.attrs.get("skipped", 0))
    df, missing, unreadable = check_files(df, probe=args.probe, progress=not args.no_progress)
    if df.empty:
        print("error: no clips left to write", file=sys.stderr)
        return 1
    save_manifest(df, args.out)

    counts = df["split"].value_counts()
    print(f"wrote {len(df)} clips ({args.source}) to {args.out}")
    for split in SPLITS:
        print(f"  {split}: {int(counts.get(split, 0))}")
    detail = f"listed but not found: {not_found}, missing on check: {missing}"
    if args.probe:
        detail += f", unreadable: {unreadable}"
    print(f"skipped: {not_found + missing + unreadable} ({detail})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
