"""One sleep, stage 2 (Dreaming), driven on a Ray cluster after Knowledge Seeding:

    result = run_dreaming(cfg, parent="examples/tiny_base", seeded="runs/.../cycle-1", memories=..., out_dir=...)

1. **Probes.** The teacher-self (the pre-sleep model) writes `probes_per_memory` questions about each memory with
   a held-out seed and answers them with the memory in context: the task metric tau of the trials (no human label).
2. **Rounds** (`rest_em_rounds + 1`): the dream-generators (the seeded model plus a LoRA adapter, memory in
   context) write dreams; the reward-critics score each dream's importance and the filter keeps top-k + b per
   memory; each kept dream is tried on an isolated LoRA copy of the seeded student (`trials.py`: spread over
   `num_workers` critics, each with a timeout, a dead or stuck critic replaced and its trial re-run); the
   winners (reward 1) are kept. Between rounds, ReST-EM's M-step fine-tunes the generator on the winners.
3. **Rehearsal.** The student (the seeded model, its new expert still the only trainable part) trains in the
   same Ray Train loop as Knowledge Seeding on the winning dreams, distilled from the teacher-self reading the
   memory, mixed with self-rehearsal of old knowledge. The result replaces `out_dir` atomically.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import random
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import ray
from transformers import AutoTokenizer

from sleep_ray.config import Config
from sleep_ray.data.grounding import Ledger
from sleep_ray.data.schema import Memory
from sleep_ray.dream.critic import TrialCritic
from sleep_ray.dream.curriculum import Arm, ArmStats, arm_stats, policy_plan
from sleep_ray.dream.generator import DreamGenerator
from sleep_ray.dream.records import DreamSample, SelfProbe, TrialResult
from sleep_ray.dream.select import select
from sleep_ray.dream.trials import TrialPool
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.models.growth import GrowthRecord
from sleep_ray.records import Rollout, SeedPrompt, call
from sleep_ray.roles.student import GROWTH_FILE, load_growth, save_growth
from sleep_ray.roles.teacher import TeacherSelf
from sleep_ray.roles.train_loop import MODEL_DIR, shares
from sleep_ray.rollout.engine import make_rollout
from sleep_ray.runtime.budget import night_steps
from sleep_ray.runtime.cluster import engine_kwargs, init_ray
from sleep_ray.runtime.export import (
    RECORD_FILE,
    SleepResult,
    export_checkpoint,
    read_metrics,
    rehearsal_anchor,
    stage_folders,
)
from sleep_ray.runtime.fit import train_student
from sleep_ray.runtime.resources import check_resources, role_actor
from sleep_ray.seeds import derive

log = logging.getLogger(__name__)


def growth_of(checkpoint: str) -> GrowthRecord | None:
    """The expert of the sleep that produced `checkpoint` (its metadata, or growth.json of a freshly grown one)."""
    if (Path(checkpoint) / GROWTH_FILE).is_file():
        return load_growth(checkpoint)
    g = read_meta(checkpoint).extra.get("growth")
    return None if g is None else GrowthRecord(**{**g, "layers": tuple(g["layers"])})


def write_probes(cfg: Config, teacher: Any, memories: list[Memory]) -> list[SelfProbe]:
    """Held-out questions about each memory, answered by the teacher-self with the memory in context."""
    d, timeout = cfg.sleep.dreaming, cfg.resources.call_timeout_s
    ref = teacher.write_questions.remote(memories, per_memory=d.probes_per_memory, seed=d.probe_seed)
    items = call(ref, timeout, "teacher-self write_prompts (probes)")
    ref = teacher.answer.remote([it.teacher for it in items], max_new_tokens=d.max_new_tokens)
    answers = call(ref, timeout, "teacher-self answer (probes)")
    return [SelfProbe(it.memory_id, it.student, a) for it, a in zip(items, answers) if a.strip()]


def filter_dreams(
    cfg: Config, critics: list[Any], dreams: list[DreamSample], seed: int, plan: dict[Arm, int] | None = None
) -> list[DreamSample]:
    """The importance filter, per memory: top-k by gradient norm plus b at random (all with `filter` off); with
    a curriculum's `plan`, the top plan[(memory, kind)] of each arm's dreams."""
    d = cfg.sleep.dreaming
    if not d.filter or not dreams:
        return dreams
    parts = [x for x in shares(dreams, len(critics)) if x]
    refs = [c.importance.remote(x) for c, x in zip(critics, parts)]
    scores = [v for part in call(refs, cfg.resources.call_timeout_s, "reward-critic importance") for v in part]
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, dream in enumerate(dreams):
        groups[dream.memory_id if plan is None else (dream.memory_id, dream.kind)].append(i)
    rng, kept = random.Random(seed), []
    for key in sorted(groups):
        idx = groups[key]
        k, b = (d.top_k, d.random_b) if plan is None else (plan.get(key, 0), 0)
        kept += [idx[j] for j in select([scores[i] for i in idx], k, b, rng)]
    return [dreams[i] for i in sorted(kept)]


def plan_round(
    cfg: Config, policy: Any, memories: list[Memory], stats: dict[Arm, ArmStats], seed: int
) -> dict[Arm, int]:
    """Trials per (memory, kind) for the next round, drawn from the curriculum policy given the rounds so far."""
    d, ids = cfg.sleep.dreaming, [m.memory_id for m in memories]
    rng = np.random.default_rng(seed)
    return policy_plan(policy, ids, list(d.kinds), stats, per_memory=d.top_k + d.random_b, rng=rng)


def _rehearsal_material(
    cfg: Config,
    teacher: Any,
    tokenizer: Any,
    memories: list[Memory],
    winners: list[DreamSample],
    seed: int,
    recall: Sequence[Memory] = (),
) -> tuple[list[SeedPrompt], list[list[Rollout]]]:
    """Training items: each winning dream (the student reads its closed-book prompt, the teacher the memory and
    the same prompt; the dream's completion is the sequence scored), plus self-rehearsal with the teacher's own
    samples: `memory_questions` fresh questions about each of this sleep's memories (memory in the teacher's
    context), so what stage 1 stored is kept while the winners are learnt, and old knowledge (questions with no
    memory, which the anchor answers reading the latest of `recall` that names the same person, and a
    `seeding.text_share` of the anchor's own free text), a `dreaming.rehearsal_fraction` share of everything."""
    s, d, timeout = cfg.sleep.seeding, cfg.sleep.dreaming, cfg.resources.call_timeout_s
    items = [SeedPrompt(w.student, w.teacher, "dream", w.memory_id) for w in winners]
    # a dream's completion is the fixed sequence the teacher scores (a teacher rollout: never stale)
    pool = [[make_rollout(tokenizer, w.teacher, w.completion, ("\n",), -1, "teacher")] for w in winners]
    if not d.rehearsal or not (items or d.memory_questions):
        return items, pool
    extra = []
    if d.memory_questions:
        ref = teacher.write_questions.remote(
            memories,
            per_memory=d.memory_questions,
            seed=seed + 5,
            temperature=s.temperature,
            reading=s.reading_per_memory,
            swapped_reading=s.swapped_reading_per_memory,
        )
        extra += call(ref, timeout, "teacher-self write_prompts")
    n = round((len(items) + len(extra)) * d.rehearsal_fraction / max(1e-9, 1.0 - d.rehearsal_fraction))
    ref = teacher.rehearsal.remote(
        n, seed=seed, temperature=s.temperature, recall=list(recall), text_share=s.text_share
    )
    extra += call(ref, timeout, "teacher-self rehearsal")
    k = s.teacher_samples
    ref = teacher.sample.remote(extra, n=k, max_new_tokens=s.max_new_tokens, temperature=s.temperature, seed=seed)
    samples = call(ref, timeout, "teacher-self sample")
    return items + extra, pool + [samples[i * k : (i + 1) * k] for i in range(len(extra))]


def run_dreaming(
    cfg: Config,
    *,
    parent: str,
    seeded: str | Path,
    memories: list[Memory],
    out_dir: str | Path,
    cycle: int,
    recall: Sequence[Memory] = (),
) -> SleepResult:
    """Dream about `memories` and rehearse the best dreams into `seeded` (stage 1's output, weight version kept);
    the result replaces `out_dir`; `recall` as for `run_seeding`. See the module docstring."""
    d, r = cfg.sleep.dreaming, cfg.resources
    if not memories:
        raise ValueError(f"cycle {cycle} has no memories to dream about")
    policy = None
    if d.curriculum == "ppo":  # the policy file is required at config load
        from sleep_ray.dream.curriculum_ppo import load_policy

        policy = load_policy(d.curriculum_policy)
    seeded, out = str(seeded), Path(out_dir)
    version = read_meta(seeded).version
    work, logs = stage_folders(out, "dreaming")
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(logs, ignore_errors=True)
    logs.mkdir(parents=True)
    growth = growth_of(seeded)
    shutil.copytree(seeded, work / "init")
    save_growth(work / "init", growth)
    init_ray(cfg.resources)
    roles = {"teacher": 1, "dream_generator": d.num_workers, "trial_critic": d.num_workers}
    check_resources(r, roles, r.train_workers if d.rehearsal_steps else 0)

    t0, times = time.time(), {}
    seed = cfg.seed + cycle
    threads = r.threads_per_process
    teacher = role_actor(TeacherSelf, r.teacher).remote(
        parent, threads=threads, dtype=cfg.model.dtype, anchor=rehearsal_anchor(cfg)
    )
    gens = [
        role_actor(DreamGenerator, r.dream_generator).remote(
            seeded,
            d,
            threads=threads,
            seed=seed,
            engine=r.engine,
            engine_kwargs=engine_kwargs(cfg),
            dtype=cfg.model.dtype,
        )
        for _ in range(d.num_workers)
    ]
    actors: list[Any] = [teacher, *gens]
    pool: TrialPool | None = None
    try:
        probes = write_probes(cfg, teacher, memories)
        contexts = call(teacher.contexts.remote(memories), r.call_timeout_s, "teacher-self contexts")
        times["probes_s"] = time.time() - t0

        def new_critic(worker: int) -> Any:
            cls = role_actor(TrialCritic, r.trial_critic)
            return cls.remote(
                seeded,
                probes,
                d,
                growth=growth,
                threads=threads,
                worker=worker,
                score=cfg.eval.score,
                dtype=cfg.model.dtype,
            )

        pool = TrialPool(new_critic, d.num_workers, d.trial_timeout_s)
        rounds, winners = [], []
        tried: list[DreamSample] = []
        results_all: list[TrialResult] = []
        for rnd in range(d.rest_em_rounds + 1 if d.rehearse_winners else 0):
            t = time.time()
            parts = [x for x in shares(contexts, len(gens)) if x]
            wseed = [derive(seed, rnd * 31 + k, base=1009) for k in range(len(parts))]
            plan = (
                plan_round(cfg, policy, memories, arm_stats(results_all, tried), seed + rnd) if policy and rnd else None
            )
            if plan is None:
                refs = [
                    g.write.remote(x, per_memory=d.dreams_per_memory, seed=s_, round_=rnd)
                    for g, x, s_ in zip(gens, parts, wseed)
                ]
            else:  # as many dreams per arm as the filter needs to pick the plan's trials from (or the trials)
                per = -(-d.dreams_per_memory // max(1, d.top_k + d.random_b)) if d.filter else 1
                counts = {arm: n * per for arm, n in plan.items()}
                refs = [g.write_plan.remote(x, counts, seed=s_, round_=rnd) for g, x, s_ in zip(gens, parts, wseed)]
            dreams = [x for part in call(refs, r.call_timeout_s, "dream-generator write") for x in part]
            kept = filter_dreams(cfg, pool.actors, dreams, seed + rnd, plan)
            t_trials = time.time()
            results = pool.run(kept, seed=seed + rnd)
            t_trials = time.time() - t_trials
            won = [x for x, res in zip(kept, results) if res.reward > 0]
            winners += won
            tried, results_all = tried + kept, results_all + results
            _log_trials(logs / "trials.jsonl", rnd, kept, results)
            rounds.append(_round_stats(rnd, dreams, kept, results, t_trials, time.time() - t))
            log.info("dreaming round %d: %s", rnd, rounds[-1])
            # M-step: the generator learns from its winners; the other generators copy its adapter
            if d.rest_em and rnd < d.rest_em_rounds and won:
                call(gens[0].learn.remote(won, seed=seed + rnd), r.call_timeout_s, "dream-generator learn")
                arrays, gv = call(gens[0].adapter.remote(), r.call_timeout_s, "dream-generator adapter")
                ref = ray.put(arrays)
                call([g.load_adapter.remote(ref, gv) for g in gens[1:]], r.call_timeout_s, "adapter push")
        times["rounds_s"] = time.time() - t0 - times["probes_s"]

        t = time.time()
        tokenizer = AutoTokenizer.from_pretrained(seeded, local_files_only=True)
        items, sample_pool = _rehearsal_material(cfg, teacher, tokenizer, memories, winners, seed, recall)
        steps = night_steps(
            len(contexts) if items else 0,
            per_window=d.rehearsal_steps_per_memory,
            floor=d.min_rehearsal_steps,
            cap=d.rehearsal_steps,
        )
        s = dataclasses.replace(
            cfg.sleep.seeding, steps=steps, lr=d.rehearsal_lr, batch_size=d.rehearsal_batch_size, alpha=1.0, lmbda=0.0
        )
        result = train_student(
            cfg,
            s,
            work=work,
            logs=logs,
            actors=([teacher], None, []),
            items=items,
            pool=sample_pool,
            imitation=[],
            seed=seed + 17,
        )
        times["rehearsal_s"] = time.time() - t
        ledger = Ledger(cfg.sleep.grounding.examples)
        for part in call([teacher.ledger.remote(), *[g.ledger.remote() for g in gens]], r.call_timeout_s, "ledgers"):
            ledger.merge(part)
    finally:
        for a in actors + (pool.actors if pool is not None else []):
            ray.kill(a)

    stage1 = Path(seeded) / RECORD_FILE
    record = json.loads(stage1.read_text()) if stage1.is_file() else {}
    record["dreaming"] = {
        "probes": len(probes),
        "rounds": rounds,
        "winners": len(winners),
        "winners_by_kind": {k: sum(w.kind == k for w in winners) for k in d.kinds},
        "rehearsal_items": dict(Counter(it.kind for it in items)),
        "rehearsal_steps": s.steps,
        "grounding": ledger.summary(),
        "winners_written": [{"memory_id": w.memory_id, "kind": w.kind, "written": w.written} for w in winners][
            : cfg.sleep.grounding.examples
        ],
        "trial_retries": pool.retries,
        "timings": {**times, "total_s": time.time() - t0},
        "metrics": read_metrics(logs / "metrics.jsonl"),
    }
    source = work / "init"
    if result is not None:
        if result.checkpoint is None:
            raise RuntimeError(f"Ray Train finished without a checkpoint (error: {result.error})")
        source = Path(result.checkpoint.path) / MODEL_DIR
    record.setdefault("steps", 0)
    exported = export_checkpoint(cfg, parent, source, out, cycle, record, version)
    shutil.rmtree(work, ignore_errors=True)
    dreaming = record["dreaming"]
    return SleepResult(exported, "dreaming", record["weight_version"], s.steps, dreaming["timings"]["total_s"], record)


def _log_trials(path: Path, rnd: int, kept: list[DreamSample], results: list[TrialResult]) -> None:
    """One JSON line per trial (the data a curriculum learns from)."""
    with path.open("a") as f:
        for x, res in zip(kept, results):
            row = {"round": rnd, "memory_id": x.memory_id, "kind": x.kind, "generator_version": x.generator_version}
            f.write(json.dumps({**row, "before": res.before, "after": res.after, "reward": res.reward}) + "\n")


def _round_stats(
    rnd: int, dreams: list[DreamSample], kept: list[DreamSample], results: list[TrialResult], trials_s: float, s: float
) -> dict[str, Any]:
    n = max(1, len(results))
    return {
        "round": rnd,
        "dreams": len(dreams),
        "kept": len(kept),
        "mean_reward": sum(x.reward for x in results) / n,
        "mean_gain": sum(x.gain for x in results) / n,
        "trials_per_min": 60.0 * len(results) / max(1e-9, trials_s),
        "seconds": s,
    }
