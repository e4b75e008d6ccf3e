"""Dreaming on a real local Ray cluster: trials spread over reward-critic actors (one killed mid-run is replaced
and its trial re-run), and a small end-to-end stage-2 sleep after a small seeding."""

from __future__ import annotations

import json
import os
import signal

import pytest
import torch
from transformers import AutoModelForCausalLM

from sleep_ray.config import load_config
from sleep_ray.data import prompts
from sleep_ray.dream.critic import TrialCritic
from sleep_ray.dream.records import DreamSample, Probe
from sleep_ray.dream.run import run_dreaming
from sleep_ray.dream.trials import TrialFailedError, TrialPool
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.sleep.run import RECORD_FILE, grow_student
from tests.ray.test_sleep import BASE, SMALL_SLEEP, cycle_one  # noqa: F401  (fixture)

SMALL_DREAM = [
    "sleep.dreaming.dreams_per_memory=4",
    "sleep.dreaming.top_k=2",
    "sleep.dreaming.random_b=1",
    "sleep.dreaming.probes_per_memory=2",
    "sleep.dreaming.trial_steps=2",
    "sleep.dreaming.rest_em_rounds=1",
    "sleep.dreaming.generator_steps=2",
    "sleep.dreaming.rehearsal_steps=3",
    "sleep.dreaming.num_workers=2",
]


def _pool(ray, made: list[int], timeout_s: float, trial_steps: int) -> TrialPool:
    cfg = load_config(None, [f"sleep.dreaming.trial_steps={trial_steps}"]).sleep.dreaming
    probes = [Probe("m1", prompts.closed_book("Where does Ana Vel live?"), "Miravel")]

    def new_critic(worker: int):
        made.append(worker)
        return ray.remote(num_cpus=0.25)(TrialCritic).remote(BASE, probes, cfg, worker=worker)

    return TrialPool(new_critic, workers=2, timeout_s=timeout_s)


DREAMS = [DreamSample(f"d{i}", "m1", "qa", "", "", prompts.closed_book("Where?"), "", " Miravel") for i in range(4)]


@pytest.mark.timeout(600)
def test_a_killed_trial_actor_is_replaced_and_its_trial_re_run(ray_cluster):
    made: list[int] = []
    pool = _pool(ray_cluster, made, timeout_s=240, trial_steps=2)
    try:
        pid = ray_cluster.get(pool.actors[0].__ray_call__.remote(lambda self: os.getpid()))
        os.kill(pid, signal.SIGKILL)  # the critic dies before its trial
        results = pool.run(DREAMS, seed=0)
    finally:
        for a in pool.actors:
            ray_cluster.kill(a)
    assert [r.dream_id for r in results] == [d.dream_id for d in DREAMS]  # every trial answered, in order
    assert pool.retries >= 1 and made.count(0) >= 2  # a fresh critic replaced the killed one


@pytest.mark.timeout(600)
def test_a_trial_that_overruns_its_timeout_is_retried_on_fresh_actors_then_fails_loudly(ray_cluster):
    made: list[int] = []
    pool = _pool(ray_cluster, made, timeout_s=0.5, trial_steps=300)  # no trial can finish in 0.5 s
    try:
        with pytest.raises(TrialFailedError, match="trial_timeout_s"):
            pool.run(DREAMS[:1], seed=0)
    finally:
        for a in pool.actors:
            ray_cluster.kill(a)
    assert pool.retries == 2 and len(made) == 2 + 2  # two workers, then one replacement per retry


@pytest.mark.timeout(900)
def test_dreaming_writes_a_plain_checkpoint_with_its_record(ray_cluster, tmp_path, cycle_one):  # noqa: F811
    cfg = load_config(None, [f"run_dir={tmp_path}", *SMALL_SLEEP, *SMALL_DREAM])
    out = tmp_path / "cycle-1"
    grow_student(cfg, BASE, out, cycle=1)  # stage 1's starting point stands in for its output (same shape)
    version = read_meta(out).version
    result = run_dreaming(cfg, parent=BASE, seeded=out, memories=cycle_one, out_dir=out, cycle=1)
    assert result.checkpoint == out and read_meta(out).version == version  # one sleep, one version
    record = json.loads((out / RECORD_FILE).read_text())
    dr = record["dreaming"]
    assert len(dr["rounds"]) == 2 and dr["probes"] > 0
    for rnd in dr["rounds"]:
        assert rnd["kept"] <= rnd["dreams"] and 0.0 <= rnd["mean_reward"] <= 1.0
    assert dr["rehearsal_steps"] in (0, 3)
    base = AutoModelForCausalLM.from_pretrained(BASE)
    grown = AutoModelForCausalLM.from_pretrained(out)  # still a plain transformers checkpoint
    assert grown.config.intermediate_size == base.config.intermediate_size + 8
    old = base.config.intermediate_size
    for (name, p_old), p_new in zip(base.named_parameters(), grown.parameters()):
        if name.endswith(("gate_proj.weight", "up_proj.weight")):
            assert torch.equal(p_new[:old], p_old), name  # dreaming trains the expert only, too
        elif not name.endswith("down_proj.weight"):
            assert torch.equal(p_new, p_old), name
    assert not (tmp_path / "cycle-1.dream.work").exists()
