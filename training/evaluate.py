"""Evaluate a saved model: linear probes on frozen features, and zero-shot retrieval (``docs/evaluation.md``).

Usage::

    # Linear probe of a manifest label on the video representation (features cached for the next probe)
    python -m training.evaluate probe --checkpoint data_samples/demo_model \\
        --manifest models/toyworld/manifest.parquet --label label_shape --num-windows 4 --cache-dir runs/features

    # ESC-50 (5-fold cross-validation on the audio representation), UCF101 split 1, a class-per-folder set
    python -m training.evaluate probe --checkpoint CKPT --dataset esc50 --root ESC-50-master
    python -m training.evaluate probe --checkpoint CKPT --dataset ucf101 --root UCF-101 \\
        --annotations ucfTrainTestlist --split-index 1 --C 0.001 --aggregate scores
    python -m training.evaluate probe --checkpoint CKPT --dataset classes --root pets/ --class-modality image

    # Zero-shot retrieval in every direction the model supports, per-query ranks to a CSV
    python -m training.evaluate retrieval --checkpoint CKPT --manifest M --split test --num-windows 4 \\
        --ranks-out ranks.csv
    python -m training.evaluate retrieval --checkpoint CKPT --dataset msrvtt --root MSRVTT/videos \\
        --annotations MSRVTT_JSFUSION_test.csv

    # The toy world's attribute-level directions too, as the flat numbers the training log and the shipped
    # demo model's metrics.json hold (the training loop's evaluation: one window, no images)
    python -m training.evaluate retrieval --attributes --flat --checkpoint data_samples/demo_model \\
        --manifest models/toyworld/manifest.parquet --split test --num-windows 1 --images none

Each prints a table (``--json``: the JSON) and with ``--out FILE`` writes the JSON result. Bad input (a missing
file, an unknown label, a split without clips) ends with a one-line error and exit status 2.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from typing import TYPE_CHECKING, Any

import pandas as pd

from mmv.checkpoint import CheckpointError
from mmv.data.manifest import load_manifest
from mmv.data.readers.registry import EVALUATION_LAYOUTS, LAYOUTS
from mmv.eval.features import IMAGE_SOURCES, MODALITIES
from mmv.eval.linear_probe import AGGREGATES, CLASSIFIERS, PROTOCOLS
from mmv.eval.zero_shot import (
    IMAGE_OPTIONS,
    RetrievalTask,
    clip_retrieval,
    evaluate_zero_shot,
    flat_metrics,
    format_results,
    ranks_table,
)
from mmv.toyworld.tasks import AttributeRetrieval

if TYPE_CHECKING:
    from mmv.models.mmv import MMV
    from mmv.tokenizer import Vocabulary

IMAGE_MODES = ("auto", "calibrated", "naive", "inflated")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training.evaluate", description=__doc__.split("\n\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--checkpoint", required=True, help="model checkpoint directory (config.json + safetensors)")
    data = common.add_mutually_exclusive_group(required=True)
    data.add_argument("--manifest", help="a clip manifest (.parquet or .csv)")
    data.add_argument("--dataset", choices=EVALUATION_LAYOUTS, help="a dataset layout on disk")
    common.add_argument("--root", help="--dataset: the dataset (esc50, classes) or videos (others) folder")
    common.add_argument("--annotations", help="ucf101/hmdb51: split-files folder; msrvtt/youcook2: caption CSV")
    common.add_argument("--split-index", type=int, default=1, choices=(1, 2, 3), help="UCF101/HMDB51 split")
    common.add_argument(
        "--class-modality", default="video", choices=MODALITIES, help="--dataset classes: what the folders hold"
    )
    common.add_argument("--image-mode", default="auto", choices=IMAGE_MODES, help="how images are embedded")
    common.add_argument("--device", default="cpu")
    common.add_argument("--batch-size", type=int, default=16, help="windows per forward pass")
    common.add_argument("--num-workers", type=int, default=0, help="DataLoader workers")
    common.add_argument("--json", action="store_true", help="print the result as JSON")
    common.add_argument("--out", help="also write the JSON result to this file")
    common.add_argument("--no-progress", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("probe", parents=[common], help="linear probe of a label on frozen features")
    p.add_argument("--label", help="label column (label_shape or shape; default label_class for --dataset)")
    p.add_argument("--modality", default="auto", choices=("auto", *MODALITIES), help="whose representation")
    p.add_argument("--num-windows", type=int, default=10, help="linearly spaced windows per clip (default 10)")
    p.add_argument("--protocol", default="auto", choices=PROTOCOLS, help="split, folds (ESC-50) or auto")
    p.add_argument("--classifier", default="svm", choices=CLASSIFIERS, help="linear SVM (paper) or logreg")
    p.add_argument("--C", type=float, nargs="+", help="one C (no search) or a grid (default 1e-4..1)")
    p.add_argument("--aggregate", default="mean", choices=AGGREGATES, help="average window features or scores")
    p.add_argument("--cv-folds", type=int, default=3, help="C search folds when there is no val split")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cache-dir", help="feature cache directory (a second probe reads the features from it)")
    p.add_argument("--image-source", default="auto", choices=IMAGE_SOURCES, help="image files or video frames")

    r = sub.add_parser("retrieval", parents=[common], help="zero-shot retrieval in every direction")
    r.add_argument("--split", default="test", help="manifest split, or 'all' (default test)")
    r.add_argument("--num-windows", type=int, default=4, help="windows averaged per clip (default 4)")
    r.add_argument("--num-captions", type=int, default=8, help="captions per window in a clip's text bag")
    r.add_argument("--images", default="auto", choices=IMAGE_OPTIONS, help="images for image->text")
    r.add_argument("--max-clips", type=int, help="only the first clips of the split")
    r.add_argument("--ranks-out", help="write the rank of every query to this CSV")
    r.add_argument(
        "--attributes", action="store_true", help="also the toy world's attribute-level directions (<direction>_attr)"
    )
    r.add_argument(
        "--flat",
        action="store_true",
        help="the result as flat <direction>_<metric> floats (training log, metrics.json)",
    )
    return parser


def _manifest(args: argparse.Namespace) -> pd.DataFrame:
    if args.manifest is not None:
        return load_manifest(args.manifest)
    if args.root is None:
        raise ValueError(f"--dataset {args.dataset} needs --root")
    layout = LAYOUTS[args.dataset]
    options = layout.pick({"split_index": args.split_index, "modality": args.class_modality})
    return layout.read(args.root, args.annotations, **options)


def _modality(args: argparse.Namespace, df: pd.DataFrame) -> str:
    if args.modality != "auto":
        return args.modality
    if args.dataset == "esc50":
        return "audio"
    if args.dataset == "classes":
        return args.class_modality
    for column, modality in (("video_path", "video"), ("audio_path", "audio"), ("image_path", "image")):
        if column in df.columns and df[column].notna().any():
            return modality
    raise ValueError("the manifest has no media paths")


def _fmt(x: float) -> str:
    return "  n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:5.1f}"


def format_probe(result: dict[str, Any]) -> str:
    """A probe result as text: a header, one line per fold (cross-validation), the accuracies in percent."""
    cache = result["features_cache"]
    where = ("read from " if result["from_cache"] else "written to ") + cache if cache else "not cached"
    lines = [
        f"probe {result['label']} on the {result['modality']} representation ({result['feature_dim']}-d, "
        f"{result['num_windows']} windows), protocol {result['protocol']}, {result['num_clips']} clips"
        + (f" ({result['num_skipped']} without label or media left out)" if result["num_skipped"] else ""),
        f"features: {where} ({result['extract_s']:.1f} s), probe {result['probe_s']:.1f} s",
        f"{'':<8} {'top-1':>6} {'top-5':>6} {'C':>8} {'chosen by':>9} {'train':>6} {'val':>5} {'test':>5}",
    ]
    rows = [(f"fold {r['fold']}", r) for r in result["folds"]] if "folds" in result else [("result", result["result"])]
    for name, r in rows:
        lines.append(
            f"{name:<8} {_fmt(r['top1']):>6} {_fmt(r['top5']):>6} {r['C']:>8.0e} {r['selection']:>9} "
            f"{r['num_train']:>6} {r['num_val']:>5} {r['num_test']:>5}"
        )
    if "folds" in result:
        lines.append(f"{'mean':<8} {_fmt(result['top1']):>6} {_fmt(result['top5']):>6}")
    return "\n".join(lines)


def _probe(args: argparse.Namespace, model: MMV, df: pd.DataFrame) -> dict[str, Any]:
    from mmv.eval.features import FeatureOptions
    from mmv.eval.linear_probe import ProbeOptions, probe_manifest

    label = args.label or ("label_class" if args.dataset is not None else None)
    if label is None:
        labels = [c for c in df.columns if c.startswith("label_")]
        raise ValueError(f"--label is required with --manifest (label columns: {', '.join(labels) or 'none'})")
    if args.num_windows < 1:
        raise ValueError(f"--num-windows must be >= 1, got {args.num_windows}")
    C = None if args.C is None else (args.C[0] if len(args.C) == 1 else args.C)
    extraction = FeatureOptions(
        num_windows=args.num_windows,
        image_source=args.image_source,
        image_mode=args.image_mode,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        cache_dir=args.cache_dir,
        progress=not args.no_progress,
    )
    options = ProbeOptions(args.classifier, C, args.aggregate, args.cv_folds, args.seed)
    return probe_manifest(
        model, df, label, _modality(args, df), protocol=args.protocol, extraction=extraction, options=options
    )


def _tasks(attributes: bool) -> tuple[RetrievalTask, ...]:
    return (clip_retrieval, AttributeRetrieval()) if attributes else (clip_retrieval,)


def flat_retrieval(
    model: MMV,
    manifest: pd.DataFrame | str,
    *,
    vocab: Vocabulary | None = None,
    split: str | None = "test",
    num_windows: int = 1,
    batch_size: int = 32,
    max_clips: int | None = None,
    num_workers: int = 0,
    device: str = "cpu",
) -> dict[str, float]:
    """The toy-world evaluation as flat floats: clip- and attribute-level retrieval, no images.

    What the training loop logs every ``eval.every`` steps (``eval/<key>``), what ``metrics.json`` of the shipped
    demo model and ``paper.json`` hold: :func:`mmv.eval.zero_shot.flat_metrics` of
    :func:`~mmv.eval.zero_shot.evaluate_zero_shot` with :class:`~mmv.toyworld.tasks.AttributeRetrieval` (which
    reports nothing on a manifest without the toy world's labels). ``python -m training.evaluate retrieval
    --attributes --flat --num-windows 1 --images none`` prints the same numbers.
    """
    results, emb = evaluate_zero_shot(
        model,
        manifest,
        vocab=vocab,
        split=split,
        num_windows=num_windows,
        images="none",
        max_clips=max_clips,
        device=device,
        batch_size=batch_size,
        num_workers=num_workers,
        tasks=_tasks(attributes=True),
    )
    return flat_metrics(results, emb)


def _retrieval(args: argparse.Namespace, model: MMV, df: pd.DataFrame) -> tuple[dict[str, Any], str]:
    results, emb = evaluate_zero_shot(
        model,
        df,
        split=None if args.split == "all" else args.split,
        num_windows=args.num_windows,
        num_captions=args.num_captions,
        images=args.images,
        image_mode=args.image_mode,
        max_clips=args.max_clips,
        device=args.device,
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        progress=not args.no_progress,
        tasks=_tasks(args.attributes),
    )
    if not results:
        raise ValueError("no retrieval direction: the model and the data share no two modalities with an embedding")
    keys = ("space", "r1", "r5", "r10", "medr", "meanr", "num_queries", "num_candidates")
    summary = {
        name: {**{k: m[k] for k in keys}, **{k: v for k, v in m.items() if k.startswith("top1_")}}
        for name, m in results.items()
    }
    out = {"num_clips": len(emb["index"]), "num_windows": args.num_windows, **emb.get("counts", {})}
    out = flat_metrics(results, emb) if args.flat else {**out, "directions": summary}
    if args.ranks_out:
        ranks_table(results, emb["clip_id"]).to_csv(args.ranks_out, index=False)
        out["ranks_out"] = args.ranks_out
    return out, format_results(results) + f"\n{len(emb['index'])} clips, {args.num_windows} windows per clip"


def _json_ready(value: Any) -> Any:
    """NaN (e.g. top-5 with 5 classes or fewer) as ``null``, so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(v) for v in value]
    return value


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    from mmv.checkpoint import load_checkpoint

    try:
        df = _manifest(args)
        model = load_checkpoint(args.checkpoint, map_location=args.device)
        if args.command == "probe":
            result = _probe(args, model, df)
            text = format_probe(result)
        else:
            result, text = _retrieval(args, model, df)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    result = _json_ready(result)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            json.dump(result, f, indent=2, allow_nan=False)
    print(json.dumps(result, indent=2, allow_nan=False) if args.json else text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
