"""Structured configuration: one dataclass per component, loaded with OmegaConf.

Load order: dataclass defaults, then a YAML file, then `key=value` dotlist overrides (the CLI's trailing
arguments). An unknown key, a wrong type or a value out of range fails at load with a message naming the
full key (`sleep.seeding.lmbda`). Defaults live only here; code never does `cfg.get("x", default)`.

Range and choice constraints are declared next to each field with `spec(...)` (`fields.py`) and checked by
`validate`. The resources section (what each role asks Ray for) lives in `resources.py`; everything is importable
from `sleep_ray.config`. `validate` also refuses `sleep.growth.enabled` for a `model.path` whose architecture
growth cannot widen (`sleep_ray.config.architecture`, judged from its config.json alone).

    cfg = load_config("examples/tiny_cpu.yaml", ["sleep.seeding.lmbda=0.5"])
"""

from __future__ import annotations

import dataclasses
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf, open_dict
from omegaconf.errors import OmegaConfBaseException

from sleep_ray.config.architecture import growth_support_at
from sleep_ray.config.bench import (
    PEER_METHODS,
    BenchConfig,
    ConsolidationBenchConfig,
    PeersBenchConfig,
    RealBenchConfig,
    validate_peers,
)
from sleep_ray.config.fields import ConfigError, spec
from sleep_ray.config.resources import (
    PLACEMENT_STRATEGIES,
    ROLES,
    ResourcesConfig,
    RoleResources,
    VLLMConfig,
    validate_resources,
)
from sleep_ray.config.sleep import (
    DreamingConfig,
    GroundingConfig,
    GrowthConfig,
    LifelongConfig,
    SeedingConfig,
    SleepConfig,
)

__all__ = [  # what `from sleep_ray.config import ...` offers: these modules' names and those defined here
    "BenchConfig",
    "Config",
    "ConfigError",
    "ConsolidationBenchConfig",
    "PEER_METHODS",
    "PeersBenchConfig",
    "RealBenchConfig",
    "DataConfig",
    "DreamingConfig",
    "EvalConfig",
    "GateConfig",
    "GroundingConfig",
    "LifelongConfig",
    "GrowthConfig",
    "ModelConfig",
    "PLACEMENT_STRATEGIES",
    "PretrainConfig",
    "ROLES",
    "ResourcesConfig",
    "RoleResources",
    "SeedingConfig",
    "ServeConfig",
    "SleepConfig",
    "VLLMConfig",
    "WorldConfig",
    "load_config",
    "spec",
    "to_yaml",
    "validate",
]

T = TypeVar("T")


# --------------------------------------------------------------------------------------------- model


@dataclass
class ModelConfig:
    """The wake model: a tiny Llama built from these numbers, or a local Hugging Face checkpoint."""

    path: str = spec("", help="local HF checkpoint directory; when set, the architecture fields are ignored")
    hidden_size: int = spec(128, lo=8)
    num_layers: int = spec(4, lo=1)
    num_heads: int = spec(2, lo=1)
    num_kv_heads: int = spec(2, lo=1)
    intermediate_size: int = spec(512, lo=1)
    max_position_embeddings: int = spec(512, lo=16, help="the context window in tokens")
    vocab_size: int = spec(2048, lo=64, help="tokenizer size asked of the BPE trainer (a small corpus may give fewer)")
    tie_word_embeddings: bool = True
    rope_theta: float = spec(10000.0, lo=1.0)
    dtype: str = spec("float32", choices=("float32", "bfloat16", "float16"))


# ---------------------------------------------------------------------------------------------- data


