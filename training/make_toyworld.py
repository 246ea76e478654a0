"""Generate a toy-world dataset (mp4 clips + manifest) for the CPU demo; see :mod:`mmv.toyworld`.

Usage::

    python -m training.make_toyworld --out data/toyworld --clips 2000 --seed 0
    python -m training.make_toyworld --out data_samples/toyworld --clips 48 --seed 0 --workers 2
    python -m training.make_toyworld --out /tmp/tw --clips 200 --seed 1 --no-text-fraction 0.5

Writes ``OUT/clips/*.mp4``, ``OUT/manifest.parquet``, ``OUT/README.md`` and ``OUT/toyworld.json``, then prints
a summary: clips per split and per label, clips without narration, and the time taken.
"""

from __future__ import annotations

import argparse
import sys
import time

from mmv.toyworld import LABEL_COLUMNS, ToyWorldConfig, generate


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m training.make_toyworld",
        description="Generate a toy-world dataset (mp4 clips + manifest.parquet) for the CPU demo.",
        allow_abbrev=False,
    )
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument("--clips", type=int, required=True, help="number of clips")
    parser.add_argument("--seed", type=int, default=0, help="world seed (default 0)")
    parser.add_argument("--workers", type=int, default=None, help="processes (default: os.cpu_count())")
    parser.add_argument(
        "--no-text-fraction", type=float, default=None, help="share of clips without narration (default 0.2)"
    )
    parser.add_argument("--crf", type=int, default=None, help="H.264 constant rate factor (default 23)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def summarize(df, seconds: float) -> str:
    """A plain-text summary of a generated manifest: splits, labels, clips without text, timings."""
    n = len(df)
    lines = [f"{n} clips in {seconds:.1f} s ({1000 * seconds / n:.0f} ms per clip, wall)"]
    timings = df.attrs.get("timings")
    if timings:
        per_clip = ", ".join(f"{k} {1000 * timings[k]:.1f} ms" for k in ("render", "synth", "encode"))
        lines.append(f"per clip and process: {per_clip}")
    counts = df["split"].value_counts()
    lines.append("split: " + ", ".join(f"{s} {int(counts.get(s, 0))}" for s in ("train", "val", "test")))
    no_text = int(sum(len(c) == 0 for c in df["captions"]))
    n_captions = int(sum(len(c) for c in df["captions"]))
    lines.append(f"without narration: {no_text} ({100 * no_text / n:.0f} %); captions: {n_captions}")
    for col in LABEL_COLUMNS:
        if col == "label_pitch_hz":
            continue
        counts = df[col].value_counts().sort_index()
        lines.append(f"{col}: " + ", ".join(f"{k} {int(v)}" for k, v in counts.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.clips < 1:
        print("error: --clips must be >= 1", file=sys.stderr)
        return 2
    overrides = {}
    if args.no_text_fraction is not None:
        overrides["no_text_fraction"] = args.no_text_fraction
    if args.crf is not None:
        overrides["crf"] = args.crf
    try:
        cfg = ToyWorldConfig(**overrides)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    df = generate(args.out, args.clips, args.seed, cfg=cfg, workers=args.workers, progress=not args.quiet)
    print(f"wrote {args.out}/manifest.parquet")
    print(summarize(df, time.perf_counter() - start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
