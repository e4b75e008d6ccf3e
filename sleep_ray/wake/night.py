"""One night of a lifelong endpoint: the loop the wake scheduler and `bench consolidation` both run.

    plan     the night's memories: every memory in context that no sleep has taken yet, then up to
             `sleep.lifelong.replay_memories` earlier ones: those in context whose probes failed (fewest tries
             first), then those in the weights, least recently slept first (a rotating sample)
    compact  when one more expert would take the model past `sleep.growth.max_size` x the anchor's parameters,
             first compact the grown units (`sleep_ray.models.compact`); the compacted model is gated like a sleep
    sleep    Knowledge Seeding (and Dreaming) on the night's memories; old-knowledge rehearsal answered by the
             anchor, with the latest stored memory about a named person in its context
    gate     learned / kept (against the anchor) / reads / still holds: the regression probes of up to
             `serve.gate.regression_memories` memories in the weights (replayed tonight or not), least recently
             checked first
    settle   on a pass, `commit` swaps the model in; the night's probes are stored, and every memory checked goes
             where its knowledge is (`KnowledgeLedger.settle`): in the weights if its probes hold, else in context

Nothing here swaps or locks: the caller's `commit(version, checkpoint)` does (the scheduler swaps every replica;
the benchmark only records the version) and may refuse, e.g. after a rollback during the night.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from transformers import LlamaForCausalLM

from sleep_ray.config import Config
from sleep_ray.data.schema import Memory
from sleep_ray.models.checkpoint import CheckpointMeta, read_meta, save_checkpoint
from sleep_ray.wake.gate import GateResult, run_gate
from sleep_ray.wake.ledger import Knowledge, KnowledgeLedger
from sleep_ray.wake.store import StoredMemory, VersionRecord, WakeStore

# A night's sleep, `sleep_stages` or a stand-in with its signature: (cfg, parent checkpoint, memories, out,
# version, on_stage, *, recall) -> seconds slept, the slept checkpoint written to `out`.
Sleep = Callable[..., float]
# (version, checkpoint, finish) -> None once swapped in (having called `finish`, which settles the ledger and
# returns the night's result, while nothing else may swap), else why not
Commit = Callable[[int, str, Callable[[], "NightResult"]], "str | None"]


def sleep_stages(
    cfg: Config,
    parent: str,
    memories: list[Memory],
    out: Path,
    version: int,
    on_stage: Callable[[str], None],
    *,
    recall: Sequence[Memory] = (),
) -> float:
    """The sleep itself: Knowledge Seeding, then (with `serve.sleep_dreaming`) Dreaming, into `out`."""
    from sleep_ray.dream.run import run_dreaming
    from sleep_ray.seeding.run import run_seeding

    result = run_seeding(
        cfg, checkpoint=parent, memories=memories, out_dir=out, cycle=version, version=version, recall=recall
    )
    seconds = result.seconds
    if cfg.serve.sleep_dreaming and cfg.sleep.dreaming.enabled:  # stage 2, the same version
        on_stage("dreaming")
        result = run_dreaming(
            cfg, parent=parent, seeded=out, memories=memories, out_dir=out, cycle=version, recall=recall
        )
        seconds += result.seconds
    return seconds


class CompactionRejectedError(RuntimeError):
    """The compacted model failed its gate; the night stops before sleeping and serving is untouched."""


@dataclass
class NightResult:
    status: str  # "swapped" | "rejected"
    why: str
    gate: dict[str, float] = field(default_factory=dict)
    seconds: float = 0.0
    in_weights: list[str] = field(default_factory=list)  # memories checked tonight whose probes hold
    in_context: list[str] = field(default_factory=list)  # ... whose probes do not: back in context
    compaction: dict[str, Any] | None = None


def plan_night(store: WakeStore, replay: int) -> list[StoredMemory]:
    """The night's memories (module docstring), in arrival order."""
    ledger = KnowledgeLedger(store)
    context = store.unconsolidated()
    known = ledger.knowledge([m.memory_id for m in context])
    fresh = [m for m in context if known[m.memory_id].slept == 0]
    retry = sorted(
        (m for m in context if known[m.memory_id].slept > 0), key=lambda m: (known[m.memory_id].slept, m.seq)
    )[:replay]
    held = store.consolidated()
    held_known = ledger.knowledge([m.memory_id for m in held])
    rotate = sorted(held, key=lambda m: (held_known[m.memory_id].last_slept or 0.0, m.seq))[: replay - len(retry)]
    return sorted([*fresh, *retry, *rotate], key=lambda m: m.seq)


