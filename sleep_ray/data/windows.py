"""Fitting memories into a context window: split long text into windows, pick the one a question needs.

A long document can exceed the model's window. The teacher (and the in-context evaluation) then reads it one
window at a time; `best_window` picks the window that shares the most words with the question, the same
plain lexical retrieval the wake endpoint uses to put relevant memories in a prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from sleep_ray.data.corpus import sentences

_WORD = re.compile(r"\w+")


def windows(text: str, count_tokens: Callable[[str], int], max_tokens: int) -> list[str]:
    """Consecutive groups of whole sentences, each at most `max_tokens` (a single longer sentence stands alone)."""
    out: list[str] = []
    current: list[str] = []
    for s in sentences(text):
        candidate = " ".join([*current, s])
        if current and count_tokens(candidate) > max_tokens:
            out.append(" ".join(current))
            current = [s]
        else:
            current.append(s)
    if current:
        out.append(" ".join(current))
    return out


def overlap(a: str, b: str) -> int:
    """Number of distinct lowercase words shared by `a` and `b`."""
    return len(set(_WORD.findall(a.lower())) & set(_WORD.findall(b.lower())))


def best_window(chunks: list[str], question: str) -> str:
    """The chunk sharing the most words with the question (the first on ties)."""
    return max(chunks, key=lambda c: overlap(c, question))
