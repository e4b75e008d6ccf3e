"""Masked reductions of per-token values (losses, divergences, log-probabilities).

A mask [B, T] (bool, or float weights) marks the positions that count, e.g. the completion tokens y and not the
prompt or the padding. Masked-out positions are ignored even if their values are NaN or inf (they are selected
away with `torch.where`, not multiplied by 0), and an empty mask gives 0, never NaN.

    masked_mean(v, m)        sum(v * m) / sum(m)                         any shape, or along `dim`
    sequence_mean(v, m)      (1/|y_b|) sum_n v[b, n] m[b, n]             [B, T] -> [B]  (docs/METHOD.md's F(T||S)(y|x))
    token_mean(v, m, N)      sum(v * m) / N, N = sum(m) by default       [B, T] -> scalar
"""

from __future__ import annotations

import torch
from torch import Tensor


def _masked_values(values: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(values * mask with masked-out entries exactly 0, mask as a float tensor of the values' dtype)."""
    weights = mask.to(values.dtype) if values.is_floating_point() else mask.float()
    weighted = torch.where(mask != 0, values * weights, torch.zeros_like(weights))
    return weighted, weights


def _safe_divide(num: Tensor, den: Tensor) -> Tensor:
    """num / den where den != 0, else 0 (no NaN in value or gradient)."""
    nonzero = den != 0
    return torch.where(nonzero, num / torch.where(nonzero, den, torch.ones_like(den)), torch.zeros_like(num))


def masked_mean(values: Tensor, mask: Tensor, dim: int | tuple[int, ...] | None = None) -> Tensor:
    """Masked mean: sum(values * mask) / sum(mask), over all entries (dim=None, a scalar) or along `dim`.

    values: any shape, e.g. [B, T]; mask: same shape (bool or float weights). Returns a scalar for dim=None,
    else `values` reduced along `dim`. Where the mask sums to 0 the result is 0.
    """
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    weighted, weights = _masked_values(values, mask)
    if dim is None:
        return _safe_divide(weighted.sum(), weights.sum())
    return _safe_divide(weighted.sum(dim=dim), weights.sum(dim=dim))


def sequence_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Per-sequence token average: out[b] = sum_n values[b, n] * mask[b, n] / sum_n mask[b, n].

    This is the token-averaged divergence of docs/METHOD.md §3.2, F(T || S)(y|x) = (1/|y|) sum_n F(...), with the mask
    selecting the positions of y. values, mask: [B, T]. Returns [B]; a row with an empty mask gives 0.
    Averaging the result over the batch weights every sequence equally, whatever its length.
    """
    if values.dim() != 2:
        raise ValueError(f"values must be [B, T], got {tuple(values.shape)}")
    return masked_mean(values, mask, dim=-1)


def token_mean(values: Tensor, mask: Tensor, *, total_tokens: Tensor | float | None = None) -> Tensor:
    """Token mean: sum_{b,n} values[b, n] * mask[b, n] / total_tokens, with total_tokens = sum(mask) by default.

    Every token weighs the same, whatever its sequence's length. values, mask: [B, T]; total_tokens: a number or
    a 0-dim tensor (no gradient). Returns a scalar; 0 when total_tokens is 0.

    Why a global token count. With data parallelism (or gradient accumulation) the batch is split into shards,
    and the loss we want is the token mean over the whole batch, sum_all / N_all. If each shard divided by its
    own count, the combined gradient would be a mean of per-shard means: tokens in a shard with fewer tokens
    would weigh more, and the loss would change with how the batch happens to be split. Passing the global count
    N_all (all-reduced by the caller) makes each shard's loss sum_shard / N_all, so the shards' losses add up
    to exactly sum_all / N_all for any split. Under DDP, which averages gradients over the W ranks instead of
    summing them, pass N_all / W (or multiply the loss by W); for gradient accumulation, pass the token count
    of all micro-batches of the step.
    """
    if values.shape != mask.shape:
        raise ValueError(f"values {tuple(values.shape)} and mask {tuple(mask.shape)} differ in shape")
    weighted, weights = _masked_values(values, mask)
    den = weights.sum() if total_tokens is None else torch.as_tensor(total_tokens, dtype=weighted.dtype)
    return _safe_divide(weighted.sum(), den.to(device=weighted.device, dtype=weighted.dtype))
