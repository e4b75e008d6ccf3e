"""The methods `sleep-ray bench consolidation` compares, and the one baseline trainer it owns (plain SFT).

Every method turns the model after cycle k-1 and cycle k's memories into the model after cycle k:

    no_sleep            the base model, unchanged (closed-book: what it knew before the stream)
    in_context          the base model with each probe's memory in its prompt (the oracle upper bound)
    sft                 continual next-token fine-tuning of every weight on the cycle's memory text
    sft_replay          the same, with `replay_fraction` of each batch drawn from earlier cycles' memories
    distill_offpolicy   context distillation from teacher samples only (lambda 0, no imitation RL, no dreaming)
    sleep               Knowledge Seeding + Dreaming with the config's settings, night after night as the endpoint
                        lives them (replay, anchor, gate, knowledge ledger, compaction: sleep_ray/wake/night.py)
    sleep_single_night  the same sleep with none of that: no replay, rehearsal held to the previous model, every
                        night accepted and every memory taken as learnt (each night on its own)
    sleep_no_dreaming   ... without stage 2
    sleep_no_imitation  ... without the Learning-to-Imitate RL term (alpha 1)
    sleep_no_growth     ... without a new expert (every weight trains)
    sleep_no_rehearsal  ... without self-rehearsal of old knowledge in either stage

Sleep-family methods are config overrides on top of the benchmark's config, so the comparison runs exactly the
code `sleep-ray sleep` runs.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from sleep_ray.config import Config
from sleep_ray.data.schema import Memory
from sleep_ray.models.build import DTYPES, count_parameters, load_pretrained
from sleep_ray.models.checkpoint import CheckpointMeta, read_meta, save_checkpoint
from sleep_ray.seeds import derive
from sleep_ray.train.pretrain import make_batch


@dataclass(frozen=True)
class Method:
    """kind: "none" (keep the base model), "oracle" (base model, memory in context), "sft" or "sleep"."""

    kind: str
    overrides: tuple[str, ...] = ()
    replay: bool = False
    help: str = ""

    @property
    def oracle(self) -> bool:
        return self.kind == "oracle"


METHODS: dict[str, Method] = {
    "no_sleep": Method("none", help="base model, closed-book"),
    "in_context": Method("oracle", help="base model, memory in the prompt (upper bound)"),
    "sft": Method("sft", help="continual full-model SFT on the memory text"),
    "sft_replay": Method("sft", replay=True, help="continual SFT with replay of earlier memories"),
    "distill_offpolicy": Method(
        "sleep",
        ("sleep.seeding.lmbda=0", "sleep.seeding.alpha=1", "sleep.dreaming.enabled=false"),
        help="off-policy context distillation: teacher samples only, no imitation RL, no dreaming",
    ),
    "sleep": Method("sleep", help="Knowledge Seeding + Dreaming, night after night"),
    "sleep_single_night": Method(
        "sleep",
        (
            "sleep.lifelong.replay_memories=0",
            "sleep.lifelong.anchor_rehearsal=false",
            "serve.gate.min_gain=-1",
            "serve.gate.min_retention=0",
            "serve.gate.min_reading=0",
            "serve.gate.min_regression=0",
            "serve.gate.memory_hold=0",
            "sleep.growth.max_size=1000",
        ),
        help="Sleep without replay, anchor, gate or ledger: each night on its own",
    ),
    "sleep_no_dreaming": Method("sleep", ("sleep.dreaming.enabled=false",), help="Sleep without Dreaming"),
    "sleep_no_imitation": Method("sleep", ("sleep.seeding.alpha=1",), help="Sleep without Learning-to-Imitate"),
    "sleep_no_growth": Method("sleep", ("sleep.growth.enabled=false",), help="Sleep without a new expert"),
    "sleep_no_rehearsal": Method(
        "sleep",
        ("sleep.seeding.rehearsal_fraction=0", "sleep.dreaming.rehearsal_fraction=0"),
        help="Sleep without self-rehearsal of old knowledge",
    ),
}


def resolve_methods(names: Sequence[str]) -> list[str]:
    """The methods to run, in METHODS order; empty = all. Raises ValueError naming an unknown one."""
    unknown = sorted(set(names) - set(METHODS))
    if unknown:
        raise ValueError(f"bench.consolidation.methods: unknown {unknown}; choose from {', '.join(METHODS)}")
    return [m for m in METHODS if not names or m in names]


class _TextPool:
    """The `Corpus.sample` interface `make_batch` packs from: memory texts, a share of them from a replay pool."""

    def __init__(self, current: Sequence[str], earlier: Sequence[str], replay_fraction: float):
        if not current:
            raise ValueError("SFT: the cycle has no memory text to train on")
        self.current, self.earlier = list(current), list(earlier)
        self.replay_fraction = replay_fraction if self.earlier else 0.0

    def sample(self, rng: random.Random) -> tuple[str, str]:
        if rng.random() < self.replay_fraction:
            return "replay", rng.choice(self.earlier)
        return "memory", rng.choice(self.current)


def sft_cycle(
    cfg: Config,
    checkpoint: str | Path,
    memories: Sequence[Memory],
    out_dir: str | Path,
    cycle: int,
    earlier: Sequence[Memory] = (),
) -> int:
    """Plain next-token SFT of every weight of `checkpoint` on the memories' text (packed rows of
    `pretrain.seq_len` tokens), `earlier` memories replayed at `bench.consolidation.replay_fraction`.
    Saves the result at `out_dir` (weight version `cycle`); returns the number of trained parameters."""
    b = cfg.bench.consolidation
    steps = b.sft_steps or cfg.sleep.seeding.steps
    batch = b.sft_batch_size or cfg.sleep.seeding.batch_size
    model, tokenizer = load_pretrained(checkpoint, "float32")  # trains on float32 weights; saved in model.dtype
    pool = _TextPool([m.text for m in memories], [m.text for m in earlier], b.replay_fraction)
    optimizer = torch.optim.AdamW(model.parameters(), lr=b.sft_lr, weight_decay=0.0)
    seq_len = min(cfg.pretrain.seq_len, model.config.max_position_embeddings)
    model.train()
    for step in range(steps):
        rng = random.Random(derive(cfg.seed, cycle * 10_007 + step))
        input_ids, labels = make_batch(pool, tokenizer, rng, batch, seq_len)  # type: ignore[arg-type]
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    model.eval()
    parent = read_meta(checkpoint)
    meta = CheckpointMeta(
        version=cycle,
        step=parent.step + steps,
        seed=cfg.seed,
        producer="sft",
        parent=str(checkpoint),
        extra=dict(parent.extra),
    )
    save_checkpoint(out_dir, model.to(DTYPES[cfg.model.dtype]), tokenizer, meta, config=cfg)  # type: ignore[arg-type]
    return count_parameters(model)
