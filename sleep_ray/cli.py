"""`sleep-ray`: the one command-line entry point. Each subcommand is a thin call into the package.

    sleep-ray demo     --config examples/tiny_cpu.yaml           # the tiny end-to-end job
    sleep-ray world    --config examples/tiny_cpu.yaml           # write the synthetic world and stream
    sleep-ray world    --config examples/sleep_tiny.yaml --test-day foreign --day-seed 1   # a test day's stream
    sleep-ray pretrain --config examples/tiny_cpu.yaml pretrain.steps=200
    sleep-ray eval     --config examples/tiny_cpu.yaml --checkpoint runs/tiny/base
    sleep-ray sleep    --config examples/sleep_tiny.yaml --cycle 1    # consolidate cycle 1's memories
    sleep-ray night    runs/sleep_tiny/sleep/cycle-1             # what that night wrote, kept, dropped, decided
    sleep-ray serve    --config examples/tiny_cpu.yaml           # the wake endpoint on Ray Serve (Ctrl-C stops)
    sleep-ray bench system --config examples/sleep_tiny.yaml     # the system against its limits, as ratios
    sleep-ray bench consolidation --config examples/bench_consolidation.yaml   # Sleep against the baselines
    sleep-ray bench real --config examples/real_smollm2.yaml      # a real pretrained model, natural memories
    sleep-ray bench peers --config examples/sleep_tiny.yaml       # the same day through TRL's trainers
    sleep-ray import-model smollm2-135m-instruct --out models/smollm2-135m-instruct   # a pretrained model, once

Trailing `key=value` arguments override the config (OmegaConf dotlist). A subcommand is listed here only
once it works.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console

from sleep_ray.config import Config, ConfigError, load_config

console = Console()
log = logging.getLogger("sleep_ray")


def _world(cfg: Config):
    """The world named by `data.world_dir`, or the generated one under the run directory (made if missing)."""
    from sleep_ray.data.schema import load_world, write_world
    from sleep_ray.data.world import generate_world

    if cfg.data.world_dir:
        return load_world(cfg.data.world_dir), Path(cfg.data.world_dir)
    path = Path(cfg.run_dir) / "world"
    if not (path / "world.jsonl").is_file():
        write_world(generate_world(cfg.data.world), path, config=cfg.data.world)
        log.info("wrote the synthetic world to %s", path)
    return load_world(path), path


def cmd_world(cfg: Config, args: argparse.Namespace) -> int:
    if args.test_day:
        from sleep_ray.data.schema import write_stream
        from sleep_ray.data.testdays import generate_test_days

        day = generate_test_days(
            cfg.data.world, seed=args.day_seed, style=args.test_day, days=args.days, people=args.people
        )
        out = Path(args.out or Path(cfg.run_dir) / f"testday-{args.test_day}-{args.day_seed}") / "stream.jsonl"
        out.parent.mkdir(parents=True, exist_ok=True)
        write_stream(out, day)
        console.print(f"test days at {out}: {len(day)} memories (sleep-ray sleep --cycle 1 --memories {out})")
        return 0
    world, path = _world(cfg)
    probes = sum(len(d.probes) for d in world.documents) + sum(len(m.probes) for m in world.stream)
    console.print(f"world at {path}: {len(world.documents)} documents, {len(world.stream)} memories, {probes} probes")
    return 0


def cmd_pretrain(cfg: Config, args: argparse.Namespace) -> int:
    from sleep_ray.train.pretrain import pretrain

    world, _ = _world(cfg)
    t0 = time.time()
    out = pretrain(cfg, world, resume=not args.restart)
    console.print(f"base model written to {out} in {time.time() - t0:.0f} s")
    return 0


def cmd_eval(cfg: Config, args: argparse.Namespace) -> int:
    from sleep_ray.eval.run import run_eval

    world, world_path = _world(cfg)
    ckpt = args.checkpoint or cfg.model.path or str(Path(cfg.run_dir) / "base")
    out = Path(args.out or Path(cfg.run_dir) / "eval")
    report = run_eval(ckpt, world, world_path, cfg, out)
    console.print(f"evaluation of {ckpt} written to {out}")
    for key, value in report.summary.items():
        console.print(f"  {key:32s} {value:.3f}")
    return 0


def _sleep_checkpoint(cfg: Config, cycle: int) -> str:
    """Cycle K starts from cycle K-1's grown model when it exists, else from the base model."""
    previous = Path(cfg.run_dir) / "sleep" / f"cycle-{cycle - 1}"
    if cycle > 1 and (previous / "config.json").is_file():
        return str(previous)
    return cfg.model.path or str(Path(cfg.run_dir) / "base")


