"""The eval gate: a slept-on checkpoint replaces the serving one only if it measurably learned and kept.

No human labels exist at serving time, so the probes are written by the serving model itself, with a seed the
sleep did not use (held out from the sleep's own prompts):

- **learned**: questions about each consolidated memory; the reference answer is the serving model's answer
  with the memory in context. Score: closed-book agreement (normalised exact match) of the candidate, and of
  the serving model for comparison. The gain must reach `gate.min_gain`.
- **kept**: questions about old knowledge written by the *anchor* (the original base model, or the serving model
  when no anchor is given); the reference is the anchor's own closed-book answer. The candidate must agree on at
  least `gate.min_retention` of them. The reference never moves, so drift cannot pass one night at a time.
- **reads**: the learned-questions again, with the memory in context: the candidate must give the serving
  model's in-context answer on at least `gate.min_reading` of them, since the next night's teacher is this
  model reading. Reported beside it: both models' perplexity on the anchor's old-knowledge questions and
  answers, and on free text the anchor writes (old text the sleep never saw; language modelling is the third
  skill the next night's teacher uses).
- **still holds**: the regression probes of earlier nights' memories (`sleep_ray.wake.ledger`) are re-asked; a
  memory holds when the candidate agrees on `gate.memory_hold` of its probes, and at least `gate.min_regression`
  of the re-asked memories must hold (once `gate.min_regression_memories` were re-asked). A memory that does not
  hold is not a reason to refuse on its own: the knowledge ledger returns it to context.

Besides the verdict, the result carries what the knowledge ledger needs: the new memories' probes (questions and
in-context references) and, per memory (new and re-asked), the share of its probes the candidate got right.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from sleep_ray.config import GateConfig
from sleep_ray.data.schema import Memory
from sleep_ray.eval.harness import text_perplexity
from sleep_ray.eval.metrics import agreement, per_memory
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.roles.teacher import TeacherSelf
from sleep_ray.wake.ledger import RegressionProbe


@dataclass
class GateResult:
    passed: bool
    reason: str
    metrics: dict[str, float] = field(default_factory=dict)
    probes: list[RegressionProbe] = field(default_factory=list)  # the new memories' regression probes
    held: dict[str, float] = field(default_factory=dict)  # memory id -> share of its probes the candidate kept


def decide(
    serving_new: float | None,
    candidate_new: float,
    retention: float,
    cfg: GateConfig,
    reading: float = 1.0,
    regression: float | None = None,
) -> GateResult:
    """The gate's rule on measured agreements (pure, so it is tested on numbers). `serving_new` None: nothing
    new was learned (a compaction), so there is no gain to check; `regression` None: nothing was re-asked."""
    metrics = {"candidate_new": candidate_new, "retention": retention, "reading": reading}
    if serving_new is not None:
        metrics["serving_new"] = serving_new
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
    if regression is not None:
        metrics["regression"] = regression
        if regression < cfg.min_regression:
            return GateResult(
                False,
                f"earlier memories lost: {regression:.3f} of them hold < gate.min_regression {cfg.min_regression}",
                metrics,
            )
    gain_text = "" if serving_new is None else f"gain {candidate_new - serving_new:.3f}, "
    held_text = "" if regression is None else f", earlier memories holding {regression:.3f}"
    return GateResult(True, f"{gain_text}retention {retention:.3f}, reading {reading:.3f}{held_text}", metrics)


def run_gate(
    serving: str,
    candidate: str,
    memories: Sequence[Memory],
    cfg: GateConfig,
    max_new_tokens: int = 12,
    *,
    anchor: str = "",
    regression: Sequence[RegressionProbe] = (),
    score: str = "exact",
    dtype: str = "float32",
) -> GateResult:
    """Write the probes with the serving checkpoint (old-knowledge ones with `anchor`, default the serving one),
    answer them with both, re-ask the `regression` probes, and `decide`. With no `memories`, only retention,
    reading of nothing (1.0) and the regression probes are checked. Answers agree as `score` says
    (`sleep_ray.eval.metrics.agree`: exact first lines, or half their tokens for free-text replies). Every model
    loads in `dtype` (model.dtype)."""
    writer = TeacherSelf(serving, threads=0, dtype=dtype)
    items = writer.write_questions(memories, per_memory=cfg.questions_per_memory, seed=cfg.seed) if memories else []
    old_model, tok = writer.model, writer.tokenizer
    keeper = TeacherSelf(anchor, threads=0, dtype=dtype) if anchor else writer
    rehearsal = [writer.fmt.closed_book(q) for q in keeper.old_questions(cfg.rehearsal_questions, seed=cfg.seed + 1)]

    def answer(model: object, texts: list[str]) -> list[str]:
        return complete(model, tok, texts, max_new_tokens) if texts else []  # type: ignore[arg-type]

    refs = answer(old_model, [it.teacher for it in items])
    serving_new = agreement(answer(old_model, [it.student for it in items]), refs, score)
    old_refs = answer(keeper.model, rehearsal)
    new_model, _ = load_pretrained(candidate, dtype)
    new_answers = answer(new_model, [it.student for it in items])
    candidate_new = agreement(new_answers, refs, score)
    retention = agreement(answer(new_model, rehearsal), old_refs, score)
    reading = agreement(answer(new_model, [it.teacher for it in items]), refs, score) if items else 1.0
    held = per_memory([it.memory_id for it in items], new_answers, refs, score)
    again = per_memory(
        [p.memory_id for p in regression],
        answer(new_model, [p.question for p in regression]),
        [p.reference for p in regression],
        score,
    )
    enough = len(again) >= cfg.min_regression_memories  # one or two lost memories say little about a night
    holding = sum(share >= cfg.memory_hold for share in again.values()) / len(again) if again and enough else None
    result = decide(serving_new if items else None, candidate_new, retention, cfg, reading, holding)
    result.probes = [RegressionProbe(it.memory_id, it.student, ref) for it, ref in zip(items, refs)]
    result.held = {**again, **held}
    old_text = [f"{q} {a.split(chr(10), 1)[0]}" for q, a in zip(rehearsal, old_refs)]
    free = [t for t in keeper.free_texts(max(1, cfg.rehearsal_questions // 4), seed=cfg.seed + 2) if t.strip()]
    result.metrics.update(
        questions=len(items),
        rehearsal_questions=len(rehearsal),
        regression_memories=len(again),
        perplexity_serving=round(text_perplexity(old_model, tok, old_text), 4),
        perplexity_candidate=round(text_perplexity(new_model, tok, old_text), 4),
        text_perplexity_serving=round(text_perplexity(old_model, tok, free), 4),
        text_perplexity_candidate=round(text_perplexity(new_model, tok, free), 4),
    )
    return result
