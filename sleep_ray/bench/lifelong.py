"""The benchmark's nights: a sleep-family method lives the endpoint's life, night after night.

Each sleep-family method keeps the store an endpoint would keep (`<method>/store/wake.sqlite`): every cycle's
memories are added to it, and the cycle is one `sleep_ray.wake.night.run_night`, the same loop the wake
scheduler runs (replay, compaction, sleep, gate, knowledge ledger), with a commit that records the version
instead of swapping replicas. A rejected night keeps the previous model; its memories stay in context.

`answerable` scores what the endpoint would answer: a probe whose memory is in context (never consolidated, or
back in context because its regression probes failed) is asked with wake retrieval's context (`context_for`
over the memories in context), any other probe closed-book.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sleep_ray.config import Config
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.data.schema import World
from sleep_ray.eval.harness import ANSWERABLE_IN_CONTEXT, items
from sleep_ray.eval.metrics import reply_score
from sleep_ray.models.build import count_parameters, load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.wake.night import NightResult, ensure_base_version, night_info, plan_night, run_night, sleep_stages
from sleep_ray.wake.retrieve import context_for
from sleep_ray.wake.store import SleepRecord, StoredMemory, WakeStore


def method_store(root: Path, base: str) -> WakeStore:
    """The method's store, its first version the base model."""
    store = WakeStore(root / "store")
    ensure_base_version(store, base)
    return store


def active_checkpoint(store: WakeStore) -> str:
    active = store.active_version()
    return next(r.checkpoint for r in store.versions() if r.version == active)


def night_cycle(cfg: Config, world: World, base: str, root: Path, cycle: int) -> dict[str, Any]:
    """Cycle `cycle` as one night of the method whose files live under `root`; returns the cycle's record."""
    store = method_store(root, base)
    have = {m.memory_id for m in store.memories()}
    new = [m for m in world.stream if m.cycle == cycle and m.memory_id not in have]
    store.add_memories([(m.text, m.kind, m.memory_id) for m in new])
    sleep_id = f"cycle-{cycle}"
    t0 = time.time()
    done = next(
        (r for r in store.list_sleeps() if r.sleep_id == sleep_id and r.status in ("swapped", "rejected")), None
    )
    if done is None:  # not a rerun of a night that already ended
        version = max(r.version for r in store.versions()) + 1
        serving = active_checkpoint(store)
        memories = plan_night(store, cfg.sleep.lifelong.replay_memories)
        rec = SleepRecord(
            sleep_id, "running", t0, t0, {"version": version, "memories": [m.memory_id for m in memories]}
        )
        store.put_sleep(rec)

        def commit(v: int, checkpoint: str, finish: Callable[[], NightResult]) -> None:
            store.add_version(v, checkpoint, {"sleep_id": sleep_id})
            store.set_active(v)
            finish()

        out = root / f"cycle-{cycle}"
        night = run_night(
            cfg, store, sleep_id=sleep_id, version=version, serving=serving, memories=memories, out=out,
            sleep=sleep_stages, commit=commit,
        )  # fmt: skip
        done = SleepRecord(sleep_id, night.status, t0, time.time(), {**rec.info, **night_info(night)})
        store.put_sleep(done)
    checkpoint = active_checkpoint(store)
    in_context = [m.memory_id for m in store.unconsolidated()]
    return {
        "cycle": cycle,
        "status": done.status,
        "why": done.info.get("why", ""),
        "gate": done.info.get("gate", {}),
        "night_memories": len(done.info.get("memories", [])),
        "replayed": sum(1 for mid in done.info.get("memories", []) if mid not in {m.memory_id for m in new}),
        "compaction": done.info.get("compaction"),
        "checkpoint": checkpoint,
        "parameters": count_parameters(load_pretrained(checkpoint, cfg.model.dtype)[0]),
        "in_context": in_context,
        "wall_s": round(time.time() - t0, 1),
    }


def answerable(checkpoint: str, world: World, cfg: Config, in_context: set[str], cycle: int) -> dict[str, float]:
    """Per cycle label "1".."cycle": accuracy on the answerable-in-context probes (module docstring)."""
    model, tokenizer = load_pretrained(checkpoint, cfg.model.dtype)
    window = int(model.config.max_position_embeddings) - cfg.eval.max_new_tokens - 32
    count = lambda s: len(tokenizer(s, add_special_tokens=False)["input_ids"])  # noqa: E731
    by_text = {m.text: m for m in world.stream}
    context_memories = [
        StoredMemory(i, m.memory_id, m.kind, m.text, 0.0, None)
        for i, m in enumerate(world.stream)
        if m.memory_id in in_context
    ]
    asked = [
        it
        for it in items(world, cfg.eval.splits)
        if it.cycle != "base" and int(it.cycle) <= cycle and it.probe.kind in ANSWERABLE_IN_CONTEXT
    ]
    fmt = PromptFormat.of(tokenizer)
    texts = []
    for it in asked:
        memory = by_text.get(it.context)
        if memory is not None and memory.memory_id in in_context:
            budget = window - count(fmt.in_context("", it.probe.question))
            found, _ = context_for(it.probe.question, context_memories, cfg.serve.retrieval_k, count, budget)
            texts.append(fmt.in_context(found, it.probe.question) if found else fmt.closed_book(it.probe.question))
        else:
            texts.append(fmt.closed_book(it.probe.question))
    raw = complete(model, tokenizer, texts, cfg.eval.max_new_tokens, batch_size=cfg.eval.batch_size)
    scores: dict[str, list[float]] = {}
    for it, r in zip(asked, raw):
        scores.setdefault(it.cycle, []).append(reply_score(r, it.probe.answer, cfg.eval.score))
    return {c: sum(v) / len(v) for c, v in scores.items()}
