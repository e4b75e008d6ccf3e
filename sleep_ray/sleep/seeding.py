"""Knowledge Seeding in one process: the teacher-self (memory in context) distils into the grown student.

This is the plain-Python core that the Ray roles and the Ray Train loop wrap; it runs on its own for tests
and small experiments.

    student, report = seed(base_model, tokenizer, memories, cfg.sleep, rng=random.Random(0))

One step (method.md section 3.3, GKD form):
  1. prompts x: questions the teacher writes about each memory (question_writing prompt, sampled), plus
     self-rehearsal questions about old knowledge that the pre-sleep model writes with no memory;
  2. continuations y: with probability `lmbda` sampled from the student (no context), else from the teacher
     (memory in context; for rehearsal prompts the teacher has no context either);
  3. loss: the token-averaged divergence F(T || S) over the positions of y, where T sees
     `in_context(memory, x) + y` and S sees `closed_book(x) + y`; only the new expert receives gradient.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import cast

import torch
from transformers import LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from sleep_ray.config import SleepConfig
from sleep_ray.data import prompts
from sleep_ray.data.schema import Memory
from sleep_ray.losses.divergence import divergence
from sleep_ray.models.generate import complete
from sleep_ray.models.growth import freeze_all_but_expert, grow


@dataclass(frozen=True)
class SeedPrompt:
    """A question for the student; `context` is what the teacher additionally sees ("" for rehearsal)."""

    question: str
    context: str


@dataclass
class SeedingReport:
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    prompts: int = 0


def write_questions(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    contexts: list[str],
    per_context: int,
    temperature: float,
) -> list[str]:
    """Questions the model writes about each context (empty context: about what it already knows)."""
    texts = [prompts.question_writing(c) if c else "Question:" for c in contexts for _ in range(per_context)]
    raw = complete(model, tokenizer, texts, max_new_tokens=24, do_sample=True, temperature=temperature)
    out = []
    for r in raw:
        q = r.split("\n", 1)[0].strip()
        if q.endswith("?") or q.endswith("."):
            out.append(q)
    return out


def build_prompts(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    memories: list[Memory],
    *,
    per_memory: int,
    rehearsal_fraction: float,
    temperature: float,
) -> list[SeedPrompt]:
    """Seeding prompts for `memories`, plus self-rehearsal prompts about old knowledge (no context)."""
    items: list[SeedPrompt] = []
    for m in memories:
        items += [SeedPrompt(q, m.text) for q in write_questions(model, tokenizer, [m.text], per_memory, temperature)]
    n_rehearsal = int(len(items) * rehearsal_fraction / max(1e-9, 1 - rehearsal_fraction))
    if n_rehearsal:
        items += [SeedPrompt(q, "") for q in write_questions(model, tokenizer, [""], n_rehearsal, temperature)]
    return items


def teacher_prompt(item: SeedPrompt) -> str:
    """What the teacher reads: the memory in context, or (rehearsal) the bare question."""
    return prompts.in_context(item.context, item.question) if item.context else prompts.closed_book(item.question)


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return tokenizer(text)["input_ids"]


def distill_loss(
    teacher: PreTrainedModel,
    student: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    item: SeedPrompt,
    completion: list[int],
    cfg: SleepConfig,
) -> torch.Tensor:
    """F(T || S) averaged over the completion's positions, for one prompt. Returns a scalar with grad."""
    s = cfg.seeding
    t_ids, s_ids = _ids(tokenizer, teacher_prompt(item)), _ids(tokenizer, prompts.closed_book(item.question))
    n = len(completion)
    with torch.no_grad():
        t_logits = teacher(input_ids=torch.tensor([t_ids + completion])).logits[:, len(t_ids) - 1 : len(t_ids) - 1 + n]
    s_logits = student(input_ids=torch.tensor([s_ids + completion])).logits[:, len(s_ids) - 1 : len(s_ids) - 1 + n]
    per_token = divergence(s.divergence, t_logits, s_logits, beta=s.beta, temperature=s.temperature, topk=s.topk)
    return per_token.mean()


def sample_completion(
    model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, prompt: str, max_new_tokens: int, temperature: float
) -> list[int]:
    """Token ids of one sampled continuation, ending with EOS when the model stops."""
    text = complete(model, tokenizer, [prompt], max_new_tokens, do_sample=True, temperature=temperature)[0]
    answer = text.split("\n", 1)[0]
    return tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]


def seed(
    base: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    memories: list[Memory],
    cfg: SleepConfig,
    *,
    rng: random.Random,
    experts_so_far: int = 0,
    per_memory: int = 8,
    batch_size: int = 8,
    max_new_tokens: int = 8,
) -> tuple[PreTrainedModel, SeedingReport]:
    """Grow `base` by one expert and distil the memories into it. `base` itself is not changed."""
    s = cfg.seeding
    teacher = base.eval()
    student, record = grow(
        cast(LlamaForCausalLM, base), cfg.growth, seed=rng.randrange(2**31), experts_so_far=experts_so_far
    )
    freeze_all_but_expert(student, record)
    items = build_prompts(
        teacher,
        tokenizer,
        memories,
        per_memory=per_memory,
        rehearsal_fraction=s.rehearsal_fraction,
        temperature=s.temperature,
    )
    report = SeedingReport(prompts=len(items))
    if not items:
        return student, report
    params = [p for p in student.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=s.lr, weight_decay=0.0)
    for _ in range(s.steps):
        batch = rng.sample(items, min(batch_size, len(items)))
        losses = []
        for item in batch:
            if rng.random() < s.lmbda:  # on-policy: the student samples, without context
                model, prompt = student, prompts.closed_book(item.question)
            else:
                model, prompt = teacher, teacher_prompt(item)
            completion = sample_completion(model, tokenizer, prompt, max_new_tokens, s.temperature)
            losses.append(distill_loss(teacher, student, tokenizer, item, completion, cfg))
        loss = torch.stack(losses).mean()
        student.train()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        report.losses.append(float(loss.detach()))
        report.steps += 1
    student.eval()
    return student, report
