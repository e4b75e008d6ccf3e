"""The wake endpoint's own request and response bodies (pydantic): memories, sleeps, versions. FastAPI validates
input and writes the OpenAPI document from the same definitions the handlers use; the OpenAI bodies are in
`openai_api.py`. Every response carries `weight_version`: the weights that produced it. Limits that depend on the
config (memories per call, memory size) are checked by the handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sleep_ray.data.schema import MEMORY_KINDS
from sleep_ray.wake.ledger import Knowledge
from sleep_ray.wake.openai_api import Text
from sleep_ray.wake.store import StoredMemory

MemoryKind = Literal["document", "update", "dialogue", "demonstration", "long_document"]
assert set(MemoryKind.__args__) == set(MEMORY_KINDS)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -------------------------------------------------------------------------------------------------- memories


class MemoryIn(Strict):
    text: Text = Field(min_length=1)
    kind: MemoryKind = "document"
    memory_id: str | None = Field(default=None, min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")


class MemoriesIn(Strict):
    memories: list[MemoryIn] = Field(min_length=1)


class MemoryOut(BaseModel):
    memory_id: str
    kind: str
    text: str
    created: float
    consumed_by: str | None
    status: Literal["weights", "context"]  # where its knowledge is: verified in the weights, or read in context
    slept: int  # sleeps that took it
    checked: float | None  # when its regression probes were last asked (unix time)
    held: float | None  # the share of them the model then answered like the reference
    probes: int  # regression probes kept for it


def described(rows: Sequence[StoredMemory], known: dict[str, Knowledge]) -> list[MemoryOut]:
    """Stored memories as the memory routes show them, with their ledger entries."""
    return [
        MemoryOut(
            memory_id=m.memory_id,
            kind=m.kind,
            text=m.text,
            created=m.created,
            consumed_by=m.consumed_by,
            status=known[m.memory_id].status,
            slept=known[m.memory_id].slept,
            checked=known[m.memory_id].checked,
            held=known[m.memory_id].held,
            probes=known[m.memory_id].probes,
        )  # fmt: skip
        for m in rows
    ]


class MemoriesAck(BaseModel):
    accepted: list[str]
    durable: bool = True
    unconsolidated: int
    weight_version: int


class MemoryPage(BaseModel):
    data: list[MemoryOut]
    total: int
    offset: int
    limit: int
    weight_version: int


# ------------------------------------------------------------------------------------------- sleep / versions


class SleepIn(Strict):
    reason: Text = Field(default="request", max_length=200)


class SleepOut(BaseModel):
    sleep_id: str
    status: str
    created: float
    updated: float
    info: dict
    weight_version: int


class VersionOut(BaseModel):
    weight_version: int
    checkpoint: str
    versions: list[int]
