"""The student-large: the grown model, no context, only the new expert trains. Its two losses live here.

    L_dist = E_y [ F(T || S) ]  over y from the teacher (1 - lambda) or from the student (lambda)
    L_lti  = policy-gradient loss of the student's completions of dream prefixes, group-relative advantages
    loss   = alpha * L_dist + (1 - alpha) * L_lti      (minimising it maximises (1-alpha) E[r] - alpha L_dist)

The functions take plain records (SeedPrompt, TeacherLogits, ImitationItem) and a model, so they are tested in-process;
the Ray Train loop (`train_loop.py`) only fetches the records and calls them.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor
from transformers import LlamaForCausalLM, PreTrainedModel, PreTrainedTokenizerBase

from sleep_ray.config import GrowthConfig, SeedingConfig
from sleep_ray.losses.divergence import divergence, token_logprobs
from sleep_ray.losses.policy import group_advantages, policy_gradient_loss
from sleep_ray.losses.reduce import masked_mean, sequence_mean
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.growth import GrowthRecord, freeze_all_but_expert, grow
from sleep_ray.models.scoring import completion_logits
from sleep_ray.records import ImitationItem, SeedPrompt, TeacherLogits
from sleep_ray.rollout.engine import to_arrays

GROWTH_FILE = "growth.json"


def make_student(
    base: PreTrainedModel, cfg: GrowthConfig, *, seed: int, experts_so_far: int
) -> tuple[PreTrainedModel, GrowthRecord | None]:
    """The grown copy of `base` (or, with growth disabled, a plain copy whose every parameter trains)."""
    if not cfg.enabled:
        return copy.deepcopy(base), None
    return grow(cast(LlamaForCausalLM, base), cfg, seed=seed, experts_so_far=experts_so_far)


def prepare_trainable(model: PreTrainedModel, record: GrowthRecord | None) -> list[torch.nn.Parameter]:
    """Freeze all but the expert (or nothing, without growth); returns the parameters the optimizer updates."""
    if record is not None:
        freeze_all_but_expert(model, record)
    return [p for p in model.parameters() if p.requires_grad]


def save_growth(path: str | Path, record: GrowthRecord | None) -> None:
    Path(path, GROWTH_FILE).write_text(json.dumps(None if record is None else record.__dict__))


def load_growth(path: str | Path) -> GrowthRecord | None:
    data = json.loads(Path(path, GROWTH_FILE).read_text())
    return None if data is None else GrowthRecord(**{**data, "layers": tuple(data["layers"])})


def load_student(path: str | Path) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, GrowthRecord | None]:
    """The student to train, in float32 whatever `model.dtype` its init was saved in: AdamW steps on float32
    master weights (forward passes autocast to `model.dtype` on CUDA), and the export casts back."""
    model, tokenizer = load_pretrained(path, "float32")
    return model, tokenizer, load_growth(path)


def trainable_arrays(model: torch.nn.Module) -> dict[str, np.ndarray]:
    """What a weight push carries: every tensor that trains (for a grown model, the widened MLP matrices)."""
    return to_arrays({n: p for n, p in model.named_parameters() if p.requires_grad})


def _ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return list(tokenizer(text)["input_ids"])


def student_logits(
    student: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[Sequence[int]],
) -> tuple[Tensor, Tensor, Tensor]:
    """The student's logits on each completion after its prompt (no context): logits [B, T, V], tokens [B, T],
    mask [B, T]. Computed before the teacher's or the critic's answer arrives, so the two overlap."""
    return completion_logits(student, [_ids(tokenizer, p) for p in prompts], completions, pad_id=tokenizer.pad_token_id)


def distill_loss(
    student: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    items: Sequence[SeedPrompt],
    completions: Sequence[Sequence[int]],
    teacher: Sequence[TeacherLogits],
    cfg: SeedingConfig,
) -> Tensor:
    """Token-averaged F(T || S) per sequence, averaged over the batch (a scalar with gradient).

    The student reads each item's `student` prompt followed by the completion; teacher[i].values is the
    teacher's [n_i, V] (or top-K [n_i, K] with indices) logits on the same completion after its own prompt.
    """
    if not items:
        raise ValueError("distill_loss needs at least one item")
    s_logits, _, mask = student_logits(student, tokenizer, [it.student for it in items], completions)
    return distill_from_logits(s_logits, mask, completions, teacher, cfg)


def distill_from_logits(
    s_logits: Tensor,
    mask: Tensor,
    completions: Sequence[Sequence[int]],
    teacher: Sequence[TeacherLogits],
    cfg: SeedingConfig,
) -> Tensor:
    """`distill_loss` given the student's logits [B, T, V] and mask [B, T] (from `student_logits`)."""
    b, t = mask.shape
    width = teacher[0].values.shape[-1]
    t_logits = torch.zeros((b, t, width), dtype=torch.float32)
    topk = teacher[0].indices is not None
    index = torch.zeros((b, t, width), dtype=torch.long)
    for i, tl in enumerate(teacher):
        n = len(completions[i])
        t_logits[i, :n] = torch.from_numpy(np.array(tl.values[:n]))
        if topk:
            index[i, :n] = torch.from_numpy(np.array(tl.indices[:n]))  # type: ignore[index]
    if topk:
        s_logits = s_logits.gather(-1, index.to(s_logits.device))  # the student's logits on the teacher's top-K
    t_logits, s_logits = t_logits.to(s_logits.device), s_logits.float()  # the student may run on CUDA, in bf16
    per_token = divergence(cfg.divergence, t_logits, s_logits, beta=cfg.beta, temperature=cfg.temperature)
    return sequence_mean(per_token, mask).mean()


def imitation_loss(
    student: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    dreams: Sequence[ImitationItem],
    completions: Sequence[Sequence[int]],
    rewards: Sequence[float],
    *,
    group_size: int,
    temperature: float,
) -> Tensor:
    """Group-relative policy gradient on the student's completions of dream prefixes (a scalar with gradient).

    dreams[i] and completions[i] come in consecutive groups of `group_size` completions of the same prefix;
    rewards[i] is the critic's r for completion i. Returns the mean over sequences of the per-token loss
    -A_i * log S(y_i,n | prefix_i, y_i,<n), averaged over each sequence's tokens.
    """
    logits, tokens, mask = student_logits(student, tokenizer, [d.prefix for d in dreams], completions)
    return imitation_from_logits(logits, tokens, mask, rewards, group_size=group_size, temperature=temperature)


def imitation_from_logits(
    logits: Tensor, tokens: Tensor, mask: Tensor, rewards: Sequence[float], *, group_size: int, temperature: float
) -> Tensor:
    """`imitation_loss` given the student's logits [B, T, V], tokens [B, T] and mask [B, T]."""
    device = logits.device
    adv = group_advantages(torch.tensor(list(rewards), dtype=torch.float32, device=device), group_size=group_size)
    logprobs = token_logprobs(logits.float(), tokens, temperature=temperature)
    per_token = policy_gradient_loss(logprobs, adv, mask)
    return masked_mean(sequence_mean(per_token, mask), torch.ones(len(rewards), dtype=torch.bool, device=device))
