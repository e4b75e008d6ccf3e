"""The interface every rollout engine offers, and the helpers the engines share.

An engine is constructed from a checkpoint directory and used either in-process or as a Ray actor
(`ray.remote(HFEngine).remote(path)`):

    engine.generate(prompts, n=4, max_new_tokens=12, temperature=1.0, seed=7, stops=("\\n",)) -> list[Rollout]
    engine.load_weights({name: array}, version=12)      # in place; later rollouts carry version 12
    engine.weight_version() -> int

`generate` returns len(prompts) * n rollouts, grouped by prompt (the n samples of prompt 0 first). Each text is
cut just after the first stop string it contains, and `token_ids` are the tokens of that text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import torch

from sleep_ray.records import Rollout


class RolloutEngine(Protocol):
    def generate(
        self,
        prompts: Sequence[str],
        *,
        n: int = 1,
        max_new_tokens: int = 16,
        temperature: float = 1.0,
        seed: int = 0,
        stops: Sequence[str] = ("\n",),
    ) -> list[Rollout]: ...

    def load_weights(self, named: Mapping[str, np.ndarray], version: int) -> int: ...

    def weight_version(self) -> int: ...


def cut_at_stop(text: str, stops: Sequence[str]) -> str:
    """`text` up to and including the earliest of `stops` ("a b\\nc", ("\\n",) -> "a b\\n"); all of it if none."""
    ends = [text.find(s) + len(s) for s in stops if s and s in text]
    return text[: min(ends)] if ends else text


def make_rollout(tokenizer: Any, prompt: str, raw: str, stops: Sequence[str], version: int, source: str) -> Rollout:
    """The record of one sample: its text cut at the first stop, and the tokens of that text."""
    text = cut_at_stop(raw, stops)
    ids = tuple(tokenizer(text, add_special_tokens=False)["input_ids"])
    return Rollout(prompt, text, ids, version, source)


def to_arrays(named: Mapping[str, torch.Tensor]) -> dict[str, np.ndarray]:
    """Tensors -> float32 numpy arrays, names without a DDP "module." prefix (what a weight push carries)."""
    return {k.removeprefix("module."): v.detach().to("cpu", torch.float32).numpy() for k, v in named.items()}
