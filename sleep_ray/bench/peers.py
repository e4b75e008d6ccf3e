"""`sleep-ray bench peers`: the same day of memories, from the same base checkpoint, through sleep_ray's sleep and
through the trainers users already have (Hugging Face TRL, `trl_peers.py`), on the same machine.

    sleep-ray bench peers --config examples/sleep_tiny.yaml       # the world's 50-memory day
    sleep-ray bench peers --config examples/sleep_updates.yaml    # the day rich in updated facts
    sleep-ray bench peers --config examples/sleep_tiny.yaml bench.peers.test_days=foreign bench.peers.test_seed=2
                                                                  # a test day nobody tuned on

Methods: `sleep` (both stages, the config's settings), `seeding` (Knowledge Seeding alone: the same run, read
after its first stage), and the TRL peers. Each peer trains once per learning rate of its grid
(`bench.peers.lrs`), up to its `bench.peers.steps` steps and under the wall-clock limit (`wall_limit_s`, by
default the sleep's own wall time); the run kept is the one with the best closed-book accuracy on the day's
*sleep-split* probes, and only that run is scored on the held-out probes. Under `<run_dir>/bench/peers/`:

    peers.json   every method: held-out accuracy by kind, share of the in-context ceiling, retention of base
                 knowledge, updated facts (new vs stale value), wall and CPU seconds, tokens trained, trainable
                 parameters, its curve and its tuning; library and version
    peers.md     the table; plot_peers.png: closed-book accuracy against training wall time, a line per method
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
from pathlib import Path
from typing import Any

import ray
import torch

from sleep_ray.bench.day_eval import CycleEval
from sleep_ray.bench.peers_report import plot, table
from sleep_ray.bench.trl_peers import PEERS, QA, Meter, PeerRun, train_peer, trl_version
from sleep_ray.config import PEER_METHODS, Config, load_config
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.data.schema import Memory, World
from sleep_ray.data.testdays import generate_test_days
from sleep_ray.data.world import generate_world
from sleep_ray.models.build import count_parameters, load_pretrained
from sleep_ray.seeds import derive

log = logging.getLogger(__name__)

METHODS = PEER_METHODS  # sleep_ray's rows first, then TRL's (PEERS)


def day_material(cfg: Config, base: str, memories: list[Memory], seed: int) -> list[QA]:
    """The sleep's own question material for the peers: questions the base model writes about each memory
    (grounded), each answered by the base model with the memory in context."""
    from sleep_ray.roles.teacher import TeacherSelf

    s = cfg.sleep.seeding
    teacher = TeacherSelf(base, threads=0, dtype=cfg.model.dtype)
    asked = teacher.write_questions(memories, per_memory=s.questions_per_memory, seed=seed)
    answers = teacher.sample(asked, n=1, max_new_tokens=s.max_new_tokens, temperature=s.temperature, seed=seed + 1)
    windows = teacher.contexts(memories)
    out = []
    for item, roll in zip(asked, answers):
        window = next(w for mid, w in windows if mid == item.memory_id and w in item.teacher)
        out.append(QA(item.student, window, roll.text.split("\n", 1)[0]))
    return out


def _scored(ev: CycleEval, checkpoint: str, before: dict[str, Any], ceiling: dict[str, float]) -> dict[str, Any]:
    after = ev.closed_book(checkpoint)
    return {
        "closed_book": after,
        "share_of_in_context": round(after["new"] / max(1e-9, ceiling["new"]), 3),
        "retention": round(after["base"] / max(1e-9, before["base"]), 3),
    }


def _sleep_rows(cfg: Config, memories: list[Memory], root: Path, ev: CycleEval, before: dict, ceiling: dict) -> list:
    """The sleep and its first stage, timed without the evaluation between them; kept in `sleep_rows.json` (a
    rerun in the same run_dir reuses them: delete the file to sleep again)."""
    from sleep_ray.dream.run import run_dreaming
    from sleep_ray.seeding.run import run_seeding

    cache = root / "sleep_rows.json"
    if cache.is_file():
        return list(json.loads(cache.read_text()))
    out = root / "sleep" / "model"
    shutil.rmtree(out.parent, ignore_errors=True)
    base = cfg.model.path
    size = count_parameters(load_pretrained(base)[0])
    meter = Meter().start()
    seeded = run_seeding(cfg, checkpoint=base, memories=memories, out_dir=out, cycle=1)
    meter.stop()
    seeding_wall, seeding_cpu = meter.wall, meter.cpu
    seeding = _scored(ev, str(out), before, ceiling)
    shutil.copytree(out, root / "seeding" / "model", dirs_exist_ok=True)
    tokens = sum(int(r.get("tokens", 0)) for r in seeded.record.get("metrics", []))
    grown = count_parameters(load_pretrained(str(out))[0]) - size if cfg.sleep.growth.enabled else size
    rows = [
        {
            "method": "seeding",
            "library": "sleep_ray",
            "wall_s": round(seeding_wall, 1),
            "cpu_s": round(seeding_cpu, 1),
            "steps": seeded.steps,
            "tokens": tokens,
            "trainable": grown,
            "checkpoint": str(root / "seeding" / "model"),
            **seeding,
            "curve": [(0.0, before["new"]), (round(seeding_wall, 1), seeding["closed_book"]["new"])],
        }
    ]
    if cfg.sleep.dreaming.enabled:
        meter.start()
        dreamt = run_dreaming(cfg, parent=base, seeded=out, memories=memories, out_dir=out, cycle=1)
        meter.stop()
        d = dreamt.record["dreaming"]
        full = _scored(ev, str(out), before, ceiling)
        rows.append(
            {
                "method": "sleep",
                "library": "sleep_ray",
                "wall_s": round(meter.wall, 1),
                "cpu_s": round(meter.cpu, 1),
                "steps": rows[0]["steps"] + dreamt.steps,
                "tokens": tokens + sum(int(r.get("tokens", 0)) for r in d.get("metrics", [])),
                "trainable": grown,
                "checkpoint": str(out),
                **full,
                "curve": [*rows[0]["curve"], (round(meter.wall, 1), full["closed_book"]["new"])],
            }
        )
    ray.shutdown()
    cache.write_text(json.dumps(rows, indent=1))
    return rows


def _peer_row(
    name: str,
    cfg: Config,
    memories: list[Memory],
    qa: list[QA],
    root: Path,
    limit_s: float,
    evs: tuple[CycleEval, CycleEval],
    before: dict,
    ceiling: dict,
) -> dict[str, Any]:
    """Train `name` at every learning rate of its grid, keep the best on sleep-split probes, score it."""
    ev, tune = evs
    p = cfg.bench.peers
    steps = p.steps[name]
    eval_tok = load_pretrained(cfg.model.path)[1]  # left padding, as every evaluation
    fmt = PromptFormat.of(eval_tok)

    def probe(model: Any) -> float:
        model.eval()
        with torch.no_grad():
            acc = ev.new_people(model, eval_tok)
        model.train()
        return acc

    runs: list[tuple[float, PeerRun]] = []
    for lr in p.lrs[name]:
        out = root / name / f"lr-{lr:g}-steps-{steps}"
        done = out / "run.json"  # a finished run is reused by a rerun in the same run_dir
        if done.is_file():
            saved = json.loads(done.read_text())
            runs.append((saved.pop("picked_on"), PeerRun(**saved)))
            continue
        shutil.rmtree(out, ignore_errors=True)
        log.info("peer %s at lr %g", name, lr)
        run = train_peer(
            name,
            base=cfg.model.path,
            texts=[m.text for m in memories],
            qa=qa,
            lr=lr,
            steps=steps,
            cfg=p,
            fmt=fmt,
            max_new_tokens=cfg.sleep.seeding.max_new_tokens,
            temperature=cfg.sleep.seeding.temperature,
            wall_limit_s=limit_s,
            out=out,
            probe=probe,
            seed=cfg.seed,
        )
        model, tok = load_pretrained(run.checkpoint)
        runs.append((tune.new_people(model, tok), run))
        done.write_text(json.dumps({**dataclasses.asdict(run), "picked_on": runs[-1][0]}))
    picked_score, best = max(runs, key=lambda r: r[0])
    return {
        "method": name,
        "library": "trl",
        "wall_s": best.wall_s,
        "cpu_s": best.cpu_s,
        "steps": best.steps,
        "tokens": best.tokens,
        "trainable": best.trainable,
        "checkpoint": best.checkpoint,
        "stopped_by_wall": best.stopped_by_wall,
        **_scored(ev, best.checkpoint, before, ceiling),
        "curve": [(0.0, before["new"]), *best.curve],
        "tuning": {"lr": best.lr, "sleep_split_new": {f"{r.lr:g}": s for s, r in runs}, "picked_on": picked_score},
    }


def peers_world(cfg: Config) -> World:
    """The world whose cycle 1 is the day: the world's own, or with `bench.peers.test_days` a test day (the
    world's documents stay: base knowledge is still what retention is measured on)."""
    world = generate_world(cfg.data.world)
    p = cfg.bench.peers
    if not p.test_days:
        return world
    day = generate_test_days(cfg.data.world, seed=p.test_seed, style=p.test_days, days=1, people=p.test_people)
    return World(world.documents, tuple(day))


