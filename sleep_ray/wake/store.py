"""The wake endpoint's durable state: memories, sleeps and model versions in one SQLite file.

While awake, the served model takes in memories that must outlive any crash: a memory is acknowledged only
after the transaction that stored it has committed (WAL journal, `synchronous=FULL`), so an acknowledged write
survives `kill -9` of the process and, fsync permitting, power loss. Several processes (Ray Serve replicas on
one node, the sleep scheduler) open the same file, `<directory>/wake.sqlite`; every call opens its own
connection, so a `WakeStore` holds nothing but a path and may be shared across threads or pickled. Writers
take the write lock at the start of their transaction (`BEGIN IMMEDIATE`) and wait up to 10 s for it.

Tables: `memories` (in arrival order, `seq`; `consumed_by` names the sleep that consolidated a memory),
`sleeps` (one row per sleep and its status), `versions` (checkpoints the sleeps produced, plus the one active
version that Serve serves), and the knowledge ledger: `probes` (per consolidated memory, the questions the gate
wrote and the reference answers the serving model gave with the memory in context) and `knowledge` (how often
a memory was slept on, when its probes were last asked and the share that held).

A memory is always in one of two places. *In the weights*: `consumed_by` is set, because its probes held when
last asked. *In context*: `consumed_by` is NULL (never consolidated, or its probes stopped holding), so wake
retrieval reads it and the next sleep takes it again. `settle` moves memories between the two.
"""

from __future__ import annotations

import json
import sqlite3
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sleep_ray.data.schema import MEMORY_KINDS, Memory, write_stream

