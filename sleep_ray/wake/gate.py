"""The eval gate: a slept-on checkpoint replaces the serving one only if it measurably learned and kept.

No human labels exist at serving time, so the probes are written by the serving model itself, with a seed the
sleep did not use (held out from the sleep's own prompts):

- **learned**: questions about each consolidated memory; the reference answer is the serving model's answer
  with the memory in context. Score: closed-book agreement (normalised exact match) of the candidate, and of
  the serving model for comparison. The gain must reach `gate.min_gain`.
- **kept**: questions about old knowledge written with no memory; the reference is the serving model's own
  closed-book answer. The candidate must agree on at least `gate.min_retention` of them.
- **reads**: the learned-questions again, with the memory in context: the candidate must give the serving
  model's in-context answer on at least `gate.min_reading` of them, since the next night's teacher is this
  model reading. Reported beside it: both models' perplexity on the old-knowledge questions and answers the
  serving model wrote (old text the sleep never saw).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sleep_ray.config import GateConfig
from sleep_ray.data import prompts
from sleep_ray.data.schema import Memory
from sleep_ray.eval.harness import text_perplexity
from sleep_ray.eval.metrics import exact_match, first_answer
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.sleep.teacher import TeacherSelf


def agreement(answers: Sequence[str], references: Sequence[str]) -> float:
    """Share of answers whose first line equals their reference's after normalisation; 0.0 for no pairs."""
    pairs = list(zip(answers, references))
    return sum(exact_match(first_answer(a), first_answer(r)) for a, r in pairs) / len(pairs) if pairs else 0.0


@dataclass
class GateResult:
    passed: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)


def decide(
    serving_new: float, candidate_new: float, retention: float, cfg: GateConfig, reading: float = 1.0
) -> GateResult:
    """The gate's rule on measured agreements (pure, so it is tested on numbers)."""
    metrics = {"serving_new": serving_new, "candidate_new": candidate_new, "retention": retention, "reading": reading}
    gain = candidate_new - serving_new
    if gain < cfg.min_gain:
        return GateResult(False, f"learned too little: gain {gain:.3f} < gate.min_gain {cfg.min_gain}", metrics)
    if retention < cfg.min_retention:
        return GateResult(
            False, f"forgot too much: retention {retention:.3f} < gate.min_retention {cfg.min_retention}", metrics
        )
    if reading < cfg.min_reading:
        return GateResult(
            False, f"reads worse: in-context agreement {reading:.3f} < gate.min_reading {cfg.min_reading}", metrics
        )
    return GateResult(True, f"gain {gain:.3f}, retention {retention:.3f}, reading {reading:.3f}", metrics)


def run_gate(
    serving: str, candidate: str, memories: Sequence[Memory], cfg: GateConfig, max_new_tokens: int = 12
) -> GateResult:
    """Write the probes with the serving checkpoint, answer them with both, and `decide`."""
    writer = TeacherSelf(serving, threads=0)
    items = writer.write_questions(memories, per_memory=cfg.questions_per_memory, seed=cfg.seed)
    rehearsal = [prompts.closed_book(q) for q in writer.old_questions(cfg.rehearsal_questions, seed=cfg.seed + 1)]
    old_model, tok = writer.model, writer.tokenizer

    def answer(model: object, texts: list[str]) -> list[str]:
        return complete(model, tok, texts, max_new_tokens) if texts else []  # type: ignore[arg-type]

    refs = answer(old_model, [it.teacher for it in items])
    serving_new = agreement(answer(old_model, [it.student for it in items]), refs)
    old_refs = answer(old_model, rehearsal)
    new_model, _ = load_pretrained(candidate)
    candidate_new = agreement(answer(new_model, [it.student for it in items]), refs)
    retention = agreement(answer(new_model, rehearsal), old_refs)
    reading = agreement(answer(new_model, [it.teacher for it in items]), refs)
    result = decide(serving_new, candidate_new, retention, cfg, reading)
    old_text = [f"{q} {a.split(chr(10), 1)[0]}" for q, a in zip(rehearsal, old_refs)]
    result.metrics.update(
        questions=len(items),
        rehearsal_questions=len(rehearsal),
        perplexity_serving=round(text_perplexity(old_model, tok, old_text), 4),
        perplexity_candidate=round(text_perplexity(new_model, tok, old_text), 4),
    )
    return result