def run_peers(config: str | None, overrides: list[str]) -> dict[str, Any]:
    """Run the benchmark (module docstring); returns and writes the summary."""
    cfg: Config = load_config(config, overrides)
    p = cfg.bench.peers  # methods, steps and learning rates were checked at load
    methods = [m for m in METHODS if not p.methods or m in p.methods]
    peers = [m for m in methods if m in PEERS]
    version = trl_version() if peers else ""
    root = Path(cfg.run_dir) / "bench" / "peers"
    root.mkdir(parents=True, exist_ok=True)
    world = peers_world(cfg)
    memories = [m for m in world.stream if m.cycle == 1]
    ev, tune = CycleEval(cfg, world), CycleEval(cfg, world, split="sleep")
    before, ceiling = ev.closed_book(cfg.model.path), ev.in_context(cfg.model.path)
    rows: list[dict[str, Any]] = []
    if "sleep" in methods or "seeding" in methods:
        rows += [r for r in _sleep_rows(cfg, memories, root, ev, before, ceiling) if r["method"] in methods]
    sleep_wall = next((r["wall_s"] for r in rows if r["method"] == "sleep"), 0.0)
    limit = p.wall_limit_s or sleep_wall
    if peers:
        qa = day_material(cfg, cfg.model.path, memories, seed=derive(cfg.seed, 1, base=1000))
        for name in peers:
            rows.append(
                {
                    **_peer_row(name, cfg, memories, qa, root, limit, (ev, tune), before, ceiling),
                    "version": version,
                }
            )
    for r in rows:
        r.setdefault("version", _own_version())
        r["quality_per_s"] = round(r["share_of_in_context"] / max(1e-9, r["wall_s"]), 6)
    ref = next((r["quality_per_s"] for r in rows if r["method"] == "sleep"), 0.0)
    for r in rows:
        r["quality_per_s_vs_sleep"] = round(r["quality_per_s"] / ref, 3) if ref else None
    result = {
        "config": config,
        "overrides": overrides,
        "memories": len(memories),
        "wall_limit_s": limit,
        "before": before,
        "in_context": ceiling,
        "probes": ev.counts(),
        "methods": rows,
    }
    (root / "peers.json").write_text(json.dumps(result, indent=1))
    (root / "peers.md").write_text(table(result) + "\n")
    plot(result, root / "plot_peers.png")
    return result


def _own_version() -> str:
    from importlib.metadata import version

    return version("sleep-ray")
