"""One evaluation run: load a checkpoint, score it on a world, write JSON + Markdown + plots.

report = run_eval("runs/tiny/base", world, world_dir, cfg, "runs/tiny/eval")
"""

from __future__ import annotations

import platform
import time
from dataclasses import asdict
from pathlib import Path

import torch

from sleep_ray.config import Config
from sleep_ray.data.schema import World
from sleep_ray.eval.harness import evaluate, summarize
from sleep_ray.eval.report import EvalReport, write_report
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import read_meta


def run_eval(
    checkpoint: str | Path, world: World, world_path: str | Path, cfg: Config, out_dir: str | Path, stage: str = "base"
) -> EvalReport:
    """Evaluate `checkpoint` on every probe of `world` in `cfg.eval.splits` and write the report."""
    torch.set_num_threads(cfg.pretrain.threads)
    t0 = time.time()
    model, tokenizer = load_pretrained(checkpoint, cfg.model.dtype)
    metrics = evaluate(model, tokenizer, world, cfg.eval)
    report = EvalReport(
        model=str(checkpoint),
        world=str(world_path),
        stages=[stage],
        metrics={stage: metrics},
        summary=summarize(metrics),
        meta={
            "checkpoint": asdict(read_meta(checkpoint)),
            "eval": asdict(cfg.eval),
            "wall_s": round(time.time() - t0, 1),
            "date": time.strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}",
        },
    )
    write_report(report, out_dir)
    return report
