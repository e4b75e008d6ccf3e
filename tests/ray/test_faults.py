"""Fault tolerance of a sleep on a real local Ray cluster: a rollout engine killed mid-sleep is restarted and given
the current weights again; a Ray Train worker killed mid-sleep is replaced and training resumes from the last
checkpoint. Each kill is a SIGKILL of the real process, found through Ray's state API, while the sleep runs in a
thread. (The third fault, a Serve replica killed under load, is in test_wake.py beside its endpoint.)"""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from sleep_ray.config import load_config
from sleep_ray.runtime.export import RECORD_FILE
from sleep_ray.seeding.run import run_seeding
from tests.helpers import BASE, SMALL_SLEEP

pytestmark = [pytest.mark.slow, pytest.mark.heavy]


def _rows(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _pid(class_name: str) -> int:
    from ray.util.state import list_actors

    alive = list_actors(filters=[("state", "=", "ALIVE")], detail=True)
    pids = [int(a.pid) for a in alive if class_name in (a.class_name or "") and a.pid]
    assert len(pids) == 1, f"expected one live {class_name} actor, found {pids}"
    return pids[0]


def _sleep_in_thread(cfg: Any, out: Path, memories: list[Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def run() -> None:
        try:
            box["result"] = run_seeding(cfg, checkpoint=BASE, memories=memories, out_dir=out, cycle=1)
        except BaseException as e:  # reported by the test
            box["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _wait_for_step(metrics: Path, step: int, thread: threading.Thread, box: dict[str, Any]) -> None:
    deadline = time.time() + 600
    while time.time() < deadline and thread.is_alive():
        if any(r["step"] >= step for r in _rows(metrics)):
            return
        time.sleep(0.2)
    if "error" in box:
        raise box["error"]
    raise AssertionError(f"the sleep never reached step {step} (alive: {thread.is_alive()})")


def _finish(thread: threading.Thread, box: dict[str, Any], timeout_s: float = 600) -> Any:
    thread.join(timeout_s)
    assert not thread.is_alive(), "the sleep did not finish"
    if "error" in box:
        raise box["error"]
    return box["result"]


@pytest.mark.timeout(900)
def test_a_killed_rollout_engine_and_a_killed_train_worker_are_replaced_and_the_sleep_completes(
    ray_cluster, tmp_path, cycle_one
):
    """Both faults in one sleep (one sleep costs a minute or more here): first the rollout engine, then the Ray
    Train worker."""
    steps, every = 12, 3
    cfg = load_config(
        None,
        [
            f"run_dir={tmp_path}",
            *SMALL_SLEEP,
            "resources.train_workers=1",
            f"sleep.seeding.steps={steps}",
            f"sleep.seeding.checkpoint_every={every}",
            "resources.train_max_failures=1",
        ],
    )
    out = tmp_path / "cycle-1"
    thread, box = _sleep_in_thread(cfg, out, cycle_one)
    metrics = tmp_path / "cycle-1.logs" / "metrics.jsonl"
    _wait_for_step(metrics, 3, thread, box)  # past max_staleness: a fresh engine's version-0 samples would be stale
    os.kill(_pid("HFEngine"), signal.SIGKILL)
    # past the second checkpoint: Ray Train's controller registers a reported checkpoint a moment after the
    # report, so a kill right after one could find none registered yet and (rightly) start from scratch
    _wait_for_step(metrics, 2 * every + 1, thread, box)
    os.kill(_pid("RayTrainWorker"), signal.SIGKILL)
    result = _finish(thread, box)

    assert result.checkpoint == out and (out / "model.safetensors").is_file()
    record = json.loads((out / RECORD_FILE).read_text())
    assert [r["step"] for r in record["metrics"]] == list(range(1, steps + 1))
    # the pool found the engine dead (or restarted with old weights) and gave it the current weights again
    assert max(r["engine_recoveries"] for r in _rows(metrics)) >= 1
    logged = [r["step"] for r in _rows(metrics)]
    # the replaced worker went on from a checkpoint, not from scratch: the first step logged twice is the one
    # after a checkpoint (a multiple of checkpoint_every), and every step before it ran once
    redone = next(s for i, s in enumerate(logged) if s in logged[:i])
    assert redone > 1 and (redone - 1) % every == 0, logged
    assert all(logged.count(s) == 1 for s in range(1, redone)), logged


@pytest.fixture(scope="module")
def cycle_one():
    from sleep_ray.data.world import generate_world

    world = generate_world(load_config().data.world)
    return [m for m in world.stream if m.cycle == 1 and m.kind in ("document", "dialogue")][:2]
