"""``make paper`` (training/paper.py, training/paper_report.py): verdicts on planted numbers, the results file,
and the whole command on the bundled toy-world samples (2 variants, 1 seed, a few steps)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from training import paper
from training.paper_report import BEGIN, END, Arm, Row, build_table, format_table, write_results

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "data_samples" / "toyworld"


def _run(variant: str, seed: int, t2v: float, probe: float, a2t: float = 0.0, descriptions: int = 100) -> dict:
    return {
        "variant": variant,
        "seed": seed,
        "retrieval": {"t2v_attr_r1": t2v, "a2t_attr_r1": a2t, "num_descriptions": descriptions},
        "probe": {"mean": probe, "shape": probe, "colour": probe, "motion": probe},
        "seconds": {"train": 1.0, "eval": 1.0},
    }


def _row(rows: list[Row], claim: str, metric: str) -> Row:
    return next(r for r in rows if r.claim.startswith(claim) and r.metric.startswith(metric))


def test_verdicts_follow_twice_the_standard_error_of_the_difference():
    results = [
        *(_run("fac", s, t2v, 0.5) for s, t2v in enumerate([0.50, 0.52, 0.51])),
        *(_run("shared", s, t2v, 0.5) for s, t2v in enumerate([0.20, 0.21, 0.19])),
        *(_run("disjoint", s, t2v, 0.5) for s, t2v in enumerate([0.60, 0.61, 0.62])),
    ]
    row = _row(build_table(results), "1.", "text->video")
    assert [a.name for a in row.arms] == ["fac", "shared", "disjoint"]
    assert row.arms[0].mean == pytest.approx(0.51) and row.arms[0].sd == pytest.approx(0.01)
    se_shared = math.sqrt(0.01**2 / 3 + 0.01**2 / 3)
    verdict = row.verdict()
    assert verdict.startswith(f"vs shared: holds (+0.310, 2 SE {2 * se_shared:.3f})")
    assert "vs disjoint: reversed (-0.100" in verdict
    # identical probes in every arm: no difference, zero spread -> not "holds"
    probe_row = _row(build_table(results), "1.", "video linear probe")
    assert "holds" not in probe_row.verdict() and "reversed" not in probe_row.verdict()


def test_noisy_differences_are_within_seed_noise_and_one_seed_says_so():
    noisy = [_run("fac", s, v, 0.5) for s, v in enumerate([0.1, 0.5, 0.3])] + [
        _run("nce", s, v, 0.5) for s, v in enumerate([0.2, 0.4, 0.25])
    ]
    row = _row(build_table(noisy), "3.", "text->video R@1 (attribute")
    assert row.verdict().startswith("within seed noise (+0.017")
    single = [_run("fac", 0, 0.4, 0.5), _run("nce", 0, 0.3, 0.5)]
    assert _row(build_table(single), "3.", "text->video R@1 (attribute").verdict() == "one seed (+0.100)"


def test_audio_to_text_is_compared_with_chance_from_the_number_of_descriptions():
    above = [_run("fac", s, 0.1, 0.5, a2t=v, descriptions=120) for s, v in enumerate([0.08, 0.09, 0.085])]
    row = _row(build_table(above), "4.", "audio->text R@1 (attribute")
    assert row.chance == pytest.approx(1 / 120)
    assert row.verdict().startswith("holds (+")
    at_chance = [_run("fac", s, 0.1, 0.5, a2t=v, descriptions=100) for s, v in enumerate([0.0, 0.02, 0.01])]
    assert _row(build_table(at_chance), "4.", "audio->text R@1 (attribute").verdict().startswith("within seed noise")


def test_missing_arms_are_not_measured_and_the_table_has_one_line_per_row():
    rows = build_table([_run("fac", 0, 0.3, 0.4)])
    assert _row(rows, "1.", "text->video").verdict() == "not measured"
    table = format_table(rows)
    assert table.count("\n") == len(rows) + 1  # header, separator, rows
    assert Arm("x", []).text() == "x n/a" and Arm("x", [0.25, 0.35]).text() == "x 0.300 ± 0.071"


def test_write_results_replaces_the_marked_section_and_keeps_the_rest(tmp_path):
    path = tmp_path / "results.md"
    write_results(path, "first table\n")
    text = path.read_text()
    assert text.startswith("# Results\n") and f"{BEGIN}\nfirst table\n{END}" in text
    path.write_text(text.replace("# Results\n", "# Results\n\nkept above\n") + "\nkept below\n")
    write_results(path, "second table\n")
    text = path.read_text()
    assert "first table" not in text and text.count(BEGIN) == 1 and f"{BEGIN}\nsecond table\n{END}" in text
    assert "kept above" in text and text.rstrip().endswith("kept below")


def test_make_paper_on_the_bundled_samples_trains_evaluates_and_writes_the_table(tmp_path):
    out, results = tmp_path / "runs", tmp_path / "results.md"
    argv = [
        "--toyworld", str(SAMPLES), "--out", str(out), "--results", str(results), "--variants", "fac", "va",
        "--seeds", "0", "--steps", "2", "--probe-train", "38", "--deflate-steps", "2", "--jobs", "2",
    ]  # fmt: skip
    assert paper.main(argv) == 0
    fac = json.loads((out / "fac-s0" / "paper.json").read_text())
    va = json.loads((out / "va-s0" / "paper.json").read_text())
    summary = json.loads((out / "fac-s0" / "summary.json").read_text())
    assert fac["steps"] == summary["step"] == 2 and fac["weights_digest"] == summary["weights_digest"]
    assert fac["modalities"] == ["video", "audio", "text"] and va["modalities"] == ["video", "audio"]
    assert fac["retrieval"]["num_clips"] == 5  # the samples' test split
    assert "t2v_attr_r1" in fac["retrieval"] and "t2v_attr_r1" not in va["retrieval"]
    for run in (fac, va):
        accs = [run["probe"][k] for k in ("shape", "colour", "motion")]
        assert all(0.0 <= a <= 1.0 for a in accs) and run["probe"]["mean"] == pytest.approx(np.mean(accs))
    assert set(fac["deflation"]["held_out_cosine"]) == {"naive", "calibrated"} and "deflation" not in va
    assert (out / "fac-s0" / "model" / "deflation.safetensors").is_file()
    text = results.read_text()
    section = text[text.index(BEGIN) : text.index(END)]
    assert "python -m training.paper --toyworld" in section and "Seeds [0]" in section
    assert "| fac-s0 |" in section and "| va-s0 |" in section and "| 5. Deflation |" in section
    probe_row = next(line for line in section.splitlines() if "mean of the three" in line)
    assert f"va {va['probe']['mean']:.3f}" in probe_row and f"fac {fac['probe']['mean']:.3f}" in probe_row


def test_a_finished_run_of_another_recipe_is_stale_and_one_of_the_same_recipe_is_not(tmp_path):
    from training import config as config_lib
    from training import recipe as recipe_lib

    recipe = str(paper.CONFIGS / paper.VARIANTS["fac"])
    wanted = recipe_lib.parse_args(["--config", recipe, "--run_dir", str(tmp_path / "r")]).to_dict()
    run = tmp_path / "r"
    assert paper.stale_run(run, wanted) == []  # nothing there yet
    run.mkdir()
    (run / "summary.json").write_text("{}")
    assert paper.stale_run(run, wanted) == ["config.yaml"]  # a run that cannot say its recipe
    same = recipe_lib.parse_args(["--config", recipe, "--log.progress", "false", "--train.checkpoint_every", "7"])
    (run / "config.yaml").write_text(config_lib.dump(same))
    assert paper.stale_run(run, wanted) == []  # only how it was carried out differs
    other = recipe_lib.parse_args(["--config", recipe, "--optim.lr", "0.123", "--train.steps", "9"])
    (run / "config.yaml").write_text(config_lib.dump(other))
    assert paper.stale_run(run, wanted) == ["optim.lr", "train.steps"]


def test_recipe_differences_names_nested_and_one_sided_keys():
    from training.config import recipe_differences

    old = {"model": {"overrides": {"video": {"spatial_pool": "max"}}}, "log": {"every": 1}, "seed": 0}
    new = {"model": {"overrides": {"video": {"spatial_pool": "mean", "input_centering": True}}}, "log": {"every": 9}}
    assert recipe_differences(old, new) == [
        "model.overrides.video.input_centering",
        "model.overrides.video.spatial_pool",
        "seed",
    ]
