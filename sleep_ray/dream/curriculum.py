"""The Dreaming curriculum: which memory, and which dream kind, the next round's trials are spent on.

An *arm* is a (memory, kind) pair. Round 0 spreads trials evenly (the importance filter's top-k + b per memory);
from round 1 a curriculum plans how many trials each arm gets, from what round 0 showed about it:

    stats = arm_stats(results, dreams)                                   # {(memory_id, kind): ArmStats}
    plan = policy_plan(policy, memory_ids, kinds, stats, per_memory=3)   # {(memory_id, kind): trials}
    plan = policy_plan(uniform_policy, ...)    # the uniform plan: per_memory per memory, kinds in turn

(Without a policy, Dreaming keeps its importance filter's top-k + b per memory and never plans.)

`policy_plan` is the same loop the policy was trained in: memories go in chunks of `SLOTS`; the policy sees one
chunk's `observation` and adds one trial to one arm per step until the chunk's budget is spent. The training
environment, `CurriculumEnv`, simulates that loop: each arm has a hidden chance that a trial on it wins, round 0's
wins are drawn from it, and the reward is *learning progress*, the expected gain on the memory's probes, with
diminishing returns in the number of wins on one memory (`progress`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from sleep_ray.dream.records import DreamSample, TrialResult

SLOTS = 8  # memories the policy sees at once
KINDS = 2  # dream kinds per memory (qa, restatement)
FEATURES = 5  # per arm: present, headroom, wins posterior, round-0 trials, planned share
STEP_GAIN = 0.3  # progress: each win closes this share of what is left of a memory's headroom

Arm = tuple[str, str]


@dataclass
class ArmStats:
    """What round 0 showed about one arm: its trials, its wins, and the memory's agreement before training."""

    trials: int = 0
    wins: int = 0
    before: float = 0.0


def arm_stats(results: Sequence[TrialResult], dreams: Sequence[DreamSample]) -> dict[Arm, ArmStats]:
    """Per (memory_id, kind): trials and wins of `results` (`dreams` gives each result's kind, by dream_id)."""
    kind = {d.dream_id: d.kind for d in dreams}
    out: dict[Arm, ArmStats] = {}
    for r in results:
        s = out.setdefault((r.memory_id, kind[r.dream_id]), ArmStats(before=r.before))
        s.trials += 1
        s.wins += int(r.reward > 0)
    return out


def progress(headroom: float, wins: int) -> float:
    """Expected probe gain of a memory after `wins` winning dreams: headroom * (1 - (1 - STEP_GAIN) ** wins)."""
    return headroom * (1.0 - (1.0 - STEP_GAIN) ** wins)


def observation(
    present: np.ndarray, headroom: np.ndarray, trials: np.ndarray, wins: np.ndarray, planned: np.ndarray, budget: int
) -> np.ndarray:
    """The policy's input for one chunk, flat float32 [SLOTS * KINDS * FEATURES + 1].

    present, headroom: [SLOTS]; trials, wins, planned: [SLOTS, KINDS] (round 0's trials and wins, this round's
    plan so far); budget: trials this round. Per arm: present, headroom, (wins + 1) / (trials + 2), trials / 4,
    planned / budget; last, the share of the budget still unplanned.
    """
    b = max(1, budget)
    feats = np.stack(
        [
            np.repeat(present[:, None], KINDS, 1),
            np.repeat(headroom[:, None], KINDS, 1),
            (wins + 1.0) / (trials + 2.0),
            trials / 4.0,
            planned / b,
        ],
        axis=-1,
    )
    left = 1.0 - planned.sum() / b
    return np.concatenate([feats.reshape(-1), [left]]).astype(np.float32)


def pick(logits: np.ndarray, valid: np.ndarray, rng: np.random.Generator | None) -> int:
    """An arm among `valid` ([A] bool): drawn from softmax(logits [A]) with `rng`, or the argmax when it is None."""
    z = np.where(valid, logits, -np.inf)
    if rng is None:
        return int(np.argmax(z))
    p = np.exp(z - z.max())
    return int(rng.choice(len(z), p=p / p.sum()))


def uniform_policy(obs: np.ndarray) -> np.ndarray:
    """The uniform plan as a policy: the memory with the fewest planned trials, then its least planned kind."""
    feats = obs[:-1].reshape(SLOTS, KINDS, -1)
    present, planned = feats[:, :, 0].reshape(-1), feats[:, :, 4]
    score = -(planned.sum(1, keepdims=True) * 2 * KINDS + planned).reshape(-1) - 1e-3 * np.arange(SLOTS * KINDS)
    return np.where(present > 0, score, -np.inf)


