"""The wake endpoint's request and response bodies (pydantic), so FastAPI validates input and writes the OpenAPI
document from the same definitions the handlers use.

Completion bodies follow the OpenAI API (the fields a small model can honour; unknown fields are refused with a
422 instead of being ignored silently). Every response carries `weight_version`: the weights that produced it.
Limits that depend on the config (largest max_tokens, memories per call, memory size) are checked by the handlers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sleep_ray.data.schema import MEMORY_KINDS
from sleep_ray.wake.ledger import Knowledge
from sleep_ray.wake.store import StoredMemory

MemoryKind = Literal["document", "update", "dialogue", "demonstration", "long_document"]
assert set(MemoryKind.__args__) == set(MEMORY_KINDS)  # type: ignore[attr-defined]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------------------------- completions


class _Sampling(Strict):
    """What completions and chat share."""

    model: str
    max_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    stop: str | list[str] | None = None
    stream: bool = False
    seed: int | None = Field(default=None, ge=0, le=2**63 - 1)
    use_memories: bool | None = Field(default=None, description="sleep_ray: prepend relevant memories")


class CompletionRequest(_Sampling):
    prompt: str = Field(min_length=1)


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant"]
    content: str


class ChatRequest(_Sampling):
    messages: list[ChatMessage] = Field(min_length=1)


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    finish_reason: str
    logprobs: None = None


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: Usage
    weight_version: int
    memories_used: list[str] = []


class ChatChoice(BaseModel):
    index: int = 0
    message: ChatMessage
    finish_reason: str


class ChatResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: Usage
    weight_version: int
    memories_used: list[str] = []


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "sleep_ray"
    weight_version: int


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
    weight_version: int


# -------------------------------------------------------------------------------------------------- memories


class MemoryIn(Strict):
    text: str = Field(min_length=1)
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
    reason: str = Field(default="request", max_length=200)


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


class ErrorOut(BaseModel):
    detail: str
    weight_version: int | None = None
