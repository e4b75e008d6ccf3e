"""Retrieval of memories for the wake model's context: BM25, with token overlap for tiny stores."""

from __future__ import annotations

from sleep_ray.wake.retrieve import context_for, retrieve, tokenize
from sleep_ray.wake.store import StoredMemory


def _mems(*texts: str) -> list[StoredMemory]:
    return [StoredMemory(i + 1, f"m{i + 1}", "document", t, 0.0, None) for i, t in enumerate(texts)]


MEMORIES = _mems(
    "Bob Stern works at the Orlan Foundry in Teskar.",
    "Alice Varga lives in Miravel and works as a glassblower.",
    "The river Lune floods every spring.",
    "Carol Dunn moved to Teskar last year.",
    "Dmitri Ash plays the cello in the Miravel orchestra.",
)


def test_tokenize():
    assert tokenize("Where does Alice-Varga live? 2 cats") == ["where", "does", "alice", "varga", "live", "2", "cats"]


def test_the_memory_naming_the_person_comes_first():
    found = retrieve("Where does Alice Varga live?", MEMORIES, k=3)
    assert found[0].memory_id == "m2"
    assert retrieve("Who works at the Orlan Foundry?", MEMORIES, k=5)[0].memory_id == "m1"


def test_k_is_respected():
    assert len(retrieve("Teskar Miravel works", MEMORIES, k=2)) == 2
    assert len(retrieve("Teskar Miravel works", MEMORIES, k=10)) <= len(MEMORIES)
    assert retrieve("Teskar", MEMORIES, k=0) == []


def test_no_overlap_gives_nothing():
    assert retrieve("quantum chromodynamics", MEMORIES, k=3) == []
    assert retrieve("", MEMORIES, k=3) == []
    assert retrieve("Alice", [], k=3) == []
    assert retrieve("Alice", _mems("..."), k=3) == []


def test_tiny_stores_still_find_the_name():
    # BM25Okapi's IDF is <= 0 for every term of a one- or two-memory corpus: token overlap takes over.
    [alice] = _mems("Alice Varga lives in Miravel.")
    assert retrieve("Where does Alice live?", [alice], k=3) == [alice]
    two = _mems("Alice Varga lives in Miravel.", "Bob Stern lives in Teskar.")
    assert retrieve("Where does Alice live?", two, k=3) == [two[0]]
    assert retrieve("Where does Alice live in?", two, k=3) == [two[0], two[1]]
    assert retrieve("quantum", two, k=3) == []


def test_ties_prefer_newer_memories():
    # "alice" is in 2 of 5 memories (positive IDF: BM25 decides) and both have 4 tokens: an exact tie.
    same = _mems("Alice lives in Miravel.", "Alice lives in Teskar.", "Bob is here.", "Carol is there.", "Dan is away.")
    found = retrieve("Alice", same, k=2)
    assert [m.memory_id for m in found] == ["m2", "m1"]


def test_context_for_respects_the_token_budget():
    words = lambda s: len(s.split())  # noqa: E731
    query = "Alice Varga Teskar"
    ranked = retrieve(query, MEMORIES, k=5)
    assert [m.memory_id for m in ranked] == ["m2", "m4", "m1"]
    everything, used = context_for(query, MEMORIES, k=5, count_tokens=words, max_tokens=1000)
    assert everything == " ".join(m.text for m in ranked) and used == ["m2", "m4", "m1"]
    # m2 has 9 words, m4 7, m1 9: with 17 the third would overflow and is dropped whole.
    assert context_for(query, MEMORIES, k=5, count_tokens=words, max_tokens=17) == (
        f"{ranked[0].text} {ranked[1].text}",
        ["m2", "m4"],
    )
    # m2 alone does not fit in 8; m4 (7 words) does.
    assert context_for(query, MEMORIES, k=5, count_tokens=words, max_tokens=8) == (ranked[1].text, ["m4"])
    assert context_for(query, MEMORIES, k=5, count_tokens=words, max_tokens=3) == ("", [])
    assert context_for("quantum", MEMORIES, k=5, count_tokens=words, max_tokens=100) == ("", [])
