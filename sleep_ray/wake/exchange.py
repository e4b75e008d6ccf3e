"""What crosses from the endpoint's ingress to a serving replica and back: typed records, no HTTP in them.

The ingress (`app.py`) turns an OpenAI body into an `Ask`; a serving replica (`server.py`) answers it with an
`Answer` (or, streaming, a run of `Delta`s and then a final `Answer` without text). Both are plain dataclasses, so
they pickle across Ray and nothing of FastAPI reaches the replica.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass(frozen=True)
class Sampling:
    """How to continue a prompt. `stop` None means the replica's defaults (the tiny models stop at a newline)."""

    max_tokens: int | None
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = None
    stop: tuple[str, ...] | None = None
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: dict[int, float] = field(default_factory=dict)
    logprobs: int | None = None  # None: no logprobs; k: each token's logprob and its k most likely alternatives
    use_memories: bool | None = None  # None: the endpoint's retrieval setting


@dataclass(frozen=True)
class Ask:
    """One request: raw prompts (text or token ids) for a completion, or (role, content) messages for a chat."""

    kind: Literal["completion", "chat"]
    prompts: tuple[str | tuple[int, ...], ...]
    messages: tuple[tuple[str, str], ...]
    echo: bool
    sampling: Sampling


@dataclass(frozen=True)
class TokenLogprob:
    token: str
    logprob: float
    offset: int  # characters into the returned text where the token starts
    top: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class Choice:
    index: int
    text: str
    finish_reason: Literal["stop", "length"]
    tokens: int  # generated tokens that the text holds (a stop string and what followed it are not counted)
    logprobs: tuple[TokenLogprob, ...] | None = None


@dataclass(frozen=True)
class Answer:
    version: int
    choices: tuple[Choice, ...]
    prompt_tokens: int
    memories_used: tuple[str, ...]
    replica: str = ""  # the serving replica that answered (Serve's replica id)


@dataclass(frozen=True)
class Delta:
    """A piece of a streamed choice; `finish_reason` set on its last piece."""

    index: int
    text: str
    finish_reason: Literal["stop", "length"] | None = None
