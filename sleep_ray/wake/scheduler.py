"""The sleep scheduler: decides when to sleep, runs the sleep beside serving, gates the result, swaps it in.

One instance lives in the Serve application's `SleepController` deployment (a single replica). A sleep starts
when asked (`POST /v1/sleep`), when the unconsolidated memories reach `serve.sleep_after_memories`, or when no
request has arrived for `serve.sleep_when_idle_s`. It runs in a background thread of that replica, driving the
same `run_seeding` and (with `serve.sleep_dreaming`) `run_dreaming` as `sleep-ray sleep` (`sleep_stages`; their
actors and Ray Train workers take their own Ray resources), so the serving replicas keep answering throughout.
Then:

    sleep ok ─> eval gate ─ pass ─> new version recorded, swap (every replica), memories marked consumed: "swapped"
                          └ fail ─> serving model untouched, memories stay in context:               "rejected"
    sleep raised ─────────────────> serving model untouched, error kept in the record:               "failed"

`rollback()` swaps back to the previous version and returns the memories that version had consumed to context.
Everything the scheduler decides is written to the `WakeStore` first, so a restarted endpoint knows it.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sleep_ray.config import Config
from sleep_ray.data.schema import Memory
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.wake.gate import run_gate
from sleep_ray.wake.store import SleepRecord, StoredMemory, VersionRecord, WakeStore

Swap = Callable[[str, int], None]  # (checkpoint, version) -> returns once every replica serves it
# (cfg, serving checkpoint, memories, out_dir, version, on_stage) -> seconds slept, the slept checkpoint in out_dir
Sleep = Callable[[Config, str, list[Memory], Path, int, Callable[[str], None]], float]


def sleep_stages(
    cfg: Config, parent: str, memories: list[Memory], out: Path, version: int, on_stage: Callable[[str], None]
) -> float:
    """The sleep itself: Knowledge Seeding, then (with `serve.sleep_dreaming`) Dreaming, into `out`."""
    from sleep_ray.dream.run import run_dreaming
    from sleep_ray.sleep.run import run_seeding

    result = run_seeding(cfg, checkpoint=parent, memories=memories, out_dir=out, cycle=version, version=version)
    seconds = float(result.record["timings"]["total_s"])
    if cfg.serve.sleep_dreaming and cfg.sleep.dreaming.enabled:  # stage 2, the same version
        on_stage("dreaming")
        result = run_dreaming(cfg, parent=parent, seeded=out, memories=memories, out_dir=out, cycle=version)
        seconds += float(result.record["dreaming"]["timings"]["total_s"])
    return seconds


class SleepBusyError(RuntimeError):
    """A sleep is already running."""


class NothingToSleepOnError(RuntimeError):
    """No unconsolidated memories."""


def ensure_base_version(store: WakeStore, checkpoint: str) -> VersionRecord:
    """On a fresh store, record the configured checkpoint as the first served version; return the active one."""
    if store.active_version() is None:
        v = read_meta(checkpoint).version
        store.add_version(v, str(Path(checkpoint).resolve()), {"producer": "base"})
        store.set_active(v)
    active = store.active_version()
    return next(r for r in store.versions() if r.version == active)


class SleepScheduler:
    def __init__(self, cfg: Config, store: WakeStore, swap: Swap, sleep: Sleep = sleep_stages):
        self.cfg, self.store, self.swap, self.sleep = cfg, store, swap, sleep
        self.root = Path(cfg.run_dir) / "wake"
        self.last_activity = time.time()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
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
        if n and s.sleep_after_memories and n >= s.sleep_after_memories:
            return self.start(f"{n} unconsolidated memories")
        if n and s.sleep_when_idle_s and time.time() - self.last_activity >= s.sleep_when_idle_s:
            return self.start(f"idle for {time.time() - self.last_activity:.0f} s")
        return None

    # ------------------------------------------------------------------------------------------------ sleep

    def start(self, reason: str) -> SleepRecord:
        """Snapshot the unconsolidated memories and sleep on them in a background thread."""
        with self._lock:
            if self.busy():
                raise SleepBusyError("a sleep is already running")
            memories = self.store.unconsolidated()
            if not memories:
                raise NothingToSleepOnError("no unconsolidated memories to sleep on")
            version = max(r.version for r in self.store.versions()) + 1
            sleep_id = f"sleep-{len(self.store.list_sleeps()) + 1:04d}"
            out = self._checkpoint(version)
            info = {"reason": reason, "version": version, "memories": [m.memory_id for m in memories]}
            rec = SleepRecord(sleep_id, "queued", time.time(), time.time(), info)
            self.store.put_sleep(rec)
            self.store.export_stream(memories, self.root / "sleeps" / sleep_id / "memories.parquet", cycle=version)
            self._thread = threading.Thread(target=self._run, args=(rec, memories, out), daemon=True)
            self._thread.start()
            return rec

    def _checkpoint(self, version: int) -> Path:
        """Where the sleep that makes `version` writes its checkpoint (metrics beside it, in `<dir>.logs`)."""
        return self.root / "checkpoints" / f"v{version}"

    def _put(self, rec: SleepRecord, status: str, **info: Any) -> SleepRecord:
        new = SleepRecord(rec.sleep_id, status, rec.created, time.time(), {**rec.info, **info})
        self.store.put_sleep(new)
        return new

    def _run(self, rec: SleepRecord, memories: list[StoredMemory], out: Path) -> None:
        version = int(rec.info["version"])
        serving = ensure_base_version(self.store, self.cfg.model.path)
        mems = [Memory(version, m.memory_id, m.kind, m.text) for m in memories]
        try:
            rec = self._put(rec, "running", parent=serving.checkpoint, stage="seeding")

            def on_stage(stage: str) -> None:
                nonlocal rec
                rec = self._put(rec, "running", stage=stage)

            sleep_s = self.sleep(self.cfg, serving.checkpoint, mems, out, version, on_stage)
            rec = self._put(rec, "gating", checkpoint=str(out), sleep_s=sleep_s)
            gate = run_gate(serving.checkpoint, str(out), mems, self.cfg.serve.gate, self.cfg.eval.max_new_tokens)
            if not gate.passed:
                self._put(rec, "rejected", gate=gate.metrics, why=gate.reason)
                return
            self.store.add_version(version, str(out.resolve()), {"sleep_id": rec.sleep_id, "gate": gate.metrics})
            self.swap(str(out.resolve()), version)
            self.store.set_active(version)
            self.store.mark_consumed([m.memory_id for m in memories], rec.sleep_id)
            self._put(rec, "swapped", gate=gate.metrics, why=gate.reason)
        except Exception as e:  # the serving model is untouched: say why, keep the memories in context
            self._put(rec, "failed", error=f"{type(e).__name__}: {e}", trace=traceback.format_exc()[-2000:])

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
                raise NothingToSleepOnError(f"no version before {active} to roll back to")
            target = older[-1]
            self.swap(target.checkpoint, target.version)
            self.store.set_active(target.version)
            for rec in self.store.list_sleeps():
                if rec.status == "swapped" and int(rec.info.get("version", -1)) > target.version:
                    self.store.unmark_consumed(rec.sleep_id)
                    self._put(rec, "rolled_back")
            return target
