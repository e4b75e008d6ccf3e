"""Which stored memories the wake model reads in context for a request: BM25 over lowercase word tokens.

`retrieve` ranks memories with `rank_bm25.BM25Okapi`. Its IDF, log((N - n + 0.5) / (n + 0.5)), is zero or
negative for every term in a corpus of one memory, and for every term of a two-memory corpus (a word in one of
two memories scores 0), so BM25 alone would return nothing before a handful of memories have arrived. When no
memory scores above zero, `retrieve` therefore falls back to token overlap: the number of distinct query tokens
a memory contains. Either way only memories with a positive score are returned, best first, newer first on ties.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from rank_bm25 import BM25Okapi

from sleep_ray.wake.store import StoredMemory

_TOKEN = re.compile(r"\w+")


def tokenize(text: str) -> list[str]:
    """Lowercase `\\w+` tokens."""
    return _TOKEN.findall(text.lower())


def retrieve(query: str, memories: Sequence[StoredMemory], k: int) -> list[StoredMemory]:
    """At most `k` memories relevant to `query`, best first (BM25, or token overlap on tiny corpora)."""
    query_tokens = tokenize(query)
    docs = [tokenize(m.text) for m in memories]
    if k <= 0 or not query_tokens or not any(docs):  # BM25Okapi divides by the corpus' vocabulary and length
        return []
    scores = [float(s) for s in BM25Okapi(docs).get_scores(query_tokens)]
    if max(scores) <= 0:
        wanted = set(query_tokens)
        scores = [float(len(wanted.intersection(doc))) for doc in docs]
    ranked = sorted((i for i, score in enumerate(scores) if score > 0), key=lambda i: (-scores[i], -memories[i].seq))
    return [memories[i] for i in ranked[:k]]


def context_for(
    query: str,
    memories: Sequence[StoredMemory],
    k: int,
    count_tokens: Callable[[str], int],
    max_tokens: int,
) -> tuple[str, list[str]]:
    """The texts of the retrieved memories joined by " ", best first, within `max_tokens` ("" if none), and the
    ids of exactly the memories in it.

    A memory that would take the context past the budget is left out whole (never cut), and the next one is
    tried, so a short memory further down may still fit.
    """
    chosen: list[StoredMemory] = []
    for memory in retrieve(query, memories, k):
        candidate = " ".join([*(m.text for m in chosen), memory.text])
        if count_tokens(candidate) <= max_tokens:
            chosen.append(memory)
    return " ".join(m.text for m in chosen), [m.memory_id for m in chosen]
