"""Figures, table and plots of `sleep-ray bench consolidation` (pure functions of the evaluation rows).

A method's rows are the harness's metrics after cycle t = 0..K (row 0: the base model), each
`metrics[name][cycle_label]` with cycle labels "base" and "1".."K" (eval/harness.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sleep_ray.eval.metrics import continual_metrics

Metrics = dict[str, dict[str, float]]
NAN = float("nan")
# What the oracle row reads from the base model's in-context evaluation.
ORACLE_KEYS = {"closed_book": "in_context", "updated": "updated_in_context", "rule": "rule_in_context",
               "long": "long_in_context", "new": "new_in_context"}  # fmt: skip


def oracle_row(base: Metrics) -> Metrics:
    """The in-context method's metrics: each stream probe answered with its memory in the prompt; base
    knowledge is the unchanged base model's closed-book score."""
    row = {name: {c: v for c, v in base.get(src, {}).items() if c != "base"} for name, src in ORACLE_KEYS.items()}
    row["closed_book"]["base"] = base["closed_book"]["base"]
    return row


def _get(row: Metrics, name: str, label: str) -> float:
    v = row.get(name, {}).get(label)
    return NAN if v is None else float(v)


def accuracy_matrix(rows: Sequence[Metrics], metric: str = "closed_book") -> list[list[float]]:
    """(K+1) x K: entry [t][j-1] is `metric` on cycle j's probes after cycle t (K = len(rows) - 1)."""
    k = len(rows) - 1
    return [[_get(row, metric, str(j)) for j in range(1, k + 1)] for row in rows]


def _mean(xs: Sequence[float]) -> float:
    kept = [x for x in xs if not math.isnan(x)]
    return sum(kept) / len(kept) if kept else NAN


def summarize(
    rows: Sequence[Metrics], cycles: Sequence[dict[str, Any]] = (), base: Metrics | None = None
) -> dict[str, float]:
    """One method's headline figures after the last cycle K (`base`: the base model's evaluation with context):

    mean_closed_book  mean over cycles j of closed-book accuracy on cycle j's probes after K (`acc_final`)
    acquisition       mean over j of accuracy on cycle j right after learning it (the matrix diagonal)
    bwt               backward transfer (< 0: forgetting), `continual_metrics`
    new               closed-book accuracy on the new facts (kind "new": the people the memories introduce)
    base, base_delta  closed-book accuracy on base knowledge after K, and minus the base model's (row 0)
    updated, stale    updated-fact probes answered with the new value / with the stale one (means over j)
    few_shot, long    closed-book accuracy on the demonstrated relation word / the long documents
    wall_s, trained   summed over the cycles: wall time, and parameters trained (largest of any cycle)
    bwt_new           backward transfer on the new people's probes alone
    retention         base knowledge after K as a share of the base model's
    new_share         `new` as a share of the base model's in-context accuracy on the same probes (the teacher's)
    answerable        what the endpoint answers (memories in context through retrieval, the rest closed-book),
                      mean over the cycles; `ceiling`: the base model's in-context accuracy on those probes
    reading           the model's in-context accuracy on the new people of every cycle (the next teacher's skill)
    parameters        the model's parameters after K
    """
    cm = continual_metrics(accuracy_matrix(rows))
    last, k = rows[-1], len(rows) - 1
    labels = [str(j) for j in range(1, k + 1)]
    base_after, base_before = _get(last, "closed_book", "base"), _get(rows[0], "closed_book", "base")
    return {
        "mean_closed_book": cm["acc_final"],
        "acquisition": cm["acquisition"],
        "bwt": cm["bwt"],
        "base": base_after,
        "base_delta": base_after - base_before,
        "new": _mean([_get(last, "new", c) for c in labels]),
        "updated": _mean([_get(last, "updated", c) for c in labels]),
        "stale": _mean([_get(last, "stale", c) for c in labels]),
        "few_shot": _mean([_get(last, "rule", c) for c in labels]),
        "long": _mean([_get(last, "long", c) for c in labels]),
        "wall_s": float(sum(c["wall_s"] for c in cycles)),
        "trained": float(max((c["trained"] for c in cycles), default=0)),
        **_lifelong(rows, cycles, base or {}),
    }


def _lifelong(rows: Sequence[Metrics], cycles: Sequence[dict[str, Any]], base: Metrics) -> dict[str, float]:
    last, k = rows[-1], len(rows) - 1
    labels = [str(j) for j in range(1, k + 1)]
    every = sorted({c for c in last.get("new_in_context", {}) if c != "base"}, key=int)
    new = _mean([_get(last, "new", c) for c in labels])
    teacher = _mean([_get(base, "new_in_context", c) for c in labels])
    before = _get(rows[0], "closed_book", "base")
    return {
        "bwt_new": continual_metrics(accuracy_matrix(rows, "new"))["bwt"] if k else NAN,
        "retention": _get(last, "closed_book", "base") / before if before else NAN,
        "new_share": new / teacher if teacher else NAN,
        "answerable": _mean([_get(last, "answerable", c) for c in labels]),
        "ceiling": _mean([_get(base, "in_context", c) for c in labels]),
        "reading": _mean([_get(last, "new_in_context", c) for c in every]),
        "parameters": float(cycles[-1].get("parameters", NAN)) if cycles else NAN,
    }


def per_cycle(
    rows: Sequence[Metrics], cycles: Sequence[dict[str, Any]] = (), base: Metrics | None = None
) -> list[dict[str, float]]:
    """`summarize` after each cycle k = 1..K (as if the stream ended there)."""
    return [summarize(rows[: k + 1], cycles[:k], base) for k in range(1, len(rows))]


