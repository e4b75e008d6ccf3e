"""A night's folders, the student's starting point and the exported checkpoint: what both sleep stages and the
wake scheduler agree on.

    work, logs = stage_folders(out, "seeding")     # <out>.work, <out>.logs (Dreaming: <out>.dream.work, ...)
    grow_student(cfg, parent, work / "init", cycle)
    ...
    export_checkpoint(cfg, parent, trained_dir, out, cycle, record, version)   # atomic; writes RECORD_FILE

`out` appears only when a stage succeeded (written beside it, then renamed); the work folder holds what a rerun
resumes from and is deleted once the stage has succeeded; the log folder (metrics.jsonl, TensorBoard) is kept.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from sleep_ray.config import Config, to_yaml
from sleep_ray.config.architecture import GrowthUnsupportedError, growth_support_at
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import (
    CONFIG_FILE,
    META_FILE,
    CheckpointMeta,
    cast_weights,
    read_meta,
    save_checkpoint,
)
from sleep_ray.roles.student import GROWTH_FILE, load_growth, make_student, save_growth
from sleep_ray.seeds import derive

log = logging.getLogger(__name__)
RECORD_FILE = "sleep_record.json"
_SUFFIX = {"seeding": "", "dreaming": ".dream"}


@dataclass(frozen=True)
class SleepResult:
    """What a sleep stage returns: its checkpoint and the stage's own figures, typed; `record` is the JSON document
    written beside the checkpoint as RECORD_FILE (the whole night so far, for a person and for `sleep-ray night`)."""

    checkpoint: Path
    stage: str  # "seeding" | "dreaming"
    weight_version: int
    steps: int  # this stage's optimizer steps
    seconds: float  # this stage's wall time
    record: dict[str, Any]


def stage_folders(out: Path, stage: str) -> tuple[Path, Path]:
    """(work, logs) of a sleep stage writing `out`: `<out>[.dream].work` and `<out>[.dream].logs`."""
    suffix = _SUFFIX[stage]
    return out.with_name(f"{out.name}{suffix}.work"), out.with_name(f"{out.name}{suffix}.logs")


def check_growth(cfg: Config, checkpoint: str) -> None:
    """Raise GrowthUnsupportedError for an architecture growth cannot widen (before anything is written)."""
    reason = growth_support_at(checkpoint) if cfg.sleep.growth.enabled else None
    if reason is not None:
        raise GrowthUnsupportedError(reason)


def grow_student(cfg: Config, checkpoint: str, init: Path, cycle: int) -> None:
    """Save the student's starting point: the pre-sleep model grown by one expert (function-preserving), in
    `model.dtype`. Raises GrowthUnsupportedError, before anything is loaded or written, for an architecture growth
    cannot widen."""
    check_growth(cfg, checkpoint)
    if (init / "config.json").is_file():
        return  # a resumed sleep keeps the expert it started with
    base, tokenizer = load_pretrained(checkpoint, cfg.model.dtype)
    experts = int(read_meta(checkpoint).extra.get("experts", 0))
    student, record = make_student(
        base, cfg.sleep.growth, seed=derive(cfg.seed, cycle, base=1000), experts_so_far=experts
    )
    save_checkpoint(init, student, tokenizer, CheckpointMeta(producer="growth", parent=str(checkpoint)), cfg)
    save_growth(init, record)


def rehearsal_anchor(cfg: Config) -> str:
    """The model old-knowledge rehearsal is held to: `sleep.lifelong.anchor`, else the configured base model;
    '' (the pre-sleep model itself) with `sleep.lifelong.anchor_rehearsal` off."""
    life = cfg.sleep.lifelong
    return (life.anchor or cfg.model.path) if life.anchor_rehearsal else ""


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Per-step metrics; after a resume, the steps redone since the last checkpoint keep their latest row."""
    if not path.is_file():
        return []
    rows = {int(r["step"]): r for r in (json.loads(line) for line in path.read_text().splitlines() if line.strip())}
    return [rows[k] for k in sorted(rows)]


def export_checkpoint(
    cfg: Config, parent: str, source: Path, out: Path, cycle: int, record: dict[str, Any], version: int | None
) -> Path:
    """Copy the trained HF directory to `out` (atomically) with the new weight version and the run record, its
    weights in `model.dtype` (the student trains on float32 master weights)."""
    parent_meta = read_meta(parent)
    growth = load_growth(source) if (source / GROWTH_FILE).is_file() else None
    experts = int(parent_meta.extra.get("experts", 0)) + (1 if growth is not None else 0)
    meta = CheckpointMeta(
        version=parent_meta.version + 1 if version is None else version,
        step=int(record["steps"]),
        seed=cfg.seed,
        producer="sleep",
        parent=str(parent),
        extra={
            **{k: v for k, v in parent_meta.extra.items() if k == "world"},
            "cycle": cycle,
            "experts": experts,
            "growth": None if growth is None else asdict(growth),
        },
    )
    record["weight_version"] = meta.version
    tmp = out.with_name(out.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(source, tmp)
    (tmp / GROWTH_FILE).unlink(missing_ok=True)
    cast_weights(tmp, cfg.model.dtype)
    (tmp / META_FILE).write_text(json.dumps(asdict(meta), indent=2))
    (tmp / CONFIG_FILE).write_text(to_yaml(cfg))
    (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.info("sleep: cycle %d -> %s (weight version %d)", cycle, out, meta.version)
    return out