def cmd_sleep(cfg: Config, args: argparse.Namespace) -> int:
    from sleep_ray.data.schema import read_stream
    from sleep_ray.seeding.run import run_seeding

    if args.memories:
        path = Path(args.memories)
        stream = read_stream(path / "stream.jsonl" if path.is_dir() else path)
    else:
        stream = list(_world(cfg)[0].stream)
    memories = [m for m in stream if m.cycle == args.cycle]
    if not memories:
        cycles = sorted({m.cycle for m in stream})
        raise ValueError(f"no memories of cycle {args.cycle} (the stream has cycles {cycles})")
    ckpt = args.checkpoint or _sleep_checkpoint(cfg, args.cycle)
    out = Path(args.out or Path(cfg.run_dir) / "sleep" / f"cycle-{args.cycle}")
    stages = (args.stages or ("seeding,dreaming" if cfg.sleep.dreaming.enabled else "seeding")).split(",")
    unknown = sorted(set(stages) - {"seeding", "dreaming"})
    if unknown:
        raise ValueError(f"--stages: unknown stage(s) {unknown}; use seeding, dreaming or both")
    console.print(f"sleep: cycle {args.cycle}, {len(memories)} memories, from {ckpt}, stages {','.join(stages)}")
    if "seeding" in stages:
        seeded = run_seeding(cfg, checkpoint=ckpt, memories=memories, out_dir=out, cycle=args.cycle)
        rec = seeded.record
        console.print(
            f"seeding: wrote {out} (weight version {seeded.weight_version}): {seeded.steps} steps, "
            f"prompts {rec['prompts']}, {rec['imitation_items']} imitation items, {seeded.seconds:.0f} s"
        )
    if "dreaming" in stages:
        from sleep_ray.dream.run import run_dreaming

        if not (out / "config.json").is_file():
            raise ValueError(f"dreaming continues a seeded model, but {out} holds none: run --stages seeding first")
        dreamt = run_dreaming(cfg, parent=ckpt, seeded=out, memories=memories, out_dir=out, cycle=args.cycle)
        dr = dreamt.record["dreaming"]
        console.print(
            f"dreaming: wrote {out}: {dr['winners']} winning dreams over {len(dr['rounds'])} rounds "
            f"(mean reward by round {[round(x['mean_reward'], 3) for x in dr['rounds']]}), "
            f"{dreamt.seconds:.0f} s"
        )
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    """The whole story through the live endpoint (`sleep_ray/wake/demo.py`), then the full evaluation of the
    model before and after sleep (report and plots)."""
    import json

    import ray
    from ray import serve

    from sleep_ray.data.schema import fingerprint
    from sleep_ray.eval.run import run_eval
    from sleep_ray.models.checkpoint import read_meta
    from sleep_ray.wake.demo import run_demo
    from sleep_ray.wake.deploy import launch

    t0 = time.time()
    world, world_path = _world(cfg)
    base = cfg.model.path
    if not base:
        raise ValueError("the demo serves model.path; pretrain first (sleep-ray pretrain) and set it")
    trained_on = read_meta(base).extra.get("world")
    if trained_on and trained_on != fingerprint(world):
        raise ValueError(f"{base} was pretrained on world {trained_on}, not on {world_path} ({fingerprint(world)})")
    shutil.rmtree(Path(cfg.run_dir) / "wake", ignore_errors=True)  # the demo starts from a fresh endpoint
    ep = launch(args.config, list(args.overrides))
    console.print(f"[1/6] wake endpoint {ep.url} serving {base} (weight version {ep.version})")
    try:
        out = run_demo(cfg, world, ep, console)
    finally:
        serve.shutdown()
        ray.shutdown()
    report = Path(cfg.run_dir) / "demo.json"
    report.write_text(json.dumps(out, indent=2))
    if out["checkpoint"] and out["status"]["status"] == "swapped":
        run_eval(base, world, world_path, cfg, Path(cfg.run_dir) / "eval_base")
        run_eval(out["checkpoint"], world, world_path, cfg, Path(cfg.run_dir) / "eval_cycle1", stage="sleep1")
        console.print(
            f"[6/6] full evaluation: {cfg.run_dir}/eval_base/results.md, {cfg.run_dir}/eval_cycle1/results.md"
        )
    console.print(f"demo record: {report}; finished in {time.time() - t0:.0f} s")
    return 0 if out["status"]["status"] == "swapped" else 1


