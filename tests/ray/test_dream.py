"""Dreaming on a real local Ray cluster: trials spread over reward-critic actors (one killed mid-run is replaced
and its trial re-run; one that overruns is retried, then fails loudly). The end-to-end stage-2 sleep (two
generators and two critics, the RLlib curriculum planning round 1) runs in test_wake.py, inside the endpoint's
scheduled sleep."""

from __future__ import annotations

import os
import signal

import pytest

from sleep_ray.config import load_config
from sleep_ray.data import prompts
from sleep_ray.dream.critic import TrialCritic
from sleep_ray.dream.records import DreamSample, SelfProbe
from sleep_ray.dream.trials import TrialFailedError, TrialPool
from tests.helpers import BASE


def _pool(ray, made: list[int], timeout_s: float, trial_steps: int) -> TrialPool:
    cfg = load_config(None, [f"sleep.dreaming.trial_steps={trial_steps}"]).sleep.dreaming
    probes = [SelfProbe("m1", prompts.closed_book("Where does Ana Vel live?"), "Miravel")]

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
