"""The claims table of ``make paper`` (:mod:`training.paper`): per-run results in, markdown out.

Each row is one measurement of one claim: the arms compared (variant name, mean over seeds, sample standard
deviation, number of seeds), what the paper says, and a verdict at toy scale:

* ``holds``: the claimed order, by more than twice the standard error of the difference
  (``sqrt(sd_a^2 / n_a + sd_b^2 / n_b)``);
* ``reversed``: the opposite order, by as much;
* ``within seed noise``: neither;
* ``one seed``: no noise estimate (a run with ``--seeds`` of length 1): the sign of the difference only.

"Better than chance" rows compare the seeds' values with the chance level the same way (standard error of the
mean). Nothing is tuned to make a claim hold: a claim that does not reproduce at toy scale says so.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

BEGIN, END = "<!-- paper:begin -->", "<!-- paper:end -->"
PROBE_LABELS = ("shape", "colour", "motion")


@dataclass
class Arm:
    """One compared variant: its values over seeds."""

    name: str
    values: list[float]

    @property
    def mean(self) -> float:
        return float(np.mean(self.values)) if self.values else math.nan

    @property
    def sd(self) -> float:
        return float(np.std(self.values, ddof=1)) if len(self.values) > 1 else math.nan

    def text(self, fmt: str = "{:.3f}") -> str:
        if not self.values:
            return f"{self.name} n/a"
        spread = f" ± {fmt.format(self.sd)}" if len(self.values) > 1 else ""
        return f"{self.name} {fmt.format(self.mean)}{spread}"


@dataclass
class Row:
    """One line of the table: ``arms[0]`` is claimed better than every other arm (or than ``chance``)."""

    claim: str
    metric: str
    arms: list[Arm]
    paper: str
    chance: float | None = None
    notes: list[str] = field(default_factory=list)
    shown: list[Arm] = field(default_factory=list)  # references printed but not compared (e.g. inflated)

    def verdict(self) -> str:
        best = self.arms[0]
        if not best.values:
            return "not measured"
        if self.chance is not None:
            return _verdict(best.values, [self.chance], chance=True)
        others = [a for a in self.arms[1:] if a.values]
        if not others:
            return "not measured"
        return "; ".join(_verdict(best.values, o.values, label=o.name if len(others) > 1 else None) for o in others)


def _verdict(a: Sequence[float], b: Sequence[float], chance: bool = False, label: str | None = None) -> str:
    diff = float(np.mean(a) - np.mean(b))
    var = (np.var(a, ddof=1) / len(a) if len(a) > 1 else math.nan) + (
        0.0 if chance else (np.var(b, ddof=1) / len(b) if len(b) > 1 else math.nan)
    )
    prefix = f"vs {label}: " if label else ""
    if math.isnan(var):
        return f"{prefix}one seed ({diff:+.3f})"
    se = math.sqrt(var)
    if diff > 2 * se:
        word = "holds"
    elif diff < -2 * se:
        word = "reversed"
    else:
        word = "within seed noise"
    return f"{prefix}{word} ({diff:+.3f}, 2 SE {2 * se:.3f})"


def _values(results: Sequence[dict[str, Any]], variant: str, path: tuple[str, ...]) -> list[float]:
    out = []
    for r in results:
        if r["variant"] != variant:
            continue
        v: Any = r
        for key in path:
            v = v.get(key) if isinstance(v, dict) else None
        if isinstance(v, (int, float)) and not math.isnan(float(v)):
            out.append(float(v))
    return out


def _arms(results: Sequence[dict[str, Any]], variants: Sequence[str], path: tuple[str, ...]) -> list[Arm]:
    return [Arm(v, _values(results, v, path)) for v in variants]


def build_table(results: Sequence[dict[str, Any]]) -> list[Row]:
    """The claims table from the jobs' ``paper.json`` contents (any subset of variants and seeds)."""
    rows: list[Row] = []
    graph_paper = "FAC beats shared and disjoint (qualitative; no numbers in the spec, §7.6)"
    graph = ("fac", "shared", "disjoint")
    for metric, path in (
        ("video->audio R@1 (attribute level)", ("retrieval", "v2a_attr_r1")),
        ("text->video R@1 (attribute level)", ("retrieval", "t2v_attr_r1")),
        ("video linear probe, mean of shape/colour/motion", ("probe", "mean")),
    ):
        rows.append(Row("1. Embedding graph", metric, _arms(results, graph, path), graph_paper))
    mods_paper = "V+A+T beats every pair (qualitative, §7.6)"
    for label in ("mean", *PROBE_LABELS):
        metric = "video linear probe, " + ("mean of the three" if label == "mean" else label)
        rows.append(Row("2. Modalities", metric, _arms(results, ("fac", "va", "vt"), ("probe", label)), mods_paper))
    nce_paper = "MIL-NCE copes with misaligned narration better than NCE (the reason MMV uses it, §4)"
    for metric, path in (
        ("text->video R@1 (attribute level)", ("retrieval", "t2v_attr_r1")),
        ("text->video R@1 (clip level, noisy narration)", ("retrieval", "t2v_r1")),
        ("video linear probe, mean", ("probe", "mean")),
    ):
        rows.append(Row("3. MIL-NCE (K=4) vs NCE (K=1)", metric, _arms(results, ("fac", "nce"), path), nce_paper))
    at_paper = "audio->text works zero-shot through FAC though audio and text never meet in training (§3.2)"
    fac = [r for r in results if r["variant"] == "fac"]
    for metric, key, denom in (
        ("audio->text R@1 (attribute level)", "a2t_attr_r1", "num_descriptions"),
        ("audio->text R@1 (clip level)", "a2t_r1", "num_narrated"),
    ):
        sizes = [r["retrieval"].get(denom) for r in fac if r["retrieval"].get(denom)]
        chance = 1.0 / float(np.mean(sizes)) if sizes else None
        row = Row("4. Audio->text, never paired", metric, [Arm("fac", _values(results, "fac", ("retrieval", key)))],
                  at_paper, chance=chance)  # fmt: skip
        rows.append(row)
    rows.extend(_deflation_rows(results))
    return rows


