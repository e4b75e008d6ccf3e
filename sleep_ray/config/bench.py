"""The benchmarks' configs: `bench.consolidation`, `bench.real` and `bench.peers` (sleep_ray/bench/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sleep_ray.config.fields import ConfigError, spec


@dataclass
class ConsolidationBenchConfig:
    """`sleep-ray bench consolidation`: every method over the same memory stream (sleep_ray/bench/consolidation.py)."""

    cycles: int = spec(5, lo=1, help="stream cycles (days) each method consolidates, one after the other")
    methods: list[str] = spec([], help="methods to run (bench/methods.py: METHODS); empty = all")
    sft_steps: int = spec(0, lo=0, help="optimizer steps per cycle of the SFT baselines; 0 = sleep.seeding.steps")
    sft_lr: float = spec(3e-4, lo=0.0, help="full-model SFT learning rate (the base model's last pretraining lr)")
    sft_batch_size: int = spec(0, lo=0, help="packed rows per SFT step; 0 = sleep.seeding.batch_size")
    replay_fraction: float = spec(0.5, lo=0.0, hi=1.0, help="share of SFT+replay rows from earlier cycles' memories")
    test_days: str = spec("", choices=("", "world", "foreign"), help="'' = the world's stream; else test days")
    test_seed: int = spec(1, help="test days: the stream's seed (sleep_ray.data.testdays: DEV_SEEDS, FINAL_SEEDS)")
    test_people: int = spec(24, lo=1, help="test days: new people a day")


@dataclass
class RealBenchConfig:
    """`sleep-ray bench real`: one night of a real pretrained model on natural passages (sleep_ray/bench/real.py)."""

    model: str = spec("", help="an importable model (sleep-ray import-model) brought to model.path when missing")
    label: str = spec("sleep", help="the run's name in the results (an ablation's name)")
    general_questions: int = spec(0, lo=0, help="general-ability questions asked of the base model; 0 = all")
    passages: int = spec(0, lo=0, help="natural passages slept on; 0 = all")


# `sleep-ray bench peers`: sleep_ray's own rows, then TRL's trainers (sleep_ray/bench/trl_peers.py)
PEER_METHODS = ("sleep", "seeding", "trl_sft", "trl_sft_lora", "trl_gkd", "trl_sdft")


@dataclass
class PeersBenchConfig:
    """`sleep-ray bench peers`: one day through sleep_ray and through TRL's trainers (sleep_ray/bench/peers.py)."""

    methods: list[str] = spec([], help="methods to run (of PEER_METHODS); empty = all")
    steps: dict[str, int] = spec(
        {"trl_sft": 200, "trl_sft_lora": 200, "trl_gkd": 200, "trl_sdft": 2000},
        help="optimizer steps each TRL peer may take (the wall limit may stop it sooner)",
    )
    batch_size: int = spec(16, lo=1, help="sequences per TRL optimizer step (SDFT: completions, num_generations each)")
    lrs: dict[str, list[float]] = spec(
        {"trl_sft": [3e-4, 1e-3], "trl_sft_lora": [3e-3, 1e-2], "trl_gkd": [3e-4, 1e-3], "trl_sdft": [1e-4, 3e-4]},
        help="learning rates each TRL peer tries; the run kept is picked on the sleep-split probes",
    )
    lora_rank: int = spec(8, lo=1, help="LoRA rank of the SFT+LoRA peer (every linear layer)")
    generations: int = spec(4, lo=1, help="on-policy samples per prompt (GKD's and SDFT's)")
    wall_limit_s: float = spec(0.0, lo=0.0, help="each peer's training wall-clock limit; 0 = the sleep's own")
    curve_points: int = spec(3, lo=1, help="closed-book checks during each peer's training (the plot's points)")
    test_days: str = spec("", choices=("", "world", "foreign"), help="'' = the world's cycle 1; else a test day")
    test_seed: int = spec(1, help="test day: its seed (sleep_ray.data.testdays: DEV_SEEDS, FINAL_SEEDS)")
    test_people: int = spec(24, lo=1, help="test day: new people")


@dataclass
class BenchConfig:
    consolidation: ConsolidationBenchConfig = field(default_factory=ConsolidationBenchConfig)
    real: RealBenchConfig = field(default_factory=RealBenchConfig)
    peers: PeersBenchConfig = field(default_factory=PeersBenchConfig)


def validate_peers(p: PeersBenchConfig, prefix: str) -> None:
    """Cross-field checks of `bench.peers`: known methods, and a step budget and a learning rate for every TRL peer
    that runs. Raises ConfigError naming the key."""
    unknown = sorted(set(p.methods) - set(PEER_METHODS))
    if unknown:
        raise ConfigError(f"{prefix}methods: unknown {unknown}; known: {', '.join(PEER_METHODS)}")
    for name in (m for m in PEER_METHODS if m.startswith("trl_") and (not p.methods or m in p.methods)):
        if p.steps.get(name, 0) < 1:
            raise ConfigError(f"{prefix}steps.{name}: give the peer at least one step")
        if not p.lrs.get(name) or min(p.lrs[name]) <= 0:
            raise ConfigError(f"{prefix}lrs.{name}: give the peer at least one positive learning rate")