def verdict(result: dict[str, Any], method: str = "sleep", tolerance: float = 0.05) -> str:
    """The benchmark's question in words: is `method` the best non-oracle method on mean closed-book accuracy, with base
    knowledge within `tolerance` of the base model?"""
    summary = result["summary"]
    if method not in summary:
        return f"{method} was not run."
    rivals = {n: s["mean_closed_book"] for n, s in summary.items() if not result["methods"][n]["oracle"]}
    best = max(rivals, key=lambda n: -1.0 if math.isnan(rivals[n]) else rivals[n])
    s = summary[method]
    first = best == method
    kept = abs(s["base_delta"]) <= tolerance or s["base_delta"] > 0
    lines = [
        f"- {method} is {'the best' if first else 'not the best'} non-oracle method on mean closed-book accuracy "
        f"({s['mean_closed_book']:.3f}; best: {best} {rivals[best]:.3f}).",
        f"- Its base knowledge is {s['base']:.3f}, {s['base_delta']:+.3f} against the base model: "
        f"{'within' if kept else 'outside'} {tolerance}.",
    ]
    return "\n".join(lines)


COLUMNS = [("mean_closed_book", "mean closed-book (all cycles, after K)"), ("acquisition", "right after its cycle"),
           ("bwt", "BWT"), ("new", "new facts"), ("base", "base knowledge"), ("base_delta", "vs base model"),
           ("updated", "updated: new value"), ("stale", "updated: stale value"), ("few_shot", "few-shot rule"),
           ("long", "long docs"), ("bwt_new", "BWT new people"), ("retention", "base retention"),
           ("new_share", "new people / teacher"), ("answerable", "answerable"), ("ceiling", "in-context ceiling"),
           ("reading", "reading"), ("parameters", "parameters"), ("wall_s", "wall s"),
           ("trained", "trained params")]  # fmt: skip


def _cell(key: str, v: float) -> str:
    if math.isnan(v):
        return "–"
    if key in ("wall_s", "trained", "parameters"):
        return f"{v:,.0f}" if v else "0"
    return f"{v:+.3f}" if key in ("bwt", "base_delta", "bwt_new") else f"{v:.3f}"


def table(result: dict[str, Any]) -> str:
    head = "| method | " + " | ".join(label for _, label in COLUMNS) + " |"
    lines = [head, "|" + "---|" * (len(COLUMNS) + 1)]
    for name, s in result["summary"].items():
        shown = f"{name} (oracle)" if result["methods"][name]["oracle"] else name
        lines.append(f"| {shown} | " + " | ".join(_cell(k, s[k]) for k, _ in COLUMNS) + " |")
    return "\n".join(lines)


def markdown(result: dict[str, Any]) -> str:
    m = result["meta"]
    return "\n".join([
        f"# Consolidation benchmark: {result['cycles']} cycles",
        "",
        f"{m['date']}, {m['machine']}; config `{m['config']}` {' '.join(m['overrides'])}; base model "
        f"`{m['model']}`; memories per cycle {m['memories_per_cycle']}; this invocation {m['wall_s']:.0f} s "
        "(a rerun reuses finished cycles; `wall s` below is each method's own training time).",
        "",
        table(result),
        "",
        verdict(result),
        "",
    ])  # fmt: skip


def _json_safe(x: Any) -> Any:
    if isinstance(x, float) and not math.isfinite(x):
        return None
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    return x


def plot(result: dict[str, Any], out_dir: Path) -> list[Path]:
    """plot_accuracy.png: mean closed-book accuracy over the cycles seen so far, after each cycle;
    plot_forgetting.png: accuracy on cycle 1's probes and on base knowledge after each cycle."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = result["cycles"]
    xs = list(range(0, k + 1))
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for name, r in result["methods"].items():
        acc = accuracy_matrix(r["rows"])
        seen = [_mean(acc[t][:t]) if t else NAN for t in xs]
        ax.plot(xs[1:], seen[1:], marker="o", linestyle="--" if r["oracle"] else "-", label=name)
    ax.set(xlabel="after cycle", ylabel="closed-book accuracy, cycles 1..t", title="Accuracy per cycle", xticks=xs[1:])
    ax.legend(fontsize=7)
    paths = [out_dir / "plot_accuracy.png"]
    fig.tight_layout()
    fig.savefig(paths[0], dpi=120)
    plt.close(fig)

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4.5))
    for name, r in result["methods"].items():
        style = "--" if r["oracle"] else "-"
        a1.plot(xs[1:], [_get(row, "closed_book", "1") for row in r["rows"][1:]], marker="o", ls=style, label=name)
        a2.plot(xs, [_get(row, "closed_book", "base") for row in r["rows"]], marker="o", ls=style, label=name)
    a1.set(xlabel="after cycle", ylabel="accuracy", title="Forgetting: cycle 1's probes", xticks=xs[1:])
    a2.set(xlabel="after cycle", ylabel="accuracy", title="Forgetting: base knowledge", xticks=xs)
    a2.legend(fontsize=7)
    paths.append(out_dir / "plot_forgetting.png")
    fig.tight_layout()
    fig.savefig(paths[1], dpi=120)
    plt.close(fig)
    return paths


def write(result: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "consolidation.json", "md": out / "consolidation.md"}
    paths["json"].write_text(json.dumps(_json_safe(result), indent=1))
    paths["md"].write_text(markdown(result))
    for p in plot(result, out):
        paths[p.stem] = p
    return paths
