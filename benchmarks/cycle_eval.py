"""What the night benchmarks share: the day a night sleeps on (`--day`), a JSON line per result, and the day's
figures (`CycleEval`, sleep_ray/bench/day_eval.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from sleep_ray.bench.day_eval import CycleEval
from sleep_ray.config import Config, load_config
from sleep_ray.data.schema import World
from sleep_ray.data.testdays import DEV_SEEDS, FINAL_SEEDS, generate_test_days
from sleep_ray.data.world import generate_world

__all__ = ["CycleEval", "add_day_arguments", "append_row", "load_day", "night_start"]


def append_row(path: str | Path, row: dict[str, Any]) -> None:
    """Append one benchmark result as a JSON line and print it."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))


def add_day_arguments(parser: argparse.ArgumentParser) -> None:
    """`--day cycle1|world|foreign` and its seed: which day a night benchmark sleeps on."""
    parser.add_argument("--day", choices=("cycle1", "world", "foreign"), default="cycle1", help="cycle1: the world's")
    parser.add_argument("--day-seed", type=int, default=DEV_SEEDS[0])
    parser.add_argument("--day-people", type=int, default=24)
    parser.add_argument("--final", action="store_true", help="allow the test days' final seeds (report only)")


def load_day(cfg: Config, args: argparse.Namespace) -> tuple[World, str]:
    """The world with the chosen day as its cycle 1 (test days replace the stream: the day and the one after it,
    cycle 2, which only the next-teacher checks read), and the day's label."""
    world = generate_world(cfg.data.world)
    if args.day == "cycle1":
        return world, "cycle1"
    if args.day_seed in FINAL_SEEDS and not args.final:
        raise SystemExit(f"seed {args.day_seed} is a final test-day seed: pass --final, and tune nothing on it")
    day = generate_test_days(cfg.data.world, seed=args.day_seed, style=args.day, days=2, people=args.day_people)
    return World(world.documents, tuple(day)), f"{args.day}:{args.day_seed}:{args.day_people}"


def night_start(parser: argparse.ArgumentParser, run_prefix: str) -> tuple[argparse.Namespace, Config, World, str]:
    """What every night benchmark does first: `--tag`, `--config`, the day's arguments and trailing overrides
    (add the benchmark's own arguments to `parser` before), the config with run_dir runs/bench/<prefix><tag>, two
    torch threads, and the day (`load_day`). Returns (args, cfg, world, day label)."""
    import torch

    parser.add_argument("--tag", default="default")
    parser.add_argument("--config", default="examples/sleep_tiny.yaml")
    add_day_arguments(parser)
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    cfg = load_config(args.config, [f"run_dir=runs/bench/{run_prefix}{args.tag}", *args.overrides])
    torch.set_num_threads(2)
    world, day = load_day(cfg, args)
    return args, cfg, world, day
