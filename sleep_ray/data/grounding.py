"""Grounding: is a text the model wrote about a memory about that memory?

A small model that writes a question about "Luran Kretre" often writes "Luran Kretron", or a name it invents;
trained on, such a question teaches facts about people who do not exist. Every text written about a memory
(a question, an answer, a restatement, a dream) is checked here against the memory's own text:

  * a *name* is a run of capitalised words (a sentence's first word only when the model's vocabulary does not
    know it as an ordinary word, or when another capitalised word follows);
  * a name absent from the memory is **repaired**: a misspelling (rapidfuzz similarity to one of the memory's
    names of as many words at least `spelling_similarity`) becomes that name; any other name becomes the
    memory's subject (its most mentioned name of as many words), since a text written about the memory is about
    it (unless `subject=False`, as for answers: then it drops the text); a name with no counterpart of its
    length in the memory **drops** the text;
  * `require_name`: a question must name something of the memory, or it is not about it.

`Ledger` counts what was written, kept, repaired and dropped per kind, and keeps a few examples of each, so a
night's record shows what the model taught itself; `check_grounding` fails a night whose grounded share of
questions is below the floor (`sleep.grounding.min_share`). Pure functions and a plain record: no model is
loaded here.

    known = known_words(tokenizer)
    g = ground("Where does Luran Kretron live?", memory_text, known, require_name=True)
    g.text, g.status   # "Where does Luran Kretre live?", "repaired"
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from rapidfuzz import fuzz

_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
_SENTENCE_START = re.compile(r"(^|[.!?:\n])\s*$")


@dataclass(frozen=True)
class Grounded:
    """The verdict on one text: `text` to use (repaired where needed; None when dropped)."""

    text: str | None
    status: str  # "kept" | "repaired" | "dropped"
    reason: str = ""  # repaired: "old -> new"; dropped: why


def known_words(tokenizer: Any) -> Callable[[str], bool]:
    """Whether a word is an ordinary word to this tokenizer: one token, with or without a leading space, as
    written or in lowercase."""

    @lru_cache(maxsize=65536)
    def known(word: str) -> bool:
        forms = {f for w in (word, word.lower()) for f in (" " + w, w)}
        return any(len(tokenizer(f, add_special_tokens=False)["input_ids"]) == 1 for f in forms)

    return known


def _bare(word: str) -> str:
    return word[:-2] if word.endswith("'s") else word.rstrip("'")


def names(text: str, known: Callable[[str], bool]) -> list[tuple[int, int, str]]:
    """(start, end, name) of every name in `text`: runs of capitalised words (see the module docstring)."""
    words = [(m.start(), m.start() + len(_bare(m.group())), _bare(m.group())) for m in _WORD.finditer(text)]
    out: list[tuple[int, int, str]] = []
    run: list[tuple[int, int, str]] = []

    def close() -> None:
        a, b, w = run[0] if run else (0, 0, "")
        ordinary = len(run) == 1 and bool(_SENTENCE_START.search(text[:a])) and known(w)
        if run and not ordinary:  # a lone sentence-initial word the vocabulary knows ("Where") is no name
            out.append((a, run[-1][1], text[a : run[-1][1]]))
        run.clear()

    for i, (a, b, w) in enumerate(words):
        if run and text[words[i - 1][1] : a].strip():  # punctuation between capitalised words ends a name
            close()
        if w[:1].isupper():
            run.append((a, b, w))
        else:
            close()
    close()
    return out


def subject(memory: str, known: Callable[[str], bool]) -> str | None:
    """The memory's most mentioned name of two or more words (its person, for a one-person memory), or None."""
    full = [n for _, _, n in names(memory, known) if len(n.split()) > 1]
    return max(full, key=lambda n: (full.count(n), len(n))) if full else None


def swap_name(text: str, old: str, new: str) -> str:
    """`text` with the name `old` and each of its words alone ("Luran" of "Luran Kretre") replaced by `new` and its
    word in the same place; `old` and `new` have as many words."""
    swap = {old: new, **dict(zip(old.split(), new.split()))}
    pattern = "|".join(re.escape(k) for k in sorted(swap, key=len, reverse=True))
    return re.sub(rf"\b(?:{pattern})\b", lambda m: swap[m.group()], text)


