"""Knowledge Seeding on Ray, measured: one sleep over cycle 1 of the sleep example (50 memories), then
closed-book accuracy on the held-out (eval-split) probes of those memories before and after, the teacher's
in-context accuracy (the upper bound), and base-knowledge retention on every base eval probe.

    .venv/bin/python benchmarks/seeding.py --tag default
    .venv/bin/python benchmarks/seeding.py --tag lambda0 sleep.seeding.lmbda=0
    .venv/bin/python benchmarks/seeding.py --tag alpha1  sleep.seeding.alpha=1
    .venv/bin/python benchmarks/seeding.py --tag nogrowth sleep.growth.enabled=false
    .venv/bin/python benchmarks/seeding.py --tag t_foreign --day foreign --day-seed 1   # a test day

Each run appends one JSON line to runs/bench/seeding.jsonl and prints it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import defaultdict
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle_eval import append_row, night_start  # noqa: E402

from sleep_ray.eval.harness import accuracy, items
from sleep_ray.models.build import load_pretrained
from sleep_ray.runtime.cluster import init_ray
from sleep_ray.seeding.run import run_seeding


def main() -> None:
    args, cfg, world, day = night_start(argparse.ArgumentParser(), "")
    memories = [m for m in world.stream if m.cycle == 1]
    probes = [it for it in items(world, ("eval",)) if it.cycle == "1"]
    by_kind = defaultdict(list)
    for it in probes:
        by_kind[it.probe.kind].append(it)
    base_probes = [it for it in items(world, ("eval",)) if it.cycle == "base"]
    base, tok = load_pretrained(cfg.model.path)

    def acc(model, batch, with_context=False):
        return round(accuracy(model, tok, batch, cfg.eval, with_context=with_context), 4)

    before = {k: acc(base, v) for k, v in by_kind.items()}
    upper = {k: acc(base, v, True) for k, v in by_kind.items()}
    base_before = acc(base, base_probes)

    init_ray(cfg.resources, local_cpus=4)
    t0 = time.time()
    result = run_seeding(
        cfg, checkpoint=cfg.model.path, memories=memories, out_dir=Path(cfg.run_dir) / "cycle-1", cycle=1
    )
    wall = time.time() - t0
    ray.shutdown()
    student, _ = load_pretrained(result.checkpoint)
    after = {k: acc(student, v) for k, v in by_kind.items()}
    base_after = acc(student, base_probes)
    new = "new"
    row = {
        "tag": args.tag,
        "day": day,
        "overrides": args.overrides,
        "memories": len(memories),
        "probes": {k: len(v) for k, v in by_kind.items()},
        "closed_book_before": before,
        "closed_book_after": after,
        "in_context": upper,
        "fraction_of_teacher_new": round(after[new] / upper[new], 3) if upper.get(new) else None,
        "base_before": base_before,
        "base_after": base_after,
        "retention": round(base_after / base_before, 3),
        "sleep_wall_s": round(wall, 1),
        "timings": result.record["timings"],
        "prompts": result.record["prompts"],
        "imitation_items": result.record["imitation_items"],
        "last_metrics": result.record["metrics"][-1] if result.record["metrics"] else {},
    }
    append_row("runs/bench/seeding.jsonl", row)


if __name__ == "__main__":
    main()
