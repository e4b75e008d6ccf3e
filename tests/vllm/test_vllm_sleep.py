"""A sleep whose student rollouts come from a vLLM engine actor that receives every weight push in place.

Runs only in `.venv-vllm` (`make test-vllm`); skipped elsewhere.
"""

from __future__ import annotations

import json
import os

import pytest

pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm


@pytest.mark.timeout(900)
def test_sleep_with_a_vllm_rollout_engine(tmp_path):
    import ray

    from sleep_ray.config import load_config
    from sleep_ray.data.world import generate_world
    from sleep_ray.models.checkpoint import read_meta
    from sleep_ray.runtime.export import RECORD_FILE
    from sleep_ray.seeding.run import run_seeding
    from tests.helpers import ROOT, SMALL_SLEEP

    base = str(ROOT / "examples" / "tiny_base")
    memories = [m for m in generate_world(load_config().data.world).stream if m.cycle == 1][:2]
    cfg = load_config(None, [f"run_dir={tmp_path}", *SMALL_SLEEP, "resources.engine=vllm", "resources.train_workers=1"])
    env = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_NO_USAGE_STATS": "1", "RAY_AUTH_MODE": "disabled"}
    os.environ.update(env)
    ray.init(num_cpus=4, log_to_driver=False, configure_logging=False, runtime_env={"env_vars": env})
    try:
        result = run_seeding(cfg, checkpoint=base, memories=memories, out_dir=tmp_path / "cycle-1", cycle=1)
    finally:
        ray.shutdown()
    record = json.loads((result.checkpoint / RECORD_FILE).read_text())
    assert record["engine"] == "vllm" and [r["step"] for r in record["metrics"]] == [1, 2, 3, 4]
    assert all(r["push_s"] >= 0 for r in record["metrics"])  # every step pushed weights into the running engine
    assert read_meta(result.checkpoint).version == read_meta(base).version + 1
