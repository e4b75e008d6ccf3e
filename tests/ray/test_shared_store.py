"""The wake store actor on real Ray: the client's calls, errors of their own type, acknowledged memories through an
actor restart, one actor per application and directory; and on a two-node cluster, the endpoint's replicas on
different nodes sharing one store without opening its file."""

from __future__ import annotations

import asyncio

import pytest
import ray

from sleep_ray.wake.deploy import CONTROLLER_OPTIONS
from sleep_ray.wake.ledger import KnowledgeLedger
from sleep_ray.wake.shared_store import HEAD_NODE, SharedStore, StoreUnavailableError, actor_name, release
from sleep_ray.wake.store import WakeStore

APP = "shared-store-test"


def _run(coro):
    return asyncio.run(coro)


@pytest.fixture
def shared(ray_cluster, tmp_path):
    directory = tmp_path / "wake"
    store = SharedStore.connect(directory, APP)
    yield store, directory
    release(directory, APP)


def test_client_reads_back_what_it_wrote_and_store_errors_keep_their_type(shared):
    store, directory = shared
    got = _run(store.add_memories([("Ana Vel lives in Miravel.", "document", "ana"), ("Bo Tan.", "document", None)]))
    assert [m.memory_id for m in got][0] == "ana" and got[1].memory_id.startswith("mem-")
    direct = WakeStore(directory)  # the same file, as the scheduler on the head node opens it
    assert [m.memory_id for m in direct.unconsolidated()] == [m.memory_id for m in got]
    assert _run(store.unconsolidated()) == got
    assert _run(store.count_unconsolidated()) == 2
    assert _run(store.get_memory("ana")) == got[0] and _run(store.get_memory("nobody")) is None
    KnowledgeLedger(direct).settle({"ana": 1.0}, 0.5, "sleep-0001")  # its probes held: in the weights
    page, total = _run(store.list_memories(offset=0, limit=1, consumed=False))
    assert total == 1 and page == [got[1]]
    direct.add_version(0, "/base", {"producer": "base"})
    assert [v.version for v in _run(store.versions())] == [0]
    KnowledgeLedger(direct).settle({"ana": 1.0}, 0.5, "sleep-0001")
    known = _run(store.knowledge(["ana", "nobody"]))
    assert known == KnowledgeLedger(direct).knowledge(["ana"]) and known["ana"].held == 1.0

    with pytest.raises(ValueError, match="duplicate memory_id 'ana': already in the store") as err:
        _run(store.add_memories([("Again.", "document", "ana")]))
    assert type(err.value) is ValueError  # the store's own exception, not Ray's wrapper
    with pytest.raises(ValueError, match="kind 'rumour'"):
        _run(store.add_memories([("A fact.", "rumour", None)]))
    assert _run(store.count_unconsolidated()) == 1  # nothing written by the failed calls


def test_every_acknowledged_memory_survives_a_restart_of_the_actor(shared):
    store, directory = shared
    acked: list[str] = []
    unavailable = 0

    async def write_through_a_kill() -> None:
        nonlocal unavailable
        for i in range(60):
            if i == 20:
                ray.kill(store.actor, no_restart=False)  # dies now; Ray restarts it on the same file
            try:
                acked.extend(m.memory_id for m in await store.add_memories([(f"Fact {i}.", "document", f"m{i}")]))
            except StoreUnavailableError:
                unavailable += 1  # not acknowledged: the caller would retry

    _run(write_through_a_kill())
    assert acked[:20] == [f"m{i}" for i in range(20)] and acked[-1] == "m59", (acked, unavailable)  # it came back
    kept = {m.memory_id for m in _run(store.unconsolidated())}
    assert set(acked) <= kept
    assert set(acked) <= {m.memory_id for m in WakeStore(directory).unconsolidated()}


