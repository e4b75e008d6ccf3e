"""The rules of a sleep's remote exchanges on a real local Ray cluster: a share sampled by stale weights is asked
again with the current ones, and a slow call times out naming the role. The two-worker Ray Train sleep itself
runs as a `ray job submit` job (tests/ray/test_job_submit.py) and is checked with tests/helpers.py.
"""

from __future__ import annotations

import pytest
from transformers import AutoModelForCausalLM

from sleep_ray.records import RoleTimeoutError, call
from sleep_ray.rollout.engine import to_arrays
from sleep_ray.rollout.hf import HFEngine
from sleep_ray.rollout.pool import EnginePool
from tests.helpers import BASE


@pytest.mark.timeout(300)
def test_a_stale_share_is_asked_again_with_the_current_weights_and_a_slow_call_times_out(ray_cluster):
    ray = ray_cluster
    engine = ray.remote(num_cpus=0.25)(HFEngine).remote(BASE, version=0)
    try:
        model = AutoModelForCausalLM.from_pretrained(BASE)
        named = to_arrays({n: p for n, p in model.named_parameters() if "mlp" in n})
        pool = EnginePool([engine], timeout_s=240)
        # the engine holds version 0; the trainer, at version 6 with max_staleness 2, accepts version 4 or later
        fresh = pool.result(pool.submit(["Question: Where"], n=1, seed=0, max_new_tokens=3), lambda: (named, 6), 4)
        assert [r.weight_version for r in fresh] == [6] and pool.recoveries == 1
        again = pool.result(pool.submit(["Question: Where"], n=1, seed=0, max_new_tokens=3), lambda: (named, 7), 4)
        assert [r.weight_version for r in again] == [6] and pool.recoveries == 1  # fresh enough: kept as is
        with pytest.raises(RoleTimeoutError, match="rollout engine generate did not answer within 0.01 s"):
            call(engine.generate.remote(["Question: Where"] * 64, max_new_tokens=64), 0.01, "rollout engine generate")
    finally:
        ray.kill(engine)
