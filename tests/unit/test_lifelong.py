"""Night after night through `sleep_ray.wake.night.run_night`, without Ray: the real store, gate, growth and
compaction on the committed tiny model, with sleeps that grow the model or damage it instead of training (the
training itself is tested in tests/ray)."""

from __future__ import annotations

import shutil

import pytest
import torch

from sleep_ray.config import load_config
from sleep_ray.models.build import count_parameters, load_pretrained
from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
from sleep_ray.models.generate import complete
from sleep_ray.runtime.export import export_checkpoint, grow_student
from sleep_ray.wake.ledger import KnowledgeLedger, RegressionProbe
from sleep_ray.wake.night import NightResult, ensure_base_version, plan_night, run_night
from sleep_ray.wake.retrieve import context_for
from sleep_ray.wake.store import WakeStore
from tests.helpers import ROOT

BASE = str(ROOT / "examples" / "tiny_base")
SMALL_GATE = ["serve.gate.questions_per_memory=1", "serve.gate.rehearsal_questions=8", "eval.max_new_tokens=6"]
OPEN_GATE = ["serve.gate.min_gain=-1", "serve.gate.min_retention=0", "serve.gate.min_reading=0"]


def _config(tmp_path, *extra):
    return load_config(None, [f"run_dir={tmp_path}", f"model.path={BASE}", *SMALL_GATE, *OPEN_GATE, *extra])


