"""The RLlib curriculum policy: PPO trained on `CurriculumEnv`, saved as an RLModule, loaded for planning.

    path = train_ppo("runs/curriculum/ppo", iterations=30, env_config={...})    # Ray must be up
    policy = load_policy(path)                   # observation [obs_dim] -> logits [SLOTS * KINDS]
    returns = episode_returns(policy, episodes=500, env_config={...}, seed=1)
    returns = episode_returns(None, ...)          # the uniform plan, on the same episodes

`sleep.dreaming.curriculum=ppo` with `sleep.dreaming.curriculum_policy=<path>` makes Dreaming plan rounds >= 1
with the policy (`curriculum.policy_plan`); the default stays uniform (docs/BENCHMARKS.md says why).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sleep_ray.dream.curriculum import KINDS, CurriculumEnv, pick, uniform_policy
from sleep_ray.seeds import derive

Policy = Callable[[np.ndarray], np.ndarray]


def train_ppo(
    out_dir: str | Path,
    *,
    iterations: int,
    env_config: dict[str, Any] | None = None,
    seed: int = 0,
    batch: int = 2000,
) -> tuple[Path, list[float]]:
    """PPO on `CurriculumEnv` for `iterations` iterations of `batch` env steps, in this process (no env-runner
    actors: Ray must be initialised, but nothing is scheduled on it).

    Returns the saved RLModule's directory and the mean episode return after each iteration.
    """
    from ray.rllib.algorithms.ppo import PPOConfig
    from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

    config = (
        PPOConfig()
        .environment(CurriculumEnv, env_config={**(env_config or {}), "seed": seed})
        .env_runners(num_env_runners=0, num_envs_per_env_runner=4)
        .learners(num_learners=0)
        .training(train_batch_size_per_learner=batch, minibatch_size=min(250, batch), num_epochs=6, lr=3e-4, gamma=1.0)
        .rl_module(model_config=DefaultModelConfig(fcnet_hiddens=[64, 64]))
        .debugging(seed=seed)
    )
    algo = config.build_algo()
    curve = []
    try:
        for _ in range(iterations):
            result = algo.train()
            curve.append(float(result["env_runners"]["episode_return_mean"]))
        path = Path(out_dir).resolve()
        module = algo.get_module()
        assert module is not None, "PPO built without its default module"
        module.save_to_path(str(path))
    finally:
        algo.stop()
    return path, curve


def load_policy(path: str | Path) -> Policy:
    """The saved RLModule as observation -> logits (its greedy `forward_inference`), on CPU, no Ray needed."""
    from ray.rllib.core.rl_module.rl_module import RLModule

    if not Path(path).is_dir():
        raise FileNotFoundError(f"no curriculum policy at {path} (sleep.dreaming.curriculum_policy)")
    module = RLModule.from_checkpoint(str(path))

    @torch.no_grad()
    def policy(obs: np.ndarray) -> np.ndarray:
        out = module.forward_inference({"obs": torch.as_tensor(obs, dtype=torch.float32)[None]})
        return out["action_dist_inputs"][0].numpy()

    return policy


def episode_returns(
    policy: Policy | None,
    *,
    episodes: int,
    env_config: dict[str, Any] | None = None,
    seed: int = 1,
    sample: bool = True,
) -> np.ndarray:
    """Total learning progress of each of `episodes` simulated rounds under `policy` (None: uniform, greedy);
    [episodes]. Arms are drawn from the policy's softmax when `sample` (as `policy_plan` does with an rng). The
    same `seed` gives the same rounds to every policy."""
    act = policy or uniform_policy
    rng = np.random.default_rng(seed) if sample and policy is not None else None
    env = CurriculumEnv(env_config)
    out = np.zeros(episodes)
    for e in range(episodes):
        obs, _ = env.reset(seed=derive(seed, e))
        done = False
        while not done:
            arm = pick(np.asarray(act(obs), dtype=float), np.repeat(env.present, KINDS) > 0, rng)
            obs, r, done, _, _ = env.step(arm)
            out[e] += r
    return out
