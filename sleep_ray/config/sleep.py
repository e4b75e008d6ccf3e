"""The sleep's sections of the configuration (`sleep.*`): growth, Knowledge Seeding, Dreaming, grounding and the
life of nights. Importable from `sleep_ray.config` like every section."""

from __future__ import annotations

from dataclasses import dataclass, field

from sleep_ray.config.fields import spec


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
    rehearsal_fraction: float = spec(
        0.7, lo=0.0, hi=0.95, help="share of prompts that are old-knowledge questions (free text on top)"
    )
    text_share: float = spec(
        0.25, lo=0.0, hi=1.0, help="anchor free-text items rehearsed beside the old-knowledge questions, per question"
    )
    batch_size: int = spec(24, lo=1, help="distillation prompts per optimizer step (per train worker)")
    questions_per_memory: int = spec(16, lo=0, help="questions the teacher writes about each memory (window)")
    prefixes_per_memory: int = spec(2, lo=0, help="opening-words prompts cut from each memory (window)")
    restatements_per_memory: int = spec(0, lo=0, help="prompts cut from the teacher's restatements of each memory")
    reading_per_memory: int = spec(4, lo=0, help="questions per memory also rehearsed with the memory in context")
    swapped_reading_per_memory: int = spec(
        0, lo=0, help="reading items per memory asked of another of the night's people swapped into the memory"
    )
    writing_per_memory: int = spec(1, lo=0, help="question-writing prompts per memory rehearsed (teacher == student)")
    teacher_samples: int = spec(2, lo=1, help="teacher continuations drawn per prompt, sampled from at each step")
    max_new_tokens: int = spec(12, lo=1, help="length limit of every sampled continuation")
    imitation_per_memory: int = spec(4, lo=0, help="Learning-to-Imitate sentences per memory (window)")
    imitation_prompts: int = spec(
        2, lo=0, help="Learning-to-Imitate prefixes per step, each completed group_size times"
    )
    group_size: int = spec(4, lo=1, help="completions per Learning-to-Imitate prefix (GRPO-style group baseline)")
    push_every: int = spec(1, lo=1, help="optimizer steps between weight pushes to the rollout engines")
    prefetch: bool = spec(True, help="sample the next step's rollouts while this step trains (one version stale)")
    max_staleness: int = spec(2, lo=0, help="re-sample a student sample more than this many versions old")
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
    rehearsal_lr: float = spec(1e-3, lo=0.0, help="learning rate of the student's steps on the winning dreams")
    rehearsal_batch_size: int = spec(24, lo=1, help="prompts per student step on the winning dreams (per worker)")
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
