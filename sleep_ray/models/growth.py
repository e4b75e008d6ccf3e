"""Grow the student-large: one new low-rank SwiGLU expert per sleep, as extra hidden units of each MLP.

A Llama MLP computes `down(silu(gate(x)) * up(x))` with gate, up: [I, d] and down: [d, I]. Adding `d_low`
hidden units (new rows of gate and up, new columns of down) is exactly adding a SwiGLU expert of width d_low
whose output is summed with the old MLP's (docs/METHOD.md §2; closest to LLaMA Pro / MoE-of-LoRA):

    gate.weight [I, d] -> [I + d_low, d]     rows    I: are the new expert's "A" (with up)
    up.weight   [I, d] -> [I + d_low, d]     rows    I: likewise
    down.weight [d, I] -> [d, I + d_low]     columns I: are the new expert's "B"

The grown model stays a *standard* Llama checkpoint (plain nn.Linear weights, `config.intermediate_size`
updated), so `save_pretrained` / `AutoModelForCausalLM.from_pretrained` need no project code.

Initialisation. The new down columns start at ZERO, so the grown model computes exactly what the small one did
(function preservation). The new gate and up rows are random (normal, std = `config.initializer_range`). They must
not be zero too: the new units' activation is h = silu(gate x) * (up x), the gradient of down's new columns is
h^T dL/dy and that of gate/up's new rows is proportional to down's new columns. With gate or up zero, h = 0 and
with down zero as well every one of those gradients is zero: the expert sits at a saddle and never learns. With
gate/up random, h != 0, down gets a gradient on the first step, and gate/up follow once down is non-zero.

Subset growth (`GrowthConfig.layers` not empty). A standard Llama config has one `intermediate_size` for all
layers, so every layer is widened; the layers not chosen get new units whose gate, up AND down entries are all
zero (their output is silu(0) * 0 = 0) and are never trainable (`trainable_expert_mask` is False there, and
`freeze_all_but_expert` freezes them), so they stay zero forever. This costs 3 * d * d_low dead parameters per
non-chosen layer, and keeps the checkpoint standard.

Freezing. `freeze_all_but_expert` sets requires_grad False everywhere but gate/up/down of the grown layers and
registers gradient hooks that zero the gradient outside the new expert's slice. An optimizer with weight decay
would still move the old entries of those tensors (decoupled decay does not look at the gradient): use
weight_decay=0 on them (Adam/AdamW with zero gradient and zero decay leaves an entry bit-identical), or optimise
only the expert slices. The hooks live on the parameter tensors; `grow` replaces those tensors, so hooks never
carry over to a later growth (and `copy.deepcopy` does not copy them).

Supported architectures. Growth needs separate bias-free gate/up/down projections and one `intermediate_size`:
Llama, Mistral, Qwen2/3 and Gemma 1/2 (`sleep_ray.config.architecture`). Others (GPT-2, GPT-NeoX, Phi-3's fused
gate_up_proj, ...) are refused with `GrowthUnsupportedError` naming the architecture, before anything is copied;
`growth_support(config)` gives the same answer from a config alone (the config loader uses it).

    big, record = grow(small, cfg.sleep.growth, seed=cfg.seed, experts_so_far=n)
    freeze_all_but_expert(big, record)
    opt = torch.optim.AdamW([p for p in big.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0)
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn
from transformers import LlamaForCausalLM

from sleep_ray.config import GrowthConfig
from sleep_ray.config.architecture import HINT, GrowthUnsupportedError, growth_support
from sleep_ray.seeds import derive

__all__ = [
    "GrowthRecord",
    "GrowthUnsupportedError",
    "check_growable",
    "expert_parameters",
    "freeze_all_but_expert",
    "grow",
    "growth_support",
    "trainable_expert_mask",
]

_PROJ = ("gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class GrowthRecord:
    """What one growth did; JSON-able via `dataclasses.asdict` for `CheckpointMeta.extra`.

    d_low: new hidden units per layer. layers: the layers whose new units are trainable (sorted; all layers when
    the config's list is empty). old_intermediate / new_intermediate: the MLP width before / after
    (new = old + d_low, the same in every layer). expert_index: 0-based index of this expert (= experts_so_far).
    """

    d_low: int
    layers: tuple[int, ...]
    old_intermediate: int
    new_intermediate: int
    expert_index: int


def _mlps(model: nn.Module) -> list[Any]:
    """The MLP of every decoder layer, in order (LlamaMLP, typed Any); GrowthUnsupportedError if not Llama-shaped."""
    kind = getattr(getattr(model, "config", None), "model_type", None) or type(model).__name__
    layers = getattr(getattr(model, "model", None), "layers", None)
    if layers is None:
        raise GrowthUnsupportedError(f"{kind}: no decoder layers at model.model.layers; {HINT}")
    mlps = [getattr(layer, "mlp", None) for layer in layers]
    for i, mlp in enumerate(mlps):
        for name in _PROJ:
            proj = getattr(mlp, name, None)
            if not isinstance(proj, nn.Linear):
                raise GrowthUnsupportedError(f"{kind}: layer {i} has no nn.Linear mlp.{name}; {HINT}")
            if proj.bias is not None:
                raise GrowthUnsupportedError(f"{kind}: layer {i}: mlp.{name} has a bias (mlp_bias=true); {HINT}")
    return mlps


def check_growable(model: nn.Module) -> None:
    """Raise GrowthUnsupportedError (a ValueError naming the architecture) unless `grow` widens `model` exactly:
    a supported config (`growth_support`) and, in every layer, bias-free nn.Linear gate/up/down projections."""
    config = getattr(model, "config", None)
    if config is None:
        raise GrowthUnsupportedError(f"{type(model).__name__}: no config to judge the architecture by; {HINT}")
    reason = growth_support(config)
    if reason is not None:
        raise GrowthUnsupportedError(reason)
    _mlps(model)


def _chosen_layers(cfg: GrowthConfig, num_layers: int) -> tuple[int, ...]:
    """The layers whose new units train: all when `cfg.layers` is empty, else the listed ones (checked)."""
    if not cfg.layers:
        return tuple(range(num_layers))
    bad = [i for i in cfg.layers if not 0 <= i < num_layers]
    if bad:
        raise ValueError(f"sleep.growth.layers: {bad} out of range for a model with {num_layers} layers")
    if len(set(cfg.layers)) != len(cfg.layers):
        raise ValueError(f"sleep.growth.layers: duplicate entries in {list(cfg.layers)}")
    return tuple(sorted(cfg.layers))


def _new_param(old: nn.Parameter, extra: torch.Tensor, dim: int) -> nn.Parameter:
    """`old` with `extra` concatenated along `dim`, as a fresh Parameter (same dtype, device, requires_grad)."""
    data = torch.cat([old.detach(), extra.to(dtype=old.dtype, device=old.device)], dim=dim)
    return nn.Parameter(data, requires_grad=old.requires_grad)


@torch.no_grad()
def grow(
    model: LlamaForCausalLM,
    cfg: GrowthConfig,
    *,
    seed: int = 0,
    experts_so_far: int = 0,
) -> tuple[LlamaForCausalLM, GrowthRecord]:
    """A deep copy of `model` with every MLP widened by `cfg.d_low` units; `model` itself is untouched.

    Chosen layers get random gate/up rows [d_low, d] (std = initializer_range) and zero down columns [d, d_low];
    other layers get all-zero new units (see the module docstring). The grown model's logits equal the
    original's. The random draw depends on (seed, experts_so_far), so successive sleeps of one run get
    different experts. The size budget (`cfg.max_size`) is the night's to keep (`sleep_ray.models.compact`).
    Raises GrowthUnsupportedError first, touching nothing, for an architecture growth cannot widen exactly.
    """
    check_growable(model)
    if experts_so_far < 0:
        raise ValueError(f"experts_so_far must be >= 0, got {experts_so_far}")
    if cfg.d_low < 1:
        raise ValueError(f"sleep.growth.d_low must be >= 1, got {cfg.d_low}")
    old_mlps = _mlps(model)
    chosen = _chosen_layers(cfg, len(old_mlps))
    old_i = int(model.config.intermediate_size)
    widths = {mlp.gate_proj.out_features for mlp in old_mlps}
    if widths != {old_i}:
        raise ValueError(f"MLP widths {sorted(widths)} disagree with config.intermediate_size={old_i}")

    grown = copy.deepcopy(model)
    new_i = old_i + cfg.d_low
    std = float(getattr(grown.config, "initializer_range", 0.02) or 0.02)
    gen = torch.Generator().manual_seed(derive(seed, experts_so_far))
    for i, mlp in enumerate(_mlps(grown)):
        d = mlp.gate_proj.in_features
        if i in chosen:
            gate_rows = torch.randn(cfg.d_low, d, generator=gen) * std  # [d_low, d]
            up_rows = torch.randn(cfg.d_low, d, generator=gen) * std  # [d_low, d]
        else:
            gate_rows = torch.zeros(cfg.d_low, d)
            up_rows = torch.zeros(cfg.d_low, d)
        down_cols = torch.zeros(mlp.down_proj.out_features, cfg.d_low)  # [d, d_low]
        mlp.gate_proj.weight = _new_param(mlp.gate_proj.weight, gate_rows, dim=0)  # [I + d_low, d]
        mlp.up_proj.weight = _new_param(mlp.up_proj.weight, up_rows, dim=0)  # [I + d_low, d]
        mlp.down_proj.weight = _new_param(mlp.down_proj.weight, down_cols, dim=1)  # [d, I + d_low]
        mlp.gate_proj.out_features = mlp.up_proj.out_features = new_i
        mlp.down_proj.in_features = new_i
        if hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = new_i
    # The copy's modules share the copy's config object (deepcopy memo), so this updates them all.
    grown.config.intermediate_size = new_i
    record = GrowthRecord(
        d_low=cfg.d_low,
        layers=chosen,
        old_intermediate=old_i,
        new_intermediate=new_i,
        expert_index=experts_so_far,
    )
    return grown, record


def _expert_names(model: nn.Module, record: GrowthRecord) -> dict[str, tuple[int, str]]:
    """Parameter name -> (layer, projection) for gate/up/down weights of the record's grown layers."""
    _check(model, record)
    prefix = {id(mlp): i for i, mlp in enumerate(_mlps(model))}
    out: dict[str, tuple[int, str]] = {}
    for name, module in model.named_modules():
        layer = prefix.get(id(module))
        if layer is None or layer not in record.layers:
            continue
        for proj in _PROJ:
            out[f"{name}.{proj}.weight"] = (layer, proj)
    return out


def _check(model: nn.Module, record: GrowthRecord) -> None:
    """Raise unless `model` has the width `record` produced."""
    width = int(cast(Any, model).config.intermediate_size)
    if width != record.new_intermediate:
        raise ValueError(
            f"model intermediate_size {width} != record.new_intermediate {record.new_intermediate}: "
            "the record does not describe this model's latest growth"
        )


def _expert_slice(proj: str, start: int) -> tuple[slice, ...]:
    """Index of the new expert inside a weight: rows >= start of gate/up, columns >= start of down."""
    return (slice(None), slice(start, None)) if proj == "down_proj" else (slice(start, None),)


def trainable_expert_mask(model: nn.Module, record: GrowthRecord) -> dict[str, torch.Tensor]:
    """Per parameter name (as `named_parameters` gives them), a bool mask of the new expert's entries.

    gate/up of grown layers: rows >= old_intermediate True; down: columns >= old_intermediate True; every other
    entry False. Masks of parameters with no expert entry are read-only expanded views of one False (no memory),
    so clone one before writing into it.
    """
    experts = _expert_names(model, record)
    false = torch.zeros((), dtype=torch.bool)
    masks: dict[str, torch.Tensor] = {}
    for name, p in model.named_parameters():
        if name in experts:
            mask = torch.zeros(p.shape, dtype=torch.bool, device=p.device)
            mask[_expert_slice(experts[name][1], record.old_intermediate)] = True
            masks[name] = mask
        else:
            masks[name] = false.to(p.device).expand(p.shape)
    return masks


def freeze_all_but_expert(model: nn.Module, record: GrowthRecord) -> None:
    """Make only the new expert trainable: requires_grad False elsewhere, gradient hooks zero the old slices.

    After this, the only parameters with requires_grad are gate/up/down weights of `record.layers`; their
    gradient is zero outside the expert slice (rows/columns >= old_intermediate). Use weight_decay=0 on them
    (see the module docstring). Calling it twice adds a second, harmless, identical hook.
    """
    experts = _expert_names(model, record)
    for name, p in model.named_parameters():
        if name not in experts:
            p.requires_grad_(False)
            continue
        p.requires_grad_(True)
        old = _old_slice(experts[name][1], record.old_intermediate)
        p.register_hook(_zero_old(old))


def _old_slice(proj: str, stop: int) -> tuple[slice, ...]:
    """Index of the pre-growth entries: rows < stop of gate/up, columns < stop of down."""
    return (slice(None), slice(None, stop)) if proj == "down_proj" else (slice(None, stop),)


def _zero_old(old: tuple[slice, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
    """A gradient hook that returns a copy of the gradient with `old` zeroed."""

    def hook(grad: torch.Tensor) -> torch.Tensor:
        grad = grad.clone()
        grad[old] = 0
        return grad

    return hook


def expert_parameters(model: nn.Module, record: GrowthRecord) -> int:
    """Number of trainable expert entries: 3 * d * d_low per grown layer (for reports)."""
    experts = _expert_names(model, record)
    total = 0
    for name, p in model.named_parameters():
        if name in experts:
            total += p[_expert_slice(experts[name][1], record.old_intermediate)].numel()
    return total