FILENAME = "wake.sqlite"
BUSY_TIMEOUT_S = 10.0
SLEEP_STATUSES = ("queued", "running", "gating", "swapped", "rejected", "failed", "rolled_back")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS memories (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    created REAL NOT NULL,
    consumed_by TEXT
);
CREATE INDEX IF NOT EXISTS memories_consumed ON memories (consumed_by);
CREATE TABLE IF NOT EXISTS sleeps (
    sleep_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS versions (
    version INTEGER PRIMARY KEY,
    checkpoint TEXT NOT NULL,
    created REAL NOT NULL,
    info TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS probes (
    memory_id TEXT NOT NULL,
    question TEXT NOT NULL,
    reference TEXT NOT NULL,
    sleep_id TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS probes_memory ON probes (memory_id);
CREATE TABLE IF NOT EXISTS knowledge (
    memory_id TEXT PRIMARY KEY,
    slept INTEGER NOT NULL DEFAULT 0,
    last_slept REAL,
    checked REAL,
    held REAL
);
CREATE TABLE IF NOT EXISTS active (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    version INTEGER NOT NULL REFERENCES versions (version)
);
"""
_MEMORY_COLUMNS = "seq, memory_id, kind, text, created, consumed_by"


@dataclass(frozen=True)
class StoredMemory:
    """A memory as stored: `seq` is its arrival order; `consumed_by` the sleep that consolidated it, if any."""

    seq: int
    memory_id: str
    kind: str  # one of sleep_ray.data.schema.MEMORY_KINDS
    text: str
    created: float  # unix time
    consumed_by: str | None


@dataclass(frozen=True)
class SleepRecord:
    """One sleep: queued -> running -> gating -> swapped | rejected, or failed at any point; swapped ->
    rolled_back when its version is rolled back."""

    sleep_id: str
    status: str  # one of SLEEP_STATUSES
    created: float
    updated: float
    info: dict[str, Any]  # JSON-ready: memory count, cycle, gate results, error message, ...

    def __post_init__(self) -> None:
        if self.status not in SLEEP_STATUSES:
            raise ValueError(f"sleep status {self.status!r} is not one of {', '.join(SLEEP_STATUSES)}")


@dataclass(frozen=True)
class VersionRecord:
    """A model version: the checkpoint directory a sleep produced (version 0: the base model)."""

    version: int
    checkpoint: str
    created: float
    info: dict[str, Any]


def _memory(row: tuple[Any, ...]) -> StoredMemory:
    return StoredMemory(*row)


def _sleep(row: tuple[Any, ...]) -> SleepRecord:
    return SleepRecord(row[0], row[1], row[2], row[3], json.loads(row[4]))


def _version(row: tuple[Any, ...]) -> VersionRecord:
    return VersionRecord(row[0], row[1], row[2], json.loads(row[3]))


class WakeStore:
    """Memories, sleeps and versions in `<directory>/wake.sqlite`. Every write is one committed transaction."""

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / FILENAME
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA journal_mode = WAL")  # persistent: recorded in the file for every later opener
        finally:
            conn.close()
        with self.transaction(write=True) as tx:
            for statement in _SCHEMA.split(";"):  # not executescript: it would commit the transaction first
                if statement.strip():
                    tx.execute(statement)

    @contextmanager
    def transaction(self, write: bool) -> Iterator[sqlite3.Connection]:
        """A fresh connection running one transaction: committed on normal exit, rolled back on any error
        (also what `sleep_ray.wake.ledger` writes the knowledge ledger with)."""
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")
            conn.execute("PRAGMA foreign_keys = ON")
            conn.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    # ------------------------------------------------------------------------------------------- memories

    def add_memories(self, items: Sequence[tuple[str, str, str | None]]) -> list[StoredMemory]:
        """Store (text, kind, memory_id or None) items, all or none; returns them with their seq numbers.

        A missing id becomes `mem-<12 hex>`. Raises ValueError, writing nothing, for an unknown kind, empty
        text, an empty id, or an id already in the store or repeated within the call.
        """
        rows: list[tuple[str, str, str]] = []
        seen: set[str] = set()
        for text, kind, memory_id in items:
            if kind not in MEMORY_KINDS:
                raise ValueError(f"memory kind {kind!r} is not one of {', '.join(MEMORY_KINDS)}")
            if not isinstance(text, str) or not text.strip():
                raise ValueError(f"memory {memory_id or '(new)'}: empty text")
            if memory_id is None:
                memory_id = f"mem-{uuid.uuid4().hex[:12]}"
            elif not isinstance(memory_id, str) or not memory_id.strip():
                raise ValueError(f"memory_id must be a non-empty string, not {memory_id!r}")
            if memory_id in seen:
                raise ValueError(f"duplicate memory_id {memory_id!r} in the request")
            seen.add(memory_id)
            rows.append((memory_id, kind, text))
        if not rows:
            return []
        now = time.time()
        out: list[StoredMemory] = []
        with self.transaction(write=True) as tx:
            ids = [r[0] for r in rows]
            for start in range(0, len(ids), 500):  # stay under SQLite's bound-parameter limit
                chunk = ids[start : start + 500]
                marks = ",".join("?" * len(chunk))
                taken = tx.execute(f"SELECT memory_id FROM memories WHERE memory_id IN ({marks})", chunk).fetchone()
                if taken is not None:
                    raise ValueError(f"duplicate memory_id {taken[0]!r}: already in the store")
            for memory_id, kind, text in rows:
                cur = tx.execute(
                    "INSERT INTO memories (memory_id, kind, text, created) VALUES (?, ?, ?, ?)",
                    (memory_id, kind, text, now),
                )
                assert cur.lastrowid is not None
                out.append(StoredMemory(cur.lastrowid, memory_id, kind, text, now, None))
        return out

    def list_memories(
        self, offset: int = 0, limit: int = 50, consumed: bool | None = None
    ) -> tuple[list[StoredMemory], int]:
        """A page of memories in arrival order and the total matching `consumed` (None: all, True, False)."""
        if offset < 0 or limit < 0:
            raise ValueError(f"offset and limit must be >= 0, got offset={offset}, limit={limit}")
        where = {None: "", True: " WHERE consumed_by IS NOT NULL", False: " WHERE consumed_by IS NULL"}[consumed]
        with self.transaction(write=False) as tx:  # one snapshot for the page and the count
            rows = tx.execute(
                f"SELECT {_MEMORY_COLUMNS} FROM memories{where} ORDER BY seq LIMIT ? OFFSET ?", (limit, offset)
            ).fetchall()
            total = tx.execute(f"SELECT COUNT(*) FROM memories{where}").fetchone()[0]
        return [_memory(r) for r in rows], int(total)

    def memories(self) -> list[StoredMemory]:
        """Every memory, in arrival order."""
        with self.transaction(write=False) as tx:
            return [_memory(r) for r in tx.execute(f"SELECT {_MEMORY_COLUMNS} FROM memories ORDER BY seq").fetchall()]

    def get_memory(self, memory_id: str) -> StoredMemory | None:
        with self.transaction(write=False) as tx:
            row = tx.execute(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE memory_id = ?", (memory_id,)).fetchone()
        return None if row is None else _memory(row)

    def unconsolidated(self) -> list[StoredMemory]:
        """Every memory no sleep has consumed yet, in arrival order."""
        with self.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE consumed_by IS NULL ORDER BY seq")
            return [_memory(r) for r in rows.fetchall()]

    def count_unconsolidated(self) -> int:
        with self.transaction(write=False) as tx:
            return int(tx.execute("SELECT COUNT(*) FROM memories WHERE consumed_by IS NULL").fetchone()[0])

    def unmark_consumed(self, sleep_id: str) -> int:
        """Give the memories that sleep `sleep_id` consumed back to the wake context; returns how many."""
        with self.transaction(write=True) as tx:
            return tx.execute("UPDATE memories SET consumed_by = NULL WHERE consumed_by = ?", (sleep_id,)).rowcount

    def consolidated(self) -> list[StoredMemory]:
        """Every memory held in the weights, in arrival order."""
        with self.transaction(write=False) as tx:
            rows = tx.execute(f"SELECT {_MEMORY_COLUMNS} FROM memories WHERE consumed_by IS NOT NULL ORDER BY seq")
            return [_memory(r) for r in rows.fetchall()]

    @staticmethod
    def export_stream(memories: Sequence[StoredMemory], path: str | Path, cycle: int) -> Path:
        """Write memories as one cycle of a memory stream (`.jsonl` or `.parquet`, by extension) for a sleep."""
        path = Path(path)
        write_stream(path, (Memory(cycle=cycle, memory_id=m.memory_id, kind=m.kind, text=m.text) for m in memories))
        return path

    # --------------------------------------------------------------------------------------------- sleeps

    def put_sleep(self, rec: SleepRecord) -> None:
        """Insert a sleep, or replace the record with the same sleep_id (keeping its place in list_sleeps)."""
        with self.transaction(write=True) as tx:
            tx.execute(
                "INSERT INTO sleeps (sleep_id, status, created, updated, info) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (sleep_id) DO UPDATE SET status = excluded.status, created = excluded.created, "
                "updated = excluded.updated, info = excluded.info",
                (rec.sleep_id, rec.status, rec.created, rec.updated, json.dumps(rec.info)),
            )

    def get_sleep(self, sleep_id: str) -> SleepRecord | None:
        with self.transaction(write=False) as tx:
            row = tx.execute(
                "SELECT sleep_id, status, created, updated, info FROM sleeps WHERE sleep_id = ?", (sleep_id,)
            ).fetchone()
        return None if row is None else _sleep(row)

    def list_sleeps(self) -> list[SleepRecord]:
        """Every sleep, oldest first (by `created`, then by first insertion)."""
        with self.transaction(write=False) as tx:
            rows = tx.execute("SELECT sleep_id, status, created, updated, info FROM sleeps ORDER BY created, rowid")
            return [_sleep(r) for r in rows.fetchall()]

    # ------------------------------------------------------------------------------------------- versions

    def add_version(self, version: int, checkpoint: str, info: dict[str, Any]) -> VersionRecord:
        """Record a new model version. A version number already recorded raises ValueError."""
        rec = VersionRecord(int(version), str(checkpoint), time.time(), dict(info))
        with self.transaction(write=True) as tx:
            if tx.execute("SELECT 1 FROM versions WHERE version = ?", (rec.version,)).fetchone() is not None:
                raise ValueError(f"version {rec.version} is already recorded")
            tx.execute(
                "INSERT INTO versions (version, checkpoint, created, info) VALUES (?, ?, ?, ?)",
                (rec.version, rec.checkpoint, rec.created, json.dumps(rec.info)),
            )
        return rec

    def versions(self) -> list[VersionRecord]:
        """Every recorded version, ascending."""
        with self.transaction(write=False) as tx:
            rows = tx.execute("SELECT version, checkpoint, created, info FROM versions ORDER BY version")
            return [_version(r) for r in rows.fetchall()]

    def set_active(self, version: int) -> None:
        """Make `version` the one Serve serves. It must have been recorded by add_version (else ValueError)."""
        with self.transaction(write=True) as tx:
            if tx.execute("SELECT 1 FROM versions WHERE version = ?", (version,)).fetchone() is None:
                raise ValueError(f"version {version} is not recorded")
            tx.execute(
                "INSERT INTO active (one, version) VALUES (1, ?) "
                "ON CONFLICT (one) DO UPDATE SET version = excluded.version",
                (version,),
            )

    def active_version(self) -> int | None:
        """The version Serve serves, or None before any set_active."""
        with self.transaction(write=False) as tx:
            row = tx.execute("SELECT version FROM active WHERE one = 1").fetchone()
        return None if row is None else int(row[0])
