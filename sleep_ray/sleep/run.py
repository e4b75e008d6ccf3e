"""One sleep, stage 1 (Knowledge Seeding), driven on a Ray cluster. `sleep-ray sleep` calls `run_seeding`.

    result = run_seeding(cfg, checkpoint="examples/tiny_base", memories=cycle_memories, out_dir=..., cycle=1)

Steps: grow the pre-sleep model into the student's starting point (saved under `<out>.work/init`); start one
actor per role (teacher-self, reward-critic, `resources.rollout_engines` rollout engines); let the teacher write
the prompts, the dreams and its own samples; run the Ray Train loop (`train_loop.py`); export the final weights
as a standard Hugging Face directory at `out_dir` with a JSON record of the run. `out_dir` appears only when
everything succeeded (written beside it, then renamed), so a failed sleep leaves nothing half-made; rerunning
the same command after an interruption resumes from the last Ray Train checkpoint under `<out>.work/`, which
is deleted once the sleep has succeeded. Metrics (JSON lines, TensorBoard) go to `<out>.logs/`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import ray

from sleep_ray.config import Config, ConfigError, SeedingConfig, to_yaml
from sleep_ray.data.grounding import Ledger, check_grounding
from sleep_ray.data.schema import Memory
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import (
    CONFIG_FILE,
    META_FILE,
    CheckpointMeta,
    cast_weights,
    read_meta,
    save_checkpoint,
)
from sleep_ray.models.support import GrowthUnsupportedError, growth_support_at
from sleep_ray.rollout.hf import HFEngine
from sleep_ray.sleep.budget import night_steps
from sleep_ray.sleep.critic import RewardCritic
from sleep_ray.sleep.fit import FitDeadline
from sleep_ray.sleep.records import call
from sleep_ray.sleep.resources import Placement, check_resources, ray_resources, role_actor
from sleep_ray.sleep.student import load_growth, make_student, save_growth
from sleep_ray.sleep.teacher import TeacherSelf
from sleep_ray.sleep.train_loop import MODEL_DIR, shares, train_loop

log = logging.getLogger(__name__)
RECORD_FILE = "sleep_record.json"


@dataclass
class SleepResult:
    checkpoint: Path
    record: dict[str, Any]


def written_sample(items: list[Any], pool: list[list[Any]], n: int) -> list[dict[str, Any]]:
    """Up to `n` questions about memories with the teacher's answers (for the sleep record)."""
    rows: list[dict[str, Any]] = []
    for it, samples in zip(items, pool):
        if it.kind == "question" and len(rows) < n:
            rows.append(
                {"memory_id": it.memory_id, "student": it.student, "teacher_answers": [r.text for r in samples]}
            )
    return rows


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
    student, record = make_student(base, cfg.sleep.growth, seed=cfg.seed * 1000 + cycle, experts_so_far=experts)
    save_checkpoint(init, student, tokenizer, CheckpointMeta(producer="growth", parent=str(checkpoint)), cfg)
    save_growth(init, record)


def _engine_class(cfg: Config) -> Any:
    if cfg.resources.engine == "vllm":
        from sleep_ray.rollout.vllm_engine import VLLMEngine

        return VLLMEngine
    return HFEngine


def init_ray(cfg: Config) -> None:
    """Join the cluster the job runs on (RAY_ADDRESS, `ray job submit`), or start a local one."""
    if not ray.is_initialized():
        r = cfg.resources
        if os.environ.get("RAY_ADDRESS"):  # a cluster's resources are its own, not ours to set
            ray.init(log_to_driver=False, configure_logging=False)
        else:
            cpus, gpus = int(r.num_cpus) or None, int(r.num_gpus) or None
            ray.init(num_cpus=cpus, num_gpus=gpus, log_to_driver=False, configure_logging=False)


def rehearsal_anchor(cfg: Config) -> str:
    """The model old-knowledge rehearsal is held to: `sleep.lifelong.anchor`, else the configured base model;
    '' (the pre-sleep model itself) with `sleep.lifelong.anchor_rehearsal` off."""
    life = cfg.sleep.lifelong
    return (life.anchor or cfg.model.path) if life.anchor_rehearsal else ""