def test_one_actor_per_application_and_directory(ray_cluster, tmp_path):
    assert HEAD_NODE == CONTROLLER_OPTIONS["resources"]  # beside the scheduler, which opens the file directly
    a, b = tmp_path / "a", tmp_path / "b"
    assert len({actor_name(a, APP), actor_name(b, APP), actor_name(a, "other")}) == 3

    @ray.remote(num_cpus=0)
    def add_one(i: int) -> str:  # every process connects; whoever comes first creates the actor
        store = SharedStore.connect(a, APP)
        return asyncio.run(store.add_memories([(f"Fact {i}.", "document", f"m{i}")]))[0].memory_id

    try:
        assert sorted(ray.get([add_one.remote(i) for i in range(2)])) == ["m0", "m1"]
        one, other = SharedStore.connect(a, APP), SharedStore.connect(b, APP)
        assert _run(one.count_unconsolidated()) == 2 and _run(other.count_unconsolidated()) == 0
        with pytest.raises(ValueError, match="store actor owns"):
            ray.get(one.actor.attach.remote(str(b)))  # an actor asked for a directory it does not own says so
        assert release(a, APP) and not release(a, APP)
        with pytest.raises(StoreUnavailableError):
            _run(one.count_unconsolidated())  # released: its clients fail clearly
        assert _run(SharedStore.connect(a, APP).count_unconsolidated()) == 2  # a new one reopens the same file
    finally:
        release(a, APP)
        release(b, APP)


# ------------------------------------------------------------------------------------------ two nodes

TOKEN = "test-admin-token"
FACT = "Zorya Quill lives in Tarnholt. Zorya Quill works as a baker."
ASK = {"model": "sleep-ray", "messages": [{"role": "user", "content": "Where does Zorya Quill live?"}]}
REPLICA_CLASSES = ("WakeServer", "WakeGateway")  # the deployments that must reach the store through its actor
OPENED_LOG = "SLEEP_RAY_TEST_OPENED_LOG"
# Imported first by every Python process of the test cluster (PYTHONPATH): records which process opens the store.
SITECUSTOMIZE = f'''
import os, sys

def _opened(event, args):
    if event == "sqlite3.connect" and str(args[0]).endswith("wake.sqlite"):
        with open(os.environ["{OPENED_LOG}"], "a") as f:
            f.write(f"{{os.getpid()}} {{args[0]}}\\n")

if os.environ.get("{OPENED_LOG}"):
    sys.addaudithook(_opened)
'''


