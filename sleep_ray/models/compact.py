"""Compact the student-large: keep the base MLP and the most important grown units, then distil.

Each sleep widens every MLP by d_low hidden units (`sleep_ray.models.growth`), so after many sleeps a layer holds
`base_units` units of the base model followed by G grown ones. Hidden unit k contributes h_k * down[:, k] to the
MLP's output, with h = silu(gate(x)) * up(x), so removing unit k is exactly zeroing its down column. Compaction:

    1. rank:    importance[l, j] = mean over real tokens of |h_j| * ||down[:, base_units + j]||_2
                (h captured by a forward pre-hook on down_proj, whose input is h: [B, T, I])
    2. prune:   per layer keep units [0, base_units) untouched plus the `keep_units` grown units of highest
                importance (ascending order); the same count in every layer, as Llama has one intermediate_size
                    gate.weight, up.weight [I, d] -> [base_units + keep_units, d]   (rows)
                    down.weight            [d, I] -> [d, base_units + keep_units]   (columns)
    3. distil:  train only the kept grown units (rows >= base_units of gate/up, columns >= base_units of down)
                for `steps` AdamW steps toward the uncompacted model (the teacher, frozen), minimising the
                forward KL(teacher || student) per token over the full vocabulary, averaged over real tokens.

The pruned model stays a standard Llama checkpoint (plain nn.Linear weights, `config.intermediate_size`
updated). The base units and every parameter outside the MLPs stay bit-identical: gradient hooks zero the
gradient of the base slices and weight decay is 0, so AdamW leaves those entries exactly where they are.
Batches are right-padded with `tokenizer.pad_token_id`, so real tokens keep their positions and never see pads.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import Tensor, nn
from transformers import LlamaForCausalLM, PreTrainedTokenizerBase

from sleep_ray.losses.divergence import divergence
from sleep_ray.losses.reduce import token_mean
from sleep_ray.models.growth import _PROJ, _mlps, _old_slice, _zero_old


@dataclass(frozen=True)
class CompactionRecord:
    """What one compaction did; JSON-able via `dataclasses.asdict`.

    units_before / units_after: grown units per layer before / after. loss_first / loss_last: distillation loss
    at the first / last step (nan when steps == 0). kept: per layer, the indices (relative to base_units, in
    ascending order) of the grown units kept.
    """

    base_units: int
    units_before: int
    units_after: int
    steps: int
    loss_first: float
    loss_last: float
    kept: tuple[tuple[int, ...], ...]


def count_grown_units(model: nn.Module, base_units: int) -> int:
    """Grown hidden units per MLP: config.intermediate_size - base_units (raises if negative)."""
    grown = int(cast(Any, model).config.intermediate_size) - base_units
    if base_units < 0 or grown < 0:
        raise ValueError(f"base_units={base_units} outside [0, intermediate_size={grown + base_units}]")
    return grown


def _encode(tokenizer: PreTrainedTokenizerBase, texts: Sequence[str], device: torch.device) -> tuple[Tensor, Tensor]:
    """Right-padded (input_ids [B, T] long, attention_mask [B, T] long) of `texts`, on `device`."""
    pad = tokenizer.pad_token_id
    if pad is None:
        raise ValueError("the tokenizer has no pad_token_id")
    rows = [list(tokenizer(t)["input_ids"]) for t in texts]
    width = max(1, max(len(r) for r in rows))
    ids = torch.full((len(rows), width), int(pad), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for b, r in enumerate(rows):
        ids[b, : len(r)] = torch.tensor(r, dtype=torch.long)
        mask[b, : len(r)] = 1
    return ids.to(device), mask.to(device)


@torch.no_grad()
def unit_importance(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    base_units: int,
    batch_size: int = 16,
) -> Tensor:
    """Importance of every grown unit: [layers, grown_units] float32 (see the module docstring, step 1).

    importance[l, j] = (1/N) sum over the N real tokens of |h_j| * ||down_l.weight[:, base_units + j]||_2, with h
    the input of layer l's down_proj. The model runs in eval mode; its training flag is restored afterwards.
    """
    grown = count_grown_units(model, base_units)
    if not texts:
        raise ValueError("unit_importance needs at least one text")
    mlps = _mlps(model)
    device = next(model.parameters()).device
    sums = torch.zeros(len(mlps), grown, dtype=torch.float32, device=device)
    current: dict[str, Tensor] = {}

    def hook_for(layer: int) -> Any:
        def hook(_module: nn.Module, inputs: tuple[Tensor, ...]) -> None:
            h = inputs[0][..., base_units:].abs().float()  # [B, T, G]
            sums[layer] += (h * current["mask"].unsqueeze(-1)).sum(dim=(0, 1))

        return hook

    handles = [mlp.down_proj.register_forward_pre_hook(hook_for(i)) for i, mlp in enumerate(mlps)]
    was_training = model.training
    model.eval()
    tokens = 0
    try:
        for start in range(0, len(texts), batch_size):
            ids, mask = _encode(tokenizer, texts[start : start + batch_size], device)
            current["mask"] = mask.float()
            tokens += int(mask.sum())
            model(input_ids=ids, attention_mask=mask)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    norms = torch.stack([mlp.down_proj.weight[:, base_units:].float().norm(dim=0) for mlp in mlps])  # [L, G]
    return sums / max(tokens, 1) * norms


@torch.no_grad()
def prune_units(model: LlamaForCausalLM, base_units: int, keep: Sequence[Sequence[int]]) -> LlamaForCausalLM:
    """A deep copy keeping, in every MLP l, units [0, base_units) and base_units + sorted(keep[l]); `model` untouched.

    gate/up.weight [I, d] -> [base_units + K, d], down.weight [d, I] -> [d, base_units + K], K = len(keep[l]),
    which must be the same in every layer. Keeping every unit gives exactly the same logits.
    """
    grown = count_grown_units(model, base_units)
    mlps = _mlps(model)
    if len(keep) != len(mlps):
        raise ValueError(f"keep has {len(keep)} lists for a model with {len(mlps)} layers")
    counts = {len(k) for k in keep}
    if len(counts) != 1:
        raise ValueError(f"every layer must keep the same number of grown units, got counts {[len(k) for k in keep]}")
    for layer, k in enumerate(keep):
        if len(set(k)) != len(k) or any(not 0 <= j < grown for j in k):
            raise ValueError(f"layer {layer}: keep {list(k)} has duplicates or indices outside [0, {grown})")
    new_i = base_units + counts.pop()
    pruned = copy.deepcopy(model)
    for mlp, k in zip(_mlps(pruned), keep):
        index = torch.cat([torch.arange(base_units), base_units + torch.tensor(sorted(k), dtype=torch.long)])
        index = index.to(mlp.gate_proj.weight.device)
        for proj in _PROJ:
            dim = 1 if proj == "down_proj" else 0
            linear = getattr(mlp, proj)
            old = linear.weight
            linear.weight = nn.Parameter(old.detach().index_select(dim, index).clone(), requires_grad=old.requires_grad)
        mlp.gate_proj.out_features = mlp.up_proj.out_features = new_i
        mlp.down_proj.in_features = new_i
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = new_i
    pruned.config.intermediate_size = new_i  # shared by the copy's modules
    return pruned


def compact(
    model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    *,
    base_units: int,
    keep_units: int,
    texts: Sequence[str],
    steps: int,
    lr: float,
    batch_size: int = 8,
    seed: int = 0,
) -> tuple[LlamaForCausalLM, CompactionRecord]:
    """Prune `model` to base_units + keep_units MLP units and distil the kept grown units toward `model`.

    With at most keep_units grown units, returns an unchanged deep copy (steps 0). Else ranks by
    `unit_importance` on `texts`, prunes (`prune_units`) and trains for `steps` AdamW steps (weight decay 0), each
    on min(batch_size, len(texts)) distinct texts drawn with a generator seeded by `seed`. `model` is the frozen
    teacher and is left untouched (its training flag too). Returns the compacted model in eval mode.
    """
    if keep_units < 0:
        raise ValueError(f"keep_units must be >= 0, got {keep_units}")
    grown = count_grown_units(model, base_units)
    if grown <= keep_units:
        same = copy.deepcopy(model).eval()
        kept_all = tuple(tuple(range(grown)) for _ in _mlps(model))
        return same, CompactionRecord(base_units, grown, grown, 0, math.nan, math.nan, kept_all)
    if not texts:
        raise ValueError("compact needs at least one text")
    importance = unit_importance(model, tokenizer, texts, base_units)  # [L, G]
    kept = tuple(tuple(sorted(row.topk(keep_units).indices.tolist())) for row in importance)
    student = prune_units(model, base_units, kept)

    losses = _distil(model, student, tokenizer, texts, base_units, steps=steps, lr=lr, batch_size=batch_size, seed=seed)
    first, last = (losses[0], losses[-1]) if losses else (math.nan, math.nan)
    return student.eval(), CompactionRecord(base_units, grown, keep_units, steps, first, last, kept)


def _distil(
    teacher: LlamaForCausalLM,
    student: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    texts: Sequence[str],
    base_units: int,
    *,
    steps: int,
    lr: float,
    batch_size: int,
    seed: int,
) -> list[float]:
    """Train the student's grown MLP units toward the frozen teacher in place; returns the loss of every step.

    Loss per step: token mean over real tokens of KL(teacher || student) [B, T]. Only gate/up/down weights get
    gradients, and hooks zero them on the base slices; hooks and requires_grad flags are restored afterwards.
    """
    flags = [p.requires_grad for p in student.parameters()]
    for p in student.parameters():
        p.requires_grad_(False)
    trainable, hooks = [], []
    for mlp in _mlps(student):
        for proj in _PROJ:
            weight = getattr(mlp, proj).weight
            weight.requires_grad_(True)
            hooks.append(weight.register_hook(_zero_old(_old_slice(proj, base_units))))
            trainable.append(weight)
    opt = torch.optim.AdamW(trainable, lr=lr, weight_decay=0.0)
    gen = torch.Generator().manual_seed(seed)
    device = next(student.parameters()).device
    losses: list[float] = []
    was_training = teacher.training
    teacher.eval()
    student.train()
    try:
        for _ in range(steps):
            pick = torch.randperm(len(texts), generator=gen)[:batch_size].tolist()
            ids, mask = _encode(tokenizer, [texts[i] for i in pick], device)
            with torch.no_grad():
                t_logits = teacher(input_ids=ids, attention_mask=mask).logits  # [B, T, V]
            s_logits = student(input_ids=ids, attention_mask=mask).logits  # [B, T, V]
            kl = divergence("forward_kl", t_logits, s_logits, beta=0.5, temperature=1.0)  # [B, T]
            loss = token_mean(kl, mask.bool())
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
    finally:
        teacher.train(was_training)
        for handle in hooks:
            handle.remove()
        for p, flag in zip(student.parameters(), flags):
            p.requires_grad_(flag)
    return losses
