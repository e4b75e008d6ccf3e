"""The wake store as one Ray actor, so every replica of the endpoint reads and writes the same memories on any node.

A `WakeStore` is one SQLite file: safe to share between the processes of one node, not between nodes (a replica
on another node would open a different file, or SQLite over a network filesystem, which is unsafe for
concurrent writers). So one actor, `WakeStoreActor`, owns `<directory>/wake.sqlite` and the endpoint's replicas
(on any node) call it through `SharedStore`, never opening the file themselves:

    store = SharedStore.connect(Path(cfg.run_dir) / "wake", cfg.serve.app_name)   # blocking, once
    stored = await store.add_memories([(text, kind, memory_id)])                   # returns after the commit
    mems = await store.unconsolidated()

The actor is named after the application and a hash of the store directory (namespace `NAMESPACE`), so two
applications, or one application relaunched on another run directory, never share an actor by mistake; it also
checks the directory it was asked for. Whoever connects first creates it. It is detached, because its creator
(a replica) may die while others use it, and restarts without limit: a restart reopens the same file, and every
acknowledged write committed before its call returned. A read in flight when the actor dies is retried on the
restarted actor; a write is not (it may have committed), so its caller sees `StoreUnavailableError`. It lives on
the head node (`HEAD_NODE`), beside the `SleepController`, which therefore keeps opening the file
directly. `release` removes the actor once its application is deleted.

Errors the store raises (ValueError for a duplicate memory id, ...) reach the caller as the same exception.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Sequence
from pathlib import Path
from typing import Any, TypeVar

import ray
from ray.exceptions import GetTimeoutError, RayActorError, RayTaskError

from sleep_ray.wake.ledger import Knowledge, KnowledgeLedger
from sleep_ray.wake.store import StoredMemory, VersionRecord, WakeStore

NAMESPACE = "sleep_ray"
TIMEOUT_S = 30.0  # one call, including an actor restart; SQLite's own busy wait is 10 s
READ_RETRIES = 3  # times a read is resent to a restarted actor
MAX_CONCURRENCY = 16  # calls the actor runs at once (threads; each call opens its own SQLite connection)
# Ray's built-in resource of the head node, where `deploy.CONTROLLER_OPTIONS` also puts the SleepController.
HEAD_NODE = {"node:__internal_head__": 0.001}
T = TypeVar("T")


class StoreUnavailableError(RuntimeError):
    """The store actor did not answer (it died, is restarting, or the call timed out); a write may have committed."""


def actor_name(directory: str | Path, app_name: str) -> str:
    """The store actor's name for this application and store directory."""
    digest = hashlib.sha256(_normal(directory).encode()).hexdigest()[:12]
    return f"wake_store:{app_name}:{digest}"


def _normal(directory: str | Path) -> str:
    return os.path.normpath(str(directory))


class WakeStoreActor:
    """The process that owns the store file: the reads and writes the serving replicas make, one call each."""

    def __init__(self, directory: str) -> None:
        self.directory = _normal(directory)
        self.store = WakeStore(self.directory)

    @ray.method(max_task_retries=READ_RETRIES)
    def attach(self, directory: str) -> str:
        """Check the caller means this store, and (re)create its directory and tables if they were removed."""
        if _normal(directory) != self.directory:
            raise ValueError(f"store actor owns {self.directory!r}, not {_normal(directory)!r}")
        self.store = WakeStore(self.directory)
        return str(self.store.path)

    def add_memories(self, items: Sequence[tuple[str, str, str | None]]) -> list[StoredMemory]:
        return self.store.add_memories(items)

    @ray.method(max_task_retries=READ_RETRIES)
    def unconsolidated(self) -> list[StoredMemory]:
        return self.store.unconsolidated()

    @ray.method(max_task_retries=READ_RETRIES)
    def count_unconsolidated(self) -> int:
        return self.store.count_unconsolidated()

    @ray.method(max_task_retries=READ_RETRIES)
    def list_memories(self, offset: int, limit: int, consumed: bool | None) -> tuple[list[StoredMemory], int]:
        return self.store.list_memories(offset=offset, limit=limit, consumed=consumed)

    @ray.method(max_task_retries=READ_RETRIES)
    def get_memory(self, memory_id: str) -> StoredMemory | None:
        return self.store.get_memory(memory_id)

    @ray.method(max_task_retries=READ_RETRIES)
    def versions(self) -> list[VersionRecord]:
        return self.store.versions()

    @ray.method(max_task_retries=READ_RETRIES)
    def knowledge(self, memory_ids: Sequence[str]) -> dict[str, Knowledge]:
        return KnowledgeLedger(self.store).knowledge(memory_ids)