def cmd_serve(cfg: Config, args: argparse.Namespace) -> int:
    import signal
    import threading

    import ray
    from ray import serve

    from sleep_ray.wake.deploy import launch

    ep = launch(args.config, list(args.overrides))
    console.print(f"wake endpoint: {ep.url} (weight version {ep.version}); OpenAPI at {ep.url}/openapi.json")
    console.print(f"admin token (memories, sleep, rollback): {ep.admin_token_from}")
    console.print(f"Serve config (for `serve deploy` / RayService): {ep.config_path}")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    serve.shutdown()
    ray.shutdown()
    return 0


def cmd_bench(cfg: Config, args: argparse.Namespace) -> int:
    if args.suite == "consolidation":
        from sleep_ray.bench.consolidation import run_consolidation
        from sleep_ray.bench.consolidation_report import table, verdict

        result = run_consolidation(args.config, list(args.overrides))
        console.print(table(result), soft_wrap=True)
        console.print(verdict(result), soft_wrap=True)
        out = Path(cfg.run_dir) / "bench" / "consolidation"
        console.print(f"consolidation benchmark written to {out} (consolidation.json, consolidation.md, plots)")
        return 0
    if args.suite == "peers":
        from sleep_ray.bench.peers import run_peers
        from sleep_ray.bench.peers_report import table as peers_table

        console.print(peers_table(run_peers(args.config, list(args.overrides))), soft_wrap=True)
        console.print(f"written to {Path(cfg.run_dir) / 'bench' / 'peers'} (peers.json, peers.md, plot_peers.png)")
        return 0
    if args.suite == "real":
        from sleep_ray.bench.real import run_real

        r = run_real(args.config, list(args.overrides))
        console.print(
            f"{r['model']} [{r['label']}]: closed-book {r['base']['closed_book']:.3f} -> "
            f"{r['after']['closed_book']:.3f} "
            f"({r['share_of_ceiling']:.2f} of the in-context ceiling {r['in_context_ceiling']:.3f}), general ability "
            f"{r['base']['general']:.3f} -> {r['after']['general']:.3f} (retention {r['general_retention']:.3f}), "
            f"sleep {r['sleep_s']:.0f} s"
        )
        console.print(f"written to {Path(cfg.run_dir) / 'bench' / 'real' / (r['label'] + '.json')}")
        return 0
    from sleep_ray.bench.report import table
    from sleep_ray.bench.system import PARTS, run_system

    parts = args.parts.split(",")
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        raise ValueError(f"--parts: unknown part(s) {unknown}; choose from {','.join(PARTS)}")
    if "swap" in parts and "sleep" not in parts:
        console.print("swap without sleep: swapping between the base model and its grown (function-preserving) copy")
    result = run_system(args.config, list(args.overrides), parts, args.sizes, args.steps)
    console.print(table(result), soft_wrap=True)
    console.print(f"system benchmark written to {Path(cfg.run_dir) / 'bench'} (system.json, system.md)")
    return 0


def cmd_night(cfg: Config, args: argparse.Namespace) -> int:
    from sleep_ray.runtime.night_report import night_report, read_record

    console.print(night_report(read_record(args.checkpoint)))
    return 0


def cmd_import_model(cfg: Config, args: argparse.Namespace) -> int:
    from sleep_ray.models.imported import IMPORTS, ModelImportError, read_provenance

    out = Path(args.out or Path("models") / args.name)
    reused = read_provenance(out) is not None
    t0 = time.time()
    try:
        path = IMPORTS[args.name](out, dtype=args.dtype)
    except ModelImportError as e:
        console.print(f"[red]error:[/red] {e}")
        return 2
    record = read_provenance(path) or {}
    how = "already imported" if reused else f"imported in {time.time() - t0:.0f} s"
    console.print(
        f"{args.name} at {path}: {record.get('parameters', 0):,} parameters, {record.get('dtype')} ({how}); "
        "a local Hugging Face checkpoint (model.path)"
    )
    return 0


