"""The knowledge ledger: for every acknowledged memory, whether it is verifiably in the weights or in context.

It lives in the endpoint's store (`WakeStore`, tables `probes` and `knowledge`). When a night consolidates a
memory, the gate's questions about it and the serving model's in-context answers become its regression probes;
every later night re-asks them (`sleep_ray.wake.night`), and `settle` moves each memory to where its knowledge
is: in the weights (`consumed_by` set) while the probes hold, back in context (`consumed_by` NULL: wake
retrieval reads it and the next sleep takes it again) once they stop holding.

    ledger = KnowledgeLedger(store)
    ledger.set_probes(probes, sleep_id)
    in_weights, in_context = ledger.settle({"mem-1": 1.0, "mem-2": 0.25}, threshold=0.5, sleep_id=sleep_id)
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from sleep_ray.wake.store import WakeStore


@dataclass(frozen=True)
class RegressionProbe:
    """A regression probe of a consolidated memory: a closed-book question and the reference answer the
    serving model gave with the memory in context."""

    memory_id: str
    question: str
    reference: str


@dataclass(frozen=True)
class Knowledge:
    """Where a memory's knowledge stands: sleeps that took it, when its probes were last asked (unix time, or
    None) and the share of them the model then answered like the reference."""

    memory_id: str
    in_weights: bool
    slept: int
    last_slept: float | None
    checked: float | None
    held: float | None
    probes: int

    @property
    def status(self) -> Literal["weights", "context"]:
        return "weights" if self.in_weights else "context"


class KnowledgeLedger:
    """Probes and checks of memories, written in the store's transactions (so shared by every process)."""

    def __init__(self, store: WakeStore) -> None:
        self.store = store

    def note_slept(self, memory_ids: Sequence[str]) -> None:
        """Count one more sleep that took these memories."""
        now = time.time()
        with self.store.transaction(write=True) as tx:
            for memory_id in memory_ids:
                tx.execute(
                    "INSERT INTO knowledge (memory_id, slept, last_slept) VALUES (?, 1, ?) ON CONFLICT (memory_id) "
                    "DO UPDATE SET slept = slept + 1, last_slept = excluded.last_slept",
                    (memory_id, now),
                )

    def set_probes(self, probes: Sequence[RegressionProbe], sleep_id: str) -> None:
        """Replace the regression probes of every memory in `probes` with these."""
        with self.store.transaction(write=True) as tx:
            for memory_id in sorted({p.memory_id for p in probes}):
                tx.execute("DELETE FROM probes WHERE memory_id = ?", (memory_id,))
            tx.executemany(
                "INSERT INTO probes (memory_id, question, reference, sleep_id) VALUES (?, ?, ?, ?)",
                [(p.memory_id, p.question, p.reference, sleep_id) for p in probes],
            )

    def probes(self, memory_ids: Sequence[str]) -> list[RegressionProbe]:
        """The regression probes of these memories, grouped by memory in the given order."""
        with self.store.transaction(write=False) as tx:
            return [
                RegressionProbe(*row)
                for memory_id in memory_ids
                for row in tx.execute(
                    "SELECT memory_id, question, reference FROM probes WHERE memory_id = ? ORDER BY rowid",
                    (memory_id,),
                ).fetchall()
            ]

    def knowledge(self, memory_ids: Sequence[str]) -> dict[str, Knowledge]:
        """The ledger's entry of each known memory id (unknown ids are left out)."""
        out: dict[str, Knowledge] = {}
        with self.store.transaction(write=False) as tx:
            for memory_id in memory_ids:
                row = tx.execute(
                    "SELECT m.consumed_by IS NOT NULL, COALESCE(k.slept, 0), k.last_slept, k.checked, k.held, "
                    "(SELECT COUNT(*) FROM probes p WHERE p.memory_id = m.memory_id) "
                    "FROM memories m LEFT JOIN knowledge k ON k.memory_id = m.memory_id WHERE m.memory_id = ?",
                    (memory_id,),
                ).fetchone()
                if row is not None:
                    out[memory_id] = Knowledge(
                        memory_id, bool(row[0]), int(row[1]), row[2], row[3], row[4], int(row[5])
                    )
        return out

    def settle(self, held: dict[str, float], threshold: float, sleep_id: str) -> tuple[list[str], list[str]]:
        """Record how much of each memory's probes held, in one transaction: a memory at or above `threshold` is
        in the weights (consolidated by `sleep_id` unless already consolidated), one below is back in context.
        Returns (in the weights, in context) memory ids."""
        now, kept, back = time.time(), [], []
        with self.store.transaction(write=True) as tx:
            for memory_id, share in held.items():
                tx.execute(
                    "INSERT INTO knowledge (memory_id, checked, held) VALUES (?, ?, ?) ON CONFLICT (memory_id) "
                    "DO UPDATE SET checked = excluded.checked, held = excluded.held",
                    (memory_id, now, share),
                )
                if share >= threshold:
                    tx.execute(
                        "UPDATE memories SET consumed_by = ? WHERE memory_id = ? AND consumed_by IS NULL",
                        (sleep_id, memory_id),
                    )
                    kept.append(memory_id)
                else:
                    tx.execute("UPDATE memories SET consumed_by = NULL WHERE memory_id = ?", (memory_id,))
                    back.append(memory_id)
        return kept, back
