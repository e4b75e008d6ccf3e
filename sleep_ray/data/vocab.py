"""Vocabularies of the synthetic world: the closed value sets facts are drawn from, and made-up names.

Values come from small closed sets (cities, organisations, jobs, hobbies), so guessing a fact about a person
the model has never seen is near chance (1/num_cities, 1/len(JOBS), ...). Names are built from syllables, so
fresh people, cities, organisations and relation words are unlimited and never collide.
"""

from __future__ import annotations

import random
from collections.abc import Callable

REGIONS = ("north", "south", "east", "west")
JOBS = (
    "baker",
    "teacher",
    "nurse",
    "pilot",
    "farmer",
    "painter",
    "engineer",
    "lawyer",
    "chef",
    "doctor",
    "writer",
    "tailor",
)
HOBBIES = (
    "chess",
    "fishing",
    "gardening",
    "cycling",
    "singing",
    "knitting",
    "hiking",
    "archery",
    "pottery",
    "rowing",
    "juggling",
    "dancing",
)
INDUSTRIES = (
    "software",
    "farming",
    "shipping",
    "medicine",
    "banking",
    "textiles",
    "energy",
    "publishing",
    "mining",
    "tourism",
)
ORG_SUFFIXES = ("Labs", "Works", "Group", "Partners", "Company", "Systems", "Trust", "Guild")
CITY_SUFFIXES = ("vel", "mor", "dan", "wick", "ford", "holm", "stad", "ton", "mere", "gard")

_ONSETS = ("b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "dr", "kr", "tr", "st", "sh")
_VOWELS = ("a", "e", "i", "o", "u")
_CODAS = ("", "", "n", "r", "l", "s", "m", "k")
_ALIAS_HEADS = (
    "kin",
    "bloom",
    "work",
    "dwell",
    "hearth",
    "craft",
    "root",
    "wend",
    "thorn",
    "lark",
    "fen",
    "moss",
    "brim",
    "gale",
    "holt",
    "quill",
)
_ALIAS_TAILS = ("stead", "place", "hall", "mark", "ward", "hold", "mote", "fast")


class NameFactory:
    """Made-up words built from syllables; every word and full name it hands out is unique."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.reserved: set[str] = set()  # single words: cities, org stems, alias words, last names
        self.full_names: set[str] = set()

    def _syllable(self, coda: bool = False) -> str:
        s = self.rng.choice(_ONSETS) + self.rng.choice(_VOWELS)
        return s + self.rng.choice(_CODAS) if coda else s

    def _fresh(self, make: Callable[[], str]) -> str:
        for _ in range(10000):
            word = make()
            if word not in self.reserved:
                self.reserved.add(word)
                return word
        raise RuntimeError("ran out of made-up words")

    def city(self) -> str:
        return self._fresh(lambda: (self._syllable() + self._syllable() + self.rng.choice(CITY_SUFFIXES)).title())

    def org(self) -> str:
        stem = self._fresh(lambda: (self._syllable(coda=True) + self._syllable()).title())
        return f"{stem} {self.rng.choice(ORG_SUFFIXES)}"

    def first_name(self) -> str:
        """A first name; may repeat across people but is never a reserved word."""
        for _ in range(10000):
            word = (self._syllable() + self._syllable(coda=True)).title()
            if word not in self.reserved:
                return word
        raise RuntimeError("ran out of first names")

    def person(self) -> tuple[str, str]:
        """(full name, first name), the full name never handed out before."""
        for _ in range(10000):
            first = self.first_name()
            last = (self._syllable() + self._syllable(coda=True)).title()
            full = f"{first} {last}"
            if full not in self.full_names and last not in self.reserved:
                self.full_names.add(full)
                return full, first
        raise RuntimeError("ran out of person names")

    def alias_words(self, n: int) -> list[str]:
        """`n` distinct made-up relation words like "kinstead", "bloomplace"."""
        pool = [h + t for h in _ALIAS_HEADS for t in _ALIAS_TAILS]
        self.rng.shuffle(pool)
        words = [w for w in pool if w not in self.reserved][:n]
        if len(words) < n:
            raise ValueError(f"only {len(words)} made-up relation words are available, {n} were asked for")
        self.reserved.update(words)
        return words
