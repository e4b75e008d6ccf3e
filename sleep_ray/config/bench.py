"""The benchmarks' configs: `bench.consolidation` and `bench.real` (sleep_ray/bench/)."""

from __future__ import annotations

from dataclasses import dataclass, field

from sleep_ray.config.fields import spec


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


@dataclass
class BenchConfig:
    consolidation: ConsolidationBenchConfig = field(default_factory=ConsolidationBenchConfig)
    real: RealBenchConfig = field(default_factory=RealBenchConfig)