def _deflation_rows(results: Sequence[dict[str, Any]]) -> list[Row]:
    with_def = [r for r in results if "deflation" in r]
    if not with_def:
        return []
    d = with_def[0]["deflation"]
    paper = "calibrated deflation ~ inflated input, better than naive (qualitative; Table 3 not in the spec, §6)"
    rows = []
    cos = d["held_out_cosine"]
    for space in cos.get("naive", {}):
        arms = [Arm(mode, [cos[mode][space]]) for mode in ("calibrated", "naive") if mode in cos]
        rows.append(Row("5. Deflation", f"cosine to the inflated output, {space} (held-out frames)", arms, paper))
    summary = d["summary"]
    for column, metric in (("zs_colour", "zero-shot colour of test frames"), ("zs_shape", "zero-shot shape"),
                           ("i2t_r5", "image->text R@5")):  # fmt: skip
        arms = [Arm(mode, [summary[mode][column]]) for mode in ("calibrated", "naive") if mode in summary]
        row = Row("5. Deflation", metric, arms, paper, shown=[Arm("inflated", [summary["inflated"][column]])])
        chance = d.get("chance", {}).get(column[3:])
        if chance is not None:
            row.notes.append(f"chance {chance:.3f}")
        rows.append(row)
    for mode in ("calibrated", "naive"):
        if mode in summary:  # the inflated clip is the unit: speed-up 1
            metric = f"speed-up of the {mode} image network over the inflated clip (x, 1 = as slow)"
            rows.append(Row("5. Deflation", metric, [Arm(mode, [summary[mode]["speedup"]])], paper, chance=1.0))
    return rows


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "/") for c in cells) + " |"


def format_table(rows: Sequence[Row]) -> str:
    lines = [_md_row(["claim", "metric", "ours (mean ± sd over seeds)", "paper", "at toy scale"]),
             _md_row(["---"] * 5)]  # fmt: skip
    last = None
    for row in rows:
        ours = ", ".join(a.text() for a in [*row.arms, *row.shown])
        if row.chance is not None:
            ours += f" (baseline {row.chance:.3f})"
        if row.notes:
            ours += " (" + "; ".join(row.notes) + ")"
        lines.append(_md_row([row.claim if row.claim != last else "", row.metric, ours,
                              row.paper if row.claim != last else "", row.verdict()]))  # fmt: skip
        last = row.claim
    return "\n".join(lines)


def format_report(
    rows: Sequence[Row], results: Sequence[dict[str, Any]], *, command: str, minutes: float, args: dict[str, Any]
) -> str:
    """The markdown section written into docs/results.md: how it was made, the table, the runs."""
    seeds = sorted({r["seed"] for r in results})
    variants = sorted({r["variant"] for r in results})
    train_min = sum(r["seconds"]["train"] for r in results) / 60
    eval_min = sum(r["seconds"]["eval"] for r in results) / 60
    lines = [
        f"Command: `{command}` (`make paper`). Seeds {seeds}; variants {variants}; {args['steps']} steps each; "
        f"{args['jobs']} run(s) at once with {args['threads']} thread(s) each; "
        f"{len(results)} runs in {minutes:.1f} min wall time "
        f"({train_min:.1f} min of training and {eval_min:.1f} min of evaluation summed over runs).",
        "",
        format_table(rows),
        "",
        "Runs (test split; probes: LinearSVC on frozen video features, C chosen on val):",
        "",
        _md_row(["run", "t2v_attr R@1", "v2a_attr R@1", "a2t_attr R@1", "probe shape", "colour", "motion", "digest"]),
        _md_row(["---"] * 8),
    ]
    for r in sorted(results, key=lambda r: (r["variant"], r["seed"])):
        ret, pr = r["retrieval"], r["probe"]

        def cell(d: dict[str, Any], k: str) -> str:
            v = d.get(k)
            return f"{v:.3f}" if isinstance(v, (int, float)) else "—"

        lines.append(_md_row([f"{r['variant']}-s{r['seed']}", cell(ret, "t2v_attr_r1"), cell(ret, "v2a_attr_r1"),
                              cell(ret, "a2t_attr_r1"), *(cell(pr, k) for k in PROBE_LABELS),
                              f"`{r.get('weights_digest') or '—'}`"]))  # fmt: skip
    return "\n".join(lines) + "\n"


def write_results(path: Path, section: str) -> None:
    """Puts ``section`` between the paper markers of ``path`` (appended under a heading when absent)."""
    text = path.read_text() if path.is_file() else "# Results\n"
    block = f"{BEGIN}\n{section}{END}"
    if BEGIN in text and END in text:
        text = re.sub(re.escape(BEGIN) + r".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    else:
        text = text.rstrip() + "\n\n## The paper's claims at toy scale (`make paper`)\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