def _grow_only(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
    """A sleep that grows the model by its expert and trains nothing (the expert starts function-preserving)."""
    work = out.with_name(out.name + ".work")
    grow_student(cfg, parent, work / "init", version)
    export_checkpoint(cfg, parent, work / "init", out, version, {"steps": 0}, version)
    shutil.rmtree(work)
    return 0.0


def _damage(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
    """A sleep that returns the parent with noise on every weight: it knows much less than before."""
    model, tokenizer = load_pretrained(parent)
    with torch.no_grad():
        gen = torch.Generator().manual_seed(0)
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5 * p.std().clamp(min=1e-3))
    save_checkpoint(out, model, tokenizer, CheckpointMeta(version=version, producer="damage", parent=parent), cfg)
    return 0.0


def _night(cfg, store, k: int, sleep) -> NightResult:
    serving = ensure_base_version(store, cfg.model.path)

    def commit(v, checkpoint, finish):
        store.add_version(v, checkpoint, {})
        store.set_active(v)
        finish()

    memories = plan_night(store, cfg.sleep.lifelong.replay_memories)
    out = store.directory / f"v{k}"
    return run_night(
        cfg, store, sleep_id=f"night-{k}", version=k, serving=serving.checkpoint, memories=memories, out=out,
        sleep=sleep, commit=commit,
    )  # fmt: skip


@pytest.mark.slow
def test_twelve_nights_never_fail_and_the_size_stays_under_budget(tmp_path):
    cfg = _config(
        tmp_path,
        "sleep.growth.d_low=32",
        "sleep.growth.max_size=1.1",  # room for two experts of 49,152 parameters over the base's 1.31M
        "sleep.growth.compact_units=32",
        "sleep.growth.compact_steps=4",
        "sleep.lifelong.replay_memories=1",
        "serve.gate.memory_hold=0",  # every memory counts as held, so every night has regression probes
        "serve.gate.min_regression=0",
    )
    store = WakeStore(tmp_path / "wake")
    budget = 1.1 * count_parameters(load_pretrained(BASE)[0])
    compactions = 0
    for k in range(1, 13):
        store.add_memories([(f"Zorya Quill{k} lives in Tarnholt. She works as a baker.", "document", f"m{k}")])
        night = _night(cfg, store, k, _grow_only)
        assert night.status == "swapped", (k, night.why)
        compactions += night.compaction is not None
        assert count_parameters(load_pretrained(str(store.directory / f"v{k}"))[0]) <= budget
    assert compactions >= 3
    assert len(store.consolidated()) == 12 and not store.unconsolidated()
    assert len(KnowledgeLedger(store).probes([f"m{k}" for k in range(1, 13)])) == 12


def _closed_book_probes(store, cfg, memories: list[tuple[str, str]]) -> None:
    """Probes whose references are the serving model's own closed-book answers: they hold before any damage."""
    model, tokenizer = load_pretrained(BASE)
    questions = [f"Question: {q}\nAnswer:" for _, q in memories]
    answers = [a.split("\n", 1)[0] for a in complete(model, tokenizer, questions, cfg.eval.max_new_tokens)]
    ledger = KnowledgeLedger(store)
    ledger.set_probes([RegressionProbe(mid, q, a) for (mid, _), q, a in zip(memories, questions, answers)], "night-0")
    ledger.settle({mid: 1.0 for mid, _ in memories}, 0.5, "night-0")


def test_a_damaged_candidate_fails_the_regression_gate_and_lost_memories_return_to_context(tmp_path):
    cfg = _config(
        tmp_path,
        "serve.gate.min_regression=0.8",
        "serve.gate.min_regression_memories=3",
        "sleep.lifelong.replay_memories=0",
    )
    store = WakeStore(tmp_path / "wake")
    old = [("old-1", "Where does Ana Vel live?"), ("old-2", "What does Bo Tan do?"), ("old-3", "Who is Ana Vel?")]
    store.add_memories([(f"Memory about {q}", "document", mid) for mid, q in old])
    _closed_book_probes(store, cfg, old)
    store.add_memories([("Zorya Quill lives in Tarnholt.", "document", "new")])

    night = _night(cfg, store, 1, _damage)
    assert night.status == "rejected" and "earlier memories lost" in night.why
    assert store.active_version() == 0 and {m.memory_id for m in store.consolidated()} == {"old-1", "old-2", "old-3"}

    cfg = _config(
        tmp_path,
        "serve.gate.min_regression=0",
        "serve.gate.min_regression_memories=3",
        "sleep.lifelong.replay_memories=0",
    )
    night = _night(cfg, store, 2, _damage)  # a gate that lets it through: the ledger still sees what was lost
    assert night.status == "swapped" and night.gate["regression"] < 0.8
    # reported beside the verdict: the damage shows in language modelling of the anchor's own free text
    assert night.gate["text_perplexity_candidate"] > night.gate["text_perplexity_serving"] > 1.0
    lost = set(night.in_context) & {"old-1", "old-2", "old-3"}
    assert lost, night.in_context
    in_context = store.unconsolidated()
    assert lost <= {m.memory_id for m in in_context}
    mid = sorted(lost)[0]
    question = dict(old)[mid]
    text = next(m.text for m in in_context if m.memory_id == mid)
    assert text in context_for(question, in_context, 1, lambda s: len(s.split()), 200)[0]  # retrieval serves it


def _grow_and_perturb(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
    """`_grow_only`, then the new expert's down columns made non-zero, so the model answers differently."""
    _grow_only(cfg, parent, memories, out, version, on_stage)
    model, tokenizer = load_pretrained(out)
    width = int(load_pretrained(parent)[0].config.intermediate_size)
    gen = torch.Generator().manual_seed(version)
    with torch.no_grad():
        for layer in model.model.layers:
            down = layer.mlp.down_proj.weight
            down[:, width:] = torch.randn(down[:, width:].shape, generator=gen) * 1.0
    model.save_pretrained(out)
    return 0.0


@pytest.mark.slow
def test_compaction_keeps_the_answers_on_the_regression_probes(tmp_path):
    from sleep_ray.wake.night import compact_checkpoint

    cfg = _config(tmp_path, "sleep.growth.d_low=32", "sleep.growth.compact_units=4", "sleep.growth.compact_steps=60")
    store = WakeStore(tmp_path / "wake")
    ensure_base_version(store, BASE)
    grown = BASE
    for k in (1, 2, 3):  # three experts that change the model's answers
        out = tmp_path / f"grown-{k}"
        _grow_and_perturb(cfg, grown, [], out, k, lambda stage: None)
        grown = str(out)
    model, tokenizer = load_pretrained(grown)
    people = ["Ana Vel", "Bo Tan", "Luran Kretre", "Mira Sol", "Tovan Ruel", "Kessa Drum", "Ilo Fenn", "Pia Rook"]
    asked = [(f"m{i}", f"Where does {p} live?") for i, p in enumerate(people)]
    store.add_memories([(f"{p} is someone.", "document", mid) for (mid, _), p in zip(asked, people)])
    questions = [f"Question: {q}\nAnswer:" for _, q in asked]
    answers = [a.split("\n", 1)[0] for a in complete(model, tokenizer, questions, cfg.eval.max_new_tokens)]
    base_answers = [a.split("\n", 1)[0] for a in complete(load_pretrained(BASE)[0], tokenizer, questions, 6)]
    assert answers != base_answers  # the experts matter: pruning them all would lose these answers
    ledger = KnowledgeLedger(store)
    ledger.set_probes([RegressionProbe(mid, q, a) for (mid, _), q, a in zip(asked, questions, answers)], "night-0")
    ledger.settle({mid: 1.0 for mid, _ in asked}, 0.5, "night-0")

    compacted, gate, info = compact_checkpoint(cfg, store, grown, tmp_path / "compacted")
    assert info["record"]["units_before"] == 96 and info["record"]["units_after"] == 4
    assert load_pretrained(compacted)[0].config.intermediate_size == 512 + 4
    assert gate.metrics["regression"] == 1.0, gate.held  # every memory's answers kept
    pruned_only = _config(
        tmp_path, "sleep.growth.d_low=32", "sleep.growth.compact_units=4", "sleep.growth.compact_steps=0"
    )
    _, gate, _ = compact_checkpoint(pruned_only, store, grown, tmp_path / "pruned")
    assert gate.metrics["regression"] < 1.0  # the distillation is what keeps them
