"""OpenAI's logit adjustments as pure functions, and the `transformers` logits processor that applies them.

    penalized = logits - frequency_penalty * count(token) - presence_penalty * [count(token) > 0] + logit_bias

where count(token) is how often the token occurs in the text generated so far (not the prompt), as the OpenAI
API reference defines the penalties.
"""

from __future__ import annotations

import torch
from transformers import LogitsProcessor


def token_counts(generated: torch.Tensor, vocab: int) -> torch.Tensor:
    """generated [B, T] token ids -> counts [B, vocab] (float): how often each id occurs in its row."""
    counts = torch.zeros(generated.shape[0], vocab, dtype=torch.float32, device=generated.device)
    if generated.shape[1]:
        counts.scatter_add_(1, generated, torch.ones_like(generated, dtype=torch.float32))
    return counts


def penalized(logits: torch.Tensor, counts: torch.Tensor, frequency: float, presence: float) -> torch.Tensor:
    """logits [B, V], counts [B, V] -> logits - frequency * counts - presence * (counts > 0), same shape."""
    return logits - frequency * counts.to(logits.dtype) - presence * (counts > 0).to(logits.dtype)


def biased(logits: torch.Tensor, bias: dict[int, float]) -> torch.Tensor:
    """logits [B, V] with `bias[id]` added to column `id` (ids outside the vocabulary are ignored)."""
    if not bias:
        return logits
    ids = torch.tensor([i for i in bias if 0 <= i < logits.shape[-1]], dtype=torch.long)
    if not len(ids):
        return logits
    values = torch.tensor([bias[int(i)] for i in ids], dtype=logits.dtype)
    out = logits.clone()
    out[:, ids] += values
    return out


class OpenAIAdjustments(LogitsProcessor):
    """Applies `penalized` and `biased` at every step to the tokens after the first `prompt_length`."""

    def __init__(self, prompt_length: int, frequency: float, presence: float, bias: dict[int, float]):
        self.prompt_length, self.frequency, self.presence, self.bias = prompt_length, frequency, presence, bias

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        out: torch.Tensor = scores
        if self.frequency or self.presence:
            counts = token_counts(input_ids[:, self.prompt_length :], scores.shape[-1])
            out = penalized(out, counts, self.frequency, self.presence)
        return biased(out, self.bias)  # type: ignore[return-value]

    @property
    def active(self) -> bool:
        return bool(self.frequency or self.presence or self.bias)
