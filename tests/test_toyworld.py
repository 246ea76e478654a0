"""The toy world: config, specs and determinism, the public API, encoded clips, the manifest and the CLI.

The modalities have their own tests: ``test_toyworld_render.py``, ``test_toyworld_sound.py`` and
``test_toyworld_narration.py``.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from toyworld_helpers import CFG, SR, centroid, clean, find_spec, object_mask, relative_level, rms_db, spectrum

import mmv.toyworld as tw
from mmv.data.manifest import load_manifest
from mmv.data.media import read_audio, read_video
from mmv.toyworld import narration as toyworld_narration
from mmv.toyworld import render as toyworld_render
from mmv.toyworld import sound as toyworld_sound

# ---------------------------------------------------------------------------------------------------
# Config, specs, determinism
# ---------------------------------------------------------------------------------------------------


def test_config_rejects_bad_values() -> None:
    with pytest.raises(ValueError, match="no_text_fraction"):
        tw.ToyWorldConfig(no_text_fraction=1.5)
    with pytest.raises(ValueError, match="min_captions"):
        tw.ToyWorldConfig(min_captions=5, max_captions=3)
    with pytest.raises(ValueError, match="train_fraction"):
        tw.ToyWorldConfig(train_fraction=0.95, val_fraction=0.1)
    assert (CFG.num_frames, CFG.num_samples) == (32, 64000)


def test_attribute_tables_are_complete() -> None:
    assert len(tw.SHAPES) >= 4 and len(tw.COLOURS) >= 4 and len(tw.MOTIONS) >= 6


#: The public names of ``mmv.toyworld`` before it was split into modality modules: all still importable.
PUBLIC_NAMES = """
    ATTRIBUTE_TEMPLATES BACKGROUNDS CAPTION_KINDS COLOURS COLOUR_PITCH_HZ COLOUR_RGB COLOUR_WORDS CRESCENDO_DB
    ClipSpec DESCRIBE_TEMPLATES FILLERS GLIDE_SEMITONES GROW_SCALE LABEL_COLUMNS MAX_PARTIAL_HZ MOTIONS MOTION_WORDS
    NOISES OFF_TOPIC ObjectSpec PULSE_RATES_HZ SECOND_OBJECT_GAIN SECOND_TEMPLATES SHAPES SHAPE_TIMBRE SHAPE_WORDS
    SILENT_SECOND_TEMPLATES SIZES SIZE_GAIN SIZE_RADIUS SIZE_WORDS SOUND_WORDS ToyWorldConfig UNIT_SHAPES
    assign_splits balanced_attributes clean_description clip_name clip_spec generate make_captions motion_envelope
    object_trajectory render_video sample_attributes synthesize_audio vocabulary_words write_clip
