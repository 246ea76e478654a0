"""The toy world: procedurally generated clips whose video, audio and narration are genuinely correlated.

Nothing can be downloaded at run time, so the demo model is trained on this synthetic world. Each clip is
``clip_seconds`` (4 s) of ``size`` x ``size`` (128 x 128) RGB video at ``fps`` (8, i.e. 32 frames) with
``sample_rate`` (16 kHz) mono audio: one sounding object, sometimes a second one, on a plain or lightly
textured background, plus 3-6 ASR-like narrations. The attributes are drawn per clip from a seeded generator
(:func:`clip_spec`: deterministic per ``(seed, index)``), so every label is exact ground truth; the primary
object's shape, colour, size and motion are balanced over consecutive clips (:func:`balanced_attributes`).

This module writes a world (:func:`generate`: mp4s, manifest, README, ``toyworld.json``). The package's other
modules hold the rest (:mod:`mmv.toyworld` re-exports their public names): :mod:`~mmv.toyworld.spec` the
attribute values, :class:`ToyWorldConfig` and the clip specs; :mod:`~mmv.toyworld.sample` their seeded drawing;
one module per modality, whose docstring tables how the attributes show in it:

- :mod:`mmv.toyworld.render`: the video (fill colour, radius, trajectory, background);
- :mod:`mmv.toyworld.sound`: the audio (timbre, pitch, loudness, envelope, distractors);
- :mod:`mmv.toyworld.narration`: the captions (synonyms, fillers, wrong and off-topic sentences);

and :mod:`mmv.toyworld.tasks` what evaluation asks of a toy world (clean descriptions and the like).

==========  ===================================  =======================  ==========================
attribute   values (video)                       audio                    narration (synonyms)
==========  ===================================  =======================  ==========================
shape       circle, square, triangle, star       timbre                   "ball", "box", "wedge", ...
colour      red, yellow, green, cyan, blue,      base pitch (+-0.4        "crimson", "golden", ...
            purple                               semitone jitter)
size        small, large                         loudness                 "little", "big", ...
motion      static, right, left, up, down,       envelope / rhythm /      "rolls to the right",
            grow, shrink, bounce                 pitch glide              "rises", "hops", ...
==========  ===================================  =======================  ==========================

Neither modality determines the other: pitch jitter and glides, a second object (``second_object_prob``,
30 %: another colour, drawn behind the first, silent half of the time), distractor sounds (``noise_prob``,
20 %), clips without narration (``no_text_fraction``, 20 %) and wrong or off-topic captions.

**Flips contradict the data.** Narrations say "left"/"right" and "top"/"bottom", and the right/left motions
have mirror-image rhythms (accelerating vs slowing pulses), so a horizontally flipped clip contradicts both its
narration and its audio (and ``label_motion``); a vertical flip likewise swaps up/down against the pitch glide.
Keep flips off for this dataset (``toyworld.json`` records ``"horizontal_flip_consistent": false``).

Files written by :func:`generate` (``docs/formats.md``, "Clip manifest")::

    out_dir/clips/000123.mp4     H.264 + AAC, 32 frames at 8 fps, 128 x 128, 16 kHz mono
    out_dir/manifest.parquet     one row per clip; labels label_shape, label_colour, label_size, label_motion,
                                 label_sound (timbre), label_pitch_hz (float), label_n_objects (int)
    out_dir/README.md            the generation parameters and this mapping
    out_dir/toyworld.json        {"config": ..., "seed": ..., "num_clips": ...}
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
import os
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from mmv.toyworld.render import COLOUR_RGB, GROW_SCALE, SIZE_RADIUS, render_video
from mmv.toyworld.sample import assign_splits, clip_spec
from mmv.toyworld.sound import (
    COLOUR_PITCH_HZ,
    CRESCENDO_DB,
    GLIDE_SEMITONES,
    PULSE_RATES_HZ,
    SECOND_OBJECT_GAIN,
    SIZE_GAIN,
    synthesize_audio,
)
from mmv.toyworld.spec import (
    COLOURS,
    LABEL_COLUMNS,
    MOTIONS,
    SHAPE_TIMBRE,
    SHAPES,
    SIZES,
    ClipSpec,
    ToyWorldConfig,
    clip_name,
)


def write_clip(spec: ClipSpec, path: str | os.PathLike, cfg: ToyWorldConfig | None = None) -> dict[str, float]:
    """Renders, synthesises and encodes one clip to an mp4 (H.264 + AAC).

    Args:
        spec: The clip.
        path: Destination ``.mp4`` (written atomically by :func:`mmv.data.media.write_video`).
        cfg: The world's parameters.

    Returns:
        Seconds spent: ``{"render": ..., "synth": ..., "encode": ...}``.
    """
    from mmv.data.media import write_video

    cfg = cfg or ToyWorldConfig()
    t0 = time.perf_counter()
    frames = render_video(spec, cfg)
    t1 = time.perf_counter()
    audio = synthesize_audio(spec, cfg)
    t2 = time.perf_counter()
    write_video(path, frames, fps=cfg.fps, audio=audio, sample_rate=cfg.sample_rate, crf=cfg.crf)
    t3 = time.perf_counter()
    return {"render": t1 - t0, "synth": t2 - t1, "encode": t3 - t2}


Job = tuple[int, int, ToyWorldConfig, str]
"""One clip to make: ``(index, seed, cfg, clips_dir)``."""


def _worker_init() -> None:
    cv2.setNumThreads(1)


def _make_clip(job: Job) -> dict[str, Any]:
    """Pool task: spec, mp4 and manifest row (with timings) of one clip."""
    index, seed, cfg, clips_dir = job
    spec = clip_spec(seed, index, cfg)
    name = clip_name(index)
    timings = write_clip(spec, os.path.join(clips_dir, f"{name}.mp4"), cfg)
    row = {
        "clip_id": f"toyworld/{name}",
        "dataset": "toyworld",
        "video_path": f"clips/{name}.mp4",
        "audio_path": None,
        "image_path": None,
        "start": 0.0,
        "end": float(cfg.clip_seconds),
        "captions": [{"start": c["start"], "end": c["end"], "text": c["text"]} for c in spec.captions],
        **spec.labels(),
    }
    return {"row": row, "timings": timings}


@contextmanager
def _single_threaded_env() -> Iterator[None]:
    """Worker processes start with one BLAS/OpenMP thread each (they inherit the environment at start)."""
    names = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    saved = {k: os.environ.get(k) for k in names}
    for k in names:
        os.environ.setdefault(k, "1")
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _mapping_table() -> str:
    lines = ["| colour | RGB | base pitch (Hz) |", "|---|---|---|"]
    lines += [f"| {c} | {COLOUR_RGB[c]} | {COLOUR_PITCH_HZ[c]:.2f} |" for c in COLOURS]
    lines += ["", "| shape | timbre (`label_sound`) |", "|---|---|"]
    lines += [f"| {s} | {SHAPE_TIMBRE[s]} |" for s in SHAPES]
    lines += ["", "| size | radius (fraction of the frame) | loudness (peak) |", "|---|---|---|"]
    lines += [f"| {z} | {SIZE_RADIUS[z]} | {SIZE_GAIN[z]} |" for z in SIZES]
    envelopes = {
        "static": "steady tone",
        "right": f"pulses accelerating {PULSE_RATES_HZ[0]:g} -> {PULSE_RATES_HZ[1]:g} Hz",
        "left": f"pulses slowing {PULSE_RATES_HZ[1]:g} -> {PULSE_RATES_HZ[0]:g} Hz",
        "up": f"pitch glide rising {GLIDE_SEMITONES:g} semitones (centred on the base pitch)",
        "down": f"pitch glide falling {GLIDE_SEMITONES:g} semitones",
        "grow": f"crescendo, +{CRESCENDO_DB:g} dB (radius x{GROW_SCALE[0]} -> x{GROW_SCALE[1]})",
        "shrink": f"decrescendo, -{CRESCENDO_DB:g} dB (radius x{GROW_SCALE[1]} -> x{GROW_SCALE[0]})",
        "bounce": "a struck pulse at each floor impact, in sync with the frames",
    }
    lines += ["", "| motion | sound envelope |", "|---|---|"]
    lines += [f"| {m} | {envelopes[m]} |" for m in MOTIONS]
    return "\n".join(lines)


def _readme(cfg: ToyWorldConfig, seed: int, num_clips: int, df: Any) -> str:
    params = "\n".join(f"| `{k}` | {v} |" for k, v in dataclasses.asdict(cfg).items())
    counts = df["split"].value_counts()
    split_counts = ", ".join(f"{k}: {int(counts.get(k, 0))}" for k in ("train", "val", "test"))
    no_text = int(sum(len(c) == 0 for c in df["captions"]))
    return f"""# Toy world: {num_clips} clips, seed {seed}

