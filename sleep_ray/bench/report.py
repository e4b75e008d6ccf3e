"""The system benchmark's Markdown table and plot: each figure beside its baseline, as a ratio, with its target.

write_report(result, Path("runs/sleep_tiny/bench"))   # -> system.md, plot_sleep_scaling.png
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# (part, key of the ratio, what it compares, target as (op, bound), what bounds it when missed)
TARGETS: list[tuple[str, str, str, tuple[str, float] | None]] = [
    ("rollout", "actor_vs_bare", "HF engine tokens/s: in a Ray actor / in a bare process", (">=", 0.90)),
    ("rollout", "vllm_vs_hf", "rollout tokens/s: vLLM engine / HF engine", None),
    ("push", "expert.push_vs_copy", "weight push MB/s into 2 engines / in-memory copy (the expert)", (">=", 0.25)),
    ("push", "full.push_vs_copy", "weight push MB/s into 2 engines / in-memory copy (whole model)", (">=", 0.25)),
    ("train", "ray_vs_plain", "student step time: Ray Train, 1 worker / single-process loop", ("<=", 1.15)),
    ("swap", "p99_ratio", "p99 latency: during swaps / steady", ("<=", 1.5)),
]


def lookup(result: dict[str, Any], part: str, key: str) -> Any:
    """result[part][k1][k2]... for key "k1.k2"; None where absent."""
    value: Any = result.get(part)
    for k in key.split("."):
        if not isinstance(value, dict) or k not in value:
            return None
        value = value[k]
    return value


def verdict(value: Any, target: tuple[str, float] | None) -> str:
    """ "met" / "missed" against (op, bound), "" without a target or a value."""
    if target is None or not isinstance(value, (int, float)):
        return ""
    op, bound = target
    ok = value >= bound if op == ">=" else value <= bound
    return "met" if ok else "missed"


def table(result: dict[str, Any]) -> str:
    """The ratios as a Markdown table (rows only for the parts that ran)."""
    lines = ["| figure | ratio | target | |", "|---|---|---|---|"]
    for part, key, what, target in TARGETS:
        if part not in result:
            continue
        value = lookup(result, part, key)
        shown = "n/a" if value is None or isinstance(value, str) else f"{value:g}"
        bound = "" if target is None else f"{target[0]} {target[1]:g}"
        lines.append(f"| {what} | {shown} | {bound} | {verdict(value, target)} |")
    return "\n".join(lines)


def write_report(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    parts = [f"# System benchmark\n\n{result['machine']}, {result['date']}, config {result['config']}\n", table(result)]
    if "sleep" in result:
        rows = result["sleep"]["rows"]
        parts.append(f"\nSleep wall time by number of memories ({result['sleep']['steps']} steps each):\n")
        parts.append("| memories | total s | material s | train s | s per memory | material s per memory |")
        parts.append("|---|---|---|---|---|---|")
        for r in rows:
            parts.append(
                f"| {r['memories']} | {r['total_s']} | {r['material_s']} | {r['train_s']} | {r['per_memory_s']} "
                f"| {r['material_per_memory_s']} |"
            )
        _plot(rows, out / "plot_sleep_scaling.png")
    if "swap" in result:
        w = result["swap"]
        parts.append(
            f"\nSwap: {w['swap_s']} s to the new version on {w['replicas']} replica(s), {w['failed']} failed and "
            f"{w['inconsistent']} inconsistent requests, replicas load weights at {w['replica_load_mb_per_s']} MB/s."
        )
    (out / "system.md").write_text("\n".join(parts) + "\n")


def _plot(rows: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5, 3.5))
    n = [r["memories"] for r in rows]
    ax.plot(n, [r["total_s"] for r in rows], "o-", label="sleep (total)")
    ax.plot(n, [r["material_s"] for r in rows], "s--", label="material (teacher writes)")
    ax.plot(n, [r["train_s"] for r in rows], "^:", label="training (fixed steps)")
    ax.set_xlabel("memories")
    ax.set_ylabel("seconds")
    ax.set_xscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
