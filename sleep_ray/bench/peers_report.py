"""The table and the plot of `sleep-ray bench peers` (written by `peers.run_peers`, printed by the CLI)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

COLUMNS = (
    "method",
    "library",
    "lr",
    "closed-book new",
    "share of in-context",
    "retention",
    "updated new / stale",
    "wall s",
    "CPU s",
    "tokens",
    "trainable params",
    "steps",
    "quality/s vs sleep",
)


def _row(r: dict[str, Any]) -> list[str]:
    cb = r["closed_book"]
    upd = "-" if cb.get("updated") is None else f"{cb['updated']:.3f} / {cb['updated_stale']:.3f}"
    lr = f"{r['tuning']['lr']:g}" if "tuning" in r else "config"
    ratio = r.get("quality_per_s_vs_sleep")
    wall = f"{r['wall_s']:.0f}" + (" (limit)" if r.get("stopped_by_wall") else "")
    return [
        r["method"],
        f"{r['library']} {r['version']}",
        lr,
        f"{cb['new']:.3f}",
        f"{r['share_of_in_context']:.3f}",
        f"{r['retention']:.3f}",
        upd,
        wall,
        "-" if r["cpu_s"] is None else f"{r['cpu_s']:.0f}",
        f"{r['tokens']:,}",
        f"{r['trainable']:,}",
        str(r["steps"]),
        "-" if ratio is None else f"{ratio:.2f}",
    ]


def table(result: dict[str, Any]) -> str:
    """A markdown table, a row per method, with the day's before and in-context figures above it."""
    b, c = result["before"], result["in_context"]
    head = (
        f"{result['memories']} memories; closed-book before {b['new']:.3f}, in context (the ceiling) "
        f"{c['new']:.3f}; base knowledge before {b['base']:.3f}; wall limit {result['wall_limit_s']:.0f} s\n\n"
    )
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_row(r)) + " |" for r in result["methods"]]
    tuned = [
        f"- {r['method']}: lr {r['tuning']['lr']:g} picked of {r['tuning']['sleep_split_new']} "
        "(closed-book new people on the sleep-split probes)"
        for r in result["methods"]
        if "tuning" in r
    ]
    return head + "\n".join(lines) + ("\n\n" + "\n".join(tuned) if tuned else "")


def plot(result: dict[str, Any], path: Path) -> None:
    """Closed-book accuracy on the day's held-out new-people probes against training wall time, per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for r in result["methods"]:
        xs, ys = zip(*r["curve"])
        ax.plot(xs, ys, marker="o", label=r["method"])
    ax.axhline(result["in_context"]["new"], color="grey", linestyle="--", label="in context (ceiling)")
    ax.set_xlabel("training wall time (s)")
    ax.set_ylabel("closed-book accuracy, new people (held-out)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
