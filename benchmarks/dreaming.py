"""Dreaming on Ray, measured: one full sleep (Knowledge Seeding, then Dreaming) over cycle 1 of the sleep example
(50 memories), evaluated after each stage on the held-out probes of those memories, on base knowledge
(retention) and on updated facts (new answer against the stale one).

    .venv/bin/python benchmarks/dreaming.py --tag default
    .venv/bin/python benchmarks/dreaming.py --tag default --seeded runs/bench/v2_default/cycle-1   # reuse stage 1
    .venv/bin/python benchmarks/dreaming.py --tag nofilter --seeded ... sleep.dreaming.filter=false
    .venv/bin/python benchmarks/dreaming.py --scaling --seeded runs/bench/v2_default/cycle-1       # trials/min
    .venv/bin/python benchmarks/dreaming.py --tag t_foreign_1 --day foreign --day-seed 1     # a test day

`--day world|foreign` sleeps on a test day of sleep_ray.data.testdays instead of the world's cycle 1 (24 new
people, names in the world's style or from other syllables; sentence and question shapes of its own); its
final seeds run only with `--final`. Each run appends one JSON line to runs/bench/dreaming.jsonl and prints it;
`--out` also writes it as a JSON file (docs/results/).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cycle_eval import CycleEval, append_row, night_start  # noqa: E402

from sleep_ray.config import Config  # noqa: E402
from sleep_ray.dream.critic import TrialCritic  # noqa: E402
from sleep_ray.dream.generator import DreamGenerator  # noqa: E402
from sleep_ray.dream.run import growth_of, run_dreaming, write_probes  # noqa: E402
from sleep_ray.dream.trials import TrialPool  # noqa: E402
from sleep_ray.records import call  # noqa: E402
from sleep_ray.roles.teacher import TeacherSelf  # noqa: E402
from sleep_ray.runtime.cluster import init_ray  # noqa: E402
from sleep_ray.seeding.run import run_seeding  # noqa: E402


def scaling(cfg: Config, seeded: str, memories: list, n_dreams: int, workers: tuple[int, ...] = (1, 2)) -> dict:
    """Trials per minute over the same dreams with 1, 2, ... reward-critic workers (ideal: k x the first / its k)."""
    d = cfg.sleep.dreaming
    teacher = ray.remote(num_cpus=0.25)(TeacherSelf).remote(cfg.model.path)
    gen = ray.remote(num_cpus=0.25)(DreamGenerator).remote(seeded, d, seed=0)
    probes = write_probes(cfg, teacher, memories)
    contexts = call(teacher.contexts.remote(memories), 600, "contexts")
    dreams = call(gen.write.remote(contexts, per_memory=d.dreams_per_memory, seed=0), 600, "write")[:n_dreams]
    ray.kill(teacher)
    ray.kill(gen)
    growth = growth_of(seeded)
    row = {"dreams": len(dreams)}
    for k in workers:
        pool = TrialPool(
            lambda w: ray.remote(num_cpus=0.25)(TrialCritic).remote(seeded, probes, d, growth=growth, worker=w),
            k,
            d.trial_timeout_s,
        )
        call([a.ping.remote() for a in pool.actors], 600, "critic start")  # loading is not trial time
        t = time.time()
        pool.run(dreams, seed=0)
        row[f"trials_per_min_{k}"] = round(60 * len(dreams) / (time.time() - t), 1)
        for a in pool.actors:
            ray.kill(a)
    for k in workers[1:]:
        row[f"ideal_{k}"] = round(row[f"trials_per_min_{workers[0]}"] * k / workers[0], 1)
    return row


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seeded", help="a stage-1 output of the same cycle to start from (copied)")
    parser.add_argument("--scaling", action="store_true", help="measure trials/min with 1 and 2 workers only")
    parser.add_argument("--scaling-dreams", type=int, default=48)
    parser.add_argument("--out", help="also write the row to this JSON file")
    args, cfg, world, day = night_start(parser, "dream_")
    memories = [m for m in world.stream if m.cycle == 1]
    tomorrow = [m for m in world.stream if m.cycle == 2 and m.kind == "document"][:24]
    init_ray(cfg.resources, local_cpus=4)
    if args.scaling:
        if not args.seeded:
            raise SystemExit("--scaling needs --seeded")
        row = {"tag": args.tag, "scaling": scaling(cfg, args.seeded, memories, args.scaling_dreams)}
    else:
        out = Path(cfg.run_dir) / "cycle-1"
        t0 = time.time()
        if args.seeded:
            shutil.rmtree(out, ignore_errors=True)
            shutil.copytree(args.seeded, out)
        else:
            run_seeding(cfg, checkpoint=cfg.model.path, memories=memories, out_dir=out, cycle=1)
        seeding_s = time.time() - t0
        ev = CycleEval(cfg, world)
        seeded, read_seeded = ev.closed_book(str(out)), ev.reading(str(out))
        t = time.time()
        result = run_dreaming(cfg, parent=cfg.model.path, seeded=out, memories=memories, out_dir=out, cycle=1)
        dreaming_s = time.time() - t
        ray.shutdown()
        before, after, upper = ev.closed_book(cfg.model.path), ev.closed_book(str(out)), ev.in_context(cfg.model.path)
        read_before, read_after = ev.reading(cfg.model.path), ev.reading(str(out))
        dr = result.record["dreaming"]
        row = {
            "tag": args.tag,
            "day": day,
            "overrides": args.overrides,
            "seeded_from": args.seeded,
            "probes": ev.counts(),
            "before": before,
            "after_seeding": seeded,
            "after_dreaming": after,
            "in_context": upper,
            "fraction_of_teacher_new": {
                "seeding": round(seeded["new"] / upper["new"], 3),
                "full": round(after["new"] / upper["new"], 3),
            },
            "retention": {
                "seeding": round(seeded["base"] / before["base"], 3),
                "full": round(after["base"] / before["base"], 3),
            },
            "reading": {"before": read_before, "after_seeding": read_seeded, "after": read_after},
            "question_writing_next_day": {
                "before": ev.writing(cfg.model.path, tomorrow),
                "after": ev.writing(str(out), tomorrow),
            },
            "reading_kept": round(read_after["new_in_context"] / max(1e-9, read_before["new_in_context"]), 3),
            "steps": {"seeding": result.record["steps"], "rehearsal": dr["rehearsal_steps"]},
            "grounding": {
                "seeding": result.record.get("grounding", {}).get("counts"),
                "dreaming": dr["grounding"]["counts"],
            },
            "seeding_s": round(seeding_s, 1),
            "dreaming_s": round(dreaming_s, 1),
            "dreaming": {k: v for k, v in dr.items() if k != "metrics"},
        }
    append_row("runs/bench/dreaming.jsonl", row)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(row, indent=1) + "\n")


if __name__ == "__main__":
    main()