Generated by `mmv.toyworld.generate` (`python -m training.make_toyworld --clips {num_clips} --seed {seed}`).
Procedural data of this project, licensed like its code (Apache-2.0). The same seed and config regenerate
identical clips (the spec of clip *i* depends only on `(seed, i)`).

- `clips/NNNNNN.mp4`: H.264 + AAC, {cfg.num_frames} frames at {cfg.fps} fps ({cfg.clip_seconds:g} s),
  {cfg.size} x {cfg.size} RGB, {cfg.sample_rate} Hz mono audio.
- `manifest.parquet`: one row per clip (`docs/formats.md`, "Clip manifest"); the labels describe the primary
  object: `label_shape`, `label_colour`, `label_size`, `label_motion`, `label_sound` (timbre),
  `label_pitch_hz` (its base pitch after jitter; the centre of an up/down glide), `label_n_objects`.
- `toyworld.json`: the config and seed.

Splits: {split_counts}. Clips without narration: {no_text}.

**Do not flip these clips.** Narrations say left/right and top/bottom, and the right/left motions have
mirror-image rhythms in the audio, so a horizontal flip contradicts the narration, the audio and
`label_motion`; a vertical flip swaps up/down against the pitch glide.

## Parameters

| parameter | value |
|---|---|
{params}

