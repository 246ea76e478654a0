"""``make paper``: the paper's claims, re-run at toy scale on a CPU, in one table (docs/results.md).

Usage::

    python -m training.paper                       # the default: 6 variants x 3 seeds, 500 steps each
    python -m training.paper --seeds 0 --steps 100 --no-write   # a quick look (numbers are noise)
    python -m training.paper --jobs 1 --threads 2  # one run at a time, two threads each

What runs (every variant is a recipe of ``training/configs/``, the demo model's recipe with one change):

==========  ==========================  ===============================================================
variant     recipe                      what differs
==========  ==========================  ===============================================================
fac         ablation_fac.yaml           the reference: FAC graph, V+A+T, MIL-NCE over K = 4 narrations
shared      ablation_shared.yaml        one space for the three modalities
disjoint    ablation_disjoint.yaml      separate S_va and S_vt, both from the video representation
va          ablation_va.yaml            video and audio only
vt          ablation_vt.yaml            video and text only
nce         ablation_nce_text.yaml      NCE for video-text: one narration per clip (K = 1)
==========  ==========================  ===============================================================

Each (variant, seed) is a *job*: a subprocess (``python -m training.paper job ...``) that trains the recipe
for ``--steps`` steps into ``OUT/<variant>-s<seed>`` (``training.main``; rerunning resumes or reuses a finished
run whose recipe is the same, and trains again one whose recipe has changed), then evaluates it and writes
``paper.json`` there: zero-shot retrieval on the toy world's test split
(:func:`training.evaluate.flat_retrieval`, attribute and clip level) and linear probes of the frozen video
representation for shape, colour and motion (:func:`mmv.eval.linear_probe.run_probe`: StandardScaler +
LinearSVC, C chosen on val, scored on test; features of ``--probe-train`` training clips, the val and the test
clips, 2 windows each). The ``fac`` job of the first seed also recalibrates its deflated image network
(``--deflate-steps`` Adam steps, :mod:`mmv.deflation.calibrate`) and reports inflated / naive / calibrated
image embeddings on the middle frame of every test clip (:func:`mmv.toyworld.deflation_report.toyworld_report`).

``--jobs`` jobs run at once, each with ``--threads`` torch threads (2 x 1 on two cores trains about 1.5 times
faster than 1 x 2: these small convolutions do not use two threads well). The parent gathers the
``paper.json`` files into the claims table (:mod:`training.paper_report`), prints it, and writes it with the
command, seeds and time into ``docs/results.md`` between ``<!-- paper:begin -->`` and ``<!-- paper:end -->``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mmv.models.mmv import MMV

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "training" / "configs"
VARIANTS: dict[str, str] = {
    "fac": "ablation_fac.yaml",
    "shared": "ablation_shared.yaml",
    "disjoint": "ablation_disjoint.yaml",
    "va": "ablation_va.yaml",
    "vt": "ablation_vt.yaml",
    "nce": "ablation_nce_text.yaml",
}
PROBE_LABELS = ("shape", "colour", "motion")
DEFAULT_SEEDS = (0, 1, 2)
RESULT_FILE = "paper.json"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m training.paper",
        description="Train the paper's ablations on the toy world and print the claims table (docs/results.md).",
        allow_abbrev=False,
    )
    p.add_argument("--toyworld", default="models/toyworld", help="toy world directory (generated when missing)")
    p.add_argument("--clips", type=int, default=2000, help="clips of a generated toy world (default 2000)")
    p.add_argument("--out", default="runs/paper", help="where the runs go (default runs/paper)")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--seeds", nargs="+", type=int, default=list(DEFAULT_SEEDS), help="default 0 1 2")
    p.add_argument("--steps", type=int, default=500, help="training steps per run (default 500)")
    p.add_argument("--probe-train", type=int, default=600, help="training clips of the linear probes (default 600)")
    p.add_argument("--deflate-steps", type=int, default=500, help="recalibration steps (default 500; 0: skip)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (default 2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads per run (default 1)")
    p.add_argument("--results", default="docs/results.md", help="the file the table is written into")
    p.add_argument("--no-write", action="store_true", help="print the table only")
    return p


# ---------------------------------------------------------------------------------------------------
# One job: train, then evaluate (runs in its own process)
# ---------------------------------------------------------------------------------------------------


def _train(variant: str, seed: int, steps: int, run_dir: Path, manifest: Path) -> dict[str, Any]:
    """Trains (or resumes, or reuses) one run; returns its ``summary.json``.

    A run is resumed or reused only when the recipe it wrote (``config.yaml``) equals the one asked for now, up
    to how it is carried out (:data:`training.config.RUN_KEYS`); after a recipe change its folder is cleared and
    it trains again, so the table never reports runs of an older recipe.
    """
    from training import main as train_main
    from training import recipe as recipe_lib

    argv = [
        "--config", str(CONFIGS / VARIANTS[variant]), "--run_dir", str(run_dir), "--seed", str(seed),
        "--train.steps", str(steps), "--train.checkpoint_every", str(max(steps // 2, 1)),
        "--data.train.0.manifest", str(manifest), "--data.val", str(manifest), "--data.num_workers", "1",
        "--eval.at_end", "false", "--log.progress", "false", "--log.tensorboard", "false", "--resume", "latest",
    ]  # fmt: skip
    stale = stale_run(run_dir, recipe_lib.parse_args(argv).to_dict())
    if stale:
        print(f"{run_dir}: its recipe differs from this one ({', '.join(stale[:6])}): training it again", flush=True)
        shutil.rmtree(run_dir)
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        done = json.loads(summary_path.read_text())
        if done.get("completed") and done.get("step") == steps and (run_dir / "model" / "config.json").is_file():
            return done
    train_main.main(argv)
    return json.loads(summary_path.read_text())


def stale_run(run_dir: Path, wanted: dict[str, Any]) -> list[str]:
    """The recipe keys in which the run in ``run_dir`` differs from ``wanted`` (``[]``: none, or no run there).
    A folder with checkpoints or a summary but no ``config.yaml`` is stale as a whole (``['config.yaml']``)."""
    from training import config as config_lib

    if not run_dir.is_dir():
        return []
    written = config_lib.load_run_config(run_dir)
    if written is None:
        leftovers = (run_dir / "summary.json").is_file() or any((run_dir / "checkpoints").glob("*.pt"))
        return ["config.yaml"] if leftovers else []
    return config_lib.recipe_differences(written, wanted)


def _probes(model: MMV, manifest: Path, probe_train: int, seed: int) -> dict[str, Any]:
    """Linear probes of the video representation for each attribute (train subset / val / test)."""
    import pandas as pd

    from mmv.data.manifest import load_manifest
    from mmv.eval.features import FeatureOptions, extract_features
    from mmv.eval.linear_probe import ProbeOptions, run_probe

    df = load_manifest(manifest)
    train = df[df["split"] == "train"].sample(n=min(probe_train, int((df["split"] == "train").sum())), random_state=0)
    df = pd.concat([train, df[df["split"].isin(["val", "test"])]]).reset_index(drop=True)
    started = time.perf_counter()
    features = extract_features(model, df, "video", FeatureOptions(num_windows=2, batch_size=32))
    out: dict[str, Any] = {"extract_s": time.perf_counter() - started, "num_train": len(train)}
    for label in PROBE_LABELS:
        res = run_probe(features, df, label, protocol="split", options=ProbeOptions(classifier="svm", seed=seed))
        out[label] = res["top1"]
    out["mean"] = sum(out[label] for label in PROBE_LABELS) / len(PROBE_LABELS)
    return out


def _deflation(model: MMV, checkpoint: Path, manifest: Path, steps: int, seed: int) -> dict[str, Any]:
    """Recalibrates the deflated image network, stores it, and reports the three image embeddings."""
    from mmv.checkpoint import save_deflation
    from mmv.deflation.calibrate import CalibrationOptions, recalibrate
    from mmv.deflation.images import frames_from_manifest
    from mmv.toyworld.deflation_report import toyworld_report

    size = model.config.video.frame_size
    train = frames_from_manifest(manifest, size, split="train", max_clips=1000, seed=seed)
    held = frames_from_manifest(manifest, size, split="val", max_clips=200, seed=seed + 1)
    _, cal = recalibrate(model, train.images, CalibrationOptions(steps=steps, seed=seed), held_out=held.images)
    save_deflation(model, checkpoint)
    rep = toyworld_report(model, manifest, split="test")
    return {
        "steps": steps,
        "held_out_cosine": cal.cosine,
        "summary": json.loads(rep["summary"].to_json(orient="index")),
        "chance": {task: zs["chance"] for task, zs in rep["zero_shot"].items()},
    }


def run_job(variant: str, seed: int, args: argparse.Namespace) -> Path:
    """Trains and evaluates one (variant, seed); writes and returns ``OUT/<variant>-s<seed>/paper.json``."""
    import torch

    from mmv.checkpoint import load_checkpoint
    from training.evaluate import flat_retrieval

    torch.set_num_threads(max(1, args.threads))
    run_dir = Path(args.out) / f"{variant}-s{seed}"
    manifest = Path(args.toyworld) / "manifest.parquet"
    t0 = time.perf_counter()
    summary = _train(variant, seed, args.steps, run_dir, manifest)
    t_train = time.perf_counter() - t0
    model = load_checkpoint(run_dir / "model")
    model.eval()
    t1 = time.perf_counter()
    result: dict[str, Any] = {
        "variant": variant,
        "seed": seed,
        "steps": summary["step"],
        "weights_digest": summary.get("weights_digest"),
        "modalities": list(model.config.modalities),
        "graph": model.config.graph,
        "retrieval": flat_retrieval(model, manifest, split="test", num_windows=1),
        "probe": _probes(model, manifest, args.probe_train, seed),
    }
    if variant == "fac" and seed == args.seeds[0] and args.deflate_steps > 0:
        result["deflation"] = _deflation(model, run_dir / "model", manifest, args.deflate_steps, seed)
    result["seconds"] = {"train": t_train, "eval": time.perf_counter() - t1}
    path = run_dir / RESULT_FILE
    path.write_text(json.dumps(result, indent=2, default=float))
    return path


# ---------------------------------------------------------------------------------------------------
# The parent: the toy world, the jobs two at a time, the table
# ---------------------------------------------------------------------------------------------------


def _ensure_toyworld(directory: Path, clips: int) -> None:
    if (directory / "manifest.parquet").is_file():
        return
    from training import make_toyworld

    print(f"generating the toy world in {directory} ({clips} clips)")
    if make_toyworld.main(["--out", str(directory), "--clips", str(clips), "--seed", "0"]) != 0:
        raise SystemExit("the toy world could not be generated")


def _job_argv(variant: str, seed: int, args: argparse.Namespace) -> list[str]:
    return [
        sys.executable, "-m", "training.paper", "job", "--variant", variant, "--seed", str(seed),
        "--toyworld", args.toyworld, "--out", args.out, "--steps", str(args.steps),
        "--probe-train", str(args.probe_train), "--deflate-steps", str(args.deflate_steps),
        "--threads", str(args.threads), "--seeds", *map(str, args.seeds),
    ]  # fmt: skip


def run_jobs(jobs: Sequence[tuple[str, int]], args: argparse.Namespace) -> list[Path]:
    """Runs the jobs ``args.jobs`` at a time (tqdm over jobs); a failed job is reported, not fatal."""
    from tqdm import tqdm

    env = dict(os.environ)
    threads = str(max(1, args.threads))
    env.update(OMP_NUM_THREADS=threads, MKL_NUM_THREADS=threads, PYTHONPATH=os.pathsep.join(
        filter(None, [str(ROOT), env.get("PYTHONPATH")])))  # fmt: skip
    pending, running, done, failed = list(jobs), [], [], []
    bar = tqdm(total=len(jobs), desc="paper runs", unit="run")
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            variant, seed = pending.pop(0)
            run_dir = Path(args.out) / f"{variant}-s{seed}"
            run_dir.mkdir(parents=True, exist_ok=True)
            log = open(run_dir / "job.log", "w")  # noqa: SIM115 (closed when the job ends)
            cmd = _job_argv(variant, seed, args)
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
            running.append((variant, seed, proc, log))
        time.sleep(0.5)
        for item in list(running):
            variant, seed, proc, log = item
            if proc.poll() is None:
                continue
            running.remove(item)
            log.close()
            path = Path(args.out) / f"{variant}-s{seed}" / RESULT_FILE
            if proc.returncode == 0 and path.is_file():
                done.append(path)
            else:
                failed.append(f"{variant}-s{seed} (exit {proc.returncode}, see {path.parent / 'job.log'})")
            bar.set_postfix_str(f"{variant}-s{seed} done")
            bar.update(1)
    bar.close()
    for f in failed:
        print(f"job failed: {f}", file=sys.stderr)
    return done


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    job = bool(argv) and argv[0] == "job"
    parser = build_parser()
    if job:
        parser.add_argument("--variant", required=True, choices=list(VARIANTS))
        parser.add_argument("--seed", type=int, required=True)
    args = parser.parse_args(argv[1:] if job else argv)
    if args.steps < 1 or args.jobs < 1 or not args.seeds:
        parser.error("--steps and --jobs must be >= 1 and --seeds non-empty")
    if job:
        run_job(args.variant, args.seed, args)
        return 0

    from training.paper_report import build_table, format_report, write_results

    started = time.perf_counter()
    _ensure_toyworld(Path(args.toyworld), args.clips)
    jobs = [(v, s) for s in args.seeds for v in args.variants]
    # the fac run of the first seed also recalibrates deflation: start it first so it is not the last to end
    jobs.sort(key=lambda j: (j != ("fac", args.seeds[0]), args.seeds.index(j[1])))
    paths = run_jobs(jobs, args)
    results = [json.loads(p.read_text()) for p in paths]
    if not results:
        print("no run finished: nothing to report", file=sys.stderr)
        return 1
    minutes = (time.perf_counter() - started) / 60
    command = "python -m training.paper " + " ".join(shlex.quote(a) for a in argv)
    table = build_table(results)
    text = format_report(table, results, command=command.strip(), minutes=minutes, args=vars(args))
    print(text)
    if not args.no_write:
        write_results(Path(args.results), text)
        print(f"wrote {args.results}")
    return 0 if len(results) == len(jobs) else 1


if __name__ == "__main__":
    sys.exit(main())
