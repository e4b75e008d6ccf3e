"""The sleep scheduler's safety rules, without Ray: the triggers back off after rejected or failed sleeps (and a
restart keeps the wait), and a rollback while a sleep runs wins over that sleep. A real store and config, a
swap that records its calls, and injected sleeps that crash or copy the serving checkpoint (the real gate then
judges the copy, with its thresholds open)."""

from __future__ import annotations

import shutil
import threading
import time

import pytest

from sleep_ray.config import load_config
from sleep_ray.wake.scheduler import SleepScheduler, ensure_base_version
from sleep_ray.wake.store import SleepRecord, WakeStore
from tests.helpers import ROOT

FACT = "Zorya Quill lives in Tarnholt."
OPEN_GATE = ["serve.gate.min_gain=-1", "serve.gate.min_retention=0", "serve.gate.min_reading=0"]


def _scheduler(run_dir, *extra, sleep):
    overrides = [f"run_dir={run_dir}", f"model.path={ROOT / 'examples' / 'tiny_base'}", *extra]
    cfg = load_config(None, [*overrides, "serve.gate.questions_per_memory=1", "serve.gate.rehearsal_questions=8"])
    store = WakeStore(run_dir / "wake")
    ensure_base_version(store, cfg.model.path)
    swaps: list[tuple[str, int]] = []
    return SleepScheduler(cfg, store, lambda ckpt, v: swaps.append((ckpt, v)), sleep), store, swaps


