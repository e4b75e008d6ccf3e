"""The Hugging Face rollout engine: batched, KV-cached `generate` on CPU or GPU. The default engine."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.models.generate import complete
from sleep_ray.records import Rollout
from sleep_ray.rollout.engine import make_rollout


def _view(array: np.ndarray) -> torch.Tensor:
    """A tensor over a pushed array without copying it. Arrays from the object store are read-only: torch warns
    that writing through the view would be undefined, but the view is only read (by `copy_`)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


class HFEngine:
    """Samples from a checkpoint with `transformers`; `load_weights` copies new tensors into the live model."""

    def __init__(self, checkpoint: str, *, threads: int = 1, version: int | None = None, dtype: str = "float32"):
        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer = load_pretrained(checkpoint, dtype)
        self.version = read_meta(checkpoint).step if version is None else version

    @classmethod
    def around(cls, model: Any, tokenizer: Any, version: int = 0) -> HFEngine:
        """An engine over a model already in memory, shared rather than copied: it samples whatever that model
        is now (e.g. with a live LoRA adapter that keeps training)."""
        engine = cls.__new__(cls)
        engine.model, engine.tokenizer, engine.version = model, tokenizer, version
        return engine

    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 16,
        temperature: float = 1.0,
        seed: int = 0,
        stops: Sequence[str] = ("\n",),
    ) -> list[Rollout]:
        torch.manual_seed(seed)
        repeated = [p for p in prompts for _ in range(n)]
        texts = complete(
            self.model, self.tokenizer, repeated, max_new_tokens, do_sample=temperature > 0, temperature=temperature
        )
        return [make_rollout(self.tokenizer, p, raw, stops, self.version, "student") for p, raw in zip(repeated, texts)]

    @torch.no_grad()
    def load_weights(self, named: Mapping[str, np.ndarray], version: int) -> int:
        params = dict(self.model.named_parameters())
        unknown = sorted(set(named) - set(params))
        if unknown:
            raise KeyError(f"weight push names tensors this model does not have: {unknown[:3]}")
        for name, array in named.items():
            target = params[name]
            if tuple(target.shape) != tuple(array.shape):
                raise ValueError(f"weight push {name}: shape {array.shape} != model {tuple(target.shape)}")
            target.copy_(_view(array))
        self.version = version
        return version

    def weight_version(self) -> int:
        return self.version
