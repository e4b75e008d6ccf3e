"""The RLlib curriculum policy against the uniform plan, in the simulator it is trained in.

    .venv/bin/python benchmarks/curriculum.py --trials runs/bench/dream_c1/cycle-1.dream.logs/trials.jsonl \
        --out examples/curriculum_ppo --iterations 100

1. Fit the simulator (`CurriculumEnv`) to real trials (a Dreaming run's trials.jsonl): the share of memories
   already fully known (agreement 1 before any trial: no dream can win there), the others' headroom, and the mean
   win chance of an arm (Beta prior of concentration 3 around it).
2. Train PPO (RLlib, in-process) on it; save the RLModule to --out.
3. Total learning progress per simulated round, PPO (arms drawn from it, as Dreaming plans; and its argmax) and
   uniform on the same 2,000 held-out rounds, with the paired
   difference and its standard error. Appends one JSON line to runs/bench/curriculum.jsonl and prints it.

Whether the policy also helps a real sleep is a separate run: benchmarks/dreaming.py with
`sleep.dreaming.curriculum=ppo sleep.dreaming.curriculum_policy=examples/curriculum_ppo`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle_eval import append_row  # noqa: E402

from sleep_ray.dream.curriculum_ppo import episode_returns, load_policy, train_ppo  # noqa: E402


def fit_env(trials_path: str | None) -> dict:
    """Simulator settings from the round-0 trials of a real run (defaults when there is none)."""
    if not trials_path:
        return {}
    rows = [json.loads(x) for x in Path(trials_path).read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["round"] == 0]
    before = {r["memory_id"]: r["before"] for r in rows}
    arms: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        if before[r["memory_id"]] < 1.0:
            arms[(r["memory_id"], r["kind"])].append(r["reward"])
    p = float(np.mean([x for v in arms.values() for x in v])) if arms else 0.2
    return {
        "known": round(sum(b >= 1.0 for b in before.values()) / max(1, len(before)), 3),
        "headrooms": sorted(round(1.0 - b, 3) for b in before.values() if b < 1.0),
        "win_a": round(3 * p, 3),
        "win_b": round(3 * (1 - p), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--trials", help="trials.jsonl of a Dreaming run (the simulator is fitted to it)")
    parser.add_argument("--out", default="runs/bench/curriculum_ppo")
    parser.add_argument("--iterations", type=int, default=100)
    parser.add_argument("--episodes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(2)
    env_config = fit_env(args.trials)
    ray.init(num_cpus=2, log_to_driver=False, configure_logging=False, include_dashboard=False)
    t = time.time()
    path, curve = train_ppo(args.out, iterations=args.iterations, env_config=env_config, seed=args.seed)
    train_s = time.time() - t
    ray.shutdown()
    policy, held_out = (
        load_policy(path),
        {"episodes": args.episodes, "env_config": env_config, "seed": 10_000 + args.seed},
    )
    ppo = episode_returns(policy, **held_out)  # arms drawn from the policy, as Dreaming plans
    greedy = episode_returns(policy, **held_out, sample=False)
    uni = episode_returns(None, **held_out)
    diff = ppo - uni
    row = {
        "env": {k: v for k, v in env_config.items() if k != "headrooms"}
        | {"headrooms": len(env_config.get("headrooms", []))},
        "trials": args.trials,
        "iterations": args.iterations,
        "train_s": round(train_s, 1),
        "train_return_first_last": [round(curve[0], 4), round(curve[-1], 4)],
        "episodes": args.episodes,
        "progress_per_round": {
            "ppo": round(float(ppo.mean()), 4),
            "ppo_greedy": round(float(greedy.mean()), 4),
            "uniform": round(float(uni.mean()), 4),
        },
        "ppo_minus_uniform": round(float(diff.mean()), 4),
        "stderr": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 4),
        "policy": str(path),
    }
    append_row("runs/bench/curriculum.jsonl", row)


if __name__ == "__main__":
    main()
