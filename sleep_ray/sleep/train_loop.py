"""The student-large's training loop: one Ray Train worker (DDP; gloo on CPU, NCCL on GPU) per rank.

Each optimizer step, every rank:
  1. draws `batch_size` distillation prompts; for a `lmbda` share the student samples the continuation (a
     rollout engine, no context), for the rest a stored teacher sample is used;
  2. rejects any student sample older than `max_staleness` weight versions;
  3. asks the teacher-self for its logits on those continuations (memory in context) -> L_dist;
  4. (alpha < 1) has the rollout engine complete `imitation_prompts` dream prefixes `group_size` times, the
     reward-critic score them -> L_lti;
  5. steps the optimizer on alpha * L_dist + (1 - alpha) * L_lti (DDP averages the expert's gradients).
Rank 0 then pushes the trainable tensors to every rollout engine (numpy arrays through the object store,
version = optimizer steps taken), logs metrics, and saves Ray Train checkpoints from which a rerun resumes.
"""

from __future__ import annotations

import json
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import ray
import ray.train
import ray.train.torch
import torch

from sleep_ray.config import SeedingConfig
from sleep_ray.sleep.records import call, check_fresh
from sleep_ray.sleep.student import (
    GROWTH_FILE,
    distill_loss,
    imitation_loss,
    load_student,
    prepare_trainable,
    trainable_arrays,
)

STATE_FILE = "train_state.pt"
MODEL_DIR = "model"


def _save(model: torch.nn.Module, tokenizer: Any, optimizer: torch.optim.Optimizer, step: int, growth: Path) -> Any:
    """A Ray Train checkpoint: the HF model directory (loadable as is) plus optimizer state and step."""
    tmp = Path(tempfile.mkdtemp(prefix="sleep_ckpt_"))
    model.save_pretrained(tmp / MODEL_DIR, safe_serialization=True)  # type: ignore[operator]
    tokenizer.save_pretrained(tmp / MODEL_DIR)
    (tmp / MODEL_DIR / growth.name).write_text(growth.read_text())
    torch.save({"optimizer": optimizer.state_dict(), "step": step}, tmp / STATE_FILE)
    return ray.train.Checkpoint.from_directory(str(tmp))


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


def _push(model: torch.nn.Module, engines: list[Any], version: int, timeout: float) -> None:
    """Put the trainable tensors in the object store once; every rollout engine loads them in place."""
    ref = ray.put(trainable_arrays(model))
    call([e.load_weights.remote(ref, version) for e in engines], timeout, "weight push")


def train_loop(config: dict[str, Any]) -> None:
    """The per-worker function given to `TorchTrainer`; `config` is built by `sleep_ray.sleep.run`."""
    s: SeedingConfig = config["seeding"]
    ctx = ray.train.get_context()
    rank = ctx.get_world_rank()
    torch.set_num_threads(config["threads"])
    timeout = config["timeout_s"]
    teacher, critic, engines = config["teacher"], config["critic"], config["engines"]
    engine = engines[rank % len(engines)]
    items, pool, dreams = config["items"], config["teacher_pool"], config["dreams"]
    metrics = _MetricsLog(Path(config["log_dir"])) if rank == 0 else None

    model, tokenizer, record = load_student(config["init"])
    params = prepare_trainable(model, record)
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)  # decay would move frozen rows
    start = _restore(model, optimizer)
    if rank == 0 and start:
        _push(model, engines, start, timeout)
    ddp = ray.train.torch.prepare_model(model)
    rng = random.Random(config["seed"] * 1_000_003 + rank * 7919 + start)
    use_lti = s.alpha < 1.0 and bool(dreams) and s.imitation_prompts > 0

    for step in range(start, s.steps):
        t0 = time.time()
        idx = rng.sample(range(len(items)), min(s.batch_size, len(items)))
        batch = [items[i] for i in idx]
        on_policy = [rng.random() < s.lmbda for _ in idx]
        gen_seed = config["seed"] * 1_000_003 + step * 101 + rank
        asked = [it.student for it, on in zip(batch, on_policy) if on]
        rolls = []
        if asked:
            ref = engine.generate.remote(
                asked, n=1, max_new_tokens=s.max_new_tokens, temperature=s.temperature, seed=gen_seed
            )
            rolls = call(ref, timeout, "rollout engine generate")
        check_fresh(rolls, step, s.max_staleness)
        own = iter(rolls)
        completions = [next(own).token_ids if on else rng.choice(pool[i]).token_ids for i, on in zip(idx, on_policy)]
        t_logits = call(teacher.score.remote(batch, completions, topk=s.topk), timeout, "teacher-self score")
        l_dist = distill_loss(ddp, tokenizer, batch, completions, t_logits, s)
        loss = s.alpha * l_dist
        row = {"step": step + 1, "l_dist": float(l_dist.detach()), "on_policy": sum(on_policy) / len(on_policy)}
        if use_lti:
            chosen = rng.sample(dreams, min(s.imitation_prompts, len(dreams)))
            ref = engine.generate.remote(
                [d.prefix for d in chosen],
                n=s.group_size,
                max_new_tokens=s.max_new_tokens,
                temperature=s.temperature,
                seed=gen_seed + 53,
                stops=(".", "\n"),
            )
            lti = call(ref, timeout, "rollout engine generate")
            check_fresh(lti, step, s.max_staleness)
            group = [d for d in chosen for _ in range(s.group_size)]
            scores = call(critic.score.remote(group, [r.text for r in lti]), timeout, "reward-critic score")
            rewards = [sc.total for sc in scores]
            l_lti = imitation_loss(
                ddp,
                tokenizer,
                group,
                [r.token_ids for r in lti],
                rewards,
                group_size=s.group_size,
                temperature=s.temperature,
            )
            loss = loss + (1.0 - s.alpha) * l_lti
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
        if rank == 0 and version % s.push_every == 0:
            t_push = time.time()
            _push(model, engines, version, timeout)
            row["push_s"] = time.time() - t_push
        row.update(loss=float(loss.detach()), step_s=time.time() - t0)
        if metrics is not None:
            metrics.write(row)
        last = version == s.steps
        if last or version % s.checkpoint_every == 0:
            growth = Path(config["init"]) / GROWTH_FILE
            ckpt = _save(model, tokenizer, optimizer, version, growth) if rank == 0 else None
            ray.train.report(row, checkpoint=ckpt)
