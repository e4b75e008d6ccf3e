"""One sleep, stage 1 (Knowledge Seeding), driven on a Ray cluster. `sleep-ray sleep` calls `run_seeding`.

    result = run_seeding(cfg, checkpoint="examples/tiny_base", memories=cycle_memories, out_dir=..., cycle=1)

Steps: grow the pre-sleep model into the student's starting point (saved under `<out>.work/init`); start one
actor per role (teacher-self, the Learning-to-Imitate critic, `resources.rollout_engines` rollout engines); let
the teacher write the prompts, the Learning-to-Imitate items and its own samples; run the Ray Train loop
(`roles/train_loop.py`); export the final weights as a standard Hugging Face directory at `out_dir` with a JSON
record of the run (`runtime/export.py`). `out_dir` appears only when everything succeeded, so a failed sleep
leaves nothing half-made; rerunning the same command after an interruption resumes from the last Ray Train
checkpoint under `<out>.work/`, which is deleted once the sleep has succeeded. Metrics (JSON lines, TensorBoard)
go to `<out>.logs/`.
"""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import ray

from sleep_ray.config import Config, to_yaml
from sleep_ray.data.grounding import Ledger, check_grounding
from sleep_ray.data.schema import Memory
from sleep_ray.records import ImitationItem, Rollout, SeedPrompt, call
from sleep_ray.roles.imitation_critic import ImitationCritic
from sleep_ray.roles.teacher import TeacherSelf
from sleep_ray.roles.train_loop import MODEL_DIR, shares
from sleep_ray.runtime.budget import night_steps
from sleep_ray.runtime.cluster import engine_class, engine_kwargs, init_ray
from sleep_ray.runtime.export import (
    SleepResult,
    check_growth,
    export_checkpoint,
    grow_student,
    read_metrics,
    rehearsal_anchor,
    stage_folders,
)
from sleep_ray.runtime.fit import train_student
from sleep_ray.runtime.resources import Placement, check_resources, role_actor
from sleep_ray.seeds import for_worker


def written_sample(items: list[SeedPrompt], pool: list[list[Rollout]], n: int) -> list[dict[str, Any]]:
    """Up to `n` questions about memories with the teacher's answers (for the sleep record)."""
    rows: list[dict[str, Any]] = []
    for it, samples in zip(items, pool):
        if it.kind == "question" and len(rows) < n:
            rows.append(
                {"memory_id": it.memory_id, "student": it.student, "teacher_answers": [r.text for r in samples]}
            )
    return rows


def seeding_roles(cfg: Config) -> dict[str, int]:
    """The actors stage 1 starts, by role (what `check_resources` and the placement group count)."""
    r = cfg.resources
    return {"teacher": r.teachers, "critic": 1, "rollout": r.rollout_engines}


def _material(
    cfg: Config, teachers: list[Any], memories: list[Memory], cycle: int, recall: Sequence[Memory]
) -> tuple[list[SeedPrompt], list[ImitationItem], list[list[Rollout]], Ledger]:
    """The teacher-selves write the sleep's material, each a share of the memories: the distillation prompts
    (with self-rehearsal), the Learning-to-Imitate items, and `teacher_samples` continuations of every prompt
    (the pool the off-policy half draws from). Returns (items, imitation, pool, ledger) with pool[i] the samples
    of item i and the grounding ledger of everything written; raises GroundingError below the floor."""
    s, timeout = cfg.sleep.seeding, cfg.resources.call_timeout_s
    seed = cfg.seed + cycle
    parts = [
        (t, m, for_worker(seed, k)) for k, (t, m) in enumerate(zip(teachers, shares(memories, len(teachers)))) if m
    ]
    kw = {"temperature": s.temperature}
    refs = [
        t.write_prompts.remote(
            m,
            questions_per_memory=s.questions_per_memory,
            prefixes_per_memory=s.prefixes_per_memory,
            restatements_per_memory=s.restatements_per_memory,
            reading_per_memory=s.reading_per_memory,
            swapped_reading_per_memory=s.swapped_reading_per_memory,
            writing_per_memory=s.writing_per_memory,
            rehearsal_fraction=s.rehearsal_fraction,
            text_share=s.text_share,
            seed=sd,
            recall=recall,
            **kw,
        )
        for t, m, sd in parts
    ]
    if s.alpha < 1.0 and s.imitation_per_memory:
        refs += [t.write_imitation.remote(m, per_memory=s.imitation_per_memory, seed=sd, **kw) for t, m, sd in parts]
    written = call(refs, timeout, "teacher-self write_prompts / write_imitation")
    items = [it for part in written[: len(parts)] for it in part]
    imitation = [d for part in written[len(parts) :] for d in part]
    ledger = Ledger(cfg.sleep.grounding.examples)
    for part in call([t.ledger.remote() for t in teachers], timeout, "teacher-self ledger"):
        ledger.merge(part)
    check_grounding(ledger, cfg.sleep.grounding.min_share, f"cycle {cycle}")
    if not items:
        raise ValueError(f"the teacher wrote no usable prompts about cycle {cycle}'s {len(memories)} memories")
    n = s.teacher_samples
    parts_of_items = [x for x in shares(items, len(teachers)) if x]
    refs = [
        t.sample.remote(x, n=n, max_new_tokens=s.max_new_tokens, seed=for_worker(seed, k), **kw)
        for k, (t, x) in enumerate(zip(teachers, parts_of_items))
    ]
    samples = [r for part in call(refs, timeout, "teacher-self sample") for r in part]
    for part in call([t.ledger.remote() for t in teachers], timeout, "teacher-self ledger"):
        ledger.merge(part)  # the answers
    return items, imitation, [samples[i * n : (i + 1) * n] for i in range(len(items))], ledger