@dataclass
class WorldConfig:
    """Sizes of the synthetic knowledge world and its memory stream (sleep_ray.data.world)."""

    seed: int = 0
    num_cities: int = spec(16, lo=4)
    num_orgs: int = spec(16, lo=4)
    num_base_people: int = spec(120, lo=4, help="people the base model is pretrained on (old knowledge)")
    bios_per_person: int = spec(3, lo=1, help="differently worded biographies per base person")
    num_reading_docs: int = spec(4000, lo=0, help="practice documents about throwaway people, read in context only")
    num_heldout_docs: int = spec(40, lo=0, help="documents never trained on, for perplexity")
    num_cycles: int = spec(5, lo=1, help="days in the memory stream")
    new_people_per_cycle: int = spec(4, lo=0)
    updates_per_cycle: int = spec(2, lo=0, help="memories that contradict an old fact")
    dialogues_per_cycle: int = spec(1, lo=0)
    demonstrations_per_cycle: int = spec(1, lo=0, help="few-shot demonstrations of a new relation word")
    long_docs_per_cycle: int = spec(1, lo=0)
    people_per_long_doc: int = spec(8, lo=2, help="a long document is longer than the context window")


@dataclass
class DataConfig:
    """Where the world lives. `world_dir` holds world.jsonl and stream.jsonl (docs/FORMAT.md)."""

    world_dir: str = spec("", help="an existing world directory; empty = generate one into <run_dir>/world")
    world: WorldConfig = field(default_factory=WorldConfig)


# ------------------------------------------------------------------------------------------ pretrain


@dataclass
class PretrainConfig:
    """Base pretraining (sleep_ray.train.pretrain): from scratch, or continued from `init_from`."""

    init_from: str = spec("", help="start from this checkpoint (weights and tokenizer) instead of from scratch")

    steps: int = spec(3000, lo=1)
    batch_size: int = spec(32, lo=1)
    seq_len: int = spec(256, lo=16, help="tokens per packed training row")
    lr: float = spec(3e-3, lo=0.0)
    min_lr_ratio: float = spec(0.1, lo=0.0, hi=1.0)
    warmup_steps: int = spec(100, lo=0)
    flat_fraction: float = spec(0.6, lo=0.0, hi=1.0, help="keep the peak learning rate for this share of steps")
    weight_decay: float = spec(0.0, lo=0.0)
    checkpoint_every: int = spec(500, lo=1)
    eval_every: int = spec(250, lo=1)
    threads: int = spec(2, lo=1, help="torch CPU threads")
    mix: dict[str, float] = spec(
        {
            "text": 1.0,
            "recall": 2.0,
            "reading": 3.0,
            "reading_short": 2.0,
            "question_writing": 0.5,
            "restatement": 0.5,
            "judging": 0.5,
            "updating": 0.0,
        },
        help="sampling weights of the example kinds derived from the world documents",
    )


# ------------------------------------------------------------------------------------- serve / eval


@dataclass
class GateConfig:
    """The eval gate a slept-on checkpoint must pass before it replaces the serving one."""

    questions_per_memory: int = spec(4, lo=1, help="held-out questions the serving model writes per memory")
    rehearsal_questions: int = spec(64, lo=1, help="questions about old knowledge for the retention check")
    min_gain: float = spec(0.05, lo=-1.0, hi=1.0, help="closed-book agreement gain on the memories' questions")
    min_retention: float = spec(0.85, lo=0.0, hi=1.0, help="agreement with the anchor's answers on old knowledge")
    min_reading: float = spec(0.8, lo=0.0, hi=1.0, help="in-context agreement with the serving model on the memories")
    regression_memories: int = spec(64, lo=0, help="consolidated memories re-asked each night (least recently checked)")
    memory_hold: float = spec(0.75, lo=0.0, hi=1.0, help="a memory is in the weights at this share of its probes")
    min_regression: float = spec(0.6, lo=0.0, hi=1.0, help="share of re-asked memories that must still hold")
    min_regression_memories: int = spec(5, lo=1, help="the regression rule applies once this many were re-asked")
    seed: int = 12345


