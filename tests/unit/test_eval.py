"""The evaluation harness on the hand-written world: which probes are asked how, and the files written."""

from __future__ import annotations

import json
import math

from sleep_ray.config import load_config
from sleep_ray.eval.harness import evaluate, items, summarize
from sleep_ray.eval.run import run_eval
from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
from tests.helpers import HANDMADE, TINY


def test_items_cover_base_and_stream_and_drop_base_probes_of_updated_facts(handmade_world):
    all_items = items(handmade_world, ("eval",))
    assert all(it.probe.split == "eval" for it in all_items)
    updated = {it.probe.fact_id for it in all_items if it.probe.kind == "updated"}
    assert updated, "the hand-made stream has an update"
    assert not any(it.cycle == "base" and it.probe.fact_id in updated for it in all_items)
    assert {it.cycle for it in all_items} == {"base", "1", "2"}
    stream = [it for it in all_items if it.cycle != "base"]
    assert all(it.context for it in stream)


def test_evaluate_reports_every_metric_per_cycle(tiny_model, tiny_tokenizer, handmade_world):
    cfg = load_config(None, [*TINY, "eval.max_new_tokens=4"]).eval
    metrics = evaluate(tiny_model, tiny_tokenizer, handmade_world, cfg)
    for name in ("closed_book", "in_context", "closed_book_f1", "in_context_f1", "new"):
        assert set(metrics[name]) >= {"1", "2"}, name
    assert metrics["updated"] and metrics["stale"]
    assert set(metrics["closed_book"]) == {"base", "1", "2"}
    for name, by_cycle in metrics.items():
        if name != "perplexity":
            assert all(math.isnan(v) or 0.0 <= v <= 1.0 for v in by_cycle.values()), name
    assert metrics["perplexity"]["base"] > 1.0
    summary = summarize(metrics)
    assert "base_closed_book" in summary and "stream_in_context" in summary


def test_run_eval_writes_json_markdown_and_plots(tmp_path, tiny_model, tiny_tokenizer, handmade_world):
    ckpt = save_checkpoint(tmp_path / "ckpt", tiny_model, tiny_tokenizer, CheckpointMeta(version=2))
    cfg = load_config(None, [*TINY, "eval.max_new_tokens=4"])
    out = tmp_path / "eval"
    report = run_eval(ckpt, handmade_world, HANDMADE, cfg, out)
    data = json.loads((out / "results.json").read_text())
    assert data["meta"]["checkpoint"]["version"] == 2
    assert "closed_book" in (out / "results.md").read_text()
    assert (out / "plot_closed_book.png").read_bytes()[:4] == b"\x89PNG"
    assert report.stages == ["base"]
