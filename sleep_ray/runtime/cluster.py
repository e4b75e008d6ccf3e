"""Ray start-up under one policy, and rollout-engine construction, for every command that runs roles on Ray.

    init_ray(cfg.resources)                         # a sleep, a bench
    init_ray(cfg.resources, dashboard_port=8265)    # the wake endpoint (Serve needs the dashboard)
    init_ray(cfg.resources, local_cpus=4)           # a benchmark: 4 logical CPUs unless resources.num_cpus says

A job on a cluster (`RAY_ADDRESS` set, as under `ray job submit`) joins it and takes its resources as they are;
otherwise a local cluster starts with `resources.num_cpus` / `resources.num_gpus` (0 = let Ray detect).
"""

from __future__ import annotations

import os
from typing import Any

import ray

from sleep_ray.config import Config, ResourcesConfig
from sleep_ray.rollout.engine import RolloutEngine
from sleep_ray.rollout.hf import HFEngine


def init_ray(r: ResourcesConfig, *, dashboard_port: int | None = None, local_cpus: int | None = None) -> None:
    """Join the cluster the job runs on (RAY_ADDRESS), or start a local one; a no-op when Ray is up.
    `dashboard_port`: start the dashboard on 127.0.0.1 at that port (Serve's REST API lives there).
    `local_cpus`: logical CPUs of a local cluster when `resources.num_cpus` is 0 (None: let Ray detect); the
    benchmarks give 4 on a 2-core box, so fractional-CPU roles and the trainer are scheduled alike everywhere."""
    if ray.is_initialized():
        return
    quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if os.environ.get("RAY_ADDRESS"):  # a cluster's resources are its own, not ours to set
        ray.init(**quiet)
        return
    if dashboard_port is not None:
        quiet.update(include_dashboard=True, dashboard_host="127.0.0.1", dashboard_port=dashboard_port)
    ray.init(num_cpus=int(r.num_cpus) or local_cpus, num_gpus=int(r.num_gpus) or None, **quiet)


def engine_class(cfg: Config) -> type[RolloutEngine]:
    """The configured rollout engine's actor class (`resources.engine`: hf or vllm)."""
    if cfg.resources.engine == "vllm":
        from sleep_ray.rollout.vllm_engine import VLLMEngine

        return VLLMEngine
    return HFEngine


def engine_kwargs(cfg: Config) -> dict[str, Any]:
    """Constructor keywords of the configured rollout engine (threads and dtype; vLLM's parallelism and memory)."""
    r = cfg.resources
    if r.engine == "vllm":
        v = r.vllm
        return {
            "dtype": cfg.model.dtype,
            "tensor_parallel_size": v.tensor_parallel_size,
            "gpu_memory_utilization": v.gpu_memory_utilization,
            "max_model_len": v.max_model_len,
            "enforce_eager": v.enforce_eager,
            "kv_cache_bytes": v.kv_cache_bytes,
        }
    return {"threads": r.threads_per_process, "dtype": cfg.model.dtype}