def run_seeding(
    cfg: Config,
    *,
    checkpoint: str,
    memories: list[Memory],
    out_dir: str | Path,
    cycle: int,
    version: int | None = None,
    recall: Sequence[Memory] = (),
) -> SleepResult:
    """Consolidate `memories` into a grown copy of `checkpoint`, written to `out_dir` with weight version `version`
    (default: the parent's + 1); `recall`: stored memories old-knowledge rehearsal may read (oldest first). See
    the module docstring."""
    if not memories:
        raise ValueError(f"cycle {cycle} has no memories to consolidate")
    s, r = cfg.sleep.seeding, cfg.resources
    check_growth(cfg, checkpoint)  # before the work folder exists: a refusal leaves nothing a rerun resumes
    out = Path(out_dir)
    work, logs = stage_folders(out, "seeding")
    if not work.exists():  # a fresh sleep, not a resumed one
        shutil.rmtree(logs, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.time()
    grow_student(cfg, checkpoint, work / "init", cycle)
    times["grow_s"] = time.time() - t0
    init_ray(r)
    roles = seeding_roles(cfg)
    check_resources(r, roles, r.train_workers if s.steps else 0)

    t = time.time()
    place = Placement(r, roles)
    teachers = [
        role_actor(TeacherSelf, r.teacher, place.slot("teacher")).remote(
            checkpoint, threads=r.threads_per_process, dtype=cfg.model.dtype, anchor=rehearsal_anchor(cfg)
        )
        for _ in range(r.teachers)
    ]
    critic = role_actor(ImitationCritic, r.critic, place.slot("critic")).remote(
        checkpoint, gamma=s.gamma, z0=s.z0, threads=r.threads_per_process, dtype=cfg.model.dtype
    )
    engine_cls, init = engine_class(cfg), str(work / "init")
    # Ray restarts a dead engine (from init); the train loop's EnginePool gives it the current weights again
    engines = [
        role_actor(engine_cls, r.rollout, place.slot("rollout"), max_restarts=r.engine_max_restarts).remote(
            init, version=0, **engine_kwargs(cfg)
        )
        for _ in range(r.rollout_engines)
    ]
    actors = [*teachers, critic, *engines]
    try:
        windows = len(call(teachers[0].contexts.remote(memories), r.call_timeout_s, "teacher-self contexts"))
        s = dataclasses.replace(
            s, steps=night_steps(windows, per_window=s.steps_per_memory, floor=s.min_steps, cap=s.steps)
        )
        items, imitation, pool, ledger = _material(cfg, teachers, memories, cycle, recall)
        times["material_s"] = time.time() - t

        t = time.time()
        result = train_student(
            cfg,
            s,
            work=work,
            logs=logs,
            actors=(teachers, critic, engines),
            items=items,
            pool=pool,
            imitation=imitation,
            seed=cfg.seed + cycle,
        )
        times["train_s"] = time.time() - t
    finally:
        for a in actors:
            ray.kill(a)
        place.remove()

    record: dict[str, Any] = {
        "cycle": cycle,
        "parent": str(checkpoint),
        "memories": len(memories),
        "windows": windows,
        "prompts": dict(Counter(it.kind for it in items)),
        "imitation_items": len(imitation),
        "steps": s.steps,
        "grounding": ledger.summary(),
        "written": written_sample(items, pool, cfg.sleep.grounding.examples),
        "train_workers": r.train_workers,
        "rollout_engines": r.rollout_engines,
        "engine": r.engine,
        "timings": {**times, "total_s": time.time() - t0},
        "metrics": read_metrics(logs / "metrics.jsonl"),
        "config": to_yaml(cfg),
    }
    source = work / "init"
    if result is not None:
        if result.checkpoint is None:
            raise RuntimeError(f"Ray Train finished without a checkpoint (error: {result.error})")
        source = Path(result.checkpoint.path) / MODEL_DIR
    exported = export_checkpoint(cfg, checkpoint, source, out, cycle, record, version)
    shutil.rmtree(work, ignore_errors=True)  # done: a rerun starts afresh; an interrupted run keeps it to resume
    return SleepResult(exported, "seeding", record["weight_version"], s.steps, record["timings"]["total_s"], record)
