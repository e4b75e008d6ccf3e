"""What a night wrote and decided, for a person to read: `sleep-ray night <checkpoint>` prints this.

It reads the sleep record saved beside a slept checkpoint (`sleep_record.json`): the step budget, how much of
the written material was grounded in its memory (kept, repaired, dropped, per kind, with examples and the
reasons), questions with the teacher's answers, and Dreaming's rounds and winning dreams.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from sleep_ray.runtime.export import RECORD_FILE


def read_record(checkpoint: str | Path) -> dict[str, Any]:
    path = Path(checkpoint) / RECORD_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no sleep record (is {checkpoint} the output of a sleep?)")
    return dict(json.loads(path.read_text()))


def _grounding_table(title: str, grounding: dict[str, Any]) -> Table:
    t = Table(title=f"{title}: grounded share {grounding.get('grounded_share', 1.0):.3f}")
    for col in ("kind", "written", "kept", "repaired", "dropped"):
        t.add_column(col, justify="left" if col == "kind" else "right")
    for kind, c in sorted(grounding.get("counts", {}).items()):
        t.add_row(kind, *(str(c[k]) for k in ("written", "kept", "repaired", "dropped")))
    return t


def _examples(grounding: dict[str, Any]) -> list[Text]:
    out = []
    for key, rows in sorted(grounding.get("samples", {}).items()):
        if key.endswith("/kept"):
            continue
        for r in rows[:3]:
            written = r["written"].strip().replace("\n", " | ")
            used = f"  ->  {r['used']}" if "used" in r else ""
            out.append(Text(f"  {key}: {written}{used}   ({r.get('reason', '')})"))
    return out


def night_report(record: dict[str, Any]) -> Group:
    """A rich renderable of one night (module docstring)."""
    parts: list[Any] = [
        Text(
            f"cycle {record.get('cycle')}: {record.get('memories')} memories in {record.get('windows', '?')} windows, "
            f"{record.get('steps')} seeding steps, weight version {record.get('weight_version')}",
            style="bold",
        ),
        Text(f"prompts by kind: {record.get('prompts')}"),
    ]
    if "grounding" in record:
        parts += [_grounding_table("Knowledge Seeding", record["grounding"]), *_examples(record["grounding"])]
    for row in record.get("written", []):
        answers = " / ".join(a.strip() for a in row["teacher_answers"])
        parts.append(Text(f"  [{row['memory_id']}] {row['student'].strip()} {answers}".replace("\n", " ")))
    dr = record.get("dreaming")
    if dr:
        parts.append(
            Text(
                f"Dreaming: {dr.get('probes')} probes, {len(dr.get('rounds', []))} rounds, "
                f"{dr.get('winners')} winners, {dr.get('rehearsal_steps')} rehearsal steps",
                style="bold",
            )
        )
        if "grounding" in dr:
            parts += [_grounding_table("Dreaming", dr["grounding"]), *_examples(dr["grounding"])]
        for w in dr.get("winners_written", []):
            parts.append(Text(f"  winner [{w['memory_id']}, {w['kind']}]: {w['written'].strip()}".replace("\n", " | ")))
    return Group(*parts)
