"""`sleep-ray bench system`: the system against its limits, in one run on one machine, as ratios to a plain baseline.

    sleep-ray bench system --config examples/sleep_tiny.yaml                # all parts, ~25 min on 2 cores
    sleep-ray bench system --config examples/sleep_tiny.yaml --parts rollout,push,train

Parts (each a function here, each returning a dict of figures):
- rollout: tokens/s of the HF engine inside a Ray actor vs the same `generate` in this process (same prompts,
  seeds, one torch thread each, rounds interleaved); with vLLM importable, the vLLM engine vs the HF engine.
- push: a weight push through the object store into 2 rollout engines (EnginePool.push, the sleep's own path) in
  MB/s delivered, vs a plain in-memory copy of the same bytes; for the trained expert and for the whole model.
- train: the student's step time on one fixed batch in a one-worker Ray Train loop (DDP, gloo) vs the same loop
  in this process.
- sleep: wall time of a sleep per memory, for 10, 50 and 200 memories (`--sizes`; fewer steps, `--steps`).
- swap: the wake endpoint under closed-loop load: time to the new version, failed requests, p99 during swaps vs
  steady, and the replicas' weight load in MB/s.
Writes <run_dir>/bench/system.json, system.md and plot_sleep_scaling.png.
"""

from __future__ import annotations

import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import ray
import torch

from sleep_ray.config import Config, RoleResources, load_config
from sleep_ray.data import prompts
from sleep_ray.data.world import generate_world
from sleep_ray.models.generate import complete
from sleep_ray.models.scoring import completion_logits
from sleep_ray.records import SeedPrompt, TeacherLogits, call
from sleep_ray.roles.student import distill_loss, load_student, prepare_trainable, trainable_arrays
from sleep_ray.rollout.engine import to_arrays
from sleep_ray.rollout.hf import HFEngine
from sleep_ray.rollout.pool import EnginePool
from sleep_ray.runtime.cluster import init_ray
from sleep_ray.runtime.export import grow_student
from sleep_ray.runtime.resources import ray_resources, role_actor
from sleep_ray.seeding.run import run_seeding

PARTS = ("rollout", "push", "train", "sleep", "swap")


def _tokens(rollouts: list[Any]) -> int:
    return sum(len(r.token_ids) for r in rollouts)


def rollout_overhead(init: str, questions: list[str], rounds: int, max_new_tokens: int) -> dict[str, Any]:
    """HF engine tokens/s in a Ray actor vs in this process; vLLM vs HF where vLLM is installed."""
    kw: dict[str, Any] = {"n": 1, "max_new_tokens": max_new_tokens, "temperature": 1.0}
    bare = HFEngine(init, threads=1)
    actor: Any = role_actor(HFEngine, RoleResources()).remote(init, threads=1)
    bare.generate(questions[:8], max_new_tokens=4)  # warm-up, both
    call(actor.generate.remote(questions[:8], max_new_tokens=4), 600, "warm-up")
    spent = {"bare": 0.0, "actor": 0.0}
    tokens = {"bare": 0, "actor": 0}
    for i in range(rounds):  # interleaved, so drift on a shared machine hits both alike
        t = time.time()
        tokens["bare"] += _tokens(bare.generate(questions, seed=i, **kw))
        spent["bare"] += time.time() - t
        t = time.time()
        tokens["actor"] += _tokens(call(actor.generate.remote(questions, seed=i, **kw), 600, "generate"))
        spent["actor"] += time.time() - t
    ray.kill(actor)
    out: dict[str, Any] = {f"{k}_tokens_per_s": round(tokens[k] / spent[k], 1) for k in spent}
    out["actor_vs_bare"] = round(out["actor_tokens_per_s"] / out["bare_tokens_per_s"], 3)
    try:
        from sleep_ray.rollout.vllm_engine import VLLMEngine

        engine = VLLMEngine(init)
    except ImportError:
        out["vllm"] = "not installed (make test-vllm builds .venv-vllm; run the benchmark from there)"
        return out
    engine.generate(questions[:8], max_new_tokens=4)
    t, n = time.time(), 0
    for i in range(rounds):
        n += _tokens(engine.generate(questions, seed=i, **kw))
    out["vllm_tokens_per_s"] = round(n / (time.time() - t), 1)
    out["vllm_vs_hf"] = round(out["vllm_tokens_per_s"] / out["bare_tokens_per_s"], 3)
    return out


