"""The student-large's training loop: one Ray Train worker (DDP; gloo on CPU, NCCL on GPU) per rank.

Each optimizer step, every rank:
  1. takes the rollouts its plan asked for: `batch_size` distillation prompts, for a `lmbda` share the student
     sampled the continuation (a rollout engine, no context), for the rest a stored teacher sample is used;
     and (alpha < 1) `imitation_prompts` dream prefixes completed `group_size` times;
  2. with `prefetch`, asks the engine for the next step's rollouts at once, so that sampling overlaps the
     rest of this step (those samples come from weights one version older);
  3. re-asks any share sampled by weights more than `max_staleness` versions old (a restarted engine's: the
     pool loads the current weights into it first), so every sample it trains on is fresh enough;
  4. asks the teacher-self for its logits on the continuations (memory in context) -> L_dist, and at the same
     time the imitation critic for the completions' rewards -> L_lti, while it runs its own forward passes;
  5. steps the optimizer on alpha * L_dist + (1 - alpha) * L_lti (DDP averages the expert's gradients).
Rank 0 then pushes the trainable tensors to every rollout engine (numpy arrays through the object store,
version = optimizer steps taken), logs metrics, and saves Ray Train checkpoints from which a rerun resumes.
"""

from __future__ import annotations

import functools
import json
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from sleep_ray.config import SeedingConfig
from sleep_ray.records import ImitationItem, Rollout, SeedPrompt, call
from sleep_ray.roles.student import (
    GROWTH_FILE,
    distill_from_logits,
    imitation_from_logits,
    load_student,
    prepare_trainable,
    student_logits,
    trainable_arrays,
)
from sleep_ray.rollout.pool import EnginePool
from sleep_ray.seeds import derive, for_worker

STATE_FILE = "train_state.pt"
MODEL_DIR = "model"


@dataclass(frozen=True)
class LoopArgs:
    """Everything one train worker needs, built by `sleep_ray.runtime.fit.train_student` for either stage.

    teachers / critic / engines: Ray actor handles (teacher-selves, the Learning-to-Imitate critic, the rollout
    engines); items: the distillation prompts; teacher_pool[i]: the teacher's stored samples for items[i];
    imitation: the Learning-to-Imitate items; init: the student's starting HF directory; log_dir: metrics.
    """

    seeding: SeedingConfig
    seed: int
    threads: int
    dtype: str
    timeout_s: float
    teachers: list[Any]
    critic: Any
    engines: list[Any]
    items: list[SeedPrompt]
    teacher_pool: list[list[Rollout]]
    imitation: list[ImitationItem]
    init: str
    log_dir: str


def _save(
    to: Path, model: torch.nn.Module, tokenizer: Any, optimizer: torch.optim.Optimizer, step: int, growth: Path
) -> Any:
    """A Ray Train checkpoint in directory `to`: the HF model directory (loadable as is) plus optimizer state and
    step."""
    model.save_pretrained(to / MODEL_DIR, safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(to / MODEL_DIR)
    (to / MODEL_DIR / growth.name).write_text(growth.read_text())
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, to / STATE_FILE)
    return ray.train.Checkpoint.from_directory(str(to))


