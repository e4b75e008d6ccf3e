"""A LoRA adapter (peft) on a causal LM, with what both Dreaming roles need: reset it, train it, ship it.

The adapter's matrices are the only parameters that train; the wrapped model is never changed, so a trial on
an adapter is an isolated copy of the student, and a generator's adapter travels as a few numpy arrays.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from peft import LoraConfig, get_peft_model
from peft.tuners.lora import LoraLayer
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from sleep_ray.dream.select import sft_loss

TARGETS = ("q_proj", "v_proj", "gate_proj", "up_proj", "down_proj")


class Adapter:
    """`model` wrapped with a fresh LoRA adapter of rank `r` on `TARGETS` (every other weight frozen)."""

    def __init__(self, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, *, r: int, seed: int):
        for p in model.parameters():
            p.requires_grad_(False)
        torch.manual_seed(seed)
        self.model = get_peft_model(
            model, LoraConfig(r=r, lora_alpha=2 * r, lora_dropout=0.0, target_modules=list(TARGETS))
        )
        self.tokenizer = tokenizer
        self._fresh = self.arrays()

    def params(self) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in self.model.named_parameters() if p.requires_grad}

    def arrays(self) -> dict[str, np.ndarray]:
        return {n: p.detach().float().cpu().numpy().copy() for n, p in self.params().items()}

    @torch.no_grad()
    def merged(self) -> dict[str, np.ndarray]:
        """The adapted weights W + scale * B @ A of every targeted layer, by the wrapped model's own (Hugging Face)
        names: what an engine that samples without peft (vLLM) loads to sample from the adapted model."""
        out = {}
        for name, module in self.model.named_modules():
            if isinstance(module, LoraLayer):
                weight = module.get_base_layer().weight
                merged = weight + module.get_delta_weight("default").to(weight.dtype)  # type: ignore[attr-defined]
                out[name.removeprefix("base_model.model.") + ".weight"] = merged.float().cpu().numpy()
        return out

    @torch.no_grad()
    def load(self, arrays: Mapping[str, np.ndarray]) -> None:
        params = self.params()
        for name, array in arrays.items():
            params[name].copy_(torch.from_numpy(np.array(array)))

    def reset(self) -> None:
        """Back to the fresh adapter (B = 0: the wrapped model's function exactly)."""
        self.load(self._fresh)

    def train(self, prompts: Sequence[str], completions: Sequence[str], *, steps: int, lr: float, batch: int) -> float:
        """`steps` AdamW steps of SFT on (prompt -> completion) pairs, cycling through them; returns the last loss."""
        opt = torch.optim.AdamW(list(self.params().values()), lr=lr, weight_decay=0.0)
        self.model.train()
        loss = torch.zeros(())
        for step in range(steps):
            at = [(step * batch + i) % len(prompts) for i in range(min(batch, len(prompts)))]
            loss = sft_loss(self.model, self.tokenizer, [prompts[i] for i in at], [completions[i] for i in at])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        self.model.eval()
        return float(loss.detach())