""".split()


def test_public_names_are_reexported() -> None:
    assert sorted(tw.__all__) == sorted(PUBLIC_NAMES)
    for name in PUBLIC_NAMES:
        home = next((m for m in (toyworld_render, toyworld_sound, toyworld_narration) if hasattr(m, name)), tw)
        assert getattr(tw, name) is getattr(home, name), name


def test_specs_are_deterministic_per_seed_and_index() -> None:
    a = [dataclasses.asdict(tw.clip_spec(7, i, CFG)) for i in range(20)]
    b = [dataclasses.asdict(tw.clip_spec(7, i, CFG)) for i in range(20)]
    c = [dataclasses.asdict(tw.clip_spec(8, i, CFG)) for i in range(20)]
    assert a == b
    assert sum(x != y for x, y in zip(a, c)) == 20
    spec = tw.clip_spec(7, 3, CFG)
    np.testing.assert_array_equal(tw.render_video(spec, CFG), tw.render_video(tw.clip_spec(7, 3, CFG), CFG))
    np.testing.assert_array_equal(tw.synthesize_audio(spec, CFG), tw.synthesize_audio(tw.clip_spec(7, 3, CFG), CFG))
    assert not np.array_equal(tw.render_video(spec, CFG), tw.render_video(tw.clip_spec(8, 3, CFG), CFG))


def test_primary_attributes_are_balanced() -> None:
    specs = [tw.clip_spec(0, i, CFG) for i in range(48)]  # 48 = a multiple of 4 shapes, 6 colours, 2, 8 motions
    for name, values in (("shape", tw.SHAPES), ("colour", tw.COLOURS), ("size", tw.SIZES), ("motion", tw.MOTIONS)):
        counts = {v: sum(getattr(s.primary, name) == v for s in specs) for v in values}
        assert set(counts.values()) == {48 // len(values)}, (name, counts)
    combos = {(s.primary.shape, s.primary.colour) for s in specs}
    assert len(combos) > 15  # the combinations are not locked together


def test_sample_attributes_can_fix_attributes() -> None:
    spec = tw.sample_attributes(np.random.default_rng(0), CFG, {"shape": "star", "motion": "up"})
    assert (spec.primary.shape, spec.primary.motion, spec.primary.timbre) == ("star", "up", "bell")
    assert spec.primary.y0 > spec.primary.y1  # 'up' trajectories go up (y grows downwards)
    with pytest.raises(ValueError, match="colour"):
        tw.sample_attributes(np.random.default_rng(0), CFG, {"colour": "orange"})


# ---------------------------------------------------------------------------------------------------
# Encoded clips: what a reader gets back
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("motion", "timbre"), [("right", "square"), ("static", "sine"), ("up", "sawtooth"), ("static", "bell")]
)
def test_decoded_clip_matches_its_labels(tmp_path: Path, motion: str, timbre: str) -> None:
    _, spec = find_spec(clean(motion, timbre))
    labels = spec.labels()
    path = tmp_path / "clip.mp4"
    tw.write_clip(spec, path, CFG)
    frames = read_video(path, 0.0, CFG.num_frames, CFG.fps)
    audio = read_audio(path, 0.0, CFG.clip_seconds, SR, cache_dir=tmp_path / "cache")
    assert frames.shape == (32, 128, 128, 3)
    bg = np.median(frames[0].reshape(-1, 3), axis=0)
    # colour: the interior mean is the label's RGB within codec tolerance, and nearest to it of all colours
    mean = frames[0][object_mask(frames[0], bg, erode=2)].mean(axis=0)
    np.testing.assert_allclose(mean, tw.COLOUR_RGB[labels["label_colour"]], atol=25)
    nearest = min(tw.COLOURS, key=lambda c: np.linalg.norm(mean - np.asarray(tw.COLOUR_RGB[c])))
    assert nearest == labels["label_colour"]
    # motion: the centroid moves the labelled way between the first and last frames
    (x0, y0), (x1, y1) = centroid(object_mask(frames[0], bg)), centroid(object_mask(frames[-1], bg))
    if motion == "right":
        assert x1 - x0 > 25 and abs(y1 - y0) < 2
    elif motion == "up":
        assert y0 - y1 > 25 and abs(x1 - x0) < 2
    else:
        assert abs(x1 - x0) < 1 and abs(y1 - y0) < 1
    # pitch: the spectral peak is the labelled pitch (for a glide, the peak lies inside its range)
    freqs, mag = spectrum(audio)
    peak, f0 = freqs[mag.argmax()], labels["label_pitch_hz"]
    if motion == "up":
        assert 12 * abs(np.log2(peak / f0)) <= tw.GLIDE_SEMITONES / 2 + 0.1
        freqs_end, mag_end = spectrum(audio[-SR // 2 :])
        assert freqs_end[mag_end.argmax()] == pytest.approx(f0 * 2 ** (2.75 / 12), rel=0.03)
    else:
        assert peak == pytest.approx(f0, rel=0.01)
    # timbre survives AAC: odd harmonics for square, even ones only for sawtooth, none for sine
    if timbre in ("square", "sine") and motion == "static" or timbre == "square":
        h2, h3 = relative_level(freqs, mag, 2 * f0), relative_level(freqs, mag, 3 * f0)
        if timbre == "square":
            assert h3 > 0.2 and h2 < 0.02
        else:
            assert h3 < 0.01 and h2 < 0.01
    # the audio is the synthesised one, within AAC error
    raw = tw.synthesize_audio(spec, CFG)
    err = audio.astype(np.float64) - raw
    assert rms_db(err) - rms_db(raw) < -15


# ---------------------------------------------------------------------------------------------------
# Generation: manifest, CLI, determinism across runs and worker counts
# ---------------------------------------------------------------------------------------------------


def test_splits_have_the_configured_sizes() -> None:
    for n in (10, 48, 1001):
        splits = np.array(tw.assign_splits(n, 0, CFG))
        assert len(splits) == n
        assert (splits == "train").sum() == round(0.8 * n) and (splits == "val").sum() == round(0.1 * n)
        assert set(splits) <= {"train", "val", "test"}
    assert tw.assign_splits(48, 0, CFG) == tw.assign_splits(48, 0, CFG) != tw.assign_splits(48, 1, CFG)


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 clips written by the CLI with 2 worker processes."""
    from training.make_toyworld import main

    out = tmp_path_factory.mktemp("toyworld") / "tw"
    assert main(["--out", str(out), "--clips", "12", "--seed", "4", "--workers", "2", "--quiet"]) == 0
    return out


