"""`sleep-ray`: the one command-line entry point. Each subcommand is a thin call into the package.

    sleep-ray demo     --config examples/tiny_cpu.yaml           # the tiny end-to-end job
    sleep-ray world    --config examples/tiny_cpu.yaml           # write the synthetic world and stream
    sleep-ray pretrain --config examples/tiny_cpu.yaml pretrain.steps=200
    sleep-ray eval     --config examples/tiny_cpu.yaml --checkpoint runs/tiny/base
    sleep-ray sleep    --config examples/sleep_tiny.yaml --cycle 1    # consolidate cycle 1's memories

Trailing `key=value` arguments override the config (OmegaConf dotlist). A subcommand is listed here only
once it works.
"""

from __future__ import annotations

import argparse
import logging
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
    from sleep_ray.sleep.run import run_seeding

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
    console.print(f"sleep: cycle {args.cycle}, {len(memories)} memories, from {ckpt}")
    result = run_seeding(cfg, checkpoint=ckpt, memories=memories, out_dir=out, cycle=args.cycle)
    rec = result.record
    console.print(
        f"wrote {result.checkpoint} (weight version {rec['weight_version']}): {rec['steps']} steps, "
        f"prompts {rec['prompts']}, {rec['dreams']} dreams, {rec['timings']['total_s']:.0f} s"
    )
    return 0


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    """World, base model (the committed one when `model.path` names it, else pretrain), evaluation, one sleep
    over cycle 1 (Knowledge Seeding on a local Ray cluster), evaluation of the grown model."""
    from sleep_ray.data.schema import fingerprint
    from sleep_ray.eval.run import run_eval
    from sleep_ray.models.checkpoint import read_meta
    from sleep_ray.sleep.run import run_seeding
    from sleep_ray.train.pretrain import pretrain

    t0 = time.time()
    world, world_path = _world(cfg)
    console.print(f"[1/4] world: {len(world.documents)} documents, {len(world.stream)} memories ({world_path})")
    base = cfg.model.path or str(pretrain(cfg, world))
    trained_on = read_meta(base).extra.get("world")
    if trained_on and trained_on != fingerprint(world):
        raise ValueError(f"{base} was pretrained on world {trained_on}, not on {world_path} ({fingerprint(world)})")
    console.print(f"      base model: {base} (trained on world {trained_on or 'unknown'})")
    before = run_eval(base, world, world_path, cfg, Path(cfg.run_dir) / "eval_base")
    console.print(f"[2/4] evaluated the base model -> {cfg.run_dir}/eval_base/results.md")
    memories = [m for m in world.stream if m.cycle == 1]
    slept = run_seeding(
        cfg, checkpoint=base, memories=memories, out_dir=Path(cfg.run_dir) / "sleep" / "cycle-1", cycle=1
    )
    console.print(
        f"[3/4] slept on cycle 1 ({len(memories)} memories, {cfg.sleep.seeding.steps} steps, "
        f"{slept.record['timings']['total_s']:.0f} s) -> {slept.checkpoint}"
    )
    after = run_eval(slept.checkpoint, world, world_path, cfg, Path(cfg.run_dir) / "eval_cycle1", stage="sleep1")
    console.print(f"[4/4] evaluated the grown model -> {cfg.run_dir}/eval_cycle1/results.md")
    rows = [
        ("closed-book, base facts", "closed_book", "base"),
        ("closed-book, cycle-1 new people", "new", "1"),
        ("in context, cycle-1 new people", "new_in_context", "1"),
    ]
    console.print(f"      {'':34s} {'before':>7s} {'after':>7s}")
    for label, metric, cycle in rows:
        b = before.metrics["base"].get(metric, {}).get(cycle, float("nan"))
        a = after.metrics["sleep1"].get(metric, {}).get(cycle, float("nan"))
        console.print(f"      {label:34s} {b:7.3f} {a:7.3f}")
    console.print(f"demo finished in {time.time() - t0:.0f} s")
    return 0


COMMANDS: dict[str, tuple[Callable[[Config, argparse.Namespace], int], str]] = {
    "demo": (cmd_demo, "run the tiny end-to-end job: world, base model, evaluation, one sleep, evaluation"),
    "world": (cmd_world, "generate the synthetic knowledge world and memory stream"),
    "pretrain": (cmd_pretrain, "pretrain the base model (tokenizer included) on the world; resumable"),
    "eval": (cmd_eval, "evaluate a checkpoint on the world's probes: JSON, Markdown table, plots"),
    "sleep": (cmd_sleep, "consolidate one cycle's memories into a grown model (Knowledge Seeding on Ray)"),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sleep-ray", description="Continual learning for a served LLM by sleeping.")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--config", help="YAML config (examples/tiny_cpu.yaml); defaults apply when omitted")
        p.add_argument("overrides", nargs="*", help="config overrides as key=value, e.g. pretrain.steps=100")
        if name == "pretrain":
            p.add_argument("--restart", action="store_true", help="ignore an existing resumable state")
        if name == "eval":
            p.add_argument("--checkpoint", help="checkpoint directory (default: model.path, else <run_dir>/base)")
            p.add_argument("--out", help="output directory (default: <run_dir>/eval)")
        if name == "sleep":
            p.add_argument("--cycle", type=int, required=True, help="the stream cycle (day) whose memories to learn")
            p.add_argument("--memories", help="stream.jsonl or a world directory (default: the config's world)")
            p.add_argument("--checkpoint", help="pre-sleep model (default: cycle K-1's sleep output, else the base)")
            p.add_argument("--out", help="output directory (default: <run_dir>/sleep/cycle-K)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
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
