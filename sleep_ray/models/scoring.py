"""Logits at the positions of a completion, for a batch of (prompt, completion) pairs of different lengths.

Both the teacher-self (scoring, no gradient) and the student-large (training, with gradient) call this, so they
agree on alignment: the logits at index t of the result predict completion token t.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def completion_logits(
    model: torch.nn.Module,
    prompt_ids: Sequence[Sequence[int]],
    completion_ids: Sequence[Sequence[int]],
    *,
    pad_id: int = 0,
) -> tuple[Tensor, Tensor, Tensor]:
    """Run `prompt + completion` for each row (right-padded) and gather the logits that predict the completion.

    prompt_ids: B lists (each non-empty); completion_ids: B lists of n_b >= 0 tokens. Returns
    (logits [B, T, V], tokens [B, T] long, mask [B, T] bool) with T = max n_b: logits[b, t] is the model's
    distribution for completion token t of row b (computed at sequence position len(prompt_b) + t - 1), tokens
    holds the completion tokens, and mask is True on the first n_b positions of row b. Prompts longer than the
    model's window keep their last tokens. `model` may be a DDP wrapper. Gradients flow when called outside
    `torch.no_grad()`.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    config = getattr(model, "module", model).config  # `model` may be wrapped in DistributedDataParallel
    window = int(getattr(config, "max_position_embeddings", 2048))
    rows, starts = [], []
    for p, c in zip(prompt_ids, completion_ids):
        if not p:
            raise ValueError("every prompt needs at least one token (a BOS token will do)")
        keep = max(1, window - len(c))
        p = list(p)[-keep:]
        rows.append(p + list(c))
        starts.append(len(p) - 1)
    length = max(len(r) for r in rows)
    n_max = max((len(c) for c in completion_ids), default=0)
    device = next(model.parameters()).device
    input_ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), length), dtype=torch.long)
    for b, r in enumerate(rows):
        input_ids[b, : len(r)] = torch.tensor(r)
        attention[b, : len(r)] = 1
    logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits  # [B, L, V]
    index = torch.zeros((len(rows), n_max), dtype=torch.long)
    tokens = torch.zeros((len(rows), n_max), dtype=torch.long)
    mask = torch.zeros((len(rows), n_max), dtype=torch.bool)
    for b, c in enumerate(completion_ids):
        n = len(c)
        index[b, :n] = torch.arange(starts[b], starts[b] + n)
        tokens[b, :n] = torch.tensor(list(c), dtype=torch.long)
        mask[b, :n] = True
    gathered = logits.gather(1, index.to(device).unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    return gathered, tokens.to(device), mask.to(device)