def test_cli_writes_every_file(generated: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert sorted(p.name for p in generated.iterdir()) == ["README.md", "clips", "manifest.parquet", "toyworld.json"]
    assert sorted(p.name for p in (generated / "clips").iterdir()) == [f"{i:06d}.mp4" for i in range(12)]
    meta = json.loads((generated / "toyworld.json").read_text())
    assert meta["seed"] == 4 and meta["num_clips"] == 12 and meta["horizontal_flip_consistent"] is False
    assert tw.ToyWorldConfig(**meta["config"]) == CFG
    readme = (generated / "README.md").read_text()
    assert "| circle | sine |" in readme and "flip" in readme


def test_manifest_schema(generated: Path) -> None:
    schema = pq.read_schema(generated / "manifest.parquet")
    caption = pa.list_(pa.struct([("start", pa.float64()), ("end", pa.float64()), ("text", pa.string())]))
    expected = {
        "clip_id": pa.string(),
        "dataset": pa.string(),
        "video_path": pa.string(),
        "audio_path": pa.string(),
        "image_path": pa.string(),
        "start": pa.float64(),
        "end": pa.float64(),
        "captions": caption,
        "split": pa.string(),
        "fold": pa.int64(),
        "label_shape": pa.string(),
        "label_colour": pa.string(),
        "label_size": pa.string(),
        "label_motion": pa.string(),
        "label_sound": pa.string(),
        "label_pitch_hz": pa.float64(),
        "label_n_objects": pa.int64(),
    }
    assert {f.name: f.type for f in schema} == expected
    raw = pq.read_table(generated / "manifest.parquet").to_pylist()
    assert [r["clip_id"] for r in raw] == [f"toyworld/{i:06d}" for i in range(12)]
    assert [r["video_path"] for r in raw] == [f"clips/{i:06d}.mp4" for i in range(12)]
    for i, r in enumerate(raw):
        spec = tw.clip_spec(4, i, CFG)
        assert (r["dataset"], r["audio_path"], r["image_path"], r["start"], r["end"], r["fold"]) == (
            "toyworld",
            None,
            None,
            0.0,
            4.0,
            None,
        )
        assert r["captions"] == [{k: c[k] for k in ("start", "end", "text")} for c in spec.captions]
        assert {k: r[k] for k in tw.LABEL_COLUMNS} == spec.labels()
    df = load_manifest(generated / "manifest.parquet")  # the library reader accepts it
    assert list(df["split"]).count("train") == round(0.8 * 12) and list(df["split"]).count("val") == 1
    assert df["video_path"].map(lambda p: Path(p).is_file()).all()


def test_a_dead_worker_fails_generation_at_once() -> None:
    """A worker killed mid-chunk (OOM, SIGKILL) raises WorkerDied naming the clips, instead of a pool that waits
    forever for the results it held. Run in a child process so that a regression fails on the timeout."""
    script = (
        "import toyworld_helpers as h\n"
        "from mmv.toyworld.generate import run_jobs\n"
        "run_jobs(h.killed_at_clip_12, [(i, 0, h.CFG, '') for i in range(40)], 2)\n"
    )
    tests = Path(__file__).resolve().parent
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(tests), str(tests.parent), os.environ.get("PYTHONPATH", "")]),
    }
    start = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", script], cwd=tests, env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.monotonic() - start
    assert proc.returncode == 1, proc.stderr
    match = re.search(
        r"WorkerDied: .* died .* while making clip (\d{6}) or a later one: clips \1 to 000039", proc.stderr
    )
    assert match, proc.stderr
    assert int(match.group(1)) <= 12  # the clips before the first one named came back
    assert elapsed < 60, elapsed


def test_generation_is_deterministic(generated: Path, tmp_path: Path) -> None:
    again = tw.generate(tmp_path / "again", 12, 4, CFG, workers=1, progress=False)
    first = pq.read_table(generated / "manifest.parquet")
    assert pq.read_table(tmp_path / "again" / "manifest.parquet").equals(first)
    assert set(again.attrs["timings"]) == {"render", "synth", "encode", "wall"}
    for i in (0, 7):
        a = read_video(generated / "clips" / f"{i:06d}.mp4", 0.0, 32, CFG.fps)
        b = read_video(tmp_path / "again" / "clips" / f"{i:06d}.mp4", 0.0, 32, CFG.fps)
        np.testing.assert_array_equal(a, b)
        rendered = tw.render_video(tw.clip_spec(4, i, CFG), CFG)
        assert np.abs(a.astype(np.int32) - rendered).mean() < 4  # the decoded frames are the rendered ones


def test_bundled_sample_matches_the_generator() -> None:
    """``data_samples/toyworld`` is ``make_toyworld --clips 48 --seed 0``: regenerate it when the world changes."""
    root = Path(__file__).resolve().parents[1] / "data_samples" / "toyworld"
    if not (root / "manifest.parquet").is_file():
        pytest.skip("data_samples/toyworld is not bundled")
    rows = pq.read_table(root / "manifest.parquet").to_pylist()
    meta = json.loads((root / "toyworld.json").read_text())
    assert len(rows) == meta["num_clips"] == 48
    cfg = tw.ToyWorldConfig(**meta["config"])
    for i, row in enumerate(rows):
        spec = tw.clip_spec(meta["seed"], i, cfg)
        assert {k: row[k] for k in tw.LABEL_COLUMNS} == spec.labels()
        assert row["captions"] == [{k: c[k] for k in ("start", "end", "text")} for c in spec.captions]
        assert (root / row["video_path"]).is_file()
