"""Build the embedding bank of a saved model over a manifest (see :mod:`mmv.bank` and ``docs/formats.md``).

Usage::

    python -m training.build_bank --checkpoint data_samples/demo_model --manifest models/toyworld/manifest.parquet \\
        --out models/demo/bank
    python -m training.build_bank --checkpoint C --manifest M --out DIR --splits val test --num-windows 4
    python -m training.build_bank --checkpoint C --manifest M --out DIR --no-previews --no-thumbnails --quiet
    mmv-build-bank --checkpoint C --manifest M --out DIR          # the same, as a console script

Embeds every clip in every space and modality of the model (tqdm bars), builds the faiss indexes and the UMAP
maps, writes thumbnails, previews, metadata and provenance into ``--out`` (replaced atomically), then prints a
summary: clips, vectors per (space, modality), how each is searched, skipped clips and the time taken. The exit
status is 0 on success, 2 for bad arguments or inputs (a clear message, no traceback).

**Descriptions.** :mod:`mmv.bank` knows no dataset; what a clip's clean description is comes from the caller.
This command always passes :func:`describe_toyworld_clip`, which describes exactly the clips that are toy-world
clips by their labels: their ``label_shape``, ``label_colour`` and ``label_motion`` are all toy-world names. The
decision is per clip rather than per manifest (e.g. ``dataset == "toyworld"``), because a manifest may mix toy
clips with others (folders, AudioSet-style rows), and because the labels, not the dataset's name, are what a
description is made of. A manifest without these columns therefore gets no descriptions, as before.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from mmv.bank import Bank, BankOptions, build_bank
from mmv.bank.index import DEFAULT_EXACT_MAX

#: The manifest columns whose values make a toy-world clip's clean description.
TOYWORLD_LABELS = ("label_shape", "label_colour", "label_motion")


def describe_toyworld_clip(row: Mapping[str, Any]) -> str | None:
    """A toy-world clip's clean description (:func:`mmv.toyworld.tasks.clean_description` of its shape, colour and
    motion labels, e.g. ``"a red circle moves to the right"``), or ``None`` for a clip whose three labels are not
    all toy-world names (a :data:`mmv.bank.build.Describe` hook; module docstring: why per clip)."""
    from mmv.toyworld.tasks import clean_description

    shape, colour, motion = (row.get(c) for c in TOYWORLD_LABELS)
    if not (isinstance(shape, str) and isinstance(colour, str) and isinstance(motion, str)):
        return None
    try:
        return clean_description(shape=shape, colour=colour, motion=motion)
    except ValueError:
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.build_bank",
        description="Build the embedding bank (vectors, faiss indexes, UMAP maps, thumbnails) of a saved model.",
        allow_abbrev=False,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (config.json + model.safetensors)")
    parser.add_argument("--manifest", required=True, help="clip manifest (.parquet or .csv)")
    parser.add_argument("--out", required=True, help="bank directory to write (replaced when it exists)")
    parser.add_argument("--splits", nargs="+", default=None, help="only these splits (default: every clip)")
    parser.add_argument("--num-windows", type=int, default=1, help="windows averaged per clip (default 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="windows per forward pass (default 32)")
    parser.add_argument("--seed", type=int, default=0, help="UMAP random state and IVF sampling seed (default 0)")
    parser.add_argument("--umap-neighbors", type=int, default=None, help="UMAP n_neighbors (default 15)")
    parser.add_argument("--umap-min-dist", type=float, default=None, help="UMAP min_dist (default 0.1)")
    parser.add_argument(
        "--exact-max", type=int, default=DEFAULT_EXACT_MAX, help="exact search up to this many vectors, IVF above"
    )
    parser.add_argument("--no-thumbnails", action="store_true", help="write no thumbnails")
    parser.add_argument("--no-previews", action="store_true", help="write no previews")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=2,
        help="DataLoader processes decoding clips while the model runs (default 2: decoding, not the one-thread "
        "model, is the slower half; docs/benchmarks.md)",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch intra-op threads (default 1: on a small shared CPU, spinning OpenMP threads slow a tiny "
        "model down many times; 0 keeps torch's default)",
    )
    parser.add_argument("--device", default="cpu", help="where the model runs (default cpu)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("--json", action="store_true", help="print the provenance JSON instead of the summary")
    return parser


def summarize(bank: Bank) -> str:
    """A plain-text summary of a built bank."""
    p = bank.provenance
    lines = [f"bank: {bank.dir}  ({p['counts']['clips']} clips, built in {p['build_seconds']:.1f} s)"]
    timings = ", ".join(f"{k} {v:.1f} s" for k, v in p["timings"].items() if k != "total")
    lines.append(f"time: {timings}")
    for key, info in p["indexes"].items():
        how = "exact" if info["exact"] else f"IVF nlist {info['nlist']} nprobe {info['nprobe']}"
        recall = "" if info["exact"] else f", recall@10 {info['recall_at_10']:.3f}"
        lines.append(f"  {key:<12} {info['count']:>9} x {info['dim']:<4} {how}{recall}")
    for space, m in p["maps"].items():
        lines.append(
            f"map {space}: {m['method']} on {m['fit_points']} points (+{m['placed_points']} placed), seed {m['seed']}"
        )
    media = p["media"]
    made = ", ".join(f"{k} {v}" for k, v in media.get("previews", {}).items()) or "none"
    lines.append(f"thumbnails: {media.get('thumbnails', 0)}; previews: {made}; media skipped: {len(media['skipped'])}")
    skipped = p["skipped"]
    lines.append(
        f"skipped clips (unreadable): {skipped['count']}; clips with some windows unread: {skipped['partial']}"
    )
    for s in skipped["clips"][:10]:
        lines.append(f"  {s['clip_id']}: {s['path']}: {s['reason']}")
    lines += [f"note: {n}" for n in p.get("notes", [])]
    return "\n".join(lines)


def options_from_args(args: argparse.Namespace) -> BankOptions:
    """The :class:`BankOptions` the parsed command line asks for.

    Raises:
        ValueError: a bad value (:class:`BankOptions` checks them).
    """
    umap = {}
    if args.umap_neighbors is not None:
        umap["n_neighbors"] = args.umap_neighbors
    if args.umap_min_dist is not None:
        umap["min_dist"] = args.umap_min_dist
    return BankOptions(
        splits=args.splits,
        num_windows=args.num_windows,
        batch_size=args.batch_size,
        device=args.device,
        seed=args.seed,
        umap_params=umap or None,
        exact_max=args.exact_max,
        thumbnails=not args.no_thumbnails,
        previews=not args.no_previews,
        progress=not args.quiet,
        num_workers=args.num_workers,
        checkpoint_path=Path(args.checkpoint),
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("num_windows", "batch_size", "exact_max"):
        if getattr(args, name) < 1:
            print(f"error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    import torch

    from mmv.checkpoint import CheckpointError, load_checkpoint

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    try:
        options = options_from_args(args)
        model = load_checkpoint(args.checkpoint, map_location=args.device)
        bank = build_bank(model, args.manifest, args.out, options, describe=describe_toyworld_clip)
    except (CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(bank.provenance, indent=2))
    else:
        print(summarize(bank))
        print(f"total (with model loading): {time.perf_counter() - t0:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