def _restore(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Load the latest Ray Train checkpoint if this run is a resume; returns the step to start from."""
    ckpt = ray.train.get_checkpoint()
    if ckpt is None:
        return 0
    from safetensors.torch import load_file

    with ckpt.as_directory() as d:
        model.load_state_dict(load_file(str(Path(d) / MODEL_DIR / "model.safetensors")), strict=False)
        state = torch.load(Path(d) / STATE_FILE, weights_only=False)
    optimizer.load_state_dict(state["optimizer"])
    return int(state["step"])


class _MetricsLog:
    """Rank 0's metrics: one JSON line per step (read back into the sleep record) and TensorBoard scalars."""

    def __init__(self, log_dir: Path):
        self.path = log_dir / "metrics.jsonl"
        try:
            from tensorboardX import SummaryWriter

            self.writer: Any = SummaryWriter(str(log_dir / "tensorboard"))
        except ImportError:  # TensorBoard logging is optional
            self.writer = None

    def write(self, row: dict[str, float]) -> None:
        with open(self.path, "a") as f:
            f.write(json.dumps(row) + "\n")
        if self.writer is not None:
            for k, v in row.items():
                if k != "step":
                    self.writer.add_scalar(f"seeding/{k}", v, int(row["step"]))
            self.writer.flush()


@dataclass
class _Plan:
    """One step's draws and the rollout requests issued for it (so they can be issued a step early)."""

    batch: list[SeedPrompt]
    on_policy: list[bool]
    stored: list[Any]  # the stored teacher sample for each off-policy item (None where on-policy)
    rolls: Any  # the pool's request for the on-policy rollouts, or None
    imitation: list[ImitationItem]
    lti: Any  # the pool's request for the imitation completions, or None


def _plan(step: int, rank: int, rng: random.Random, engines: Any, args: LoopArgs, use_lti: bool) -> _Plan:
    """Draw step `step`'s prompts (all of its randomness, in a fixed order) and ask the engine for its rollouts."""
    s = args.seeding
    items, pool, imitation = args.items, args.teacher_pool, args.imitation
    idx = rng.sample(range(len(items)), min(s.batch_size, len(items)))
    on_policy = [rng.random() < s.lmbda for _ in idx]
    stored = [None if on else rng.choice(pool[i]) for i, on in zip(idx, on_policy)]
    batch = [items[i] for i in idx]
    gen_seed = derive(args.seed, step * 101 + rank)
    asked = [it.student for it, on in zip(batch, on_policy) if on]
    kw = {"max_new_tokens": s.max_new_tokens, "temperature": s.temperature}
    rolls = engines.submit(asked, n=1, seed=gen_seed, **kw) if asked else None
    chosen, lti = [], None
    if use_lti:
        chosen = rng.sample(imitation, min(s.imitation_prompts, len(imitation)))
        prefixes = [d.prefix for d in chosen]
        lti = engines.submit(prefixes, n=s.group_size, seed=gen_seed + 53, stops=(".", "\n"), **kw)
    return _Plan(batch, on_policy, stored, rolls, chosen, lti)


def _current(model: torch.nn.Module, step: int) -> tuple[dict[str, Any], int]:
    return trainable_arrays(model), step


def _autocast(model: torch.nn.Module, dtype: str) -> Any:
    """bf16/fp16 autocast for the student's forward passes on CUDA (model.dtype); a no-op context on CPU. The
    trainable expert keeps float32 master weights, so AdamW steps in full precision."""
    import contextlib

    device = next(model.parameters()).device
    if device.type != "cuda" or dtype == "float32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if dtype == "bfloat16" else torch.float16)


def shares(xs: list[Any], k: int) -> list[list[Any]]:
    """`xs` cut into `k` contiguous parts of near-equal size, in order (the last ones may be empty)."""
    size = -(-len(xs) // k)
    return [xs[i * size : (i + 1) * size] for i in range(k)]


def teacher_topk(setting: int, vocab: int) -> int:
    """The teacher logits a step ships: `setting` when >= 0 (0 = the full vocabulary); with -1, the top 64 for a
    vocabulary above 8192 tokens (a real model's 49k-152k logits per token would dominate the step), else all."""
    if setting >= 0:
        return setting
    return 64 if vocab > 8192 else 0


def _score(teachers: list[Any], batch: list[Any], completions: list[Any], topk: int) -> list[Any]:
    """Split the batch's scoring across the teacher-selves (results come back in batch order)."""
    pairs = zip(teachers, shares(batch, len(teachers)), shares(completions, len(teachers)))
    return [t.score.remote(b, c, topk=topk) for t, b, c in pairs if b]


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker function given to `TorchTrainer`; `config["args"]` is the `LoopArgs` built by
    `sleep_ray.runtime.fit.train_student`."""
    args: LoopArgs = config["args"]
    s = args.seeding
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(args.threads)
    timeout = args.timeout_s
    teachers, critic, engines = args.teachers, args.critic, args.engines
    pool = EnginePool(engines, timeout) if engines else None  # none needed without student sampling
    metrics = _MetricsLog(Path(args.log_dir)) if rank == 0 else None

    model, tokenizer, record = load_student(args.init)
    params = prepare_trainable(model, record)
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)  # decay would move frozen rows
    start = _restore(model, optimizer)
    if rank == 0 and start and pool is not None:
        pool.push(trainable_arrays(model), start)
    ddp = ray.train.torch.prepare_model(model)
    rng = random.Random(derive(args.seed, for_worker(start, rank)))
    use_lti = s.alpha < 1.0 and bool(args.imitation) and s.imitation_prompts > 0

    autocast = _autocast(model, args.dtype)
    pending = _plan(start, rank, rng, pool, args, use_lti) if start < s.steps else None
    for step in range(start, s.steps):
        t0 = time.time()
        plan = pending
        assert plan is not None
        # a restarted engine gets these weights again (every rank holds the same) before its share is re-asked
        weights = functools.partial(_current, model, step)
        oldest = step - s.max_staleness
        rolls = pool.result(plan.rolls, weights, oldest) if pool is not None and plan.rolls is not None else []
        lti = pool.result(plan.lti, weights, oldest) if pool is not None and plan.lti is not None else []
        t_rollouts = time.time() - t0
        # Ask for the next step's rollouts now: the engine samples them (with these weights, one version
        # stale) while the teacher, the critic and this worker do the rest of the step.
        pending = _plan(step + 1, rank, rng, pool, args, use_lti) if s.prefetch and step + 1 < s.steps else None
        own = iter(rolls)
        completions = [next(own).token_ids if st is None else st.token_ids for st in plan.stored]
        t_refs = _score(teachers, plan.batch, completions, teacher_topk(s.topk, len(tokenizer)))
        group = [d for d in plan.imitation for _ in range(s.group_size)]
        c_ref = critic.score.remote(group, [r.text for r in lti]) if lti else None
        # The student's forward passes run while the teacher and the critic work.
        with autocast:
            s_logits, _, mask = student_logits(ddp, tokenizer, [it.student for it in plan.batch], completions)
            if c_ref is not None:
                lti_logits, lti_tokens, lti_mask = student_logits(
                    ddp, tokenizer, [d.prefix for d in group], [r.token_ids for r in lti]
                )
        t_logits = [x for part in call(t_refs, timeout, "teacher-self score") for x in part]
        t_wait = time.time() - t0
        l_dist = distill_from_logits(s_logits, mask, completions, t_logits, s)
        loss = s.alpha * l_dist
        row = {
            "step": step + 1,
            "l_dist": float(l_dist.detach()),
            "on_policy": sum(plan.on_policy) / len(plan.on_policy),
            "tokens": int(mask.sum()),  # completion tokens the step trained on (imitation's added below)
        }
        if c_ref is not None:
            scores = call(c_ref, timeout, "imitation critic score")
            rewards = [sc.total for sc in scores]
            l_lti = imitation_from_logits(
                lti_logits, lti_tokens, lti_mask, rewards, group_size=s.group_size, temperature=s.temperature
            )
            loss = loss + (1.0 - s.alpha) * l_lti
            row["tokens"] += int(lti_mask.sum())
            row.update(
                l_lti=float(l_lti.detach()),
                reward=sum(rewards) / len(rewards),
                r_sem=sum(sc.semantic for sc in scores) / len(scores),
                r_lev=sum(sc.surface for sc in scores) / len(scores),
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        version = step + 1
        if rank == 0 and pool is not None and version % s.push_every == 0:  # no engines: nothing samples
            t_push = time.time()
            pool.push(trainable_arrays(model), version)  # queued behind the prefetched rollouts
            row["push_s"] = time.time() - t_push
        if pool is not None:
            row["engine_recoveries"] = pool.recoveries
        if not s.prefetch and version < s.steps:
            pending = _plan(version, rank, rng, pool, args, use_lti)
        row.update(loss=float(loss.detach()), step_s=time.time() - t0, rollouts_s=t_rollouts, wait_s=t_wait)
        if metrics is not None:
            metrics.write(row)
        last = version == s.steps
        if last or version % s.checkpoint_every == 0:
            growth = Path(args.init) / GROWTH_FILE
            if rank == 0:  # report copies the checkpoint into the run's storage: the temporary copy then goes
                with tempfile.TemporaryDirectory(prefix="sleep_ckpt_") as tmp:
                    ray.train.report(row, checkpoint=_save(Path(tmp), model, tokenizer, optimizer, version, growth))
            else:
                ray.train.report(row, checkpoint=None)