## How attributes sound

Timbre follows the shape, pitch follows the colour (times a jitter of up to
+-{cfg.pitch_jitter_semitones} semitone), loudness follows the size, and the envelope follows the motion.
A second object (probability {cfg.second_object_prob}) has another colour, is drawn behind the primary,
and is silent with probability {cfg.second_object_silent_prob} (else it sounds at {SECOND_OBJECT_GAIN}x).
A distractor sound (hiss, 50-Hz hum or noise bursts) is added with probability {cfg.noise_prob}.

{_mapping_table()}

## Narration

{cfg.min_captions}-{cfg.max_captions} ASR-like captions per narrated clip (a fraction {cfg.no_text_fraction} of
clips has none), shifted up to {cfg.max_caption_shift} s from what they describe; per caption, off-topic with
probability {cfg.off_topic_prob} and wrong (wrong colour or shape) with probability {cfg.wrong_caption_prob}.
"""


def generate(
    out_dir: str | os.PathLike,
    num_clips: int,
    seed: int,
    cfg: ToyWorldConfig | None = None,
    workers: int | None = None,
    progress: bool = True,
) -> Any:
    """Generates a toy-world dataset: mp4s, ``manifest.parquet``, ``README.md`` and ``toyworld.json``.

    Clips are made in parallel by a pool of ``workers`` single-threaded processes (``spawn``: torch is never
    imported in them); ``workers <= 1`` makes them in this process. The result is identical for any
    ``workers``.

    Args:
        out_dir: Output directory (created; existing clips of the same names are overwritten).
        num_clips: Number of clips.
        seed: World seed.
        cfg: The world's parameters (defaults if None).
        workers: Processes; default ``os.cpu_count()``.
        progress: Show a tqdm bar.

    Returns:
        The manifest as written (pandas DataFrame, paths relative to ``out_dir``), with
        ``attrs["timings"]``: mean seconds per clip of ``render``, ``synth`` and ``encode``, and ``wall``:
        the total seconds.

    Raises:
        WorkerDied: A worker process died (killed for memory, say) before its clips were made.
    """
    from tqdm import tqdm

    from mmv.data.manifest import save_manifest

    cfg = cfg or ToyWorldConfig()
    if num_clips < 1:
        raise ValueError(f"num_clips must be >= 1, got {num_clips}")
    out = Path(out_dir).resolve()
    clips_dir = out / "clips"
    clips_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, min(int(workers or os.cpu_count() or 1), num_clips))
    jobs = [(i, int(seed), cfg, str(clips_dir)) for i in range(num_clips)]
    start = time.perf_counter()
    with tqdm(total=num_clips, desc="toyworld", unit="clip", disable=not progress) as bar:
        results = run_jobs(_make_clip, jobs, workers, on_result=lambda _: bar.update())
    wall = time.perf_counter() - start

    df = _manifest_frame([r["row"] for r in results], seed, cfg)
    df.attrs["root"] = str(out)
    save_manifest(df, out / "manifest.parquet")
    _write_metadata(out, cfg, seed, num_clips, df)
    df.attrs["timings"] = {k: float(np.mean([r["timings"][k] for r in results])) for k in ("render", "synth", "encode")}
    df.attrs["timings"]["wall"] = wall
    return df


class WorkerDied(RuntimeError):
    """A toy-world worker process died (``SIGKILL``, the OOM killer, ``os._exit``) before its clips were made."""


def run_jobs(
    fn: Callable[[Job], Any],
    jobs: Sequence[Job],
    workers: int,
    on_result: Callable[[Any], None] | None = None,
) -> list[Any]:
    """``[fn(job) for job in jobs]``, in this process (``workers <= 1``) or in ``workers`` spawned ones.

    The workers are single-threaded (:func:`_single_threaded_env`, :func:`_worker_init`) and take the jobs in
    chunks of up to 8. Unlike a ``multiprocessing.Pool``, which replaces a dead worker and waits forever for
    the results it held, the pool is given up as soon as one worker dies: :class:`WorkerDied` names the clips.

    Args:
        fn: A module-level function (spawned workers import it) of one job ``(index, seed, cfg, clips_dir)``.
        jobs: The jobs.
        workers: Processes.
        on_result: Called with each result as it arrives, in the jobs' order.

    Returns:
        The results, in the jobs' order.
    """
    on_result = on_result or (lambda _: None)
    results: list[Any] = []
    if workers <= 1:
        _worker_init()
        for job in jobs:
            results.append(fn(job))
            on_result(results[-1])
        return results
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    chunk = max(1, min(8, len(jobs) // (4 * workers)))
    chunks = [list(jobs[i : i + chunk]) for i in range(0, len(jobs), chunk)]
    ctx = mp.get_context("spawn")
    with _single_threaded_env(), ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
        futures = [pool.submit(_run_chunk, fn, c) for c in chunks]
        try:
            for future in futures:
                for result in future.result():
                    results.append(result)
                    on_result(result)
        except BrokenProcessPool as e:
            done = len(results)
            raise WorkerDied(
                f"a toy-world worker process died (killed for memory? SIGKILL?) while making clip "
                f"{clip_name(jobs[done][0])} or a later one: clips {clip_name(jobs[done][0])} to "
                f"{clip_name(jobs[-1][0])} ({len(jobs) - done} of {len(jobs)}) were not made"
            ) from e
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
    return results


def _run_chunk(fn: Callable[[Job], Any], jobs: list[Job]) -> list[Any]:
    return [fn(job) for job in jobs]


def _manifest_frame(rows: list[dict[str, Any]], seed: int, cfg: ToyWorldConfig) -> Any:
    """The manifest of the clips' rows: splits assigned, labels typed like the schema."""
    import pandas as pd

    for row, split in zip(rows, assign_splits(len(rows), seed, cfg)):
        row["split"] = split
        row["fold"] = None
    df = pd.DataFrame(rows)
    for col in ("label_shape", "label_colour", "label_size", "label_motion", "label_sound"):
        df[col] = df[col].astype(object)  # stored as parquet `string`, like the schema's text columns
    df["label_n_objects"] = df["label_n_objects"].astype("int64")
    df["label_pitch_hz"] = df["label_pitch_hz"].astype("float64")
    return df


def _write_metadata(out: Path, cfg: ToyWorldConfig, seed: int, num_clips: int, df: Any) -> None:
    """``toyworld.json`` and ``README.md``."""
    meta = {
        "generator": "mmv.toyworld",
        "format_version": 1,
        "seed": int(seed),
        "num_clips": int(num_clips),
        "config": dataclasses.asdict(cfg),
        "horizontal_flip_consistent": False,
        "vertical_flip_consistent": False,
        "labels": list(LABEL_COLUMNS),
    }
    (out / "toyworld.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    (out / "README.md").write_text(_readme(cfg, seed, num_clips, df), encoding="utf-8")
