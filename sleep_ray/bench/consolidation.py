"""`sleep-ray bench consolidation`: does sleeping beat the obvious alternatives over a stream of memories?

    sleep-ray bench consolidation --config examples/bench_consolidation.yaml
    sleep-ray bench consolidation --config examples/bench_consolidation.yaml bench.consolidation.methods=[sft,sleep]

Each method (bench/methods.py) consolidates cycles 1..K of the world's memory stream one after the other,
starting from the same base model: cycle k trains the method's own model after cycle k-1. Sleep-family methods
live the endpoint's life (`bench/lifelong.py`): each cycle is one night of `sleep_ray.wake.night`, with replay,
the anchor, the gate and the knowledge ledger, in the method's own store. After every cycle the model is
evaluated on every cycle's held-out probes and on base knowledge (eval/harness.py), closed-book and in context,
which gives the (K+1) x K accuracy matrix of `continual_metrics` (row 0 = the base model), and on what the
endpoint would answer (`answerable`: memories in context through retrieval). Everything lands under
`<run_dir>/bench/consolidation/`:

    <method>/cycle-<k>/          the model a night made (a plain HF directory; kept even when the gate refused it)
    <method>/store/              a sleep-family method's store: memories, versions, knowledge ledger
    <method>/cycle-<k>.json      its record: wall time, parameters, gate, memories in context (written last: a
                                 cycle without it reruns)
    <method>/eval-<k>.json       its evaluation (cached: a rerun of the command only does what is missing)
    consolidation.json / .md     every figure, and the table with the verdict
    plot_accuracy.png, plot_forgetting.png

Interrupting the command loses at most the cycle in progress; rerunning it picks up where it stopped.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import torch

from sleep_ray.bench import consolidation_report as report
from sleep_ray.bench.lifelong import answerable, night_cycle
from sleep_ray.bench.methods import METHODS, Method, resolve_methods, sft_cycle
from sleep_ray.config import Config, load_config
from sleep_ray.data.schema import Memory, World, load_world
from sleep_ray.data.testdays import generate_test_days
from sleep_ray.data.world import generate_world
from sleep_ray.eval.harness import evaluate
from sleep_ray.models.build import load_pretrained

log = logging.getLogger(__name__)
Metrics = dict[str, dict[str, float]]


def bench_world(cfg: Config) -> World:
    """The world named by `data.world_dir`, else the one `data.world` generates (what `sleep-ray world` writes);
    with `bench.consolidation.test_days`, its stream replaced by that many cycles of test days. When the bench asks
    for more cycles than the generated world has, the stream comes from the same world config with that many
    cycles (its documents differ only in reading-practice demonstrations of the extra cycles' words, so the base
    model keeps the documents it was trained on)."""
    world = load_world(cfg.data.world_dir) if cfg.data.world_dir else generate_world(cfg.data.world)
    b = cfg.bench.consolidation
    if b.test_days:
        days = generate_test_days(
            cfg.data.world, seed=b.test_seed, style=b.test_days, days=b.cycles, people=b.test_people
        )
        return World(world.documents, tuple(days))
    if not cfg.data.world_dir and b.cycles > cfg.data.world.num_cycles:
        longer = generate_world(dataclasses.replace(cfg.data.world, num_cycles=b.cycles))
        return World(world.documents, longer.stream)
    return world


def cycle_memories(world: World, cycle: int) -> list[Memory]:
    memories = [m for m in world.stream if m.cycle == cycle]
    if not memories:
        cycles = sorted({m.cycle for m in world.stream})
        raise ValueError(f"bench.consolidation.cycles: the stream has no cycle {cycle} (it has {cycles})")
    return memories


def evaluated(checkpoint: str | Path, world: World, cfg: Config, cache: Path, *, in_context: bool = False) -> Metrics:
    """The harness's metrics of `checkpoint` (closed-book only unless `in_context`), cached in `cache`."""
    if cache.is_file():
        return json.loads(cache.read_text())
    model, tokenizer = load_pretrained(checkpoint, cfg.model.dtype)
    metrics = evaluate(model, tokenizer, world, cfg.eval, in_context=in_context)
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(metrics))
    return metrics


