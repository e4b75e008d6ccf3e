"""`sleep-ray bench peers`: every TRL peer trains a few steps on the committed tiny base, so the comparison
cannot rot; the wall limit stops a peer; the table and the missing-extra message."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from transformers import AutoModelForCausalLM

from sleep_ray.bench.peers import METHODS, day_material, run_peers
from sleep_ray.bench.peers_report import table
from sleep_ray.bench.trl_peers import PEERS, MissingExtraError, sdft_template, train_peer, trl_version
from sleep_ray.config import ConfigError, load_config
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.data.world import generate_world
from sleep_ray.models.build import load_pretrained

ROOT = Path(__file__).resolve().parents[2]
CONFIG = str(ROOT / "examples" / "tiny_cpu.yaml")
BASE = str(ROOT / "examples" / "tiny_base")


@pytest.fixture(scope="module")
def day():
    cfg = load_config(CONFIG, ["sleep.seeding.questions_per_memory=2"])
    memories = [m for m in generate_world(cfg.data.world).stream if m.cycle == 1][:3]
    return cfg, memories, day_material(cfg, BASE, memories, seed=1)


def test_material_is_the_sleeps_questions_answered_with_the_memory(day):
    cfg, memories, qa = day
    assert qa and all(x.prompt.startswith("Question:") and x.prompt.endswith("Answer:") for x in qa)
    flat = lambda t: " ".join(t.split())  # noqa: E731  (a window joins a memory's lines with spaces)
    assert all(any(flat(x.context) in flat(m.text) for m in memories) for x in qa)
    assert all("\n" not in x.answer for x in qa)


def test_sdft_teacher_prompt_is_the_sleep_teachers():
    fmt = PromptFormat.of(load_pretrained(BASE)[1])
    template = sdft_template(fmt)
    q, c = "Where does Ana Vel live?", "Ana Vel lives in Miravel."
    assert template.format(prompt=fmt.closed_book(q), privileged_context=c) == fmt.in_context(c, q)


@pytest.mark.parametrize("method", PEERS)
def test_each_peer_trains_and_saves_a_plain_checkpoint(day, method, tmp_path):
    cfg, memories, qa = day
    p = load_config(CONFIG, ["bench.peers.batch_size=4", "bench.peers.curve_points=1"])
    points = []
    run = train_peer(
        method, base=BASE, texts=[m.text for m in memories], qa=qa, lr=1e-3, steps=3, cfg=p.bench.peers,
        fmt=PromptFormat.of(load_pretrained(BASE)[1]), max_new_tokens=8, temperature=1.0, wall_limit_s=0,
        out=tmp_path, probe=lambda m: points.append(1) or 0.5, seed=0,
    )  # fmt: skip
    assert run.steps == 3 and not run.stopped_by_wall and run.tokens > 0
    assert points and run.curve[-1][1] == 0.5
    full = sum(p.numel() for p in AutoModelForCausalLM.from_pretrained(BASE).parameters())
    assert (run.trainable < full / 5) if method == "trl_sft_lora" else run.trainable == full
    trained = AutoModelForCausalLM.from_pretrained(run.checkpoint)  # plain transformers, LoRA merged in
    base = AutoModelForCausalLM.from_pretrained(BASE)
    assert trained.config.use_cache and sum(p.numel() for p in trained.parameters()) == full
    moved = [(a - b).abs().max().item() for a, b in zip(trained.parameters(), base.parameters())]
    assert max(moved) > 0


def test_the_wall_limit_stops_a_peer(day, tmp_path):
    cfg, memories, qa = day
    p = load_config(CONFIG, ["bench.peers.batch_size=2", "bench.peers.curve_points=1"])
    run = train_peer(
        "trl_sft", base=BASE, texts=[m.text for m in memories], qa=qa, lr=1e-4, steps=500, cfg=p.bench.peers,
        fmt=None, max_new_tokens=8, temperature=1.0, wall_limit_s=0.5, out=tmp_path, probe=lambda m: 0.0, seed=0,
    )  # fmt: skip
    assert run.stopped_by_wall and run.steps < 500


@pytest.mark.slow
def test_bench_writes_table_json_and_plot(tmp_path):
    overrides = [
        f"run_dir={tmp_path}",
        "bench.peers.methods=[trl_sft_lora]",
        "bench.peers.steps.trl_sft_lora=2",
        "bench.peers.batch_size=4",
        "bench.peers.lrs.trl_sft_lora=[1e-3,1e-2]",
        "bench.peers.curve_points=1",
        "sleep.seeding.questions_per_memory=1",
    ]
    result = run_peers(CONFIG, overrides)
    out = tmp_path / "bench" / "peers"
    saved = json.loads((out / "peers.json").read_text())
    (row,) = saved["methods"]
    assert row["method"] == "trl_sft_lora" and row["library"] == "trl" and row["version"] == trl_version()
    assert set(row["tuning"]["sleep_split_new"]) == {"0.001", "0.01"}
    assert 0 <= row["share_of_in_context"] and row["wall_s"] > 0 and row["quality_per_s_vs_sleep"] is None
    assert (out / "plot_peers.png").stat().st_size > 0
    assert "trl_sft_lora" in (out / "peers.md").read_text() and table(result).count("\n| trl_sft_lora |") == 1
    # a rerun in the same run_dir reuses each finished learning rate's run (the bench resumes)
    marks = {p: p.stat().st_mtime_ns for p in (out / "trl_sft_lora").glob("lr-*-steps-2/model/model.safetensors")}
    assert len(marks) == 2 and len(list((out / "trl_sft_lora").glob("lr-*/run.json"))) == 2
    again = run_peers(CONFIG, overrides)
    assert again["methods"][0]["tuning"] == row["tuning"]
    assert {p: p.stat().st_mtime_ns for p in marks} == marks


def test_unknown_method_and_missing_extra_fail_clearly(monkeypatch, tmp_path):
    with pytest.raises(ConfigError, match="bench.peers.methods"):
        run_peers(CONFIG, [f"run_dir={tmp_path}", "bench.peers.methods=[trl_ppo]"])
    with pytest.raises(ConfigError, match=r"bench.peers.lrs.trl_gkd"):
        run_peers(CONFIG, [f"run_dir={tmp_path}", "bench.peers.methods=[trl_gkd]", "bench.peers.lrs.trl_gkd=[]"])
    monkeypatch.setitem(sys.modules, "trl", None)  # what an environment without the extra looks like
    with pytest.raises(MissingExtraError, match=r"\[bench\]"):
        trl_version()
    assert set(PEERS) < set(METHODS) and METHODS[:2] == ("sleep", "seeding")


def test_a_test_day_replaces_cycle_one_and_keeps_the_worlds_base_knowledge():
    from sleep_ray.bench.peers import peers_world

    own = peers_world(load_config(None, ["data.world.num_reading_docs=0"]))
    cfg = load_config(
        None,
        ["data.world.num_reading_docs=0", "bench.peers.test_days=foreign", "bench.peers.test_seed=2"],
    )
    world = peers_world(cfg)
    assert len(world.stream) == 24 and all(m.memory_id.startswith("test-foreign-2-") for m in world.stream)
    assert {m.cycle for m in world.stream} == {1}
    assert world.documents == own.documents  # retention is measured on the same base knowledge
