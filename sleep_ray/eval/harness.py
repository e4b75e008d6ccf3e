"""The evaluation harness: run a checkpoint on a world's probes and compute the metrics, per cycle.

Metrics (exact match after normalization unless named `_f1`), each keyed by cycle label ("base", "1".."K"):

    closed_book, closed_book_f1   probes of kinds new/long/updated/rule, no context (base: base probes)
    in_context, in_context_f1     the same probes with their memory in the window (the teacher's upper bound)
    new, long, rule, updated      closed-book accuracy by probe kind
    <kind>_in_context             in-context accuracy by probe kind (new_in_context: reading unseen entities)
    retained                      unchanged facts of an updated entity (must not be forgotten)
    stale                         share of updated-fact answers that give the old value
    perplexity                    on held-out world text ("base" only)

    sleep-ray eval --config examples/tiny_cpu.yaml --checkpoint runs/tiny/base
"""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleep_ray.config import EvalConfig
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.data.schema import Probe, World
from sleep_ray.data.windows import best_window, windows
from sleep_ray.eval.metrics import first_answer, perplexity, reply_score, stale_rate, token_f1
from sleep_ray.models.generate import complete

ANSWERABLE_IN_CONTEXT = ("new", "long", "updated", "rule")


@dataclass(frozen=True)
class Item:
    """One probe to ask, with the memory text that answers it (empty for base probes)."""

    cycle: str
    probe: Probe
    context: str


def items(world: World, splits: Sequence[str]) -> list[Item]:
    """Every probe of the world and its stream in the given splits, in file order.

    Base probes of facts that a memory later updates are left out: those facts are scored as "updated".
    """
    updated = {p.fact_id for m in world.stream for p in m.probes if p.kind == "updated" and p.fact_id}
    out = [
        Item("base", p, d.text)
        for d in world.documents
        for p in d.probes
        if p.split in splits and not (p.fact_id and p.fact_id in updated)
    ]
    out += [Item(str(m.cycle), p, m.text) for m in world.stream for p in m.probes if p.split in splits]
    return out


def answer(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch: Sequence[Item],
    cfg: EvalConfig,
    *,
    with_context: bool,
) -> list[str]:
    """Greedy answers, closed-book or with each item's memory (the window that best fits) in context."""
    window = model.config.max_position_embeddings - cfg.max_new_tokens - 32

    def count(text: str) -> int:
        return len(tokenizer(text, add_special_tokens=False)["input_ids"])

    fmt = PromptFormat.of(tokenizer)
    texts = []
    for it in batch:
        if with_context:
            budget = window - count(fmt.in_context("", it.probe.question))
            chunks = windows(it.context, count, budget)
            texts.append(fmt.in_context(best_window(chunks, it.probe.question), it.probe.question))
        else:
            texts.append(fmt.closed_book(it.probe.question))
    raw = complete(model, tokenizer, texts, cfg.max_new_tokens, batch_size=cfg.batch_size)
    return [first_answer(r) for r in raw]


def accuracy(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    batch: Sequence[Item],
    cfg: EvalConfig,
    *,
    with_context: bool,
) -> float:
    """Accuracy of `answer` on `batch`, scored as `cfg.score` says (NaN for an empty batch)."""
    preds = answer(model, tokenizer, batch, cfg, with_context=with_context)
    return _mean([reply_score(p, it.probe.answer, cfg.score) for p, it in zip(preds, batch)])


@torch.no_grad()
def text_perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, texts: Sequence[str]) -> float:
    """Token-level perplexity of `model` on `texts`, each truncated to the window (NaN for no tokens)."""
    nll, n = 0.0, 0
    for text in texts:
        ids = tokenizer(text, return_tensors="pt", truncation=True, max_length=model.config.max_position_embeddings)
        count = ids["input_ids"].shape[1] - 1
        if count < 1:
            continue
        out = model(**ids, labels=ids["input_ids"])
        nll += out.loss.item() * count
        n += count
    return perplexity(nll, n)


