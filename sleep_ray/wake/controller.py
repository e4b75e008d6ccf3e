"""The wake endpoint's one scheduler replica (`SleepController`): triggers, runs and gates sleeps, swaps replicas.

It lives on the head node (it swaps through the head's dashboard). Its polling task runs the automatic triggers
every `serve.scheduler_poll_s`; an exception there is logged with its traceback and the next poll goes on, so
the automatic sleep never stops silently.
"""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path
from typing import Any

from ray import serve

from sleep_ray.wake.deploy import Swapper, serve_config
from sleep_ray.wake.scheduler import (
    NoEarlierVersionError,
    NothingToSleepOnError,
    SleepBusyError,
    SleepScheduler,
    ensure_base_version,
)
from sleep_ray.wake.server import config_of, store_of
from sleep_ray.wake.store import SleepRecord

log = logging.getLogger(__name__)


async def poll_forever(tick: Any, every_s: float) -> None:
    """Call `tick()` in a worker thread every `every_s` seconds, forever; an exception is logged, never fatal."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await asyncio.to_thread(tick)
        except (SleepBusyError, NothingToSleepOnError):
            pass
        except Exception:
            log.exception("the sleep scheduler's poll failed; polling goes on")


@serve.deployment
class SleepController:
    """The single scheduler replica."""

    def __init__(self, args: dict[str, Any]):
        self.cfg = config_of(args)
        s = self.cfg.serve
        store = store_of(self.cfg)
        active = ensure_base_version(store, self.cfg.model.path)
        path = Path(args["serve_config"])
        if not path.is_file():  # deployed by `serve deploy` or a RayService, not by `sleep-ray serve`: swaps need it
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(serve_config(self.cfg, args, active.checkpoint, active.version), indent=2))
        swap = Swapper(args["dashboard"], f"http://{s.host}:{s.port}", path, s.replicas)
        self.scheduler = SleepScheduler(self.cfg, store, swap)
        self._loop = asyncio.get_event_loop().create_task(poll_forever(self.scheduler.tick, s.scheduler_poll_s))

    async def touch(self) -> None:
        self.scheduler.touch()

    async def start(self, reason: str) -> tuple[int, Any]:
        try:
            return 202, await asyncio.to_thread(self.scheduler.start, reason)
        except (SleepBusyError, NothingToSleepOnError) as e:
            return 409, str(e)

    async def status(self, sleep_id: str) -> SleepRecord | None:
        return await asyncio.to_thread(self.scheduler.status, sleep_id)

    async def rollback(self) -> tuple[int, Any]:
        try:
            return 200, await asyncio.to_thread(self.scheduler.rollback)
        except NoEarlierVersionError as e:
            return 409, str(e)
        except Exception as e:  # a failed swap leaves the version as it was
            return 409, f"rollback failed: {type(e).__name__}: {e}"