def ground(
    text: str,
    memory: str,
    known: Callable[[str], bool],
    *,
    spelling_similarity: float = 0.7,
    require_name: bool = False,
    subject: bool = True,
) -> Grounded:
    """Check `text` against `memory` (module docstring): kept, repaired (names copied from the memory), or dropped."""
    mentioned = [n for _, _, n in names(memory, known)]
    mentioned += [w for n in list(mentioned) for w in n.split() if w != n]
    found = names(text, known)
    fixed, changes, named = text, [], False
    for a, b, name in reversed(found):  # right to left, so earlier offsets stay valid
        if re.search(rf"\b{re.escape(name)}\b", memory):
            named = True
            continue
        same = [n for n in mentioned if len(n.split()) == len(name.split())]
        if not same:
            return Grounded(None, "dropped", f"names {name!r}, absent from the memory")
        best = max(same, key=lambda n: (fuzz.ratio(name, n), len(n)))
        if fuzz.ratio(name, best) < 100 * spelling_similarity:
            if not subject:
                return Grounded(None, "dropped", f"names {name!r}, absent from the memory")
            best = max(same, key=lambda n: (same.count(n), len(n)))  # the subject
        fixed = fixed[:a] + best + fixed[b:]
        changes.append(f"{name} -> {best}")
        named = True
    if require_name and not named:
        return Grounded(None, "dropped", "names nothing in the memory")
    if changes:
        return Grounded(fixed, "repaired", "; ".join(reversed(changes)))
    return Grounded(text, "kept")


def ground_qa(text: str, memory: str, known: Callable[[str], bool], *, answer_mark: str) -> Grounded:
    """A written question/answer pair (" <q><answer_mark> <a>..."): the question must name the memory (repaired
    as in `ground`), the answer may only name what the memory holds (misspellings repaired)."""
    head, sep, tail = text.partition(answer_mark)
    q = ground(head, memory, known, require_name=True)
    if q.text is None or not sep:
        return q if q.text is None else Grounded(None, "dropped", "no answer")
    line, nl, rest = tail.partition("\n")
    a = ground(line, memory, known, subject=False)
    if a.text is None:
        return a
    fixed = q.text + sep + a.text + nl + rest
    if fixed == text:
        return Grounded(text, "kept")
    return Grounded(fixed, "repaired", "; ".join(r for r in (q.reason, a.reason) if r))


@dataclass
class Ledger:
    """Per kind: texts written, kept, repaired, dropped; and up to `examples` of each verdict (for the record)."""

    examples: int = 8
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    def add(self, kind: str, written: str, verdict: Grounded, **extra: str) -> None:
        c = self.counts.setdefault(kind, {"written": 0, "kept": 0, "repaired": 0, "dropped": 0})
        c["written"] += 1
        c[verdict.status] += 1
        key = f"{kind}/{verdict.status}"
        rows = self.samples.setdefault(key, [])
        if len(rows) < self.examples:
            row = {"written": written, **extra}
            if verdict.status != "kept":
                row["reason"] = verdict.reason
            if verdict.status == "repaired" and verdict.text is not None:
                row["used"] = verdict.text
            rows.append(row)

    def merge(self, other: Ledger) -> Ledger:
        for kind, c in other.counts.items():
            mine = self.counts.setdefault(kind, dict.fromkeys(c, 0))
            for k, v in c.items():
                mine[k] = mine.get(k, 0) + v
        for key, rows in other.samples.items():
            self.samples.setdefault(key, [])
            self.samples[key] += rows[: max(0, self.examples - len(self.samples[key]))]
        return self

    def grounded_share(self, kinds: tuple[str, ...] | None = None) -> float:
        """(kept + repaired) / written over `kinds` (all when None); 1.0 when nothing was written."""
        rows = [c for k, c in self.counts.items() if kinds is None or k in kinds]
        written = sum(c["written"] for c in rows)
        return 1.0 if not written else sum(c["kept"] + c["repaired"] for c in rows) / written

    def summary(self) -> dict[str, Any]:
        return {"counts": self.counts, "grounded_share": round(self.grounded_share(), 4), "samples": self.samples}


class GroundingError(ValueError):
    """Too little of what the teacher wrote about the memories was about them: the night does not train."""


def check_grounding(ledger: Ledger, min_share: float, what: str) -> None:
    """Raise GroundingError when the grounded share of the questions in `ledger` is below `min_share`."""
    c = ledger.counts.get("question", {"written": 0})
    share = ledger.grounded_share(("question",))
    if c["written"] and share < min_share:
        raise GroundingError(
            f"{what}: only {share:.2f} of the {c['written']} questions the teacher wrote are questions that name "
            f"what the memories hold (sleep.grounding.min_share={min_share:g}); the memories' names may be too "
            "unfamiliar to the model, or it does not follow the question-writing prompt: nothing was trained and "
            "serving is untouched"
        )