def heldout_perplexity(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, world: World) -> float:
    """Token-level perplexity on the world's `use="heldout"` documents (NaN when there are none)."""
    return text_perplexity(model, tokenizer, [d.text for d in world.documents if d.use == "heldout"])


def _mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else math.nan


def evaluate(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    world: World,
    cfg: EvalConfig,
    *,
    in_context: bool = True,
) -> dict[str, dict[str, float]]:
    """All metrics of the module docstring: metrics[name][cycle_label] = value. `in_context=False` skips the
    in-context metrics (and perplexity), for callers that only need what a model knows closed-book."""
    all_items = items(world, cfg.splits)
    closed = answer(model, tokenizer, all_items, cfg, with_context=False)
    ctx_items = [it for it in all_items if it.cycle == "base" or it.probe.kind in ANSWERABLE_IN_CONTEXT]
    ctx_items = ctx_items if in_context else []
    opened = dict(zip(map(id, ctx_items), answer(model, tokenizer, ctx_items, cfg, with_context=True)))

    acc: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    stale: dict[str, tuple[list[str], list[str]]] = defaultdict(lambda: ([], []))
    for it, pred in zip(all_items, closed):
        gold, kind = it.probe.answer, it.probe.kind
        if it.cycle == "base" or kind in ANSWERABLE_IN_CONTEXT:
            acc["closed_book"][it.cycle].append(reply_score(pred, gold, cfg.score))
            acc["closed_book_f1"][it.cycle].append(token_f1(pred, gold))
        if kind != "base":
            acc[kind][it.cycle].append(reply_score(pred, gold, cfg.score))
        if kind == "updated":
            stale[it.cycle][0].append(pred)
            stale[it.cycle][1].append(it.probe.stale_answer)
        if id(it) in opened:
            acc["in_context"][it.cycle].append(reply_score(opened[id(it)], gold, cfg.score))
            if kind != "base":
                acc[f"{kind}_in_context"][it.cycle].append(reply_score(opened[id(it)], gold, cfg.score))
            acc["in_context_f1"][it.cycle].append(token_f1(opened[id(it)], gold))

    metrics = {name: {c: _mean(v) for c, v in by_cycle.items()} for name, by_cycle in acc.items()}
    metrics["stale"] = {c: stale_rate(p, s) for c, (p, s) in stale.items()}
    if in_context:
        metrics["perplexity"] = {"base": heldout_perplexity(model, tokenizer, world)}
    return metrics


def summarize(metrics: dict[str, dict[str, float]]) -> dict[str, float]:
    """Headline numbers: base-knowledge scores, and each metric's mean over the stream's cycles."""
    out = {f"base_{k}": v["base"] for k, v in metrics.items() if "base" in v}
    for name, by_cycle in metrics.items():
        vals = [v for c, v in by_cycle.items() if c != "base" and not math.isnan(v)]
        if vals:
            out[f"stream_{name}"] = _mean(vals)
    return out


def quick_eval(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, world: World, cfg: EvalConfig, n: int = 64
) -> dict[str, float]:
    """A cheap progress signal during pretraining, on a fixed sample of `n` eval probes of each kind:
    base recall (closed-book), reading (stream memories in context) and closed-book on those new facts."""
    rng = random.Random(0)
    all_items = items(world, ("eval",))
    base = [it for it in all_items if it.cycle == "base"]
    new = [it for it in all_items if it.probe.kind == "new"]
    base, new = rng.sample(base, min(n, len(base))), rng.sample(new, min(n, len(new)))
    out: dict[str, float] = {}
    if base:
        out["base_recall"] = accuracy(model, tokenizer, base, cfg, with_context=False)
    if new:
        out["in_context"] = accuracy(model, tokenizer, new, cfg, with_context=True)
        out["closed_book_new"] = accuracy(model, tokenizer, new, cfg, with_context=False)
    return out