def seeding_roles(cfg: Config) -> dict[str, int]:
    """The actors stage 1 starts, by role (what `check_resources` and the placement group count)."""
    r = cfg.resources
    return {"teacher": r.teachers, "critic": 1, "rollout": r.rollout_engines}


def engine_kwargs(cfg: Config) -> dict[str, Any]:
    """Constructor keywords of the configured rollout engine (threads and dtype; vLLM's parallelism and memory)."""
    r = cfg.resources
    if r.engine == "vllm":
        v = r.vllm
        return {
            "dtype": cfg.model.dtype,
            "tensor_parallel_size": v.tensor_parallel_size,
            "gpu_memory_utilization": v.gpu_memory_utilization,
            "max_model_len": v.max_model_len,
            "enforce_eager": v.enforce_eager,
            "kv_cache_bytes": v.kv_cache_bytes,
        }
    return {"threads": r.threads_per_process, "dtype": cfg.model.dtype}


def _material(
    cfg: Config, teachers: list[Any], memories: list[Memory], cycle: int, recall: Sequence[Memory]
) -> tuple[list[Any], list[Any], list[list[Any]], Ledger]:
    """The teacher-selves write the sleep's material, each a share of the memories: the distillation prompts
    (with self-rehearsal), the Learning-to-Imitate dreams, and `teacher_samples` continuations of every prompt
    (the pool the off-policy half draws from). Returns (items, dreams, pool, ledger) with pool[i] the samples
    of item i and the grounding ledger of everything written; raises GroundingError below the floor."""
    s, timeout = cfg.sleep.seeding, cfg.resources.call_timeout_s
    seed = cfg.seed + cycle
    parts = [(t, m, seed + 7919 * k) for k, (t, m) in enumerate(zip(teachers, shares(memories, len(teachers)))) if m]
    kw = {"temperature": s.temperature}
    refs = [
        t.write_prompts.remote(
            m,
            questions_per_memory=s.questions_per_memory,
            prefixes_per_memory=s.prefixes_per_memory,
            restatements_per_memory=s.restatements_per_memory,
            reading_per_memory=s.reading_per_memory,
            writing_per_memory=s.writing_per_memory,
            rehearsal_fraction=s.rehearsal_fraction,
            seed=sd,
            recall=recall,
            **kw,
        )
        for t, m, sd in parts
    ]
    if s.alpha < 1.0 and s.dreams_per_memory:
        refs += [t.write_dreams.remote(m, per_memory=s.dreams_per_memory, seed=sd, **kw) for t, m, sd in parts]
    written = call(refs, timeout, "teacher-self write_prompts / write_dreams")
    items = [it for part in written[: len(parts)] for it in part]
    dreams = [d for part in written[len(parts) :] for d in part]
    ledger = Ledger(cfg.sleep.grounding.examples)
    for part in call([t.ledger.remote() for t in teachers], timeout, "teacher-self ledger"):
        ledger.merge(part)
    check_grounding(ledger, cfg.sleep.grounding.min_share, f"cycle {cycle}")
    if not items:
        raise ValueError(f"the teacher wrote no usable prompts about cycle {cycle}'s {len(memories)} memories")
    n = s.teacher_samples
    parts_of_items = [x for x in shares(items, len(teachers)) if x]
    refs = [
        t.sample.remote(x, n=n, max_new_tokens=s.max_new_tokens, seed=seed + 7919 * k, **kw)
        for k, (t, x) in enumerate(zip(teachers, parts_of_items))
    ]
    samples = [r for part in call(refs, timeout, "teacher-self sample") for r in part]
    for part in call([t.ledger.remote() for t in teachers], timeout, "teacher-self ledger"):
        ledger.merge(part)  # the answers
    return items, dreams, [samples[i * n : (i + 1) * n] for i in range(len(items))], ledger


