"""List the model presets with their towers, inputs and parameter counts.

Usage::

    python -m training.models                  # every preset
    python -m training.models tiny_fac s3d_fac # some
    python -m training.models --json           # machine-readable
"""

from __future__ import annotations

import argparse
import json
import sys

from mmv.factory import create_model, list_models


def count_parameters(module) -> int:
    return sum(p.numel() for p in module.parameters())


def describe(name: str) -> dict:
    """Towers, input shapes and parameter counts of one preset (built on the meta device: no memory, no time)."""
    import torch

    with torch.device("meta"):
        model = create_model(name)
    cfg = model.config
    row = {"name": name, "graph": cfg.graph, "modalities": cfg.modalities}
    if "video" in cfg.modalities:
        v = cfg.video
        row["video"] = {
            "backbone": v.backbone if v.backbone == "s3d" else f"tsm_resnet{v.depth}",
            "width_mult": v.width_mult,
            "input": [v.num_frames, v.frame_size, v.frame_size, 3],
            "output_dim": model.video.output_dim,
            "params": count_parameters(model.video),
        }
    if "audio" in cfg.modalities:
        a = cfg.audio
        row["audio"] = {
            "backbone": f"resnet{a.depth}",
            "width_mult": a.width_mult,
            "input_samples": a.num_samples,
            "sample_rate": a.sample_rate,
            "output_dim": model.audio.output_dim,
            "params": count_parameters(model.audio),
        }
    if "text" in cfg.modalities:
        t = cfg.text
        row["text"] = {
            "vocab": t.vocab_size,
            "word_dim": t.word_dim,
            "output_dim": model.text.output_dim,
            "frozen_word_vectors": t.freeze_word_vectors,
            "params": count_parameters(model.text),
        }
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help=f"presets (default: all of {list_models()})")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    names = args.names or list_models()
    unknown = [n for n in names if n not in list_models()]
    if unknown:
        parser.error(f"unknown preset(s) {unknown}; choose from {list_models()}")
    rows = [describe(n) for n in names]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"{'preset':<15} {'tower':<6} {'backbone':<20} {'input':<22} {'d':>5} {'params':>13}")
    for row in rows:
        for tower in ("video", "audio", "text"):
            if tower not in row:
                continue
            t = row[tower]
            if tower == "video":
                backbone, shape = t["backbone"] + (f" x{t['width_mult']:g}" if t["width_mult"] != 1 else ""), t["input"]
                inp = "x".join(map(str, shape))
            elif tower == "audio":
                backbone = t["backbone"] + (f" x{t['width_mult']:g}" if t["width_mult"] != 1 else "")
                inp = f"{t['input_samples']} @ {t['sample_rate']} Hz"
            else:
                backbone = f"words {t['vocab']}x{t['word_dim']}"
                inp = "ids [B, K, L]"
            print(f"{row['name']:<15} {tower:<6} {backbone:<20} {inp:<22} {t['output_dim']:>5} {t['params']:>13,}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
