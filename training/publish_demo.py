"""Publishes a finished demo run as the model the repository ships: weights, test metrics and the command.

Usage::

    python -m training.publish_demo --run models/demo --manifest models/toyworld/manifest.parquet \\
        --out data_samples/demo_model

``make demo-model`` ends with this step. The folder it writes is what ``make demo`` loads, so a fresh clone
opens the app without training (``data_samples/demo_model``, committed, about 2.5 MB)::

    config.json, model.safetensors, vocab.txt   the run's exported checkpoint (mmv.checkpoint), copied as is
    metrics.csv, config.yaml                    the run's log, every 10th step (the app's Model page draws its
                                                curves from it), and its resolved recipe
    metrics.json                                the test-split retrieval metrics (training.evaluate), the
                                                weights digest, the torch threads and seconds of the run, and
                                                the commands that rebuild and score it
    README.md                                   the same for people: what the model is, its numbers, how to
                                                rebuild it and how close a rebuild comes

The metrics are computed here with :func:`training.evaluate.flat_retrieval` on ``--split`` (test), one window
per clip, exactly as ``metrics.json``'s ``evaluate_command`` (``python -m training.evaluate retrieval
--attributes --flat ...``) prints them, so anyone can re-score the shipped weights and compare.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import torch

from mmv.fileio import atomic_dir

CHECKPOINT_FILES = ("config.json", "model.safetensors", "vocab.txt")
#: The directions whose numbers the shipped card shows (attribute level, with the per-attribute top-1 columns).
CARD_DIRECTIONS = ("t2v_attr", "v2t_attr", "a2t_attr", "v2a_attr", "a2v_attr")
TOYWORLD_COMMAND = "python -m training.make_toyworld --out models/toyworld --clips 2000 --seed 0"


def run_facts(run: Path) -> dict[str, Any]:
    """What the run's ``summary.json`` and ``metrics.csv`` say about how it was made."""
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    if not summary.get("completed") or not summary.get("model_dir"):
        raise SystemExit(f"{run}: the run has not finished (summary.json says completed={summary.get('completed')})")
    facts: dict[str, Any] = {
        "steps": summary["step"],
        "weights_digest": summary["weights_digest"],
        "audio_warmup": summary.get("audio_warmup") or {},
        "val_metrics": summary.get("metrics") or {},
    }
    csv = run / "metrics.csv"
    if csv.is_file():
        import pandas as pd

        log = pd.read_csv(csv)
        facts["train_seconds"] = float(log["time"].iloc[-1])
        if "cpu_threads" in log:
            facts["cpu_threads"] = sorted({int(x) for x in log["cpu_threads"].dropna()})
    return facts


def thin_log(src: Path, dst: Path, every: int = 10) -> None:
    """Copies a run's ``metrics.csv`` keeping every ``every``-th step, the first and last, and every row with an
    evaluation (a few hundred rows instead of thousands; the curves look the same)."""
    if not src.is_file():
        return
    import pandas as pd

    log = pd.read_csv(src)
    evals = [c for c in log.columns if c.startswith("eval/")]
    keep = (log["step"] % every == 0) | (log.index == 0) | (log.index == len(log) - 1)
    if evals:
        keep |= log[evals].notna().any(axis=1)
    log[keep].to_csv(dst, index=False)


def metrics_table(m: dict[str, float]) -> list[str]:
    """The card's Markdown table of the attribute-level test metrics (:data:`CARD_DIRECTIONS`)."""
    rows = ["| direction | R@1 | R@10 | MedR | top-1 shares shape | colour | motion |", "|---|---|---|---|---|---|---|"]
    for key in CARD_DIRECTIONS:
        if f"{key}_r1" not in m:
            continue
        tops = [m.get(f"{key}_top1_{a}") for a in ("shape", "colour", "motion")]
        tops_text = " | ".join("" if t is None else f"{t:.3f}" for t in tops)
        rows.append(f"| {key} | {m[f'{key}_r1']:.3f} | {m[f'{key}_r10']:.3f} | {m[f'{key}_medr']:g} | {tops_text} |")
    return rows


