"""The wake store: memories, sleeps and versions in one SQLite file, durable once acknowledged."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from sleep_ray.data.schema import read_stream
from sleep_ray.wake.ledger import KnowledgeLedger
from sleep_ray.wake.store import SleepRecord, StoredMemory, WakeStore

ROOT = Path(__file__).resolve().parents[2]


def _fill(store: WakeStore, n: int) -> list[StoredMemory]:
    return store.add_memories([(f"Memory number {i}.", "document", f"m{i}") for i in range(n)])


def test_add_and_list_memories(tmp_path):
    store = WakeStore(tmp_path / "wake")
    assert (tmp_path / "wake" / "wake.sqlite").exists()
    added = store.add_memories([("Alice lives in Miravel.", "document", None), ("Bob moved.", "update", "b1")])
    assert added[0].memory_id.startswith("mem-") and len(added[0].memory_id) == 16
    assert added[1] == StoredMemory(added[1].seq, "b1", "update", "Bob moved.", added[1].created, None)
    assert added[0].seq < added[1].seq
    page, total = store.list_memories()
    assert page == added and total == 2
    assert store.add_memories([]) == []


def test_paging_and_consumed_filter(tmp_path):
    store = WakeStore(tmp_path)
    added = _fill(store, 7)
    page, total = store.list_memories(offset=2, limit=3)
    assert [m.memory_id for m in page] == ["m2", "m3", "m4"] and total == 7
    assert store.list_memories(offset=6, limit=3) == ([added[6]], 7)
    assert store.list_memories(offset=10) == ([], 7)
    KnowledgeLedger(store).settle({"m1": 1.0, "m3": 1.0}, threshold=0.5, sleep_id="sleep-1")  # held: in weights
    consumed, n_consumed = store.list_memories(consumed=True)
    assert [m.memory_id for m in consumed] == ["m1", "m3"] and n_consumed == 2
    assert all(m.consumed_by == "sleep-1" for m in consumed)
    fresh, n_fresh = store.list_memories(consumed=False, limit=2)
    assert [m.memory_id for m in fresh] == ["m0", "m2"] and n_fresh == 5
    assert [m.memory_id for m in store.unconsolidated()] == ["m0", "m2", "m4", "m5", "m6"]
    assert store.count_unconsolidated() == 5
    with pytest.raises(ValueError):
        store.list_memories(offset=-1)
    assert store.unmark_consumed("sleep-1") == 2  # a rolled-back sleep gives its memories back
    assert store.count_unconsolidated() == 7 and store.unmark_consumed("sleep-1") == 0


@pytest.mark.parametrize(
    ("items", "message"),
    [
        ([("new one", "document", "x"), ("dup in store", "document", "m1")], "duplicate memory_id 'm1'"),
        ([("a", "document", "y"), ("b", "dialogue", "y")], "duplicate memory_id 'y'"),
        ([("a", "document", "z"), ("b", "diary", None)], "memory kind 'diary'"),
        ([("a", "document", "z"), ("  \n", "document", None)], "empty text"),
        ([("a", "document", " ")], "memory_id must be a non-empty string"),
    ],
)
def test_bad_items_write_nothing(tmp_path, items, message):
    store = WakeStore(tmp_path)
    _fill(store, 2)
    with pytest.raises(ValueError, match=message):
        store.add_memories(items)
    page, total = store.list_memories()
    assert total == 2 and [m.memory_id for m in page] == ["m0", "m1"]


def test_export_stream_round_trips_through_parquet(tmp_path):
    store = WakeStore(tmp_path / "wake")
    added = store.add_memories(
        [("Alice lives in Miravel.", "document", None), ("User: hi\nBot: hello", "dialogue", "d1")]
    )
    path = store.export_stream(added, tmp_path / "sleep" / "stream.parquet", cycle=3)
    assert path == tmp_path / "sleep" / "stream.parquet"
    back = read_stream(path)
    assert [(m.cycle, m.memory_id, m.kind, m.text, m.probes) for m in back] == [
        (3, m.memory_id, m.kind, m.text, ()) for m in added
    ]


def test_sleeps(tmp_path):
    store = WakeStore(tmp_path)
    assert store.get_sleep("s1") is None and store.list_sleeps() == []
    first = SleepRecord("s1", "queued", 10.0, 10.0, {"memories": 3})
    store.put_sleep(first)
    store.put_sleep(SleepRecord("s2", "queued", 20.0, 20.0, {}))
    done = SleepRecord("s1", "swapped", 10.0, 30.0, {"memories": 3, "gate": {"closed_book": 0.5}})
    store.put_sleep(done)
    assert store.get_sleep("s1") == done
    assert [s.sleep_id for s in store.list_sleeps()] == ["s1", "s2"]
    with pytest.raises(ValueError, match="sleep status 'dozing'"):
        SleepRecord("s3", "dozing", 0.0, 0.0, {})


def test_versions_and_active(tmp_path):
    store = WakeStore(tmp_path)
    assert store.versions() == [] and store.active_version() is None
    store.add_version(1, "runs/x/cycle-1", {"sleep_id": "s1"})
    v0 = store.add_version(0, "examples/tiny_base", {})
    assert [v.version for v in store.versions()] == [0, 1]
    assert store.versions()[0] == v0 and store.versions()[1].info == {"sleep_id": "s1"}
    with pytest.raises(ValueError, match="version 1 is already recorded"):
        store.add_version(1, "elsewhere", {})
    with pytest.raises(ValueError, match="version 5 is not recorded"):
        store.set_active(5)
    assert store.active_version() is None
    store.set_active(0)
    store.set_active(1)
    assert store.active_version() == 1


def test_two_stores_on_one_directory_see_each_other(tmp_path):
    a, b = WakeStore(tmp_path), WakeStore(tmp_path)
    [m] = a.add_memories([("Alice lives in Miravel.", "document", None)])
    assert b.list_memories() == ([m], 1)
    KnowledgeLedger(b).settle({m.memory_id: 1.0}, threshold=0.5, sleep_id="s1")
    assert a.count_unconsolidated() == 0
    b.add_version(0, "base", {})
    a.set_active(0)
    assert b.active_version() == 0


def test_threads_share_one_store(tmp_path):
    store = WakeStore(tmp_path)

    def add(t: int) -> None:
        for i in range(5):
            store.add_memories([(f"thread {t} memory {i}", "document", f"t{t}-{i}")])

    threads = [threading.Thread(target=add, args=(t,)) for t in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    page, total = store.list_memories(limit=100)
    assert total == 20 and len({m.seq for m in page}) == 20


_WRITER = """
import sys, time
from sleep_ray.wake.store import WakeStore
[memory] = WakeStore(sys.argv[1]).add_memories([("Alice Varga lives in Miravel.", "document", None)])
print("ACK", memory.memory_id, flush=True)
time.sleep(3600)
"""


def test_acknowledged_memory_survives_kill_9(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(tmp_path / "wake")], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "the writer did not acknowledge within 120 s"
        assert proc.stdout is not None
        line = proc.stdout.readline().split()
        assert len(line) == 2 and line[0] == "ACK", line
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    page, total = WakeStore(tmp_path / "wake").list_memories()
    assert total == 1 and page[0].memory_id == line[1] and page[0].text == "Alice Varga lives in Miravel."