def policy_plan(
    policy: Callable[[np.ndarray], np.ndarray],
    memory_ids: Sequence[str],
    kinds: Sequence[str],
    stats: dict[Arm, ArmStats],
    per_memory: int,
    rng: np.random.Generator | None = None,
) -> dict[Arm, int]:
    """Trials per arm chosen by `policy` (observation -> logits [SLOTS * KINDS]): each step's arm is drawn from
    softmax(logits) over the present arms with `rng` (PPO's policy is a distribution), or the best one without."""
    if len(kinds) != KINDS:
        raise ValueError(f"the curriculum policy plans {KINDS} dream kinds; sleep.dreaming.kinds has {len(kinds)}")
    plan = {(m, k): 0 for m in memory_ids for k in kinds}
    ids = sorted(memory_ids)
    for start in range(0, len(ids), SLOTS):
        chunk = ids[start : start + SLOTS]
        present, headroom = np.zeros(SLOTS), np.zeros(SLOTS)
        trials, wins, planned = (np.zeros((SLOTS, KINDS)) for _ in range(3))
        for i, m in enumerate(chunk):
            present[i] = 1.0
            seen = [stats[(m, k)] for k in kinds if (m, k) in stats]
            headroom[i] = 1.0 - seen[0].before if seen else 1.0  # `before` is the memory's, the same on each arm
            for j, k in enumerate(kinds):
                s = stats.get((m, k), ArmStats())
                trials[i, j], wins[i, j] = s.trials, s.wins
        budget = per_memory * len(chunk)
        for _ in range(budget):
            logits = np.asarray(policy(observation(present, headroom, trials, wins, planned, budget)), dtype=float)
            a = pick(logits, np.repeat(present, KINDS) > 0, rng)
            planned[a // KINDS, a % KINDS] += 1
        for i, m in enumerate(chunk):
            for j, k in enumerate(kinds):
                plan[(m, k)] = int(planned[i, j])
    return plan


class CurriculumEnv(gym.Env):
    """One chunk of one round, simulated. Action: the arm that gets the next trial (Discrete(SLOTS * KINDS));
    reward: the expected learning progress that trial adds (`progress` of the memory's wins, drawn from the arm's
    hidden win chance). An episode ends when `per_memory` trials per present memory are planned.

    env_config: win_a, win_b (Beta prior of an arm's win chance), known (chance a memory is already fully
    known: headroom 0), headrooms (the others' headroom is drawn from these; default uniform on [0.25, 1]),
    per_memory, round0 (round-0 trials per memory), seed. `benchmarks/curriculum.py` fits them to real trials.
    """

    def __init__(self, env_config: dict[str, Any] | None = None):
        c: dict[str, Any] = {
            "win_a": 0.6,
            "win_b": 2.4,
            "known": 0.3,
            "headrooms": [],
            "per_memory": 3,
            "round0": 3,
            "seed": 0,
        }
        c.update(env_config or {})
        self.c = c
        self.observation_space = gym.spaces.Box(0.0, np.inf, (SLOTS * KINDS * FEATURES + 1,), np.float32)
        self.action_space = gym.spaces.Discrete(SLOTS * KINDS)
        self.rng = np.random.default_rng(c["seed"])

    def _obs(self) -> np.ndarray:
        return observation(self.present, self.headroom, self.trials, self.wins0, self.planned, self.budget)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        c, rng = self.c, self.rng
        n = int(rng.integers(1, SLOTS + 1))
        self.present = (np.arange(SLOTS) < n).astype(float)
        room = rng.choice(c["headrooms"], SLOTS) if len(c["headrooms"]) else rng.uniform(0.25, 1.0, SLOTS)
        self.headroom = self.present * np.where(rng.random(SLOTS) < c["known"], 0.0, room)
        self.p = rng.beta(c["win_a"], c["win_b"], (SLOTS, KINDS)) * (self.headroom[:, None] > 0)
        self.trials = np.zeros((SLOTS, KINDS))
        for i in range(n):
            for t in range(c["round0"]):
                self.trials[i, t % KINDS] += 1
        self.wins0 = rng.binomial(self.trials.astype(int), self.p).astype(float)
        self.planned = np.zeros((SLOTS, KINDS))
        self.won = np.zeros(SLOTS, dtype=int)  # this round's wins (hidden from the policy, as in a real plan)
        self.budget, self.t = c["per_memory"] * n, 0
        return self._obs(), {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict]:
        i, j = divmod(int(action), KINDS)
        reward, self.t = 0.0, self.t + 1
        if self.present[i]:  # a trial on an empty slot is wasted
            self.planned[i, j] += 1
            if self.rng.random() < self.p[i, j]:
                reward = progress(self.headroom[i], self.won[i] + 1) - progress(self.headroom[i], self.won[i])
                self.won[i] += 1
        return self._obs(), reward, self.t >= self.budget, False, {}
