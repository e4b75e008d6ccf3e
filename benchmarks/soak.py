"""A life of nights on the live endpoint: each day's memories are POSTed over HTTP, then the endpoint sleeps
(`POST /v1/sleep`: the scheduler plans the night, sleeps, gates and swaps), while clients keep asking questions.

    .venv/bin/python benchmarks/soak.py --nights 10                      # examples/bench_lifelong.yaml's budget
    .venv/bin/python benchmarks/soak.py --nights 2 --out runs/bench/soak_short.json

Recorded: every request of the background load (failed ones: any status but 200, target 0), each night's gate
decision and where its memories went (in the weights, back in context), and after the last night the accuracy on
every day's probes with retrieval on and off. The days are the bench's stream (`bench_world`: the world's cycles,
or test days with `bench.consolidation.test_days`). Writes one JSON (default runs/bench/soak.json).
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import httpx
from rich.console import Console

from sleep_ray.bench.consolidation import bench_world
from sleep_ray.bench.load import Load, latency
from sleep_ray.config import Config, load_config
from sleep_ray.eval.harness import ANSWERABLE_IN_CONTEXT
from sleep_ray.wake.demo import score, sleep_now
from sleep_ray.wake.deploy import launch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="examples/bench_lifelong.yaml")
    p.add_argument("--nights", type=int, default=10)
    p.add_argument("--clients", type=int, default=1)
    p.add_argument("--out", default="runs/bench/soak.json")
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    console = Console()
    run_dir = "runs/bench/soak"
    overrides = [f"run_dir={run_dir}", f"bench.consolidation.cycles={args.nights}", *args.overrides]
    cfg: Config = load_config(args.config, overrides)
    world = bench_world(cfg)
    shutil.rmtree(Path(run_dir) / "wake", ignore_errors=True)
    ep = launch(args.config, overrides)
    auth = {"Authorization": f"Bearer {ep.admin_token}"}
    model = cfg.serve.model_name
    questions = [pr.question for m in world.stream for pr in m.probes][:32]
    nights, t0 = [], time.time()
    with Load(ep.url, model, questions, max_tokens=8, clients=args.clients) as load:
        for day in range(1, args.nights + 1):
            memories = [m for m in world.stream if m.cycle == day]
            body = {"memories": [{"text": m.text, "kind": m.kind, "memory_id": m.memory_id} for m in memories]}
            httpx.post(f"{ep.url}/v1/memories", json=body, headers=auth, timeout=60).raise_for_status()
            console.print(f"day {day}: {len(memories)} memories posted; sleeping")
            status = sleep_now(ep, console)
            info = status["info"]
            night = {
                "day": day,
                "status": status["status"],
                "why": info.get("why", info.get("error", "")),
                "gate": info.get("gate", {}),
                "night_memories": len(info.get("memories", [])),
                "in_weights": len(info.get("in_weights", [])),
                "returned": len(info.get("returned", [])),
                "compaction": info.get("compaction") is not None,
                "wall_s": round(time.time() - t0, 1),
            }
            nights.append(night)
            console.print(night)
    rows = load.rows
    failed = [r for r in rows if r[2] != 200]
    probes = {
        day: [pr for m in world.stream if m.cycle == day for pr in m.probes if pr.kind in ANSWERABLE_IN_CONTEXT]
        for day in range(1, args.nights + 1)
    }
    after = {
        str(day): {
            "retrieval_on": score(ep, model, [pr for pr in ps if pr.split == "eval"], True)[0],
            "retrieval_off": score(ep, model, [pr for pr in ps if pr.split == "eval"], False)[0],
        }
        for day, ps in probes.items()
    }
    listed = httpx.get(f"{ep.url}/v1/memories", params={"limit": 500}, headers=auth, timeout=60).json()
    result = {
        "nights": nights,
        "requests": latency(rows),
        "failed_requests": len(failed),
        "failed_examples": [str(r[2:5])[:200] for r in failed[:5]],
        "after_last_night": after,
        "memories": {
            "total": listed["total"],
            "in_weights": sum(m["status"] == "weights" for m in listed["data"]),
            "in_context": sum(m["status"] == "context" for m in listed["data"]),
        },
        "meta": {"config": args.config, "overrides": overrides, "wall_s": round(time.time() - t0, 1)},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    console.print_json(json.dumps({k: result[k] for k in ("failed_requests", "requests", "memories")}))


if __name__ == "__main__":
    main()
