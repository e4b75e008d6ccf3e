"""`ray job submit` against a real Ray head started with `ray start --head` on loopback, the way a cluster user
runs a sleep: the working directory and clusters/runtime_env.yaml travel with the job, the job's driver joins the
head's cluster (RAY_ADDRESS), and the checkpoint it writes is a plain HF directory.

The head is this test's own: its own ports and temp dir, started as a process group that the test stops (SIGTERM to
that group). `ray stop` is never used: it finds Ray processes by name and would stop every cluster on the machine,
the test session's shared one too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import ROOT, SMALL_SLEEP, assert_grown_checkpoint, assert_sleep_record

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent


def _free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def _survivors(marker: str) -> list[str]:
    """Command lines of live processes that mention `marker` (this head's temp dir)."""
    out = subprocess.run(["ps", "-eo", "pid=,args="], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if marker in line and "ps -eo" not in line]


@pytest.fixture
def head(tmp_path):
    gcs, dash, client, nm, om, agent, agent_grpc, renv, metrics = _free_ports(9)
    temp = tempfile.mkdtemp(prefix="srjob", dir="/tmp")  # short: Ray's socket paths must stay under 108 chars
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", PATH=f"{BIN}{os.pathsep}{env['PATH']}")
    cmd = [
        str(BIN / "ray"),
        "start",
        "--head",
        "--block",
        "--node-ip-address=127.0.0.1",
        f"--port={gcs}",
        "--dashboard-host=127.0.0.1",
        f"--dashboard-port={dash}",
        f"--ray-client-server-port={client}",
        f"--node-manager-port={nm}",
        f"--object-manager-port={om}",
        f"--dashboard-agent-listen-port={agent}",
        f"--dashboard-agent-grpc-port={agent_grpc}",
        f"--runtime-env-agent-port={renv}",
        f"--metrics-export-port={metrics}",
        "--min-worker-port=20100",
        "--max-worker-port=20999",
        "--num-cpus=4",
        "--object-store-memory=500000000",
        f"--temp-dir={temp}",
        "--disable-usage-stats",
    ]
    log = open(tmp_path / "head.log", "w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{dash}"
    try:
        deadline = time.time() + 180
        while True:
            assert proc.poll() is None, (tmp_path / "head.log").read_text()[-3000:]
            try:
                if httpx.get(f"{url}/api/version", timeout=5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.time() < deadline, "the head's dashboard never answered"
            time.sleep(1)
        yield url, env
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # this head's process group only
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)
        deadline = time.time() + 60
        while _survivors(temp) and time.time() < deadline:
            time.sleep(1)
        left = _survivors(temp)
        for line in left:  # never leave a stray Ray process behind for the rest of the suite
            os.kill(int(line.split()[0]), signal.SIGKILL)
        log.close()
        shutil.rmtree(temp, ignore_errors=True)
        assert not left, f"processes of the stopped head survived: {left}"


def _submit(url: str, env: dict[str, str], command: list[str]) -> str:
    """`ray job submit --no-wait` with the repo as working dir and clusters/runtime_env.yaml; returns the job id."""
    submit = [
        str(BIN / "ray"),
        "job",
        "submit",
        f"--address={url}",
        f"--working-dir={ROOT}",
        f"--runtime-env={ROOT / 'clusters' / 'runtime_env.yaml'}",
        "--no-wait",
        "--",
        *command,
    ]
    done = subprocess.run(submit, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return next(w.strip("'\"") for w in done.stdout.split() if w.strip("'\"").startswith("raysubmit_"))


def _wait(client, job_id: str, until, timeout_s: float = 800):
    deadline, status = time.time() + timeout_s, None
    while time.time() < deadline:
        status = client.get_job_status(job_id)
        if status in until:
            return status
        time.sleep(2)
    return status


@pytest.mark.timeout(1200)
def test_ray_job_submit_runs_a_sleep_then_serves_its_checkpoint(head, tmp_path):
    url, env = head
    out = tmp_path / "cycle-1"
    overrides = [f"run_dir={tmp_path}", *SMALL_SLEEP]  # two Ray Train workers (DDP over gloo)
    sleep = ["sleep-ray", "sleep", "--config", "examples/tiny_cpu.yaml", "--cycle", "1", "--stages", "seeding"]
    # examples/tiny_cpu.yaml is relative: resolved in the job's copy of the working directory
    job_id = _submit(url, env, [*sleep, "--out", str(out), *overrides])

    from ray.job_submission import JobStatus, JobSubmissionClient

    client = JobSubmissionClient(url)
    status = _wait(client, job_id, (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED))
    logs = client.get_job_logs(job_id)
    assert status == JobStatus.SUCCEEDED, logs[-4000:]

    meta = json.loads((out / "sleep_ray.json").read_text())
    assert meta["version"] == 1 and meta["producer"] == "sleep" and meta["extra"]["cycle"] == 1
    assert (out / "model.safetensors").is_file() and (out / "config.json").is_file()
    assert "seeding: wrote" in logs  # the CLI's own summary line, from the job's driver
    assert_grown_checkpoint(out)  # plain HF; the two DDP ranks trained the new expert only
    assert_sleep_record(out)

    # the wake endpoint as a second job on the same cluster, serving the slept checkpoint
    (port,) = _free_ports(1)
    serve = ["sleep-ray", "serve", "--config", "examples/tiny_cpu.yaml", f"run_dir={tmp_path}", f"model.path={out}"]
    serve_id = _submit(url, env, [*serve, f"serve.port={port}"])
    endpoint, deadline, version = f"http://127.0.0.1:{port}", time.time() + 300, None
    while version is None:  # the job runs until stopped; its endpoint answers once Serve is up
        alive = client.get_job_status(serve_id) in (JobStatus.PENDING, JobStatus.RUNNING)
        assert alive and time.time() < deadline, client.get_job_logs(serve_id)[-4000:]
        try:
            version = httpx.get(f"{endpoint}/v1/version", timeout=10).json()["weight_version"]
        except (httpx.HTTPError, KeyError, ValueError):
            time.sleep(2)
    assert version == 1, client.get_job_logs(serve_id)[-4000:]
    body = {"model": "sleep-ray", "prompt": "Question: Where does Ana Vel live?\nAnswer:", "max_tokens": 4}
    answer = httpx.post(f"{endpoint}/v1/completions", json=body, timeout=60)
    assert answer.status_code == 200 and answer.json()["weight_version"] == 1
    client.stop_job(serve_id)
    assert _wait(client, serve_id, (JobStatus.STOPPED, JobStatus.SUCCEEDED, JobStatus.FAILED), 120) in (
        JobStatus.STOPPED,
        JobStatus.SUCCEEDED,
    )