@dataclass
class ServeConfig:
    """The wake endpoint (`sleep-ray serve`): Ray Serve, OpenAI-compatible, memories, sleep scheduler."""

    host: str = "127.0.0.1"
    port: int = spec(8000, lo=1, hi=65535)
    dashboard_port: int = spec(8265, lo=1, hi=65535, help="Ray dashboard (Serve's REST deploy API) for swaps")
    app_name: str = "sleep_ray"
    model_name: str = spec("sleep-ray", help="the model id clients pass and /v1/models lists")
    replicas: int = spec(1, lo=1)
    cpus_per_replica: float = spec(0.5, lo=0.0)
    gpus_per_replica: float = spec(0.0, lo=0.0)
    max_new_tokens: int = spec(32, lo=1, help="default max_tokens of a completion")
    max_tokens_limit: int = spec(256, lo=1, help="largest max_tokens a request may ask for")
    gateways: int = spec(1, lo=1, help="replicas of the HTTP ingress (no weights; checks, routes, memory routes)")
    admin_token_file: str = spec(
        "~/.config/sleep_ray/admin_token",
        help="admin token file (mode 600) unless env SLEEP_RAY_ADMIN_TOKEN is set; `serve` creates it if missing",
    )
    api_token_file: str = spec("", help="completion-route token file (mode 600); '' and no SLEEP_RAY_API_TOKEN = open")
    open_admin: bool = spec(
        False, help="with no admin token, open the admin routes to anyone (logged) instead of closed"
    )
    max_body_bytes: int = spec(1_000_000, lo=1, help="a larger request body is refused (413) before it is parsed")
    max_prompt_chars: int = spec(32_000, lo=1, help="a longer prompt or message is refused before tokenization")
    retrieval: bool = spec(True, help="prepend relevant unconsolidated memories to prompts")
    retrieval_k: int = spec(1, lo=0, help="memories prepended per prompt at most")
    max_memories_per_call: int = spec(64, lo=1)
    max_memory_chars: int = spec(8000, lo=1)
    sleep_after_memories: int = spec(0, lo=0, help="start a sleep at this many unconsolidated memories; 0 = off")
    sleep_when_idle_s: float = spec(0.0, lo=0.0, help="start a sleep after this long without requests; 0 = off")
    sleep_dreaming: bool = spec(True, help="a scheduled sleep runs Dreaming after seeding (if sleep.dreaming.enabled)")
    scheduler_poll_s: float = spec(2.0, lo=0.1)
    sleep_backoff_s: float = spec(60.0, lo=0.0, help="after a rejected or failed sleep, wait before the next trigger")
    sleep_backoff_max_s: float = spec(3600.0, lo=0.0, help="the wait doubles per failure in a row, up to this")
    gate: GateConfig = field(default_factory=GateConfig)


@dataclass
class EvalConfig:
    max_new_tokens: int = spec(12, lo=1)
    batch_size: int = spec(32, lo=1)
    splits: list[str] = spec(["eval"], help="probe splits to score: eval, sleep")
    score: str = spec(
        "exact",
        choices=("exact", "contains", "f1"),
        help="how a reply meets its gold (eval, gate, dream trials): exact first line, gold contained, token F1",
    )


# -------------------------------------------------------------------------------------------- root


