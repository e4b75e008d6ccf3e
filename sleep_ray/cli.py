"""`sleep-ray`: the one command-line entry point. Each subcommand is a thin call into the package.

    sleep-ray demo     --config examples/tiny_cpu.yaml           # the tiny end-to-end job
    sleep-ray world    --config examples/tiny_cpu.yaml           # write the synthetic world and stream
    sleep-ray pretrain --config examples/tiny_cpu.yaml pretrain.steps=200
    sleep-ray eval     --config examples/tiny_cpu.yaml --checkpoint runs/tiny/base

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


def cmd_demo(cfg: Config, args: argparse.Namespace) -> int:
    """World, base model (the committed one when `model.path` names it, else pretrain), evaluation."""
    from sleep_ray.data.schema import fingerprint
    from sleep_ray.eval.run import run_eval
    from sleep_ray.models.checkpoint import read_meta
    from sleep_ray.train.pretrain import pretrain

    t0 = time.time()
    world, world_path = _world(cfg)
    console.print(f"[1/2] world: {len(world.documents)} documents, {len(world.stream)} memories ({world_path})")
    base = cfg.model.path or str(pretrain(cfg, world))
    trained_on = read_meta(base).extra.get("world")
    if trained_on and trained_on != fingerprint(world):
        raise ValueError(f"{base} was pretrained on world {trained_on}, not on {world_path} ({fingerprint(world)})")
    console.print(f"      base model: {base} (trained on world {trained_on or 'unknown'})")
    out = Path(cfg.run_dir) / "eval_base"
    report = run_eval(base, world, world_path, cfg, out)
    console.print(f"[2/2] evaluated the base model -> {out}/results.md")
    for key in ("base_closed_book", "stream_in_context", "stream_closed_book", "base_perplexity"):
        if key in report.summary:
            console.print(f"      {key:24s} {report.summary[key]:.3f}")
    console.print(f"demo finished in {time.time() - t0:.0f} s")
    return 0


COMMANDS: dict[str, tuple[Callable[[Config, argparse.Namespace], int], str]] = {
    "demo": (cmd_demo, "run the tiny end-to-end job: world, base model, evaluation"),
    "world": (cmd_world, "generate the synthetic knowledge world and memory stream"),
    "pretrain": (cmd_pretrain, "pretrain the base model (tokenizer included) on the world; resumable"),
    "eval": (cmd_eval, "evaluate a checkpoint on the world's probes: JSON, Markdown table, plots"),
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