def regression_sample(store: WakeStore, exclude: set[str], limit: int) -> list[str]:
    """Up to `limit` (0: all) memories in the weights, least recently checked first, not in `exclude`."""
    held = [m for m in store.consolidated() if m.memory_id not in exclude]
    known = KnowledgeLedger(store).knowledge([m.memory_id for m in held])

    def last_checked(m: StoredMemory) -> tuple[float, int]:
        k: Knowledge = known[m.memory_id]
        return (k.checked or 0.0, m.seq)

    ordered = sorted(held, key=last_checked)
    return [m.memory_id for m in (ordered[:limit] if limit else ordered)]


def size_anchor(cfg: Config) -> str:
    """The model the size budget and the gate's retention are measured against: the original base."""
    return cfg.sleep.lifelong.anchor or cfg.model.path


def _parameters(checkpoint: str, dtype: str) -> int:
    from sleep_ray.models.build import count_parameters, load_pretrained

    return count_parameters(load_pretrained(checkpoint, dtype)[0])


def compaction_due(cfg: Config, checkpoint: str) -> bool:
    """Would growing `checkpoint` by one expert pass `sleep.growth.max_size` x the anchor's parameters?"""
    g, anchor = cfg.sleep.growth, size_anchor(cfg)
    if not g.enabled or not anchor:
        return False
    conf = json.loads((Path(checkpoint) / "config.json").read_text())
    expert = 3 * int(conf["hidden_size"]) * g.d_low * int(conf["num_hidden_layers"])
    return _parameters(checkpoint, cfg.model.dtype) + expert > g.max_size * _parameters(anchor, cfg.model.dtype)


def compact_checkpoint(
    cfg: Config, store: WakeStore, checkpoint: str, out: Path
) -> tuple[str, GateResult, dict[str, Any]]:
    """Compact `checkpoint`'s grown units into `out` and gate it against `checkpoint` (no gain asked; old
    knowledge against the anchor; the regression probes of every memory in the weights, bounded as the gate's)."""
    from sleep_ray.models.build import DTYPES, load_pretrained
    from sleep_ray.models.compact import compact
    from sleep_ray.models.generate import complete
    from sleep_ray.roles.teacher import TeacherSelf

    g, gate_cfg, anchor = cfg.sleep.growth, cfg.serve.gate, size_anchor(cfg)
    ledger = KnowledgeLedger(store)
    probes = ledger.probes(regression_sample(store, set(), 0))
    writer = TeacherSelf(checkpoint, threads=0, dtype=cfg.model.dtype)
    old = [writer.fmt.closed_book(q) for q in writer.old_questions(gate_cfg.rehearsal_questions, seed=cfg.seed + 17)]
    old_answers = complete(writer.model, writer.tokenizer, old, cfg.eval.max_new_tokens)
    texts = [f"{p.question} {p.reference}" for p in probes]
    texts += [f"{q} {a.split(chr(10), 1)[0]}" for q, a in zip(old, old_answers)]
    texts += [m.text for m in store.consolidated()]
    loaded, tokenizer = load_pretrained(checkpoint, "float32")  # distils on float32 weights; saved in model.dtype
    model = cast(LlamaForCausalLM, loaded)
    base_units = int(json.loads((Path(anchor) / "config.json").read_text())["intermediate_size"])
    small, record = compact(
        model,
        tokenizer,
        base_units=base_units,
        keep_units=g.compact_units,
        texts=texts,
        steps=g.compact_steps,
        lr=g.compact_lr,
        seed=cfg.seed,
    )
    meta = read_meta(checkpoint)
    extra = {**meta.extra, "compaction": asdict(record)}
    new_meta = CheckpointMeta(meta.version, meta.step, meta.seed, producer="compaction", parent=checkpoint, extra=extra)
    save_checkpoint(out, small.to(DTYPES[cfg.model.dtype]), tokenizer, new_meta, cfg)  # type: ignore[arg-type]
    limit = gate_cfg.regression_memories
    regression = ledger.probes(regression_sample(store, set(), limit))
    gate = gate_night(cfg, checkpoint, str(out), [], regression)
    return str(out), gate, {"record": asdict(record), "gate": gate.metrics, "why": gate.reason}


