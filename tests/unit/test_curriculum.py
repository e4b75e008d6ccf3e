"""The Dreaming curriculum's pure parts: learning progress, the observation, plans, and the simulator PPO trains in."""

from __future__ import annotations

import numpy as np
import pytest

from sleep_ray.dream.curriculum import (
    FEATURES,
    KINDS,
    SLOTS,
    ArmStats,
    CurriculumEnv,
    arm_stats,
    observation,
    pick,
    policy_plan,
    progress,
    uniform_policy,
)
from sleep_ray.dream.curriculum_ppo import episode_returns
from sleep_ray.dream.records import DreamSample, TrialResult

OBS_DIM = SLOTS * KINDS * FEATURES + 1


def test_progress_has_diminishing_returns():
    assert progress(0.5, 0) == 0.0
    assert progress(0.5, 1) == pytest.approx(0.15)  # 0.5 * 0.3
    assert progress(0.5, 2) == pytest.approx(0.255)  # 0.5 * (1 - 0.7 ** 2)
    assert progress(0.0, 5) == 0.0  # a memory already known has nothing to gain


def test_observation_lays_out_each_arm_then_the_budget_left():
    present, headroom = np.zeros(SLOTS), np.zeros(SLOTS)
    present[0], headroom[0] = 1.0, 0.75
    trials, wins, planned = np.zeros((SLOTS, KINDS)), np.zeros((SLOTS, KINDS)), np.zeros((SLOTS, KINDS))
    trials[0] = [2, 1]
    wins[0] = [1, 0]
    planned[0, 1] = 1
    obs = observation(present, headroom, trials, wins, planned, budget=4)
    assert obs.shape == (OBS_DIM,) and obs.dtype == np.float32
    arms = obs[:-1].reshape(SLOTS, KINDS, FEATURES)
    np.testing.assert_allclose(arms[0, 0], [1.0, 0.75, 2 / 4, 0.5, 0.0])  # (1 + 1) / (2 + 2), 2 trials / 4
    np.testing.assert_allclose(arms[0, 1], [1.0, 0.75, 1 / 3, 0.25, 0.25])
    np.testing.assert_allclose(arms[1, 0], [0.0, 0.0, 0.5, 0.0, 0.0])  # an empty slot
    assert obs[-1] == pytest.approx(0.75)


def test_pick_draws_from_the_softmax_over_valid_arms_or_takes_the_best():
    logits, valid = np.log(np.array([1.0, 3.0, 100.0, 0.5])), np.array([True, True, False, False])
    assert pick(logits, valid, None) == 1  # the best valid arm; arm 2 is masked
    rng = np.random.default_rng(0)
    draws = np.bincount([pick(logits, valid, rng) for _ in range(4000)], minlength=4)
    assert draws[2] == draws[3] == 0 and abs(draws[1] / 4000 - 0.75) < 0.03  # softmax: 3 / (1 + 3)


def _stats(ids: list[str]) -> dict:
    return {(m, k): ArmStats(trials=1, wins=0, before=0.5) for m in ids for k in ("qa", "restatement")}


def test_policy_plan_with_the_uniform_policy_gives_every_memory_its_trials_with_kinds_in_turn():
    ids = [f"m{i:02d}" for i in range(11)]  # a chunk of 8 and a chunk of 3
    plan = policy_plan(uniform_policy, ids, ["qa", "restatement"], _stats(ids), per_memory=3)
    assert plan == {arm: n for m in ids for arm, n in (((m, "qa"), 2), ((m, "restatement"), 1))}


def test_policy_plan_spends_each_chunks_budget_where_the_policy_points():
    ids = [f"m{i:02d}" for i in range(11)]
    fixed = np.arange(SLOTS * KINDS, dtype=float)  # prefers the last arm; slots past a short chunk are masked

    plan = policy_plan(lambda obs: fixed, ids, ["qa", "restatement"], _stats(ids), per_memory=3)
    assert plan[("m07", "restatement")] == 24  # chunk 1: 8 memories x 3 trials on its last arm
    assert plan[("m10", "restatement")] == 9  # chunk 2: 3 memories, its last present arm
    assert sum(plan.values()) == 33
    with pytest.raises(ValueError, match="sleep.dreaming.kinds"):
        policy_plan(uniform_policy, ids, ["qa"], {}, per_memory=3)


def test_arm_stats_counts_trials_and_wins_per_memory_and_kind():
    dreams = [DreamSample(f"d{i}", "m1", k, "", "", "", "", "") for i, k in enumerate(["qa", "qa", "restatement"])]
    results = [TrialResult("d0", "m1", 0.25, 0.5, 0.1), TrialResult("d1", "m1", 0.25, 0.25, 0.1)]
    results.append(TrialResult("d2", "m1", 0.25, 0.0, 0.1))
    stats = arm_stats(results, dreams)
    assert stats[("m1", "qa")] == ArmStats(trials=2, wins=1, before=0.25)
    assert stats[("m1", "restatement")] == ArmStats(trials=1, wins=0, before=0.25)


def test_the_simulated_round_spends_its_budget_and_pays_progress_only_where_there_is_headroom():
    env = CurriculumEnv({"known": 0.5, "win_a": 5.0, "win_b": 1.0})
    for seed in range(20):
        obs, _ = env.reset(seed=seed)
        assert obs.shape == (OBS_DIM,) and env.observation_space.contains(obs)
        n = int(env.present.sum())
        total, steps, done = 0.0, 0, False
        while not done:
            arm = steps % (n * KINDS)  # only present slots
            _, r, done, _, _ = env.step(arm)
            assert r >= 0.0 and (r == 0.0 or env.headroom[arm // KINDS] > 0)
            total, steps = total + r, steps + 1
        assert steps == 3 * n  # per_memory trials per present memory
        assert total <= env.headroom.sum() + 1e-9
    a, b = CurriculumEnv({"seed": 3}), CurriculumEnv({"seed": 3})
    np.testing.assert_array_equal(a.reset(seed=7)[0], b.reset(seed=7)[0])  # seeded: the same round


def test_in_the_simulator_a_plan_that_reads_the_observation_beats_uniform():
    def greedy(obs: np.ndarray) -> np.ndarray:  # headroom x win posterior, discounted by what is planned
        f = obs[:-1].reshape(SLOTS * KINDS, FEATURES)
        return f[:, 1] * f[:, 2] * 0.7 ** (f[:, 4] * 24)

    uni = episode_returns(None, episodes=300, seed=5)
    best = episode_returns(greedy, episodes=300, seed=5, sample=False)
    assert best.mean() > uni.mean() + 0.05  # so there is something for PPO to learn
