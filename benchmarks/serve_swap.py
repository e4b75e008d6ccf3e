"""Hot swaps under load: a fixed number of concurrent clients on loopback for a fixed time, in steady state
and across N swaps between two weight versions; zero failed requests, each response's text equal to what the
version it is stamped with answers, p99 latency during swaps vs steady state.

    .venv/bin/python benchmarks/serve_swap.py                       # sleeps once through the API first
    .venv/bin/python benchmarks/serve_swap.py --grown runs/tiny/wake/checkpoints/v1 --swaps 6 --clients 4

The two versions are the base model (v0) and a slept one (v1); the questions are cycle 1's new people, asked with
retrieval off, so the versions answer differently. Appends one JSON line to runs/bench/serve_swap.jsonl.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import httpx
from rich.console import Console

from sleep_ray.bench.load import Load, expected_answers, latency
from sleep_ray.config import load_config
from sleep_ray.data.world import generate_world
from sleep_ray.wake.demo import sleep_now
from sleep_ray.wake.deploy import Swapper, launch


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--config", default="examples/tiny_cpu.yaml")
    p.add_argument("--grown", help="a slept checkpoint (default: sleep once through the endpoint first)")
    p.add_argument("--clients", type=int, default=4)
    p.add_argument("--steady-s", type=float, default=30.0)
    p.add_argument("--swaps", type=int, default=6)
    p.add_argument("--gap-s", type=float, default=4.0, help="seconds of load between swaps")
    p.add_argument("--questions", type=int, default=16)
    p.add_argument("overrides", nargs="*")
    args = p.parse_args()
    console = Console()
    run_dir = "runs/bench/serve_swap"
    overrides = [f"run_dir={run_dir}", *args.overrides]
    cfg = load_config(args.config, overrides)
    world = generate_world(cfg.data.world)
    memories = [m for m in world.stream if m.cycle == 1]
    questions = [pr.question for m in memories for pr in m.probes if pr.kind == "new"][: args.questions]
    shutil.rmtree(Path(run_dir) / "wake", ignore_errors=True)
    ep = launch(args.config, overrides)
    base = str(Path(cfg.model.path).resolve())
    grown = args.grown
    if not grown:
        auth = {"Authorization": f"Bearer {ep.admin_token}"}
        body = {"memories": [{"text": m.text, "kind": m.kind, "memory_id": m.memory_id} for m in memories]}
        httpx.post(f"{ep.url}/v1/memories", json=body, headers=auth, timeout=60).raise_for_status()
        status = sleep_now(ep, console)
        if status["status"] != "swapped":
            raise SystemExit(f"the sleep did not swap: {status}")
        grown = status["info"]["checkpoint"]
    grown = str(Path(grown).resolve())
    n_tok = 8
    dt = cfg.model.dtype
    expect = {0: expected_answers(base, questions, n_tok, dt), 1: expected_answers(grown, questions, n_tok, dt)}
    differ = sum(a != b for a, b in zip(expect[0], expect[1]))
    console.print(f"{differ}/{len(questions)} questions are answered differently by v0 and v1")
    swap = Swapper(ep.dashboard, ep.url, ep.config_path, cfg.serve.replicas)
    swap(base, 0)

    with Load(ep.url, cfg.serve.model_name, questions, n_tok, args.clients) as steady:
        time.sleep(args.steady_s)
    windows, swap_s = [], []
    with Load(ep.url, cfg.serve.model_name, questions, n_tok, args.clients) as during:
        for i in range(args.swaps):
            time.sleep(args.gap_s)
            version = 1 if i % 2 == 0 else 0
            t0 = time.time()
            swap(grown if version else base, version)
            windows.append((t0, time.time()))
            swap_s.append(time.time() - t0)
        time.sleep(args.gap_s)

    summary = latency
    in_swap = [r for r in during.rows if any(r[0] < b and r[1] > a for a, b in windows)]
    failed = [r for r in steady.rows + during.rows if r[2] != 200]
    wrong = [r for r in steady.rows + during.rows if r[2] == 200 and r[4] != expect[r[3]][r[5]]]
    row = {
        "date": time.strftime("%Y-%m-%d"),
        "clients": args.clients,
        "swaps": args.swaps,
        "questions_differing": differ,
        "steady": summary(steady.rows),
        "during_swaps": summary(in_swap),
        "all_during": summary(during.rows),
        "failed": len(failed),
        "inconsistent": len(wrong),
        "versions_seen": sorted({r[3] for r in during.rows}),
        "swap_s": [round(s, 2) for s in swap_s],
    }
    row["p99_ratio"] = round(row["during_swaps"]["p99_ms"] / row["steady"]["p99_ms"], 2)
    out = Path("runs/bench/serve_swap.jsonl")
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a") as f:
        f.write(json.dumps(row) + "\n")
    console.print_json(json.dumps(row))
    from ray import serve

    serve.shutdown()


if __name__ == "__main__":
    main()