_RemoteStore: Any = ray.remote(WakeStoreActor)


def _options(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": NAMESPACE,
        "lifetime": "detached",
        "get_if_exists": True,
        "max_restarts": -1,
        "max_task_retries": 0,  # writes are not resent; reads set their own retries
        "max_concurrency": MAX_CONCURRENCY,
        "num_cpus": 0,
        "resources": dict(HEAD_NODE),
    }


class SharedStore:
    """The replicas' client of the store actor: the store calls they make, each awaited with a timeout."""

    def __init__(self, actor: Any, timeout_s: float = TIMEOUT_S) -> None:
        self.actor = actor
        self.timeout_s = timeout_s

    @classmethod
    def connect(cls, directory: str | Path, app_name: str, timeout_s: float = TIMEOUT_S) -> SharedStore:
        """The store actor of `directory` for application `app_name`, created (on the head node) if none runs yet.
        Blocks up to `timeout_s`; call it once, e.g. in a replica's constructor. The directory is a path on the head
        node; this process never opens it."""
        actor = _RemoteStore.options(**_options(actor_name(directory, app_name))).remote(_normal(directory))
        try:
            ray.get(actor.attach.remote(_normal(directory)), timeout=timeout_s)
        except RayTaskError as e:
            raise _cause(e) from None
        except (RayActorError, GetTimeoutError) as e:
            raise StoreUnavailableError(f"the wake store actor did not start: {e}") from None
        return cls(actor, timeout_s)

    async def _call(self, ref: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(ref, self.timeout_s)
        except RayTaskError as e:
            raise _cause(e) from None
        except RayActorError as e:
            raise StoreUnavailableError(f"the wake store actor is unavailable: {e}") from None
        except asyncio.TimeoutError:
            raise StoreUnavailableError(f"the wake store actor did not answer within {self.timeout_s:g} s") from None

    async def add_memories(self, items: Sequence[tuple[str, str, str | None]]) -> list[StoredMemory]:
        """`WakeStore.add_memories`: returns once the memories are committed (ValueError as there)."""
        return await self._call(self.actor.add_memories.remote(list(items)))

    async def unconsolidated(self) -> list[StoredMemory]:
        return await self._call(self.actor.unconsolidated.remote())

    async def count_unconsolidated(self) -> int:
        return await self._call(self.actor.count_unconsolidated.remote())

    async def list_memories(
        self, offset: int = 0, limit: int = 50, consumed: bool | None = None
    ) -> tuple[list[StoredMemory], int]:
        return await self._call(self.actor.list_memories.remote(offset, limit, consumed))

    async def get_memory(self, memory_id: str) -> StoredMemory | None:
        return await self._call(self.actor.get_memory.remote(memory_id))

    async def versions(self) -> list[VersionRecord]:
        return await self._call(self.actor.versions.remote())

    async def knowledge(self, memory_ids: Sequence[str]) -> dict[str, Knowledge]:
        """`KnowledgeLedger.knowledge`: the ledger's entry of each known memory id."""
        return await self._call(self.actor.knowledge.remote(list(memory_ids)))


def _cause(e: RayTaskError) -> BaseException:
    """The exception the store raised inside the actor (its own type and message, without Ray's wrapping)."""
    cause = getattr(e, "cause", None)
    return cause if isinstance(cause, BaseException) else e


def release(directory: str | Path, app_name: str) -> bool:
    """Remove the store actor of this application and directory (after the application is deleted); returns
    whether one was running. The store file stays."""
    try:
        actor = ray.get_actor(actor_name(directory, app_name), namespace=NAMESPACE)
    except ValueError:
        return False
    ray.kill(actor, no_restart=True)
    return True
