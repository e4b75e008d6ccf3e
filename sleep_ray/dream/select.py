"""The importance filter: score each dream by how hard it pulls on the trainable expert, keep the top-k plus b
random others (docs/METHOD.md §4.1, step 2).

The paper leaves open how the gradient g_i becomes a scalar; we use its L2 norm, ||grad_theta L_SFT(dream_i)||,
over the trainable parameters only (the new expert), so a dream the student already predicts well scores low.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

import torch
from transformers import PreTrainedTokenizerBase

from sleep_ray.losses.divergence import token_logprobs
from sleep_ray.losses.reduce import sequence_mean
from sleep_ray.models.scoring import completion_logits


def select(scores: Sequence[float], k: int, b: int, rng: random.Random) -> list[int]:
    """Indices of the top-`k` scores (ties by position) plus `b` drawn at random from the rest; sorted.

    scores: [N]. Returns min(N, k + b) distinct indices.
    """
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    top, rest = order[:k], order[k:]
    return sorted(top + rng.sample(rest, min(b, len(rest))))


def sft_loss(
    model: torch.nn.Module, tokenizer: PreTrainedTokenizerBase, prompts: Sequence[str], completions: Sequence[str]
) -> torch.Tensor:
    """Mean over sequences of the token-averaged negative log-likelihood of each completion after its prompt.

    prompts, completions: [B] strings. Returns a scalar with gradient.
    """
    ids = [list(tokenizer(c, add_special_tokens=False)["input_ids"]) for c in completions]
    p_ids = [list(tokenizer(p)["input_ids"]) for p in prompts]
    logits, tokens, mask = completion_logits(model, p_ids, ids, pad_id=tokenizer.pad_token_id)
    return -sequence_mean(token_logprobs(logits, tokens), mask).mean()


def importance(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[str],
    completions: Sequence[str],
    params: Sequence[torch.Tensor],
) -> list[float]:
    """||grad_params L_SFT(prompt_i -> completion_i)||_2, one backward per dream (params must require grad).

    prompts, completions: [N] strings. Returns [N] non-negative floats.
    """
    out = []
    for p, c in zip(prompts, completions):
        grads = torch.autograd.grad(sft_loss(model, tokenizer, [p], [c]), params, allow_unused=True)
        sq = [(g.float() ** 2).sum() for g in grads if g is not None]
        out.append(float(torch.stack(sq).sum().sqrt()) if sq else 0.0)
    return out