COMMANDS: dict[str, tuple[Callable[[Config, argparse.Namespace], int], str]] = {
    "demo": (cmd_demo, "the tiny end-to-end job: serve, learn memories in context, sleep, swap, answer from weights"),
    "world": (cmd_world, "generate the synthetic knowledge world and memory stream"),
    "pretrain": (cmd_pretrain, "pretrain the base model (tokenizer included) on the world; resumable"),
    "eval": (cmd_eval, "evaluate a checkpoint on the world's probes: JSON, Markdown table, plots"),
    "sleep": (cmd_sleep, "consolidate one cycle's memories into a grown model (Knowledge Seeding on Ray)"),
    "night": (cmd_night, "what one night wrote about its memories, kept, repaired, dropped and trained on"),
    "serve": (cmd_serve, "serve the wake endpoint: OpenAI-compatible API, memories, scheduled sleep, hot swap"),
    "bench": (cmd_bench, "benchmarks: `bench consolidation`, `bench peers` (vs TRL), `bench system`, `bench real`"),
    "import-model": (cmd_import_model, "import a pretrained model (SmolLM2-135M-Instruct) as a local HF checkpoint"),
}


def _common_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="YAML config (examples/tiny_cpu.yaml); defaults apply when omitted")
    p.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. pretrain.steps=100")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sleep-ray", description="Continual learning for a served LLM by sleeping.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == "bench":  # one level more: `sleep-ray bench system --config ... key=value`
            suites = p.add_subparsers(dest="suite", required=True)
            consolidation = suites.add_parser(
                "consolidation", help="every method (Sleep, its ablations, baselines) over K cycles of memories"
            )
            _common_arguments(consolidation)
            _common_arguments(suites.add_parser("real", help="one night of a real pretrained model, natural memories"))
            _common_arguments(suites.add_parser("peers", help="one day through sleep_ray and through TRL's trainers"))
            p = suites.add_parser("system", help="overheads of Ray, weight pushes, Ray Train, sleep, swap")
        _common_arguments(p)
        if name == "pretrain":
            p.add_argument("--restart", action="store_true", help="ignore an existing resumable state")
        if name == "world":
            p.add_argument("--test-day", choices=("world", "foreign"), help="write a test day's stream instead")
            p.add_argument("--day-seed", type=int, default=1, help="the test day's seed (data.testdays: DEV_SEEDS)")
            p.add_argument("--people", type=int, default=24, help="new people on each test day")
            p.add_argument("--days", type=int, default=1, help="test days (stream cycles 1..days)")
            p.add_argument("--out", help="test day: output directory (default: <run_dir>/testday-STYLE-SEED)")
        if name == "import-model":
            from sleep_ray.models.imported import DTYPES, IMPORTS

            p.add_argument("name", choices=sorted(IMPORTS), help="the model to import")
            p.add_argument("--out", help="output directory (default: models/NAME); reused when already complete")
            p.add_argument("--dtype", choices=DTYPES, default="float32", help="dtype of the saved weights")
        if name == "night":
            p.add_argument("checkpoint", help="a slept checkpoint directory (holds sleep_record.json)")
        if name == "eval":
            p.add_argument("--checkpoint", help="checkpoint directory (default: model.path, else <run_dir>/base)")
            p.add_argument("--out", help="output directory (default: <run_dir>/eval)")
        if name == "bench":
            p.add_argument("--parts", default="rollout,push,train,sleep,swap", help="comma-separated parts to run")
            p.add_argument("--sizes", type=int, nargs="+", default=[10, 50, 200], help="memories per sleep (sleep)")
            p.add_argument("--steps", type=int, default=100, help="optimizer steps of each of those sleeps")
        if name == "sleep":
            p.add_argument("--cycle", type=int, required=True, help="the stream cycle (day) whose memories to learn")
            p.add_argument("--memories", help="stream.jsonl or a world directory (default: the config's world)")
            p.add_argument("--checkpoint", help="pre-sleep model (default: cycle K-1's sleep output, else the base)")
            p.add_argument("--out", help="output directory (default: <run_dir>/sleep/cycle-K)")
            p.add_argument(
                "--stages",
                help="comma-separated: seeding, dreaming (default: both, or seeding alone when "
                "sleep.dreaming.enabled is false); dreaming alone continues from the seeded --out",
            )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per HTTP request drowns the story
    try:
        cfg: Config = load_config(args.config, args.overrides)
    except (ConfigError, FileNotFoundError) as e:
        console.print(f"[red]config error:[/red] {e}")
        return 2
    fn, _ = COMMANDS[args.command]
    try:
        return fn(cfg, args)
    except (ValueError, FileNotFoundError) as e:  # bad input (a malformed world file, a missing checkpoint)
        console.print(f"[red]error:[/red] {e}")
        return 2


if __name__ == "__main__":
    sys.exit(main())
