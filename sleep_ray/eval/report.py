"""Evaluation report: one record per run, written as JSON, Markdown and one plot per metric.

    report = EvalReport(model="runs/x/ckpt", world="worlds/w0", stages=["base", "after_cycle_1"],
                        metrics={"base": {"closed_book_em": {"base": 0.95, "1": 0.1}}, ...},
                        summary={"base_closed_book_em": 0.95}, meta={"seed": 0})
    paths = write_report(report, "runs/x/eval")   # results.json, results.md, plot_<metric>.png
    same = read_report(paths["results.json"])

`metrics[stage][metric][cycle]`: a stage is an evaluated checkpoint ("base", "after_cycle_1", ...); a cycle
label is "base" for the model's base knowledge or "1".."K" for the facts of sleep cycle k. NaN means "not
measured": JSON writes it as null (and +-inf too, which JSON cannot hold), Markdown as "–", plots as a gap.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORMAT_VERSION = 1
MISSING = "–"
NAN = float("nan")


@dataclass
class EvalReport:
    """The record of one evaluation run.

    metrics[stage][metric_name][cycle_label] = value, with cycle_label "base" or "1".."K".
    summary: flat headline numbers ("base_closed_book_em" -> 0.95). meta: config, seed, wall time, date, machine
    (JSON-serializable; anything else is written with str()).
    """

    model: str
    world: str
    stages: list[str]
    metrics: dict[str, dict[str, dict[str, float]]]
    summary: dict[str, float] = field(default_factory=dict)
    meta: dict[str, object] = field(default_factory=dict)

    def metric_names(self) -> list[str]:
        """Every metric name that appears in any stage, in first-seen order (stages in `stages` order first)."""
        names: dict[str, None] = {}
        for stage in self._stage_order():
            for name in self.metrics.get(stage, {}):
                names.setdefault(name, None)
        return list(names)

    def cycle_labels(self, stage: str | None = None) -> list[str]:
        """Cycle labels seen in `stage` (or in every stage when None), sorted by `cycle_sort_key`."""
        stages = self._stage_order() if stage is None else [stage]
        labels = {c for s in stages for per_cycle in self.metrics.get(s, {}).values() for c in per_cycle}
        return sorted(labels, key=cycle_sort_key)

    def _stage_order(self) -> list[str]:
        # Stages listed in `stages`, then any stage present only in `metrics`.
        return list(self.stages) + [s for s in self.metrics if s not in self.stages]


def cycle_sort_key(label: str) -> tuple[int, int, str]:
    """Sort key for cycle labels: "base" first, then integer labels numerically ("2" < "10"), then the rest."""
    if label == "base":
        return (0, 0, "")
    if label.isdigit():
        return (1, int(label), "")
    return (2, 0, label)


def accuracy_matrix(report: EvalReport, metric: str, stages: list[str] | None = None) -> list[list[float]]:
    """The (T+1) x T matrix `continual_metrics` takes, read from `report.metrics`.

    Row t is `stages[t]` (default: `report.stages`, which must then be [before-any-sleep, after cycle 1, ...,
    after cycle T]); column j-1 is cycle label str(j), j = 1..T with T = len(stages) - 1. Missing values are NaN.
    """
    rows = list(report.stages if stages is None else stages)
    n_cycles = len(rows) - 1
    return [
        [float(report.metrics.get(stage, {}).get(metric, {}).get(str(j), NAN)) for j in range(1, n_cycles + 1)]
        for stage in rows
    ]


# ---- JSON -------------------------------------------------------------------------------------------------


def _to_jsonable(obj: Any) -> Any:
    """Recursively replace non-finite floats with None, tuples with lists, Paths with str, numpy scalars with
    Python numbers."""
    if isinstance(obj, bool):
        return obj
    if isinstance(obj, numbers.Integral):
        return int(obj)
    if isinstance(obj, numbers.Real):
        obj = float(obj)
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_to_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _num(v: Any) -> float:
    return NAN if v is None else v


def report_to_dict(report: EvalReport) -> dict[str, Any]:
    """The JSON-ready dict written to results.json (non-finite numbers as None)."""
    return _to_jsonable(
        {
            "format_version": FORMAT_VERSION,
            "model": report.model,
            "world": report.world,
            "stages": list(report.stages),
            "metrics": report.metrics,
            "summary": report.summary,
            "meta": report.meta,
        }
    )


def report_from_dict(data: dict[str, Any]) -> EvalReport:
    """Inverse of `report_to_dict`: null metric and summary values become NaN; meta is returned as stored."""
    version = data.get("format_version", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise ValueError(f"unsupported results.json format_version {version!r} (expected {FORMAT_VERSION})")
    metrics = {
        stage: {name: {cycle: _num(v) for cycle, v in per_cycle.items()} for name, per_cycle in per_metric.items()}
        for stage, per_metric in data["metrics"].items()
    }
    return EvalReport(
        model=data["model"],
        world=data["world"],
        stages=list(data["stages"]),
        metrics=metrics,
        summary={k: _num(v) for k, v in data.get("summary", {}).items()},
        meta=dict(data.get("meta", {})),
    )


def read_report(path: str | Path) -> EvalReport:
    """Load an `EvalReport` from a results.json file (or from the directory holding one)."""
    p = Path(path)
    if p.is_dir():
        p = p / "results.json"
    return report_from_dict(json.loads(p.read_text(encoding="utf-8")))


# ---- Markdown ---------------------------------------------------------------------------------------------


def format_value(v: Any) -> str:
    """A table cell: floats with 3 decimals, ints as ints, None/NaN as "–", anything else with str().

    +-inf shows as "inf"/"-inf" (results.json stores it as null).
    """
    if isinstance(v, bool):
        return str(v)
    if isinstance(v, numbers.Integral):
        return str(int(v))
    if isinstance(v, numbers.Real):
        return MISSING if math.isnan(float(v)) else f"{float(v):.3f}"
    return MISSING if v is None else str(v)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_cell(h) for h in header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines


def render_markdown(report: EvalReport) -> str:
    """results.md: header (model, world, meta), a summary table, then one metric x cycle table per stage."""
    lines = ["# Evaluation report", "", f"- **model**: `{report.model}`", f"- **world**: `{report.world}`"]
    for key, value in report.meta.items():
        if isinstance(value, dict | list | tuple):
            shown = "`" + json.dumps(_to_jsonable(value), sort_keys=True, default=str) + "`"
        else:
            shown = format_value(value)
        lines.append(f"- **{key}**: {shown}")
    lines += ["", "## Summary", ""]
    if report.summary:
        lines += _table(["metric", "value"], [[k, format_value(v)] for k, v in report.summary.items()])
    else:
        lines.append("_no summary values_")
    for stage in report._stage_order():
        per_metric = report.metrics.get(stage, {})
        lines += ["", f"## Stage: {stage}", ""]
        if not per_metric:
            lines.append("_no metrics recorded_")
            continue
        cycles = report.cycle_labels(stage)
        header = ["metric"] + [c if c == "base" else f"cycle {c}" for c in cycles]
        rows = [[name] + [format_value(per_cycle.get(c)) for c in cycles] for name, per_cycle in per_metric.items()]
        lines += _table(header, rows)
    return "\n".join(lines) + "\n"


# ---- plots ------------------------------------------------------------------------------------------------


def _safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_") or "metric"


def plot_metric(report: EvalReport, metric: str, path: str | Path) -> Path:
    """Draw `metric` against cycle label (x, categorical: base, 1..K), one line per stage, into PNG `path`.

    Missing values leave gaps; isolated points still show as markers.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cycles = report.cycle_labels()
    xs = list(range(len(cycles)))
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    try:
        drawn = 0
        for stage in report._stage_order():
            per_cycle = report.metrics.get(stage, {}).get(metric)
            if not per_cycle:
                continue
            ys = [float(_num(per_cycle.get(c))) for c in cycles]
            ax.plot(xs, ys, marker="o", label=stage)
            drawn += 1
        ax.set_xticks(xs)
        ax.set_xticklabels(cycles)
        ax.set_xlabel("cycle")
        ax.set_ylabel(metric)
        ax.set_title(metric)
        ax.grid(True, alpha=0.3)
        if drawn:
            ax.legend(fontsize="small", loc="best")
        else:
            ax.text(0.5, 0.5, "no data", ha="center", va="center", transform=ax.transAxes)
        out = Path(path)
        fig.tight_layout()
        fig.savefig(out, format="png", dpi=100)
    finally:
        plt.close(fig)
    return out


def write_report(report: EvalReport, out_dir: str | Path) -> dict[str, Path]:
    """Write results.json, results.md and plot_<metric>.png (one per metric) under `out_dir` (created).

    Returns {file name: path} for every file written, e.g. {"results.json": ..., "results.md": ...,
    "plot_closed_book_em.png": ...}. Metric names are sanitized to [A-Za-z0-9_.-] in plot file names.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}

    json_path = out / "results.json"
    text = json.dumps(report_to_dict(report), indent=2, allow_nan=False, default=str)
    json_path.write_text(text + "\n", encoding="utf-8")
    written[json_path.name] = json_path

    md_path = out / "results.md"
    md_path.write_text(render_markdown(report), encoding="utf-8")
    written[md_path.name] = md_path

    for metric in report.metric_names():
        stem = f"plot_{_safe_name(metric)}"
        name, k = f"{stem}.png", 2
        while name in written:  # two metric names that sanitize alike
            name, k = f"{stem}_{k}.png", k + 1
        written[name] = plot_metric(report, metric, out / name)
    return written