@pytest.mark.slow
@pytest.mark.heavy
def test_replicas_on_two_nodes_share_one_store_and_never_open_it(tmp_path):
    """A two-node cluster (head and one worker, one CPU each, so the two serving replicas at 0.6 CPU land one per
    node): a memory POSTed through the endpoint is used in context by both serving replicas; `kill -9` of the
    replica that acknowledged a memory, and of the store actor, right after the acknowledgement loses nothing; and
    no replica process opens the SQLite file (an audit hook in every process of the cluster, and their open fds)."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import ROOT

    if _replica_header() is None:
        pytest.skip(
            "sleep_ray/wake/app.py does not use SharedStore and name the answering replica yet (REPLICA_HEADER)"
        )
    hooks, result, opened_log = tmp_path / "hooks", tmp_path / "result.json", tmp_path / "opened.log"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env |= {"PYTHONPATH": f"{hooks}{os.pathsep}{ROOT}", OPENED_LOG: str(opened_log)}
    env |= {"RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}
    env |= {"RAY_SERVE_PROXY_PREFER_LOCAL_NODE_ROUTING": "0"}  # the head's proxy sends requests to both replicas
    run = f"from tests.ray.test_shared_store import two_nodes; two_nodes({str(tmp_path)!r}, {str(result)!r})"
    proc = subprocess.run([sys.executable, "-c", run], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and result.is_file(), proc.stderr[-6000:]
    r = json.loads(result.read_text())

    servers = {uid for uid, a in r["replicas"].items() if a["class"] == "WakeServer"}
    assert {r["replicas"][uid]["node"] for uid in servers} == {r["head"], r["worker"]}, r["replicas"]
    assert r["store_node"] == r["head"]
    assert set(r["answered"]) == servers, r["answered"]  # both serving replicas used the memory in context
    assert r["ack"]["status"] == 200 and r["ack"]["accepted"] == ["second"]
    assert r["killed"] in r["replicas"]  # the replica that acknowledged it, then the store actor: kill -9
    assert {"zorya", "second"} <= set(r["in_file"]) and {"zorya", "second"} <= set(r["listed"])
    assert r["after_restart"] == 200  # a write through the restarted store actor
    opened = {int(line.split()[0]) for line in opened_log.read_text().splitlines()}
    assert set(r["store_pids"]) <= opened  # the audit hook runs in the cluster's processes
    replica_pids = {a["pid"] for a in r["replicas"].values()}
    assert not replica_pids & opened, (replica_pids & opened, r["replicas"])
    assert r["fd_samples"] > 0 and r["fds_seen"] == {}, r["fds_seen"]
    assert r["seconds"] < 150, r["seconds"]


def _replica_header() -> str | None:
    """The header app.py names the answering replica in (its module-level `REPLICA_HEADER = "..."`), read from the
    source so that neither this process nor the scenario's pays for importing the app."""
    import ast

    from tests.helpers import ROOT

    for node in ast.parse((ROOT / "sleep_ray" / "wake" / "app.py").read_text()).body:
        target = node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id == "REPLICA_HEADER" and isinstance(node.value, ast.Constant):
            return str(node.value.value)
    return None


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def two_nodes(tmp: str, result: str) -> None:
    """The two-node scenario, in a process of its own (a process joins one Ray cluster only, and the session's is
    local): it writes what it saw to `result` as JSON for the test to check."""
    import dataclasses
    import json
    import os
    import signal
    import threading
    import time
    from pathlib import Path

    import httpx
    from ray import serve
    from ray._private.utils import read_ray_address, write_ray_address
    from ray.cluster_utils import Cluster
    from ray.util.state import list_actors

    from sleep_ray.config import ServeConfig
    from tests.helpers import ROOT

    t0, header, session_address = time.time(), _replica_header() or "", read_ray_address()
    warm = threading.Thread(target=lambda: __import__("sleep_ray.wake.scheduler"))  # slow; overlaps the node starts
    warm.start()
    head_args = {"num_cpus": 1, "include_dashboard": True, "dashboard_host": "127.0.0.1"}
    head_args |= {"dashboard_port": _free_port(), "dashboard_agent_listen_port": _free_port()}
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    worker = cluster.add_node(num_cpus=1)
    facts: dict = {"head": cluster.head_node.node_id, "worker": worker.node_id, "replicas": {}, "store_pids": []}
    store_dir = Path(tmp) / "run" / "wake"
    store_name = actor_name(store_dir, "sleep_ray")
    stop, fds_seen, samples = threading.Event(), {}, [0]

    def note_actors() -> dict:
        """Record the replicas and store actor processes alive now (all that ever were stay recorded)."""
        alive = list_actors(address=cluster.address, filters=[("state", "=", "ALIVE")], detail=True, limit=1000)
        for a in alive:
            cls = (a.class_name or "").split(":")[-1]
            if (a.name or "").startswith("SERVE_REPLICA::") and cls in REPLICA_CLASSES:
                facts["replicas"][a.name.split("#")[-1]] = {"class": cls, "node": a.node_id, "pid": int(a.pid)}
            elif a.name == store_name and int(a.pid) not in facts["store_pids"]:
                facts["store_pids"].append(int(a.pid))
                facts["store_node"] = a.node_id
        return facts["replicas"]

    def sample_fds() -> None:
        """Which replica process has the store file open, sampled while requests run."""
        while not stop.is_set():
            for uid, a in list(facts["replicas"].items()):
                try:
                    fds = [os.readlink(f"/proc/{a['pid']}/fd/{fd}") for fd in os.listdir(f"/proc/{a['pid']}/fd")]
                except OSError:  # the process is gone
                    continue
                if hits := [x for x in fds if "wake.sqlite" in x]:
                    fds_seen[uid] = hits
            samples[0] += 1
            time.sleep(0.01)

    sampler = threading.Thread(target=sample_fds, daemon=True)
    try:
        ray.init(address=cluster.address, log_to_driver=False, configure_logging=False)
        warm.join()
        from sleep_ray.wake.deploy import launch

        overrides = [
            f"run_dir={Path(tmp) / 'run'}",
            f"model.path={ROOT / 'examples' / 'tiny_base'}",
            f"serve.port={_free_port()}",
            "serve.replicas=2",
            "serve.cpus_per_replica=0.6",  # one serving replica per one-CPU node
            "resources.threads_per_process=1",
        ]
        keys = {f.name for f in dataclasses.fields(ServeConfig)}
        if "gateways" in keys:
            overrides.append("serve.gateways=2")
        if "open_admin" in keys:  # this test is not about tokens
            overrides.append("serve.open_admin=true")
        ep = launch(None, overrides, admin_token="" if "open_admin" in keys else TOKEN)
        admin = {"Authorization": f"Bearer {ep.admin_token}"} if ep.admin_token else {}
        facts["launched_s"] = round(time.time() - t0, 1)
        note_actors()
        sampler.start()
        with httpx.Client(base_url=ep.url, timeout=60) as c:
            r = c.post("/v1/memories", json={"memories": [{"text": FACT, "memory_id": "zorya"}]}, headers=admin)
            assert r.status_code == 200, r.text
            answered: dict = {}  # serving replica -> its node, once it answered with the memory in context
            deadline = time.time() + 60
            while time.time() < deadline and len(answered) < 2:
                got = c.post("/v1/chat/completions", json=ASK)
                uid = got.headers.get(header, "")
                if got.status_code == 200 and got.json()["memories_used"] == ["zorya"]:
                    answered[uid] = note_actors().get(uid, {}).get("node")
            facts["answered"] = answered

            second = {"memories": [{"text": "Bo Tan works for Quinta Labs.", "memory_id": "second"}]}
            ack = c.post("/v1/memories", json=second, headers=admin)
            killed = ack.headers.get(header, "")
            os.kill(note_actors()[killed]["pid"], signal.SIGKILL)  # right after the acknowledgement
            os.kill(facts["store_pids"][-1], signal.SIGKILL)
            facts |= {"killed": killed, "ack": {"status": ack.status_code, **ack.json()}}
            facts["in_file"] = [m.memory_id for m in WakeStore(store_dir).unconsolidated()]
            listed: list = []
            deadline = time.time() + 60
            while time.time() < deadline and len(listed) < 2:  # through a live replica and the restarted actor
                page = c.get("/v1/memories", headers=admin)
                listed = [m["memory_id"] for m in page.json()["data"]] if page.status_code == 200 else []
                time.sleep(0.2)
            facts["listed"] = listed
            third = {"memories": [{"text": "Ana Vel lives in Miravel.", "memory_id": "third"}]}
            facts["after_restart"] = c.post("/v1/memories", json=third, headers=admin).status_code
        note_actors()
    finally:
        stop.set()
        facts |= {"fds_seen": fds_seen, "fd_samples": samples[0]}
        try:
            serve.shutdown()
            release(store_dir, "sleep_ray")
        finally:
            ray.shutdown()
            cluster.shutdown()
            if session_address:  # the address file names the cluster a plain ray.init() joins: the session's again
                write_ray_address(session_address)
            facts["seconds"] = round(time.time() - t0, 1)
            Path(result).write_text(json.dumps(facts, indent=1))
