"""Horizontal scale of a sleep's rollouts and dream trials, in one run: throughput with 1 and 2 workers beside the
ideal (2 x the first). Each worker is one Ray actor with the same fixed share (resources.*.cpus, one torch thread).

    .venv/bin/python benchmarks/scaling.py                       # rollout engines, then dream trials
    .venv/bin/python benchmarks/scaling.py --workers 1 2 4       # on a bigger machine
    .venv/bin/python benchmarks/scaling.py --no-trials

Rollouts: the pre-sleep model grown by one expert (a sleep's starting point) in `resources.rollout_engines`
HF engines behind the train loop's EnginePool (each request's prompts split over all engines), sampling
closed-book answers to the world's base questions; tokens/s counts the sampled tokens. Trials: dream trials per
minute over the same dreams with `dreaming.num_workers` reward-critics (benchmarks/dreaming.py:scaling), on the
grown model. Appends a JSON line to runs/bench/scaling.jsonl and prints it.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import ray
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle_eval import append_row  # noqa: E402
from dreaming import scaling as trial_scaling  # noqa: E402

from sleep_ray.config import load_config
from sleep_ray.data import prompts  # noqa: E402
from sleep_ray.data.world import generate_world  # noqa: E402
from sleep_ray.eval.harness import items  # noqa: E402
from sleep_ray.records import call  # noqa: E402
from sleep_ray.rollout.hf import HFEngine  # noqa: E402
from sleep_ray.rollout.pool import EnginePool  # noqa: E402
from sleep_ray.runtime.cluster import init_ray  # noqa: E402
from sleep_ray.runtime.resources import role_actor  # noqa: E402
from sleep_ray.seeding.run import grow_student  # noqa: E402


def rollout_scaling(cfg, init: str, questions: list[str], workers: list[int], rounds: int) -> dict:
    """Sampled tokens per second through an EnginePool of k engines, for each k in `workers`."""
    s, r = cfg.sleep.seeding, cfg.resources
    row: dict = {"prompts_per_request": len(questions), "requests": rounds, "max_new_tokens": s.max_new_tokens}
    for k in workers:
        engines = [role_actor(HFEngine, r.rollout).remote(init, version=0, threads=1) for _ in range(k)]
        pool = EnginePool(engines, r.call_timeout_s)
        call([e.weight_version.remote() for e in engines], 600, "engine start")  # loading is not sampling time
        pool.result(pool.submit(questions[:8], seed=0, max_new_tokens=4), weights=lambda: ({}, 0))  # warm-up
        t, tokens = time.time(), 0
        for i in range(rounds):
            req = pool.submit(questions, seed=i + 1, n=1, max_new_tokens=s.max_new_tokens, temperature=1.0)
            tokens += sum(len(x.token_ids) for x in pool.result(req, weights=lambda: ({}, 0)))
        row[f"tokens_per_s_{k}"] = round(tokens / (time.time() - t), 1)
        for e in engines:
            ray.kill(e)
    first = row[f"tokens_per_s_{workers[0]}"]
    for k in workers[1:]:
        row[f"ideal_{k}"] = round(first * k / workers[0], 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="examples/sleep_tiny.yaml")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rounds", type=int, default=6, help="rollout requests per engine count")
    parser.add_argument("--prompts", type=int, default=96, help="prompts per rollout request")
    parser.add_argument("--trial-dreams", type=int, default=24)
    parser.add_argument("--no-trials", action="store_true")
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(args.config, ["run_dir=runs/bench/scaling", *args.overrides])
    torch.set_num_threads(1)
    world = generate_world(cfg.data.world)
    questions = [prompts.closed_book(it.probe.question) for it in items(world, ("eval",)) if it.cycle == "base"]
    init = Path(cfg.run_dir) / "grown"
    grow_student(cfg, cfg.model.path, init, cycle=1)  # the sleep's starting point, growth.json included
    init_ray(cfg.resources, local_cpus=4)
    row = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores"
        + (f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU"),
        "date": time.strftime("%Y-%m-%d"),
        "workers": args.workers,
        "rollouts": rollout_scaling(cfg, str(init), questions[: args.prompts], args.workers, args.rounds),
    }
    if not args.no_trials:
        memories = [m for m in world.stream if m.cycle == 1][:6]
        row["trials"] = trial_scaling(cfg, str(init), memories, args.trial_dreams, tuple(args.workers))
    ray.shutdown()
    append_row("runs/bench/scaling.jsonl", row)


if __name__ == "__main__":
    main()
