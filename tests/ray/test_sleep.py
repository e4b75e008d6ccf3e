"""Knowledge Seeding on a real local Ray cluster: actors per role, weight pushes, staleness and timeouts; helpers
that check a slept-on checkpoint (the two-worker sleep itself runs as a job in test_job_submit.py).

The teacher-self must be able to write questions, so these tests start from the committed tiny base model
(1.3M parameters) and a few memories of the default world's first cycle.
"""

from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM

from sleep_ray.config import ConfigError, load_config
from sleep_ray.data.world import generate_world
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.rollout.engine import to_arrays
from sleep_ray.rollout.hf import HFEngine
from sleep_ray.sleep.records import RoleTimeoutError, StaleRolloutError, call, check_fresh
from sleep_ray.sleep.run import RECORD_FILE, run_seeding
from tests.conftest import ROOT

BASE = str(ROOT / "examples" / "tiny_base")
SMALL_SLEEP = [
    "sleep.growth.d_low=8",
    "sleep.seeding.steps=4",
    "sleep.seeding.batch_size=4",
    "sleep.seeding.questions_per_memory=2",
    "sleep.seeding.prefixes_per_memory=1",
    "sleep.seeding.teacher_samples=1",
    "sleep.seeding.dreams_per_memory=2",
    "sleep.seeding.imitation_prompts=1",
    "sleep.seeding.group_size=2",
    "sleep.seeding.checkpoint_every=2",
    "sleep.seeding.lmbda=0.5",
    "resources.train_workers=2",
    "resources.trainer.cpus=0.5",
    "resources.teacher.cpus=0.25",
    "resources.critic.cpus=0.25",
    "resources.rollout.cpus=0.25",
    "resources.call_timeout_s=240",
    "resources.fit_timeout_s=600",
]


@pytest.fixture(scope="module")
def cycle_one():
    world = generate_world(load_config().data.world)
    return [m for m in world.stream if m.cycle == 1 and m.kind in ("document", "dialogue")][:2]


def assert_grown_checkpoint(out, d_low: int = 8, base: str = BASE) -> None:
    """A slept-on checkpoint is a plain transformers one, grown by `d_low` hidden units per MLP, in which only the
    new expert trained: the old rows bit-identical, the expert's output weights no longer zero."""
    old_model = AutoModelForCausalLM.from_pretrained(base)
    grown = AutoModelForCausalLM.from_pretrained(out)  # plain transformers, no project code
    old = old_model.config.intermediate_size
    assert grown.config.intermediate_size == old + d_low
    for (name, p_old), p_new in zip(old_model.named_parameters(), grown.parameters()):
        if name.endswith(("gate_proj.weight", "up_proj.weight")):
            assert torch.equal(p_new[:old], p_old), name  # frozen rows bit-identical
        elif name.endswith("down_proj.weight"):
            assert torch.equal(p_new[:, :old], p_old), name
            assert p_new[:, old:].abs().sum() > 0, name  # the expert trained
        else:
            assert torch.equal(p_new, p_old), name


def assert_sleep_record(out, steps: int = 4) -> None:
    """What a finished stage-1 sleep leaves: version + 1, its record and metrics, no work directory."""
    meta = read_meta(out)
    assert meta.version == read_meta(BASE).version + 1 and meta.producer == "sleep"
    assert meta.extra["experts"] == 1 and meta.extra["cycle"] == 1
    record = json.loads((out / RECORD_FILE).read_text())
    assert [row["step"] for row in record["metrics"]] == list(range(1, steps + 1))
    assert all({"reward", "push_s", "rollouts_s", "wait_s"} <= set(row) for row in record["metrics"])
    assert record["prompts"]["rehearsal"] > 0 and record["weight_version"] == meta.version
    assert not out.with_name(out.name + ".tmp").exists() and not out.with_name(out.name + ".work").exists()
    assert (out.with_name(out.name + ".logs") / "metrics.jsonl").is_file()
    g = record["grounding"]  # what the teacher wrote, checked against the memories, with examples
    assert g["counts"]["question"]["written"] >= record["prompts"]["question"] > 0
    assert g["counts"]["question"]["dropped"] == g["counts"]["question"]["written"] - record["prompts"]["question"]
    assert record["written"] and all(row["teacher_answers"] for row in record["written"])
    from rich.console import Console

    from sleep_ray.sleep.night_report import night_report

    console = Console(record=True, width=200)
    console.print(night_report(record))
    assert "grounded share" in console.export_text()


# The two-worker Ray Train sleep runs as a `ray job submit` job (tests/ray/test_job_submit.py), which checks its
# checkpoint with the two helpers above: one sleep there covers both, at two minutes less.


def test_a_staleness_limit_that_would_reject_every_step_fails_before_anything_starts(tmp_path, cycle_one):
    # with prefetch the next step's samples come from weights up to push_every versions old
    cfg = load_config(None, [f"run_dir={tmp_path}", "sleep.seeding.push_every=3", "sleep.seeding.max_staleness=2"])
    with pytest.raises(ConfigError, match="sleep.seeding.max_staleness=2"):
        run_seeding(cfg, checkpoint=BASE, memories=cycle_one, out_dir=tmp_path / "c1", cycle=1)
    assert not list(tmp_path.iterdir())  # nothing written


@pytest.mark.timeout(300)
def test_stale_sample_is_rejected_and_a_slow_call_times_out(ray_cluster):
    ray = ray_cluster
    engine = ray.remote(num_cpus=0.25)(HFEngine).remote(BASE, version=0)
    try:
        old = call(engine.generate.remote(["Question: Where"], max_new_tokens=3), 240, "generate")
        model = AutoModelForCausalLM.from_pretrained(BASE)
        named = to_arrays({n: p for n, p in model.named_parameters() if "mlp" in n})
        assert call(engine.load_weights.remote(ray.put(named), 5), 240, "weight push") == 5
        new = call(engine.generate.remote(["Question: Where"], max_new_tokens=3), 240, "generate")
        assert old[0].weight_version == 0 and new[0].weight_version == 5
        check_fresh(new, current_version=6, max_staleness=2)
        with pytest.raises(StaleRolloutError):
            check_fresh(old + new, current_version=6, max_staleness=2)
        with pytest.raises(RoleTimeoutError, match="rollout engine generate did not answer within 0.01 s"):
            call(engine.generate.remote(["Question: Where"] * 64, max_new_tokens=64), 0.01, "rollout engine generate")
    finally:
        ray.kill(engine)
