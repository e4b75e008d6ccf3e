"""What a sleep leaves behind on a real local Ray cluster: no Ray Train checkpoint stays in the temporary
directory, and a fit that hits `resources.fit_timeout_s` ends the Ray Train run and lets the process exit.

Both sleeps run one after the other in one Python process (one Ray cluster, whose train workers inherit a fresh
TMPDIR), from the committed tiny base model, one memory and a short Ray Train run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

import pytest

from tests.helpers import BASE, ROOT

pytestmark = [pytest.mark.slow, pytest.mark.heavy]

TINY_SLEEP = [
    "sleep.growth.d_low=8",
    "sleep.seeding.steps=2",
    "sleep.seeding.checkpoint_every=1",
    "sleep.seeding.batch_size=2",
    "sleep.seeding.questions_per_memory=2",
    "sleep.seeding.prefixes_per_memory=1",
    "sleep.seeding.reading_per_memory=0",
    "sleep.seeding.writing_per_memory=0",
    "sleep.seeding.rehearsal_fraction=0",
    "sleep.seeding.imitation_per_memory=0",
    "sleep.seeding.alpha=1.0",
    "sleep.seeding.lmbda=0",
    "sleep.seeding.teacher_samples=1",
    "sleep.seeding.max_new_tokens=4",
    "resources.train_workers=1",
    "resources.trainer.cpus=0.5",
    "resources.teacher.cpus=0.25",
    "resources.critic.cpus=0.25",
    "resources.rollout.cpus=0.25",
    "resources.call_timeout_s=240",
]

# A tiny sleep that finishes (two steps, each checkpointed), then the sleep-ray temporary directories it left;
# then a sleep whose fit times out: whether its Ray Train controller is still there when the error is raised, its
# workers still alive (waiting up to 20 s for them to go), the threads that would hold the interpreter at exit;
# and the error ends the process.
SCRIPT = r"""
import json, os, sys, tempfile, threading, time
import ray
from ray.util.state import list_actors
from sleep_ray.config import load_config
from sleep_ray.data.world import generate_world
from sleep_ray.records import RoleTimeoutError
from sleep_ray.seeding.run import run_seeding

def alive():  # actors not dead: alive, or still being created or restarted
    return [a.class_name for a in list_actors(filters=[("state", "!=", "DEAD")])]

base, out, ok, timing_out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), json.loads(sys.argv[4])
world = generate_world(load_config().data.world)
memories = [m for m in world.stream if m.cycle == 1 and m.kind in ("document", "dialogue")][:1]
ray.init(address="local", num_cpus=4, include_dashboard=True, log_to_driver=False, configure_logging=False)
record = run_seeding(load_config(None, ok), checkpoint=base, memories=memories, out_dir=out + "/ok", cycle=1).record
print("STEPS", json.dumps([row["step"] for row in record["metrics"]]), flush=True)
print("CKPT_DIRS", json.dumps(sorted(p for p in os.listdir(tempfile.gettempdir()) if p.startswith("sleep_ckpt_"))))
try:
    run_seeding(load_config(None, timing_out), checkpoint=base, memories=memories, out_dir=out + "/late", cycle=1)
except RoleTimeoutError:
    print("TIMED_OUT_AT", time.time(), flush=True)
    print("CONTROLLER_ALIVE", json.dumps("TrainController" in alive()), flush=True)
    for _ in range(20):  # the workers die with their controller
        workers = [name for name in alive() if name == "RayTrainWorker"]
        if not workers:
            break
        time.sleep(1)
    print("WORKERS_ALIVE", json.dumps(workers), flush=True)
    others = [t.name for t in threading.enumerate() if not t.daemon and t is not threading.main_thread()]
    print("NON_DAEMON_THREADS", json.dumps(others), flush=True)
    raise
"""


@pytest.fixture(scope="module")
def two_sleeps(tmp_path_factory) -> dict[str, Any]:
    """Run the script above in a fresh Python process whose TMPDIR is a fresh directory; its output and exit."""
    root = tmp_path_factory.mktemp("cleanup")
    (root / "tmp").mkdir()
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(
        TMPDIR=str(root / "tmp"),
        RAY_TMPDIR=os.environ.get("RAY_TMPDIR", tempfile.gettempdir()),  # Ray's socket paths must stay short
        RAY_AUTH_MODE="disabled",
        RAY_USAGE_STATS_ENABLED="0",
        PYTHONPATH=str(ROOT),
    )
    ok = [f"run_dir={root}", *TINY_SLEEP, "resources.fit_timeout_s=600"]
    late = [f"run_dir={root}", *TINY_SLEEP, "sleep.seeding.steps=50", "sleep.seeding.checkpoint_every=50"]
    late.append("resources.fit_timeout_s=2")
    args = [sys.executable, "-c", SCRIPT, BASE, str(root), json.dumps(ok), json.dumps(late)]
    proc = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=500)
    return {"root": root, "rc": proc.returncode, "out": proc.stdout + proc.stderr, "ended": time.time()}


def _line(out: str, key: str) -> str:
    found = [line.split(" ", 1)[1] for line in out.splitlines() if line.startswith(key + " ")]
    assert found, f"no {key} line in the output:\n{out[-3000:]}"
    return found[-1]


@pytest.mark.timeout(600)
def test_ray_train_checkpoints_leave_no_temporary_directory(two_sleeps):
    out = two_sleeps["out"]
    assert json.loads(_line(out, "STEPS")) == [1, 2]  # two steps, each checkpointed (checkpoint_every=1)
    assert json.loads(_line(out, "CKPT_DIRS")) == []
    assert (two_sleeps["root"] / "ok" / "sleep_record.json").is_file()


@pytest.mark.timeout(600)
def test_a_fit_past_its_timeout_stops_the_train_run_and_the_process_exits(two_sleeps):
    out = two_sleeps["out"]
    assert two_sleeps["rc"] != 0, out[-3000:]
    assert "RoleTimeoutError: Ray Train fit() did not finish within 2 s (resources.fit_timeout_s)" in out
    assert "the run had not stopped" not in out  # the controller ended the run before the error was raised
    assert json.loads(_line(out, "CONTROLLER_ALIVE")) is False  # the run was stopped before the error
    assert json.loads(_line(out, "WORKERS_ALIVE")) == []
    assert json.loads(_line(out, "NON_DAEMON_THREADS")) == []
    assert two_sleeps["ended"] - float(_line(out, "TIMED_OUT_AT")) < 60  # nothing holds the interpreter at exit
    assert not (two_sleeps["root"] / "late").exists()  # a failed sleep leaves no checkpoint
