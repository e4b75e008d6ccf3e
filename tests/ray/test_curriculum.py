"""The RLlib curriculum policy: PPO trains on the simulated round (real RLlib, in the test's Ray session), its
RLModule is saved, loaded back without RLlib's trainer and plans a round of Dreaming."""

from __future__ import annotations

import numpy as np
import pytest

from sleep_ray.dream.curriculum import ArmStats, policy_plan
from sleep_ray.dream.curriculum_ppo import episode_returns, load_policy, train_ppo


@pytest.mark.timeout(600)
def test_ppo_trains_saves_and_plans_a_round(ray_cluster, tmp_path):
    path, curve = train_ppo(tmp_path / "ppo", iterations=1, batch=500, seed=0)
    assert len(curve) == 1 and np.isfinite(curve[0]) and (path / "module_state.pkl").is_file()
    policy = load_policy(path)
    ids = [f"m{i}" for i in range(10)]
    stats = {(m, k): ArmStats(trials=2, wins=int(m == "m3"), before=0.5) for m in ids for k in ("qa", "restatement")}
    plan = policy_plan(policy, ids, ["qa", "restatement"], stats, per_memory=3)
    assert sum(plan.values()) == 30 and all(n >= 0 for n in plan.values())  # the whole budget, on real arms
    returns = episode_returns(policy, episodes=20, seed=3)
    assert returns.shape == (20,) and (returns >= 0).all()
    with pytest.raises(FileNotFoundError, match="curriculum_policy"):
        load_policy(tmp_path / "missing")