def gate_night(
    cfg: Config, serving: str, candidate: str, memories: Sequence[Memory], regression: Sequence[Any]
) -> GateResult:
    """`run_gate` with the run's settings: the anchor, the reply score and the dtype from `cfg`."""
    return run_gate(
        serving,
        candidate,
        memories,
        cfg.serve.gate,
        cfg.eval.max_new_tokens,
        anchor=size_anchor(cfg),
        regression=regression,
        score=cfg.eval.score,
        dtype=cfg.model.dtype,
    )


def run_night(
    cfg: Config,
    store: WakeStore,
    *,
    sleep_id: str,
    version: int,
    serving: str,
    memories: Sequence[StoredMemory],
    out: Path,
    sleep: Sleep,
    commit: Commit,
    on_stage: Callable[[str], None] = lambda stage: None,
) -> NightResult:
    """Compact if due, sleep on `memories` from the `serving` checkpoint into `out`, gate, and on a pass
    `commit` and settle the ledger (module docstring). A rejection leaves serving and the ledger untouched."""
    t0 = time.time()
    ledger = KnowledgeLedger(store)
    recall = [Memory(version, m.memory_id, m.kind, m.text) for m in store.memories()]
    night = [Memory(version, m.memory_id, m.kind, m.text) for m in memories]
    parent, compaction, held = serving, None, {}
    if compaction_due(cfg, serving):
        on_stage("compacting")
        parent, gate, compaction = compact_checkpoint(cfg, store, serving, out.with_name(out.name + ".compact"))
        if not gate.passed:
            raise CompactionRejectedError(f"the compacted model failed its gate: {gate.reason}")
        held = gate.held
    on_stage("seeding")
    seconds = sleep(cfg, parent, night, out, version, on_stage, recall=recall)
    on_stage("gating")
    g = cfg.serve.gate
    regression = ledger.probes(regression_sample(store, set(), g.regression_memories))  # replayed ones too
    gate = gate_night(cfg, serving, str(out), night, regression)
    result = NightResult("rejected", gate.reason, gate.metrics, seconds, compaction=compaction)
    ledger.note_slept([m.memory_id for m in memories])  # a night cut short does not count as a try
    if not gate.passed:
        return result

    def finish() -> NightResult:
        ledger.set_probes(gate.probes, sleep_id)
        result.in_weights, result.in_context = ledger.settle({**held, **gate.held}, g.memory_hold, sleep_id)
        result.status, result.seconds = "swapped", time.time() - t0
        return result

    refused = commit(version, str(out.resolve()), finish)
    if refused is not None:
        result.why = refused
    return result


def night_info(night: NightResult) -> dict[str, Any]:
    """What a sleep record keeps of a night."""
    return {
        "why": night.why,
        "gate": night.gate,
        "sleep_s": round(night.seconds, 1),
        "in_weights": night.in_weights,
        "returned": night.in_context,
        "compaction": night.compaction,
    }


def ensure_base_version(store: WakeStore, checkpoint: str) -> VersionRecord:
    """On a fresh store, record the configured checkpoint as the first served version; return the active one."""
    if store.active_version() is None:
        v = read_meta(checkpoint).version
        store.add_version(v, str(Path(checkpoint).resolve()), {"producer": "base"})
        store.set_active(v)
    active = store.active_version()
    return next(r for r in store.versions() if r.version == active)
