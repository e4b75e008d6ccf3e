"""Structured configuration: one dataclass per component, loaded with OmegaConf.

Load order: dataclass defaults, then a YAML file, then `key=value` dotlist overrides (the CLI's trailing
arguments). An unknown key, a wrong type or a value out of range fails at load with a message naming the
full key (`sleep.seeding.lmbda`). Defaults live only here; code never does `cfg.get("x", default)`.

Range and choice constraints are declared next to each field with `spec(...)` (`fields.py`) and checked by
`validate`. The resources section (what each role asks Ray for) lives in `resources.py`; everything is importable
from `sleep_ray.config`. `validate` also refuses `sleep.growth.enabled` for a `model.path` whose architecture
growth cannot widen (`sleep_ray.models.support`, judged from its config.json alone).

    cfg = load_config("examples/tiny_cpu.yaml", ["sleep.seeding.lmbda=0.5"])
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from sleep_ray.config.bench import BenchConfig, ConsolidationBenchConfig, PeersBenchConfig, RealBenchConfig
from sleep_ray.config.fields import ConfigError, spec
from sleep_ray.config.resources import (
    PLACEMENT_STRATEGIES,
    ROLES,
    ResourcesConfig,
    RoleResources,
    VLLMConfig,
    validate_resources,
)
from sleep_ray.models.support import growth_support_at

__all__ = [  # what `from sleep_ray.config import ...` offers: these modules' names and those defined here
    "BenchConfig",
    "Config",
    "ConfigError",
    "ConsolidationBenchConfig",
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


# ------------------------------------------------------------------------------------------- sleep


@dataclass
class GrowthConfig:
    """How the student-large grows: one new low-rank SwiGLU expert per sleep; compaction keeps the size bounded."""

    enabled: bool = spec(True, help="false: no new expert, every parameter trains (the 'growth off' ablation)")
    d_low: int = spec(128, lo=1, help="new hidden units per grown MLP")
    layers: list[int] = spec([], help="layers that grow; empty = all")
    max_size: float = spec(2.0, lo=1.0, help="parameters at most this many times the anchor's; a night compacts first")
    compact_units: int = spec(256, lo=1, help="grown hidden units per MLP a compaction keeps")
    compact_steps: int = spec(200, lo=0, help="distillation steps of the kept units toward the uncompacted model")
    compact_lr: float = spec(1e-3, lo=0.0)


@dataclass
class SeedingConfig:
    """Knowledge Seeding: generalized distillation plus Learning-to-Imitate (docs/METHOD.md §3)."""

    divergence: str = spec("forward_kl", choices=("forward_kl", "reverse_kl", "jsd"))
    beta: float = spec(0.5, lo=0.0, hi=1.0, help="JSD interpolation (0 ~ forward KL, 1 ~ reverse KL)")
    lmbda: float = spec(0.5, lo=0.0, hi=1.0, help="fraction of student-generated sequences")
    alpha: float = spec(0.8, lo=0.0, hi=1.0, help="weight of distillation against Learning-to-Imitate")
    gamma: float = spec(0.5, lo=0.0, hi=1.0, help="weight of the judge's same-meaning reward against Levenshtein")
    z0: float = spec(0.5, lo=0.0, hi=1.0, help="normalized edit distance above which the surface reward is 0")
    topk: int = spec(
        -1, lo=-1, help="distil over the teacher's top-k tokens; 0 = full vocabulary; -1 = 64 above 8192 tokens"
    )
    temperature: float = spec(1.0, lo=1e-3, help="sampling and distillation temperature (> 0)")
    steps: int = spec(1300, lo=0, help="the most optimizer steps a night takes (the budget's cap)")
    steps_per_memory: float = spec(26.0, lo=0.0, help="budget: steps per memory window; 0 = always `steps`")
    min_steps: int = spec(300, lo=0, help="budget: the fewest steps a night with memories takes")
    lr: float = spec(1e-3, lo=0.0)
    rehearsal_fraction: float = spec(0.8, lo=0.0, hi=0.95, help="share of self-rehearsal prompts about old knowledge")
    batch_size: int = spec(24, lo=1, help="distillation prompts per optimizer step (per train worker)")
    questions_per_memory: int = spec(16, lo=0, help="questions the teacher writes about each memory (window)")
    prefixes_per_memory: int = spec(2, lo=0, help="opening-words prompts cut from each memory (window)")
    restatements_per_memory: int = spec(0, lo=0, help="prompts cut from the teacher's restatements of each memory")
    reading_per_memory: int = spec(4, lo=0, help="questions per memory also rehearsed with the memory in context")
    writing_per_memory: int = spec(1, lo=0, help="question-writing prompts per memory rehearsed (teacher == student)")
    teacher_samples: int = spec(2, lo=1, help="teacher continuations drawn per prompt, sampled from at each step")
    max_new_tokens: int = spec(12, lo=1, help="length limit of every sampled continuation")
    dreams_per_memory: int = spec(4, lo=0, help="Learning-to-Imitate sentences per memory (window)")
    imitation_prompts: int = spec(2, lo=0, help="dream prefixes per step, each completed group_size times")
    group_size: int = spec(4, lo=1, help="completions per dream prefix (GRPO-style group baseline)")
    push_every: int = spec(1, lo=1, help="optimizer steps between weight pushes to the rollout engines")
    prefetch: bool = spec(True, help="sample the next step's rollouts while this step trains (one version stale)")
    max_staleness: int = spec(2, lo=0, help="reject a student sample more than this many versions old")
    checkpoint_every: int = spec(50, lo=1, help="optimizer steps between Ray Train checkpoints (resume points)")


@dataclass
class DreamingConfig:
    """Dreaming: self-written dreams, scored by trial, generator improved by ReST-EM, best dreams rehearsed."""

    enabled: bool = spec(True, help="run stage 2 after Knowledge Seeding (sleep-ray sleep --stages)")
    kinds: list[str] = spec(["qa", "restatement"], help="dream kinds the generator writes, in turn")
    dreams_per_memory: int = spec(8, lo=1, help="dreams sampled about each memory (window) per round")
    top_k: int = spec(2, lo=0, help="importance filter: dreams kept per memory by gradient norm")
    random_b: int = spec(1, lo=0, help="importance filter: further dreams kept per memory at random")
    curriculum: str = spec("uniform", choices=("uniform", "ppo"), help="how rounds >= 1 spread trials over memories")
    curriculum_policy: str = spec("", help="curriculum=ppo: the RLlib policy (benchmarks/curriculum.py)")
    filter: bool = spec(True, help="false: every dream goes to trial (the 'no importance filter' ablation)")
    rest_em_rounds: int = spec(1, lo=0, help="ReST-EM M-steps (E-step sampling runs rounds + 1 times)")
    rest_em: bool = spec(True, help="false: the rounds still sample, but the generator never learns (ablation)")
    probes_per_memory: int = spec(4, lo=1, help="sleep-time probe questions per memory (held-out seed)")
    probe_seed: int = spec(777, help="seed of the probes, kept apart from the sleep's own prompts")
    lora_rank: int = spec(8, lo=1, help="LoRA rank of trial copies and of the generator's adapter")
    trial_steps: int = spec(6, lo=1, help="SFT steps of a trial copy on its one dream")
    trial_lr: float = spec(2e-3, lo=0.0)
    trial_timeout_s: float = spec(120.0, lo=1.0, help="a trial that takes longer is re-run on a fresh actor")
    generator_steps: int = spec(40, lo=0, help="ReST-EM M-step: SFT steps of the generator on the winners")
    generator_lr: float = spec(1e-3, lo=0.0)
    batch_size: int = spec(8, lo=1, help="generator SFT batch")
    max_new_tokens: int = spec(32, lo=4, help="length limit of a dream and of a probe answer")
    temperature: float = spec(1.0, lo=1e-3)
    num_workers: int = spec(1, lo=1, help="reward-critic actors running trials (and dream-generator actors)")
    rehearsal: bool = spec(True, help="mix self-rehearsal of old knowledge into the student's dream training")
    rehearse_winners: bool = spec(True, help="false: no rounds, rehearsal without winners (an ablation)")
    rehearsal_fraction: float = spec(0.7, lo=0.0, hi=0.95, help="share of old-knowledge items in that training")
    memory_questions: int = spec(16, lo=0, help="fresh teacher questions per memory rehearsed beside the winners")
    rehearsal_steps: int = spec(600, lo=0, help="the most student steps on the winning dreams (+ rehearsal)")
    rehearsal_steps_per_memory: float = spec(12.0, lo=0.0, help="budget: steps per memory window; 0 = always the cap")
    min_rehearsal_steps: int = spec(150, lo=0, help="budget: the fewest rehearsal steps")


@dataclass
class GroundingConfig:
    """Every text written about a memory is checked against it (sleep_ray/data/grounding.py)."""

    min_share: float = spec(0.5, lo=0.0, hi=1.0, help="a night whose grounded share of questions is lower fails")
    examples: int = spec(8, lo=0, help="written texts kept per kind and verdict in the sleep record")


@dataclass
class LifelongConfig:
    """Night after night (sleep_ray/wake/night.py): what each night replays and what it is anchored to."""

    replay_memories: int = spec(8, lo=0, help="earlier memories slept on again each night (returned ones first)")
    anchor: str = spec("", help="the frozen model old knowledge is held to; '' = model.path (the original base)")
    anchor_rehearsal: bool = spec(True, help="old-knowledge rehearsal answered by the anchor, latest memory in context")


@dataclass
class SleepConfig:
    lifelong: LifelongConfig = field(default_factory=LifelongConfig)
    grounding: GroundingConfig = field(default_factory=GroundingConfig)
    growth: GrowthConfig = field(default_factory=GrowthConfig)
    seeding: SeedingConfig = field(default_factory=SeedingConfig)
    dreaming: DreamingConfig = field(default_factory=DreamingConfig)


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
    if isinstance(obj, Config) and obj.sleep.growth.enabled and obj.model.path:
        reason = growth_support_at(obj.model.path)  # reads model.path/config.json, if there is one
        if reason is not None:
            raise ConfigError(f"{prefix}sleep.growth.enabled: {reason}")


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, schema: type[T] = Config) -> T:  # type: ignore[assignment]
    """Defaults, then the YAML at `path`, then dotlist `overrides`; validated. Raises ConfigError."""
    try:
        cfg = OmegaConf.structured(schema)
        if path is not None:
            cfg = OmegaConf.merge(cfg, OmegaConf.load(path))
        if overrides:
            cfg = OmegaConf.merge(cfg, OmegaConf.from_dotlist(list(overrides)))
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
