"""First look at Knowledge Seeding: distil one cycle's memories into a grown copy of the base model, in one
process (no Ray), and print closed-book accuracy on that cycle's new-person probes before and after, the
in-context upper bound, and base-knowledge retention on a sample.

    .venv/bin/python benchmarks/seeding_single_process.py [key=value ...]
    .venv/bin/python benchmarks/seeding_single_process.py sleep.seeding.steps=100
"""

from __future__ import annotations

import random
import sys
import time

import torch

from sleep_ray.config import load_config
from sleep_ray.data.world import generate_world
from sleep_ray.eval.harness import accuracy, items
from sleep_ray.models.build import load_pretrained
from sleep_ray.sleep.seeding import seed


def main() -> None:
    cfg = load_config("examples/tiny_cpu.yaml", sys.argv[1:])
    torch.set_num_threads(cfg.pretrain.threads)
    world = generate_world(cfg.data.world)
    base, tok = load_pretrained(cfg.model.path)
    memories = [m for m in world.stream if m.cycle == 1 and m.kind in ("document", "dialogue")]
    new = [it for it in items(world, ("sleep", "eval")) if it.cycle == "1" and it.probe.kind == "new"]
    old = random.Random(0).sample([it for it in items(world, ("eval",)) if it.cycle == "base"], 64)

    def acc(model, batch, with_context=False):
        return accuracy(model, tok, batch, cfg.eval, with_context=with_context)

    before, upper, kept = acc(base, new), acc(base, new, True), acc(base, old)
    t0 = time.time()
    student, report = seed(base, tok, memories, cfg.sleep, rng=random.Random(0))
    wall = time.time() - t0
    after, kept_after = acc(student, new), acc(student, old)
    print(f"memories {len(memories)}, seeding prompts {report.prompts}, steps {report.steps}, {wall:.0f} s")
    print(
        f"closed-book on cycle-1 new people ({len(new)} probes): {before:.3f} -> {after:.3f} (in context {upper:.3f})"
    )
    print(f"base facts ({len(old)} probes): {kept:.3f} -> {kept_after:.3f}")
    if upper > before:
        print(f"gap closure: {(after - before) / (upper - before):.2f}")


if __name__ == "__main__":
    main()
