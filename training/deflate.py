"""Recalibrate a checkpoint's deflated (image) video tower and store it with the checkpoint (spec section 6).

Usage::

    # frames of a manifest's training clips; held-out frames from its val split
    python -m training.deflate --checkpoint data_samples/demo_model --manifest models/toyworld/manifest.parquet \\
        --steps 2000
    # any folder of jpg/png images (10 % held out for the cosine report)
    python -m training.deflate --checkpoint runs/s3d/model --images /data/images --steps 2000 --device cuda
    # the report of docs/deflation.md (cosines, image->text / image->video retrieval, zero-shot
    # classification of toy-world test frames, time per image), after recalibrating:
    python -m training.deflate --checkpoint data_samples/demo_model --manifest models/toyworld/manifest.parquet \\
        --steps 2000 --report
    # the same report for the calibration already stored, without training:
    python -m training.deflate --checkpoint data_samples/demo_model --manifest models/toyworld/manifest.parquet \\
        --report-only

Only the deflated network's BatchNorm gamma/beta are learnt (Adam, L1 between the deflated output on an image
and the video network's output on that image repeated ``--num-frames`` times; :mod:`mmv.deflation.calibrate`).
The result is written atomically to ``CHECKPOINT/deflation.safetensors``; ``load_checkpoint`` attaches it and
``MMV.encode_image`` uses it. The mean cosine to the inflated representation on held-out images is printed for
naive deflation and after recalibration. Unreadable images or clips are skipped and counted.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import TYPE_CHECKING, Any

import torch

from mmv.deflation.calibrate import TARGETS, CalibrationOptions, recalibrate
from mmv.deflation.images import ImageSet, frames_from_manifest, load_image_folder

if TYPE_CHECKING:
    from mmv.models.mmv import MMV


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.deflate",
        description="Recalibrate the BatchNorm gamma/beta of a checkpoint's deflated video tower for still images.",
        allow_abbrev=False,
    )
    parser.add_argument("--checkpoint", required=True, help="checkpoint directory (config.json + model.safetensors)")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", help="a folder of .jpg/.jpeg/.png/.bmp/.webp images (searched recursively)")
    source.add_argument("--manifest", help="a clip manifest: frames are sampled from its videos")
    parser.add_argument("--steps", type=int, default=2000, help="Adam steps (default 2000)")
    parser.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate, cosine-decayed (default 1e-2)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default 32)")
    parser.add_argument("--num-frames", type=int, default=None, help="T of the inflated clip (default: the config's)")
    parser.add_argument("--target", choices=TARGETS, default="repr", help="output in the L1 (default repr)")
    parser.add_argument("--max-images", type=int, default=2000, help="training images at most (default 2000)")
    parser.add_argument("--split", default="train", help="manifest split of the training frames (default train)")
    parser.add_argument("--held-out-split", default="val", help="manifest split of the held-out frames (default val)")
    parser.add_argument("--held-out", type=float, default=0.1, help="--images: share held out (default 0.1)")
    parser.add_argument("--max-held-out", type=int, default=500, help="held-out images at most (default 500)")
    parser.add_argument("--frames-per-clip", type=int, default=1, help="--manifest: frames per clip (default 1)")
    parser.add_argument("--size", type=int, default=None, help="image side (default: the config's frame_size)")
    parser.add_argument("--seed", type=int, default=0, help="seeds the image subset, the frames and the batches")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--no-save", action="store_true", help="do not write deflation.safetensors")
    parser.add_argument("--report", action="store_true", help="then print the toy-world report (--manifest)")
    parser.add_argument("--report-only", action="store_true", help="no training: the report of the stored calibration")
    parser.add_argument("--report-split", default="test", help="manifest split of the report (default test)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _load_images(args: argparse.Namespace, size: int) -> tuple[ImageSet, ImageSet]:
    """The training and held-out images of the chosen source."""
    if args.images:
        images = load_image_folder(args.images, size, max_images=None, seed=args.seed)
        train, held = images.split(args.held_out, seed=args.seed)
        if len(train) > args.max_images:
            pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(args.seed))[: args.max_images]
            train = train.subset(pick.sort().values)
        if len(held) > args.max_held_out:
            held = held.subset(range(args.max_held_out))
        return train, held
    per_clip = max(1, args.frames_per_clip)
    train = frames_from_manifest(
        args.manifest, size, split=args.split, frames_per_clip=per_clip,
        max_clips=max(1, args.max_images // per_clip), seed=args.seed,
    )  # fmt: skip
    try:
        held = frames_from_manifest(
            args.manifest, size, split=args.held_out_split, max_clips=args.max_held_out, seed=args.seed + 1
        )
    except ValueError as e:  # no such split (or nothing readable in it): hold out some training frames instead
        print(f"held-out split {args.held_out_split!r}: {e}; holding out {args.held_out:g} of the training frames")
        train, held = train.split(args.held_out, seed=args.seed)
    return train, held


def _print_cosines(cosine: dict[str, dict[str, float]]) -> None:
    spaces = list(next(iter(cosine.values())))
    print("mean cosine to the inflated output on held-out images:")
    print(f"  {'':<11}" + "".join(f"{s:>8}" for s in spaces))
    for name, row in cosine.items():
        print(f"  {name:<11}" + "".join(f"{row[s]:>8.4f}" for s in spaces))


def _calibrate(model: MMV, args: argparse.Namespace) -> dict[str, Any]:
    """Recalibrates ``model``'s deflated tower on the chosen images and stores it next to the checkpoint.

    Prints the image counts and (without ``--json``) the held-out cosines; raises ``ValueError`` when no image can
    be read or the model cannot take their size (``main`` prints it). Returns the JSON fields ``cosine``,
    ``final_loss``, ``seconds`` and, unless ``--no-save``, ``saved`` (the path of ``deflation.safetensors``).
    """
    from mmv.checkpoint import save_deflation

    size = args.size or model.config.video.frame_size
    train, held = _load_images(args, size)
    skipped = {**train.skipped, **held.skipped}
    print(
        f"{len(train)} training and {len(held)} held-out images at {size}x{size} "
        f"({len(skipped)} unreadable files skipped)"
    )
    source = {"images": args.images} if args.images else {"manifest": args.manifest, "split": args.split}
    options = CalibrationOptions(
        steps=args.steps, lr=args.lr, batch_size=args.batch_size, num_frames=args.num_frames, target=args.target,
        seed=args.seed, progress=not args.quiet,
    )  # fmt: skip
    info = {**source, "skipped": len(skipped), "size": size}
    _, report = recalibrate(model, train.images, options, held_out=held.images, info=info)
    if not args.json:
        _print_cosines(report.cosine)
    out = {"cosine": report.cosine, "final_loss": report.info["final_loss"], "seconds": report.info["seconds"]}
    if not args.no_save:
        path = save_deflation(model, args.checkpoint)
        out["saved"] = str(path)
        if not args.json:
            print(f"wrote {path}")
    return out


def _report(model: MMV, args: argparse.Namespace) -> dict[str, Any]:
    """The toy-world report of ``--report-split`` (:func:`mmv.toyworld.deflation_report.toyworld_report`).

    Prints its Markdown table and the zero-shot chance levels (without ``--json``); returns the JSON fields
    ``split``, ``num_images``, ``summary`` (``{mode: {column: value}}``) and ``chance``.
    """
    from mmv.deflation.report import format_markdown
    from mmv.toyworld.deflation_report import toyworld_report

    started = time.perf_counter()
    rep = toyworld_report(
        model, args.manifest, split=args.report_split, num_frames=args.num_frames, device=args.device,
        batch_size=args.batch_size,
    )  # fmt: skip
    if not args.json:
        print(
            f"\nreport: {rep['num_images']} {args.report_split} frames (middle of each clip), "
            f"{rep['num_texts']} descriptions, {len(rep['skipped'])} clips skipped, "
            f"{time.perf_counter() - started:.0f} s"
        )
        print(format_markdown(rep["summary"]))
        chance = {task: round(zs["chance"], 3) for task, zs in rep["zero_shot"].items()}
        print(f"zero-shot chance: {chance}")
    return {
        "split": args.report_split,
        "num_images": rep["num_images"],
        "summary": json.loads(rep["summary"].to_json(orient="index")),
        "chance": {task: zs["chance"] for task, zs in rep["zero_shot"].items()},
    }


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if (args.report or args.report_only) and not args.manifest:
        print("error: --report needs --manifest (a toy-world manifest with labels)", file=sys.stderr)
        return 2
    if args.steps < 0 or args.batch_size < 1 or args.max_images < 1:
        print("error: --steps must be >= 0, --batch-size and --max-images >= 1", file=sys.stderr)
        return 2

    from mmv.checkpoint import CheckpointError, load_checkpoint

    try:
        model = load_checkpoint(args.checkpoint, map_location=args.device)
    except CheckpointError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if "video" not in model.config.modalities:
        print(f"error: {args.checkpoint} has no video tower to deflate", file=sys.stderr)
        return 2
    out: dict[str, Any] = {"checkpoint": args.checkpoint}
    try:
        if not args.report_only:
            out |= _calibrate(model, args)
        elif model.calibrated_deflation is None and not args.json:
            print(f"{args.checkpoint} has no stored calibration: the report shows inflated and naive only")
        if args.report or args.report_only:
            out["report"] = _report(model, args)
    except ValueError as e:  # no readable image, an image size the model cannot take, a split without labels
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(out, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
