"""The knowledge ledger and the night's plan, on a real store: where a memory stands, what a night replays."""

from __future__ import annotations

from sleep_ray.wake.ledger import KnowledgeLedger, RegressionProbe
from sleep_ray.wake.night import plan_night, regression_sample
from sleep_ray.wake.store import WakeStore


def _store(tmp_path, n: int) -> WakeStore:
    store = WakeStore(tmp_path)
    store.add_memories([(f"Person {i} lives in Town {i}.", "document", f"m{i}") for i in range(n)])
    return store


def test_settle_moves_memories_between_weights_and_context(tmp_path):
    store = _store(tmp_path, 3)
    ledger = KnowledgeLedger(store)
    ledger.set_probes(
        [RegressionProbe("m0", "Where does Person 0 live?", "Town 0"), RegressionProbe("m1", "q1", "a1")], "sleep-1"
    )
    kept, back = ledger.settle({"m0": 1.0, "m1": 0.25}, threshold=0.5, sleep_id="sleep-1")
    assert (kept, back) == (["m0"], ["m1"])
    assert [m.memory_id for m in store.unconsolidated()] == ["m1", "m2"]  # retrieval reads these
    k = ledger.knowledge(["m0", "m1", "unknown"])
    assert set(k) == {"m0", "m1"}
    assert (k["m0"].status, k["m0"].held, k["m0"].probes) == ("weights", 1.0, 1)
    assert (k["m1"].status, k["m1"].held) == ("context", 0.25)
    # a later night finds m0's probes failing: back in context, and its consolidating sleep is forgotten
    ledger.settle({"m0": 0.0}, threshold=0.5, sleep_id="sleep-2")
    assert "m0" in [m.memory_id for m in store.unconsolidated()]
    # replacing probes replaces them all
    ledger.set_probes([RegressionProbe("m0", "Who lives in Town 0?", "Person 0")], "sleep-2")
    assert ledger.probes(["m0"]) == [RegressionProbe("m0", "Who lives in Town 0?", "Person 0")]


def test_settle_keeps_the_first_consolidating_sleep(tmp_path):
    store = _store(tmp_path, 1)
    ledger = KnowledgeLedger(store)
    ledger.settle({"m0": 1.0}, threshold=0.5, sleep_id="sleep-1")
    ledger.settle({"m0": 0.75}, threshold=0.5, sleep_id="sleep-2")
    assert store.consolidated()[0].consumed_by == "sleep-1"  # a rollback of sleep-2 does not take it back


def test_plan_takes_every_new_memory_then_retries_then_a_rotating_replay(tmp_path):
    store = _store(tmp_path, 6)
    ledger = KnowledgeLedger(store)
    assert [m.memory_id for m in plan_night(store, replay=2)] == [f"m{i}" for i in range(6)]
    ledger.note_slept([f"m{i}" for i in range(6)])
    ledger.settle({"m0": 1.0, "m1": 1.0, "m2": 1.0, "m3": 1.0, "m4": 0.0, "m5": 0.0}, 0.5, "sleep-1")
    store.add_memories([("Person 9 lives in Town 9.", "document", "m9")])
    ledger.note_slept(["m5"])  # m5 has been tried more often than m4: m4 comes first
    assert [m.memory_id for m in plan_night(store, replay=1)] == ["m4", "m9"]
    assert [m.memory_id for m in plan_night(store, replay=3)] == ["m0", "m4", "m5", "m9"]
    ledger.note_slept(["m0"])  # the rotation moves on to the least recently slept memory in the weights
    assert [m.memory_id for m in plan_night(store, replay=3)] == ["m1", "m4", "m5", "m9"]
    assert [m.memory_id for m in plan_night(store, replay=0)] == ["m9"]


def test_regression_sample_asks_the_least_recently_checked_first(tmp_path):
    store = _store(tmp_path, 4)
    ledger = KnowledgeLedger(store)
    ledger.settle({"m0": 1.0, "m1": 1.0, "m2": 1.0}, 0.5, "sleep-1")
    ledger.settle({"m0": 1.0}, 0.5, "sleep-2")  # checked again later
    assert regression_sample(store, set(), 2) == ["m1", "m2"]
    assert regression_sample(store, {"m1"}, 0) == ["m2", "m0"]