def _crash(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
    raise RuntimeError("the trainer ran out of memory")


def _copy(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
    shutil.copytree(parent, out)  # a real checkpoint (the serving one), for the real gate
    return 0.0


def _finish(scheduler: SleepScheduler, rec: SleepRecord | None) -> SleepRecord:
    assert rec is not None, "no sleep started"
    assert scheduler._thread is not None
    scheduler._thread.join(timeout=120)
    done = scheduler.store.get_sleep(rec.sleep_id)
    assert done is not None and not scheduler.busy()
    return done


def test_failed_sleeps_back_off_doubling_up_to_the_cap_but_not_a_manual_start(tmp_path):
    extra = ["serve.sleep_after_memories=1", "serve.sleep_backoff_s=30", "serve.sleep_backoff_max_s=100"]
    scheduler, store, swaps = _scheduler(tmp_path, *extra, sleep=_crash)
    store.add_memories([(FACT, "document", "zorya")])
    assert scheduler.backoff_until() is None
    first = _finish(scheduler, scheduler.tick())  # no failure yet: the count trigger starts at once
    assert first.status == "failed" and "out of memory" in first.info["error"]
    assert scheduler.tick() is None and not scheduler.busy()  # the memory is still there, but the trigger waits
    assert scheduler.backoff_until() == pytest.approx(first.updated + 30)

    second = _finish(scheduler, scheduler.start("POST /v1/sleep"))  # a manual start does not wait
    assert second.status == "failed"
    assert scheduler.backoff_until() == pytest.approx(second.updated + 60)  # two in a row: doubled
    third = _finish(scheduler, scheduler.start("POST /v1/sleep"))
    assert scheduler.backoff_until() == pytest.approx(third.updated + 100)  # 120, capped by sleep_backoff_max_s
    assert scheduler.tick() is None and not scheduler.busy()
    assert swaps == [] and store.active_version() == 0
    assert [m.memory_id for m in store.unconsolidated()] == ["zorya"]

    no_wait, _, _ = _scheduler(tmp_path, "serve.sleep_after_memories=1", "serve.sleep_backoff_s=0", sleep=_crash)
    assert no_wait.backoff_until() is None
    assert _finish(no_wait, no_wait.tick()).status == "failed"  # backoff 0: the tick starts at once


def test_backoff_survives_a_restart_ends_in_time_and_resets_after_a_swap(tmp_path):
    extra = ["serve.sleep_after_memories=1", "serve.sleep_backoff_s=30"]
    scheduler, store, _ = _scheduler(tmp_path, *extra, sleep=_crash)
    store.add_memories([(FACT, "document", "zorya")])
    failed = _finish(scheduler, scheduler.start("POST /v1/sleep"))

    restarted, _, _ = _scheduler(tmp_path, *extra, sleep=_crash)  # a new endpoint on the same store
    assert restarted.backoff_until() == pytest.approx(failed.updated + 30)
    assert restarted.tick() is None and not restarted.busy()

    now = time.time()  # recorded history: a swap ends the run of failures; the wait counts from the last one
    store.put_sleep(SleepRecord("sleep-0100", "swapped", now + 1, now + 1, {}))
    assert restarted.backoff_until() is None
    store.put_sleep(SleepRecord("sleep-0101", "rejected", now + 2, now - 29, {}))
    store.put_sleep(SleepRecord("sleep-0102", "failed", now + 3, now - 31, {}))  # 2 in a row: 60 s from its end
    assert restarted.backoff_until() == pytest.approx(now - 31 + 60)
    store.put_sleep(SleepRecord("sleep-0103", "rejected", now + 4, now - 121, {}))  # 3 in a row: 120 s, over
    assert restarted.backoff_until() is None
    assert _finish(restarted, restarted.tick()).status == "failed"  # the wait is over: the trigger fires again


def test_rollback_while_a_sleep_runs_discards_that_sleep(tmp_path):
    entered, release = threading.Event(), threading.Event()

    def copy_when_released(cfg, parent, memories, out, version, on_stage, recall=()) -> float:
        if version == 2:
            entered.set()
            assert release.wait(60)
        return _copy(cfg, parent, memories, out, version, on_stage)

    scheduler, store, swaps = _scheduler(tmp_path, *OPEN_GATE, sleep=copy_when_released)
    store.add_memories([(FACT, "document", "zorya")])
    first = _finish(scheduler, scheduler.start("first night"))  # version 1, to roll back from
    assert first.status == "swapped", first.info
    assert store.active_version() == 1 and [v for _, v in swaps] == [1]

    store.add_memories([("Zorya Quill works as a baker.", "document", "baker")])
    second = scheduler.start("second night")
    assert entered.wait(30)
    target = scheduler.rollback()  # while the second sleep trains on version 1
    assert target.version == 0 and store.active_version() == 0
    release.set()
    done = _finish(scheduler, second)

    assert done.status == "rejected", done.info
    assert "discarded" in done.info["why"] and "version 0" in done.info["why"]
    assert swaps[-1] == (target.checkpoint, 0) and len(swaps) == 2  # nothing swapped after the rollback
    assert store.active_version() == 0 and [v.version for v in store.versions()] == [0, 1]
    assert store.get_sleep(first.sleep_id).status == "rolled_back"
    assert [m.memory_id for m in store.unconsolidated()] == ["zorya", "baker"]  # baker was never consumed


def test_rollback_waits_for_a_swap_in_progress_then_undoes_it(tmp_path):
    scheduler, store, _ = _scheduler(tmp_path, *OPEN_GATE, sleep=_copy)
    swapping, release, swaps = threading.Event(), threading.Event(), []

    def slow_swap(ckpt: str, version: int) -> None:
        if version == 1:
            swapping.set()
            assert release.wait(60)
        swaps.append((ckpt, version))

    scheduler.swap = slow_swap
    store.add_memories([(FACT, "document", "zorya")])
    rec = scheduler.start("night")
    assert swapping.wait(120)  # the sleep holds the lock through its swap
    rolled: list[int] = []
    rollback = threading.Thread(target=lambda: rolled.append(scheduler.rollback().version), daemon=True)
    rollback.start()
    rollback.join(timeout=0.5)
    assert rollback.is_alive() and not rolled  # it waits: no rollback between the swap and its record
    release.set()
    rollback.join(timeout=30)
    assert rolled == [0] and [v for _, v in swaps] == [1, 0]
    assert _finish(scheduler, rec).status == "rolled_back"  # recorded as swapped, then rolled back
    assert store.active_version() == 0 and [m.memory_id for m in store.unconsolidated()] == ["zorya"]
