"""The sleep scheduler: decides when to sleep, runs the sleep beside serving, gates the result, swaps it in.

One instance lives in the Serve application's `SleepController` deployment (a single replica). A sleep starts
when asked (`POST /v1/sleep`), when the unconsolidated memories reach `serve.sleep_after_memories`, or when no
request has arrived for `serve.sleep_when_idle_s`. It runs in a background thread of that replica, driving the
same `run_seeding` and (with `serve.sleep_dreaming`) `run_dreaming` as `sleep-ray sleep` (`sleep_stages`; their
actors and Ray Train workers take their own Ray resources), so the serving replicas keep answering throughout.
Then:

    sleep ok ─> eval gate ─ pass ─> still serving the version it started from, no rollback since?
                          │           ├ yes ─> new version recorded, swap (every replica),
                          │           │        memories marked consumed:                             "swapped"
                          │           └ no ──> result discarded, the rolled-back model stays:        "rejected"
                          └ fail ─> serving model untouched, memories stay in context:               "rejected"
    sleep raised ─────────────────> serving model untouched, error kept in the record:               "failed"

After n "rejected" or "failed" sleeps in a row (the store's sleep list, so a restart keeps them) the triggers
wait `serve.sleep_backoff_s * 2**(n-1)`, at most `serve.sleep_backoff_max_s`, from the end of the last one
(`backoff_until()`); a "swapped" sleep ends the run, and `POST /v1/sleep` does not wait.

`rollback()` swaps back to the previous version and returns the memories that version had consumed to context.
It and the recording of a sleep's version (add, swap, activate, mark consumed) hold the same lock, so neither
interleaves with the other. Everything the scheduler decides is written to the `WakeStore` first, so a
restarted endpoint knows it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sleep_ray.config import Config
from sleep_ray.wake.night import (
    NightResult,
    Sleep,
    ensure_base_version,
    night_info,
    plan_night,
    run_night,
    sleep_stages,
)
from sleep_ray.wake.store import SleepRecord, StoredMemory, VersionRecord, WakeStore

__all__ = [
    "NoEarlierVersionError",
    "NothingToSleepOnError",
    "SleepBusyError",
    "SleepScheduler",
    "ensure_base_version",
    "sleep_stages",
]

Swap = Callable[[str, int], None]  # (checkpoint, version) -> returns once every replica serves it
BACKOFF_STATUSES = ("rejected", "failed")  # a run of these at the end of the sleep list makes the triggers wait
log = logging.getLogger(__name__)


class SleepBusyError(RuntimeError):
    """A sleep is already running."""


class NothingToSleepOnError(RuntimeError):
    """No unconsolidated memories."""


class NoEarlierVersionError(RuntimeError):
    """A rollback was asked for, but the serving version is the first one."""


class SleepScheduler:
    def __init__(self, cfg: Config, store: WakeStore, swap: Swap, sleep: Sleep = sleep_stages):
        self.cfg, self.store, self.swap, self.sleep = cfg, store, swap, sleep
        self.root = Path(cfg.run_dir) / "wake"
        self.last_activity = time.time()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._rollbacks = 0  # rollback() calls so far: a sleep that saw one start after it began is discarded
        self._backoff_logged: float | None = None
        for rec in store.list_sleeps():  # a sleep that was running when the endpoint died did not finish
            if rec.status in ("queued", "running", "gating"):
                self._put(rec, "failed", error="the endpoint stopped during this sleep")

    # -------------------------------------------------------------------------------------------- triggers

    def touch(self) -> None:
        self.last_activity = time.time()

    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def tick(self) -> SleepRecord | None:
        """Start a sleep if a trigger fires (count or idle); called every `serve.scheduler_poll_s`."""
        s = self.cfg.serve
        if self.busy():
            return None
        n = self.store.count_unconsolidated()
        reason: str | None = None
        if n and s.sleep_after_memories and n >= s.sleep_after_memories:
            reason = f"{n} unconsolidated memories"
        elif n and s.sleep_when_idle_s and time.time() - self.last_activity >= s.sleep_when_idle_s:
            reason = f"idle for {time.time() - self.last_activity:.0f} s"
        if reason is None:
            return None
        until = self.backoff_until()
        if until is not None:
            if until != self._backoff_logged:  # once per wait, not every poll
                self._backoff_logged = until
                log.info("sleep trigger (%s) waits until %.0f: the last sleeps were rejected or failed", reason, until)
            return None
        return self.start(reason)

    def backoff_until(self) -> float | None:
        """The unix time until which the triggers wait after rejected or failed sleeps in a row, or None."""
        s = self.cfg.serve
        sleeps = self.store.list_sleeps()
        n = 0
        while n < len(sleeps) and sleeps[-1 - n].status in BACKOFF_STATUSES:
            n += 1
        if not n or s.sleep_backoff_s <= 0:
            return None
        until = sleeps[-1].updated + min(s.sleep_backoff_s * 2.0 ** min(n - 1, 64), s.sleep_backoff_max_s)
        return until if until > time.time() else None

    # ------------------------------------------------------------------------------------------------ sleep

    def start(self, reason: str) -> SleepRecord:
        """Plan the night's memories (`plan_night`: those in context, and a replay of earlier ones) and sleep on
        them in a background thread."""
        with self._lock:
            if self.busy():
                raise SleepBusyError("a sleep is already running")
            if not self.store.count_unconsolidated():
                raise NothingToSleepOnError("no unconsolidated memories to sleep on")
            memories = plan_night(self.store, self.cfg.sleep.lifelong.replay_memories)
            version = max(r.version for r in self.store.versions()) + 1
            sleep_id = f"sleep-{len(self.store.list_sleeps()) + 1:04d}"
            out = self._checkpoint(version)
            info = {"reason": reason, "version": version, "memories": [m.memory_id for m in memories]}
            rec = SleepRecord(sleep_id, "queued", time.time(), time.time(), info)
            self.store.put_sleep(rec)
            self.store.export_stream(memories, self.root / "sleeps" / sleep_id / "memories.parquet", cycle=version)
            args = (rec, memories, out, self._rollbacks)
            self._thread = threading.Thread(target=self._run, args=args, daemon=True)
            self._thread.start()
            return rec

    def _checkpoint(self, version: int) -> Path:
        """Where the sleep that makes `version` writes its checkpoint (metrics beside it, in `<dir>.logs`)."""
        return self.root / "checkpoints" / f"v{version}"

    def _put(self, rec: SleepRecord, status: str, **info: Any) -> SleepRecord:
        new = SleepRecord(rec.sleep_id, status, rec.created, time.time(), {**rec.info, **info})
        self.store.put_sleep(new)
        return new

    def _run(self, rec: SleepRecord, memories: list[StoredMemory], out: Path, rollbacks_at_start: int) -> None:
        version = int(rec.info["version"])
        serving = ensure_base_version(self.store, self.cfg.model.path)
        try:
            rec = self._put(rec, "running", parent=serving.checkpoint, stage="seeding")

            def on_stage(stage: str) -> None:
                nonlocal rec
                rec = self._put(rec, "running", stage=stage)

            def commit(v: int, checkpoint: str, finish: Callable[[], NightResult]) -> str | None:
                with self._lock:  # a rollback waits for the swap, or the swap sees the rollback
                    why = self._may_swap(serving.version, rollbacks_at_start)
                    if why is None:
                        self.store.add_version(v, checkpoint, {"sleep_id": rec.sleep_id})
                        self.swap(checkpoint, v)
                        self.store.set_active(v)
                        self._put(rec, "swapped", checkpoint=checkpoint, **night_info(finish()))
                    return why

            night = run_night(
                self.cfg, self.store, sleep_id=rec.sleep_id, version=version, serving=serving.checkpoint,
                memories=memories, out=out, sleep=self.sleep, commit=commit, on_stage=on_stage,
            )  # fmt: skip
            if night.status != "swapped":
                self._put(rec, "rejected", checkpoint=str(out), **night_info(night))
        except Exception as e:  # the serving model is untouched: say why, keep the memories in context
            self._put(rec, "failed", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-2000:])

    def _may_swap(self, started_version: int, rollbacks_at_start: int) -> str | None:
        """Why a sleep that started on `started_version` must not be served (None: it may). Under `_lock`."""
        active = self.store.active_version()
        if active != started_version or self._rollbacks != rollbacks_at_start:
            return f"discarded: rolled back to version {active} while this sleep ran"
        return None

    def status(self, sleep_id: str) -> SleepRecord | None:
        """The stored record, with live progress (steps done of steps) while it trains."""
        rec = self.store.get_sleep(sleep_id)
        if rec is None or rec.status != "running":
            return rec
        out = self._checkpoint(int(rec.info["version"]))
        dreaming = rec.info.get("stage") == "dreaming"
        metrics = out.with_name(out.name + (".dream.logs" if dreaming else ".logs")) / "metrics.jsonl"
        if metrics.is_file():
            lines = metrics.read_text().splitlines()
            last = json.loads(lines[-1]) if lines else {}
            steps = self.cfg.sleep.dreaming.rehearsal_steps if dreaming else self.cfg.sleep.seeding.steps
            extra = {"step": last.get("step", 0), "steps": steps, "progress": last.get("step", 0) / max(1, steps)}
            return SleepRecord(rec.sleep_id, rec.status, rec.created, rec.updated, {**rec.info, **extra, **last})
        return rec

    # ---------------------------------------------------------------------------------------------- rollback

    def rollback(self) -> VersionRecord:
        """Serve the version before the active one again; its memories go back into context."""
        with self._lock:
            active = self.store.active_version()
            older = [r for r in self.store.versions() if active is not None and r.version < active]
            if not older:
                raise NoEarlierVersionError(f"no version before {active} to roll back to")
            target = older[-1]
            self._rollbacks += 1  # even if the swap fails: a running sleep began on a model being replaced
            self.swap(target.checkpoint, target.version)
            self.store.set_active(target.version)
            for rec in self.store.list_sleeps():
                if rec.status == "swapped" and int(rec.info.get("version", -1)) > target.version:
                    self.store.unmark_consumed(rec.sleep_id)
                    self._put(rec, "rolled_back")
            return target