def weight_push(cfg: Config, init: str, engines: int, reps: int) -> dict[str, Any]:
    """MB/s delivered into `engines` rollout engines by EnginePool.push vs a plain copy of the same bytes."""
    model, _, record = load_student(init)
    prepare_trainable(model, record)
    sets = {"expert": trainable_arrays(model), "full": to_arrays(dict(model.named_parameters()))}
    actors = [role_actor(HFEngine, cfg.resources.rollout).remote(init, version=0, threads=1) for _ in range(engines)]
    pool = EnginePool(actors, cfg.resources.call_timeout_s)
    call([a.weight_version.remote() for a in actors], 600, "engine start")
    out: dict[str, Any] = {"engines": engines}
    for name, arrays in sets.items():
        nbytes = sum(a.nbytes for a in arrays.values())
        pool.push(arrays, 0)  # warm-up
        t = time.time()
        for v in range(reps):
            pool.push(arrays, v + 1)
        push_s = (time.time() - t) / reps
        targets = [{k: np.empty_like(a) for k, a in arrays.items()} for _ in range(engines)]
        t = time.time()
        for _ in range(reps):
            for dst in targets:
                for k, a in arrays.items():
                    np.copyto(dst[k], a)
        copy_s = (time.time() - t) / reps
        mb = nbytes * engines / 1e6
        out[name] = {
            "mb": round(nbytes / 1e6, 3),
            "push_ms": round(1000 * push_s, 2),
            "push_mb_per_s": round(mb / push_s, 1),
            "copy_mb_per_s": round(mb / copy_s, 1),
            "push_vs_copy": round(copy_s / push_s, 4),
        }
    for a in actors:
        ray.kill(a)
    return out


def fixed_batch(init: str, questions: list[str], size: int, max_new_tokens: int) -> dict[str, Any]:
    """One distillation batch and the teacher's logits on it, made once (a step's remote inputs, held fixed)."""
    model, tokenizer, _ = load_student(init)
    items = [SeedPrompt(q, q, "rehearsal") for q in questions[:size]]
    texts = complete(model, tokenizer, [it.student for it in items], max_new_tokens)
    completions = [tokenizer(t, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id] for t in texts]
    with torch.no_grad():
        ids = [tokenizer(it.teacher)["input_ids"] for it in items]
        logits, _, _ = completion_logits(model, ids, completions)
    teacher = [TeacherLogits(logits[b, : len(c)].float().numpy()) for b, c in enumerate(completions)]
    return {"items": items, "completions": completions, "teacher": teacher}