def card(meta: dict[str, Any]) -> str:
    """The folder's README.md."""
    m = meta["test_metrics"]
    threads = ", ".join(str(t) for t in meta["run"].get("cpu_threads") or []) or "unknown"
    return "\n".join(
        [
            "# The demo model",
            "",
            "The model `make demo` opens: `tiny_fac` (S3D-G cut after Mixed_3c at 1/4 width, audio ResNet-18 at 1/4",
            "width, frozen narration word vectors) trained self-supervised, without labels, on the toy world of",
            f"`{TOYWORLD_COMMAND}` by `{meta['train_command']}`",
            f"({meta['run']['steps']} steps). Trained by this project; Apache-2.0 like the code. docs/results.md",
            '("Demo model") has the recipe, what each choice bought and the spread over three seeds.',
            "",
            f"Weights digest `{meta['run']['weights_digest']}` (training.main.weights_digest), torch"
            f" {meta['torch_version']}, torch CPU threads during training: {threads}.",
            "",
            f"## Test split ({meta['split']}, {int(m.get('num_clips', 0))} clips; `{meta['evaluate_command']}`)",
            "",
            *metrics_table(m),
            "",
            "## Rebuilding it",
            "",
            "`make demo-model` trains it again (about 25 minutes on the project's 2-core CPU) and publishes it here.",
            "Training is deterministic for a given torch version and thread schedule (the same seeds, batches and",
            "sums), so a rebuild on an idle 2-core machine, which trains at 2 threads throughout, is expected to",
            "give the same digest. Under load the trainer drops to fewer threads (`train.cpu_threads: auto`), the",
            "sums run in another order and the digest differs; the metrics then stay within the spread over",
            "seeds that docs/results.md reports (the tolerance to hold a rebuild to).",
            "",
        ]
    )


def publish(run: Path, manifest: Path, out: Path, split: str = "test", recipe: str | None = None) -> dict[str, Any]:
    """Copies ``run/model`` into ``out`` with ``metrics.json`` and ``README.md`` (module docstring)."""
    from mmv.checkpoint import load_checkpoint
    from training.evaluate import flat_retrieval

    facts = run_facts(run)
    model_dir = run / "model"
    model = load_checkpoint(model_dir)
    metrics = flat_retrieval(model, manifest, split=split, num_windows=1)
    recipe = recipe or "training/configs/demo_cpu.yaml"
    meta = {
        "split": split,
        "test_metrics": metrics,
        "run": facts,
        "torch_version": torch.__version__,
        "toyworld_command": TOYWORLD_COMMAND,
        "train_command": f"python -m training.main --config {recipe}",
        "evaluate_command": f"python -m training.evaluate retrieval --attributes --flat --checkpoint {out} "
        f"--manifest {manifest} --split {split} --num-windows 1 --images none --batch-size 32",
        "rebuild_command": "make demo-model",
    }
    with atomic_dir(out) as tmp:
        for name in CHECKPOINT_FILES:
            if (model_dir / name).is_file():
                shutil.copy2(model_dir / name, tmp / name)
        thin_log(run / "metrics.csv", tmp / "metrics.csv")
        if (run / "config.yaml").is_file():
            shutil.copy2(run / "config.yaml", tmp / "config.yaml")
        (tmp / "metrics.json").write_text(json.dumps(meta, indent=2, default=float) + "\n", encoding="utf-8")
        (tmp / "README.md").write_text(card(meta), encoding="utf-8")
    return meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m training.publish_demo",
        description="Copy a finished demo run's model into the shipped folder with its test metrics.",
        allow_abbrev=False,
    )
    parser.add_argument("--run", default="models/demo", help="the run directory (default models/demo)")
    parser.add_argument("--manifest", default="models/toyworld/manifest.parquet", help="the toy world's manifest")
    parser.add_argument("--out", default="data_samples/demo_model", help="the shipped folder")
    parser.add_argument("--split", default="test")
    parser.add_argument("--recipe", default="training/configs/demo_cpu.yaml", help="named in the card")
    args = parser.parse_args(argv)
    meta = publish(Path(args.run), Path(args.manifest), Path(args.out), args.split, args.recipe)
    print("\n".join(metrics_table(meta["test_metrics"])))
    print(f"published {args.run}/model to {args.out} (weights {meta['run']['weights_digest']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