def _train_cycle(
    name: str, method: Method, cfg: Config, world: World, previous: str, root: Path, cycle: int
) -> dict[str, Any]:
    """Train one cycle of a method under `root`; returns its record (wall time, trained parameters, the model)."""
    t0 = time.time()
    if method.kind == "sft":
        earlier = [m for m in world.stream if m.cycle < cycle] if method.replay else []
        out = root / f"cycle-{cycle}"
        total = sft_cycle(cfg, previous, cycle_memories(world, cycle), out, cycle, earlier)
        wall = round(time.time() - t0, 1)
        return {"method": name, "cycle": cycle, "checkpoint": str(out), "parameters": total, "trained": total,
                "in_context": [], "wall_s": wall}  # fmt: skip
    record = night_cycle(cfg, world, cfg.model.path, root, cycle)
    conf = load_pretrained(record["checkpoint"], cfg.model.dtype)[0].config
    expert = 3 * int(conf.hidden_size) * cfg.sleep.growth.d_low * int(conf.num_hidden_layers)
    trained = expert if cfg.sleep.growth.enabled else int(record["parameters"])
    return {**record, "method": name, "cycle": cycle, "trained": trained}


def run_method(
    name: str, cfg: Config, world: World, base: str, base_metrics: Metrics, root: Path, cycles: int
) -> dict[str, Any]:
    """Rows 0..K of the method's evaluation, with per-cycle wall time and trained parameters."""
    method = METHODS[name]
    closed_base = {k: v for k, v in base_metrics.items() if not k.endswith(("in_context", "in_context_f1"))}
    if method.kind in ("none", "oracle"):
        row = report.oracle_row(base_metrics) if method.kind == "oracle" else closed_base
        return {"rows": [closed_base] + [row] * cycles, "cycles": [], "oracle": method.oracle}
    rows, records, previous = [closed_base], [], base
    for k in range(1, cycles + 1):
        marker, cache = root / name / f"cycle-{k}.json", root / name / f"eval-{k}.json"
        if not marker.is_file():
            if method.kind == "sft":
                shutil.rmtree(root / name / f"cycle-{k}", ignore_errors=True)  # a half-done cycle starts again
            log.info("bench consolidation: %s, cycle %d of %d", name, k, cycles)
            marker.write_text(json.dumps(_train_cycle(name, method, cfg, world, previous, root / name, k)))
            cache.unlink(missing_ok=True)
        record = json.loads(marker.read_text())
        records.append(record)
        if not cache.is_file():
            row = evaluated(record["checkpoint"], world, cfg, cache, in_context=True)
            row["answerable"] = answerable(record["checkpoint"], world, cfg, set(record["in_context"]), k)
            cache.write_text(json.dumps(row))
        rows.append(json.loads(cache.read_text()))
        previous = record["checkpoint"]
    return {"rows": rows, "cycles": records, "oracle": method.oracle}


def method_config(config: str | None, overrides: list[str], name: str) -> Config:
    return load_config(config, [*overrides, *METHODS[name].overrides])


def run_consolidation(config: str | None, overrides: list[str]) -> dict[str, Any]:
    """Run (or finish) every configured method over cycles 1..K; write JSON, Markdown and plots; return the
    result (`consolidation_report.summarize` explains its summary figures)."""
    cfg: Config = load_config(config, overrides)
    b = cfg.bench.consolidation
    names = resolve_methods(b.methods)
    configs = {n: method_config(config, overrides, n) for n in names}  # a bad override fails before any work
    world = bench_world(cfg)
    for k in range(1, b.cycles + 1):
        cycle_memories(world, k)
    if not cfg.model.path:
        raise ValueError("bench consolidation starts every method from model.path; set it (e.g. examples/tiny_base)")
    torch.set_num_threads(cfg.pretrain.threads)
    root = Path(cfg.run_dir) / "bench" / "consolidation"
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.time()
    base_metrics = evaluated(cfg.model.path, world, cfg, root / "base_eval.json", in_context=True)
    results: dict[str, Any] = {}
    try:
        for name in names:
            results[name] = run_method(name, configs[name], world, cfg.model.path, base_metrics, root, b.cycles)
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    result = {
        "cycles": b.cycles,
        "methods": results,
        "summary": {n: report.summarize(r["rows"], r["cycles"], base_metrics) for n, r in results.items()},
        "per_cycle": {n: report.per_cycle(r["rows"], r["cycles"], base_metrics) for n, r in results.items()},
        "meta": {
            "config": config,
            "overrides": overrides,
            "model": cfg.model.path,
            "memories_per_cycle": [len(cycle_memories(world, k)) for k in range(1, b.cycles + 1)],
            "wall_s": round(time.time() - t0, 1),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        },
    }
    report.write(result, root)
    return result
