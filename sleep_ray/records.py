"""Typed records that cross actor boundaries during a sleep, and the rule every remote exchange obeys.

The bottom of the package: it imports nothing of sleep_ray, and rollout engines, roles, stages and the endpoint
all speak in these records. Every sample names the student weights that produced it (`weight_version`: the
number of optimizer steps those weights had taken; the rollout pool re-asks a share older than
`sleep.seeding.max_staleness`), and every remote call has a timeout that raises a clear error instead of hanging.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import ray
from ray.exceptions import GetTimeoutError


@dataclass(frozen=True)
class SeedPrompt:
    """A distillation prompt: what the student-large reads (no memory) and what the teacher-self reads.

    kind: "question" (the teacher wrote a question about a memory), "prefix" (the opening words of a sentence
    of a memory), "restatement" (the opening words of a sentence of the teacher's own restatement of a memory),
    "reading" (a question about a memory that the student reads with the memory too) and "writing" (writing a
    question about a memory; student == teacher): the skills the next night's teacher needs; or "rehearsal" (a
    question about old knowledge; the teacher reads it without any memory, so student == teacher and the loss
    keeps the grown model where the pre-sleep model was) and "text" (the opening words of free text the anchor
    wrote with no memory: language modelling of old text, student == teacher).
    """

    student: str
    teacher: str
    kind: str
    memory_id: str = ""


@dataclass(frozen=True)
class Rollout:
    """One sampled continuation. `token_ids` are the tokens of `text`, the sequence that gets scored.

    source: "student" (a rollout engine, no context) or "teacher" (the teacher-self, memory in context).
    weight_version: optimizer steps of the student weights that sampled it (the teacher's is -1: frozen).
    """

    prompt: str
    text: str
    token_ids: tuple[int, ...]
    weight_version: int
    source: str


@dataclass(frozen=True)
class ImitationItem:
    """A Learning-to-Imitate item: a teacher-written sentence cut at a random point.

    The student completes `prefix`; the critic compares the completion with `reference`, the rest of the sentence.
    """

    prefix: str
    reference: str
    memory_id: str = ""


@dataclass(frozen=True)
class TeacherLogits:
    """The teacher's logits at each position of one completion: values [n, V], or [n, K] with `indices` [n, K]
    holding the vocabulary ids of the teacher's top-K tokens (only those travel when K > 0)."""

    values: np.ndarray
    indices: np.ndarray | None = None


class RoleTimeoutError(TimeoutError):
    """A remote role did not answer in time."""


def call(refs: Any, timeout_s: float, what: str) -> Any:
    """`ray.get(refs)` that raises RoleTimeoutError naming `what` after `timeout_s` seconds."""
    try:
        return ray.get(refs, timeout=timeout_s)
    except GetTimeoutError:
        raise RoleTimeoutError(
            f"{what} did not answer within {timeout_s:g} s (resources.call_timeout_s); is the actor alive and "
            "did the cluster have CPUs for it?"
        ) from None