def train_steps(config: dict[str, Any]) -> None:
    """Mean seconds per optimizer step (after 3 warm-up steps) of the student on the fixed batch, written as JSON
    to config["out"]; in this process (config["ray"] False) or as a Ray Train worker's loop (DDP, rank 0 writes)."""
    import ray.train
    import ray.train.torch

    torch.set_num_threads(config["threads"])
    model, tokenizer, record = load_student(config["init"])
    optimizer = torch.optim.AdamW(prepare_trainable(model, record), lr=1e-3, weight_decay=0.0)
    net = ray.train.torch.prepare_model(model) if config["ray"] else model
    b, times = config["batch"], []
    for _ in range(config["steps"]):
        t = time.time()
        loss = distill_loss(net, tokenizer, b["items"], b["completions"], b["teacher"], config["seeding"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        times.append(time.time() - t)
    mean = float(np.mean(times[3:]))
    if not config["ray"] or ray.train.get_context().get_world_rank() == 0:
        Path(config["out"]).write_text(json.dumps({"step_s": mean}))  # Ray Train V2 keeps metrics only with checkpoints


def train_overhead(cfg: Config, init: str, questions: list[str], steps: int) -> dict[str, Any]:
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    batch = fixed_batch(init, questions, cfg.sleep.seeding.batch_size, cfg.sleep.seeding.max_new_tokens)
    config = {"init": init, "batch": batch, "steps": steps, "threads": 1, "seeding": cfg.sleep.seeding}
    out = (Path(cfg.run_dir) / "bench" / "train_step.json").resolve()
    train_steps({**config, "ray": False, "out": str(out)})
    plain = json.loads(out.read_text())["step_s"]
    trainer = TorchTrainer(
        train_steps,
        train_loop_config={**config, "ray": True, "out": str(out)},
        scaling_config=ScalingConfig(num_workers=1, resources_per_worker=ray_resources(cfg.resources.trainer)),
        run_config=RunConfig(name="bench_train", storage_path=str((Path(cfg.run_dir) / "bench" / "ray").resolve())),
    )
    trainer.fit()
    on_ray = json.loads(out.read_text())["step_s"]
    return {
        "batch": len(batch["items"]),
        "plain_step_ms": round(1000 * plain, 1),
        "ray_train_step_ms": round(1000 * on_ray, 1),
        "ray_vs_plain": round(on_ray / plain, 3),
    }


def sleep_scaling(cfg: Config, sizes: list[int], steps: int) -> dict[str, Any]:
    """One sleep per size over the first n memories of cycle 1 (the world's stream grown to hold max(sizes))."""
    wc = cfg.data.world
    world = generate_world(wc)
    have = sum(m.cycle == 1 for m in world.stream)
    if have < max(sizes):  # more new people a day; the base documents (and the base model's world) stay the same
        world = generate_world(replace(wc, new_people_per_cycle=wc.new_people_per_cycle + max(sizes) - have))
    memories = [m for m in world.stream if m.cycle == 1]
    s = replace(cfg.sleep.seeding, steps=steps)
    run = replace(cfg, sleep=replace(cfg.sleep, seeding=s))
    rows = []
    for n in sizes:
        out = Path(cfg.run_dir) / "bench" / f"sleep-{n}"
        rec = run_seeding(run, checkpoint=cfg.model.path, memories=memories[:n], out_dir=out, cycle=1).record
        t = rec["timings"]
        rows.append(
            {
                "memories": n,
                "total_s": round(t["total_s"], 1),
                "material_s": round(t["material_s"], 1),
                "train_s": round(t["train_s"], 1),
                "per_memory_s": round(t["total_s"] / n, 2),
                "material_per_memory_s": round(t["material_s"] / n, 2),
                "checkpoint": str(out),
            }
        )
    return {"steps": steps, "rows": rows}


def swap_under_load(cfg_path: str | None, overrides: list[str], grown: str, seconds: float, swaps: int) -> dict:
    """Swaps between the base and a slept model under closed-loop load (benchmarks/serve_swap.py, shorter)."""
    from ray import serve

    from sleep_ray.bench.load import Load, expected_answers, latency
    from sleep_ray.wake.deploy import Swapper, launch

    ep = launch(cfg_path, overrides)
    cfg: Config = load_config(cfg_path, overrides)
    world = generate_world(cfg.data.world)
    questions = [p.question for m in world.stream if m.cycle == 1 for p in m.probes if p.kind == "new"][:16]
    base, grown = str(Path(cfg.model.path).resolve()), str(Path(grown).resolve())
    dt = cfg.model.dtype
    expect = {0: expected_answers(base, questions, 8, dt), 1: expected_answers(grown, questions, 8, dt)}
    swap = Swapper(ep.dashboard, ep.url, ep.config_path, cfg.serve.replicas)
    with Load(ep.url, cfg.serve.model_name, questions, 8, 4) as steady:
        time.sleep(seconds)
    windows = []
    with Load(ep.url, cfg.serve.model_name, questions, 8, 4) as during:
        for i in range(swaps):
            time.sleep(3.0)
            t0 = time.time()
            swap(grown if i % 2 == 0 else base, 1 if i % 2 == 0 else 0)
            windows.append((t0, time.time()))
        time.sleep(3.0)
    serve.delete(cfg.serve.app_name)
    in_swap = [r for r in during.rows if any(r[0] < b and r[1] > a for a, b in windows)]
    rows = steady.rows + during.rows
    swap_s = float(np.mean([b - a for a, b in windows]))
    mb = sum(f.stat().st_size for f in Path(grown).glob("*.safetensors")) / 1e6
    return {
        "replicas": cfg.serve.replicas,
        "swap_s": round(swap_s, 2),
        "failed": sum(r[2] != 200 for r in rows),
        "inconsistent": sum(r[2] == 200 and r[4] != expect[r[3]][r[5]] for r in rows),
        "steady": latency(steady.rows),
        "during_swaps": latency(in_swap),
        "p99_ratio": round(latency(in_swap)["p99_ms"] / latency(steady.rows)["p99_ms"], 2),
        "replica_load_mb_per_s": round(mb * cfg.serve.replicas / swap_s, 1),
    }


def run_system(
    cfg_path: str | None, overrides: list[str], parts: list[str], sizes: list[int], steps: int
) -> dict[str, Any]:
    """Every part named in `parts`, then the JSON, Markdown table and plot (see the module docstring)."""
    from sleep_ray.bench.report import write_report

    cfg: Config = load_config(cfg_path, overrides)
    torch.set_num_threads(1)
    world = generate_world(cfg.data.world)
    questions = [prompts.closed_book(p.question) for d in world.documents for p in d.probes][:96]
    init = (Path(cfg.run_dir) / "bench" / "grown").resolve()  # Ray Train workers run in another directory
    grow_student(cfg, cfg.model.path, init, cycle=1)  # a sleep's starting point: every part uses it
    init_ray(cfg.resources, dashboard_port=cfg.serve.dashboard_port, local_cpus=4)
    result: dict[str, Any] = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"),
        "date": time.strftime("%Y-%m-%d"),
        "config": cfg_path,
    }
    s = cfg.sleep.seeding
    out = Path(cfg.run_dir) / "bench"
    partial = out / "system.partial.json"  # each part's figures as soon as it is done

    def done(part: str, figures: dict[str, Any]) -> None:
        result[part] = figures
        partial.write_text(json.dumps(result, indent=2))

    if "rollout" in parts:
        done("rollout", rollout_overhead(str(init), questions, 6, s.max_new_tokens))
    if "push" in parts:
        done("push", weight_push(cfg, str(init), engines=2, reps=20))
    if "train" in parts:
        done("train", train_overhead(cfg, str(init), questions, steps=30))
    if "sleep" in parts:
        done("sleep", sleep_scaling(cfg, sizes, steps))
    if "swap" in parts:
        grown = result["sleep"]["rows"][0]["checkpoint"] if "sleep" in result else str(init)
        done("swap", swap_under_load(cfg_path, overrides, grown, seconds=20.0, swaps=4))
    write_report(result, out)
    (out / "system.json").write_text(json.dumps(result, indent=2))
    return result