@dataclass
class Config:
    run_dir: str = spec("runs/tiny", help="everything a run writes lives under here")
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    sleep: SleepConfig = field(default_factory=SleepConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    resources: ResourcesConfig = field(default_factory=ResourcesConfig)
    bench: BenchConfig = field(default_factory=BenchConfig)


def validate(obj: Any, prefix: str = "") -> None:
    """Check every `spec` range and choice set in a dataclass tree; raise ConfigError naming the key."""
    for f in dataclasses.fields(obj):
        key = f"{prefix}{f.name}"
        value = getattr(obj, f.name)
        if dataclasses.is_dataclass(value):
            validate(value, key + ".")
            continue
        lo, hi, choices = f.metadata.get("lo"), f.metadata.get("hi"), f.metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"{key}: {value!r} is not one of {list(choices)}")
        if lo is not None and value < lo:
            raise ConfigError(f"{key}: {value!r} is below the minimum {lo}")
        if hi is not None and value > hi:
            raise ConfigError(f"{key}: {value!r} is above the maximum {hi}")
    if isinstance(obj, ModelConfig) and not obj.path and obj.hidden_size % obj.num_heads:
        raise ConfigError(f"{prefix}hidden_size: {obj.hidden_size} is not divisible by num_heads={obj.num_heads}")
    if isinstance(obj, ModelConfig) and not obj.path and obj.num_heads % obj.num_kv_heads:
        raise ConfigError(f"{prefix}num_kv_heads: {obj.num_kv_heads} does not divide num_heads={obj.num_heads}")
    if isinstance(obj, ResourcesConfig):
        validate_resources(obj, prefix)
    if isinstance(obj, PeersBenchConfig):
        validate_peers(obj, prefix)
    if isinstance(obj, SeedingConfig):
        lag = obj.push_every - (0 if obj.prefetch else 1)  # versions a sample can lag behind the trainer
        if lag > obj.max_staleness:
            raise ConfigError(
                f"{prefix}max_staleness: {obj.max_staleness} would reject the samples of every step: with "
                f"push_every={obj.push_every} and prefetch={obj.prefetch} they lag up to {lag} versions"
            )
    if isinstance(obj, DreamingConfig) and obj.curriculum == "ppo" and not obj.curriculum_policy:
        raise ConfigError(f"{prefix}curriculum_policy: curriculum=ppo needs a saved policy (benchmarks/curriculum.py)")
    if isinstance(obj, Config) and obj.sleep.growth.enabled and obj.model.path:
        reason = growth_support_at(obj.model.path)  # reads model.path/config.json, if there is one
        if reason is not None:
            raise ConfigError(f"{prefix}sleep.growth.enabled: {reason}")


# Old key -> new key. An old key still loads for one release, with a warning naming the new one.
RENAMED = {"sleep.seeding.dreams_per_memory": "sleep.seeding.imitation_per_memory"}


def _renamed(cfg: Any, where: str) -> Any:
    """`cfg` (an OmegaConf node) with every RENAMED key moved to its new name, warning once per key."""
    for old, new in RENAMED.items():
        value = OmegaConf.select(cfg, old, default=None)
        if value is None:
            continue
        if OmegaConf.select(cfg, new, default=None) is not None:
            raise ConfigError(f"{new}: given twice, also under its old name {old}{where}")
        warnings.warn(f"{old} is renamed {new}; use the new key{where}", DeprecationWarning, stacklevel=3)
        parent, leaf = old.rsplit(".", 1)
        node = OmegaConf.select(cfg, parent)
        with open_dict(node):
            del node[leaf]
        OmegaConf.update(cfg, new, value, force_add=True)
    return cfg


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, schema: type[T] = Config) -> T:  # type: ignore[assignment]
    """Defaults, then the YAML at `path`, then dotlist `overrides`; validated. Raises ConfigError."""
    try:
        cfg = OmegaConf.structured(schema)
        if path is not None:
            cfg = OmegaConf.merge(cfg, _renamed(OmegaConf.load(path), f" ({path})"))
        if overrides:
            cfg = OmegaConf.merge(cfg, _renamed(OmegaConf.from_dotlist(list(overrides)), ""))
        obj = OmegaConf.to_object(cfg)
    except OmegaConfBaseException as e:
        key = getattr(e, "full_key", None)
        where = f" ({path})" if path else ""
        msg = str(getattr(e, "msg", e)).splitlines()[0]
        raise ConfigError(f"{key or 'config'}: {msg}{where}") from None
    validate(obj)
    return obj  # type: ignore[return-value]


def to_yaml(obj: Any) -> str:
    """The resolved config as YAML, saved beside every checkpoint."""
    return OmegaConf.to_yaml(OmegaConf.structured(obj))