def train_student(
    cfg: Config,
    s: SeedingConfig,
    *,
    work: Path,
    logs: Path,
    actors: tuple[list[Any], Any, list[Any]],
    items: list[Any],
    pool: list[list[Any]],
    dreams: list[Any],
    seed: int,
) -> Any:
    """Run the student's Ray Train loop (`train_loop.py`) from `<work>/init` with the role actors
    (teachers, critic, engines); returns the Ray Train result (None when `s.steps` is 0). Rerunning with the
    same `work` resumes from its last checkpoint."""
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    r = cfg.resources
    use_gpu = r.trainer.gpus > 0
    teachers, critic, engines = actors
    storage = (work / "ray").resolve()  # Ray Train resumes a run of the same name from its last checkpoint
    deadline = FitDeadline(r.fit_timeout_s)  # a run still going then is aborted and the sleep fails
    trainer = TorchTrainer(
        train_loop,
        train_loop_config={
            "seeding": s,
            "seed": seed,
            "threads": r.threads_per_process,
            "dtype": cfg.model.dtype,
            "timeout_s": r.call_timeout_s,
            "teachers": teachers,
            "critic": critic,
            "engines": engines,
            "items": items,
            "teacher_pool": pool,
            "dreams": dreams,
            "init": str((work / "init").resolve()),
            "log_dir": str(logs.resolve()),
        },
        scaling_config=ScalingConfig(
            num_workers=r.train_workers,
            use_gpu=use_gpu,
            resources_per_worker=ray_resources(r.trainer) or {"CPU": 0.01},
        ),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(
            name="train",
            storage_path=str(storage),
            checkpoint_config=CheckpointConfig(num_to_keep=1),
            # a dead worker: Ray Train restarts the group, which resumes from the last checkpoint
            failure_config=FailureConfig(max_failures=r.train_max_failures),
            callbacks=[deadline],  # type: ignore[list-item]  # typed as Ray Train v1's (Tune callbacks)
        ),
    )
    return deadline.fit(trainer) if s.steps else None


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
    oldest = s.push_every - (0 if s.prefetch else 1)  # versions a sample can lag behind the trainer
    if oldest > s.max_staleness:
        raise ConfigError(
            f"sleep.seeding.max_staleness={s.max_staleness} would reject the samples of every step: with "
            f"push_every={s.push_every} and prefetch={s.prefetch} they lag up to {oldest} versions"
        )
    check_growth(cfg, checkpoint)  # before the work folder exists: a refusal leaves nothing a rerun resumes
    out = Path(out_dir)
    work = out.with_name(out.name + ".work")
    logs = out.with_name(out.name + ".logs")  # metrics.jsonl and TensorBoard; kept after the sleep
    if not work.exists():  # a fresh sleep, not a resumed one
        shutil.rmtree(logs, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    logs.mkdir(parents=True, exist_ok=True)
    times: dict[str, float] = {}
    t0 = time.time()
    grow_student(cfg, checkpoint, work / "init", cycle)
    times["grow_s"] = time.time() - t0
    init_ray(cfg)
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
    critic = role_actor(RewardCritic, r.critic, place.slot("critic")).remote(
        checkpoint, gamma=s.gamma, z0=s.z0, threads=r.threads_per_process, dtype=cfg.model.dtype
    )
    engine_cls, init = _engine_class(cfg), str(work / "init")
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
        items, dreams, pool, ledger = _material(cfg, teachers, memories, cycle, recall)
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
            dreams=dreams,
            seed=cfg.seed + cycle,
        )
        times["train_s"] = time.time() - t
    finally:
        for a in actors:
            ray.kill(a)
        place.remove()

    record = {
        "cycle": cycle,
        "parent": str(checkpoint),
        "memories": len(memories),
        "windows": windows,
        "prompts": dict(Counter(it.kind for it in items)),
        "dreams": len(dreams),
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
    return SleepResult(exported, record)


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
    growth = load_growth(source) if (source / "growth.json").is_file() else None
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
    (tmp / "growth.json").unlink(missing_ok=True)
    cast_weights(tmp, cfg.model.dtype)
    (tmp / META_FILE).write_text(json.dumps(asdict(meta), indent=2))
    (tmp / CONFIG_FILE).write_text(to_yaml(cfg))
    (tmp / RECORD_FILE).write_text(json.dumps(record, indent=2))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    log.info("sleep: cycle %d -> %s (weight version %d)", cycle, out, meta.version)
    return out
