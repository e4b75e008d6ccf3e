"""The Learning-to-Imitate reward (docs/METHOD.md §3.4): how well the student's completion d_hat of a dream prefix
imitates the teacher's dream d.

    r_sem = 1 if a frozen judge says d_hat and d mean the same thing, else 0
    z     = Levenshtein(d_hat, d) / max(|d_hat|, |d|)                       (normalized edit distance, in [0, 1])
    r_lev = 1 - z   if z <= z0,   else 0                                   (surface reward)
    r     = gamma * r_sem + (1 - gamma) * r_lev

Choices the paper leaves open, made here:

- Levenshtein distance is counted in **characters** (`rapidfuzz.distance.Levenshtein`, unit costs); the paper
  does not say whether it means tokens or characters. Strings are compared as given: strip or normalize them
  before calling if that is wanted.
- The paper writes the threshold on the raw distance (z <= z0). We put it on the normalized distance, as the
  config documents `sleep.seeding.z0` ("normalized edit distance above which the surface reward is 0"), so
  z0 in [0, 1] means the same for short and long dreams. z0 = 1 never zeroes the surface reward.

The judge's verdict comes from a model elsewhere; `parse_judge_verdict` reads its " yes" / " no" continuation.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

from rapidfuzz.distance import Levenshtein


def _check_unit(name: str, value: float) -> None:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")


def levenshtein_reward(completion: str, reference: str, *, z0: float) -> float:
    """Surface reward: 1 - d / max_len if d / max_len <= z0, else 0.

    d = character Levenshtein distance between `completion` and `reference` (insert, delete, substitute, each
    cost 1); max_len = max(len(completion), len(reference)); z0 in [0, 1] is the threshold on the normalized
    distance. Both strings empty -> 1.0 (identical).

    Example: "kitten" vs "sitting": d = 3, max_len = 7 -> 1 - 3/7 = 4/7 when z0 >= 3/7, else 0.
    """
    _check_unit("z0", z0)
    max_len = max(len(completion), len(reference))
    if max_len == 0:
        return 1.0
    z = Levenshtein.distance(completion, reference) / max_len
    return 1.0 - z if z <= z0 else 0.0


def imitation_reward(r_sem: float, r_lev: float, *, gamma: float) -> float:
    """The LTI reward r = gamma * r_sem + (1 - gamma) * r_lev, with gamma in [0, 1]."""
    _check_unit("gamma", gamma)
    return gamma * r_sem + (1.0 - gamma) * r_lev


@dataclass(frozen=True)
class ImitationScore:
    """One completion's LTI reward and its parts: semantic (r_sem in {0, 1}), surface (r_lev), total (r)."""

    semantic: float
    surface: float
    total: float


def score_imitation(completion: str, reference: str, same_meaning: bool, *, gamma: float, z0: float) -> ImitationScore:
    """Score the student's `completion` against the teacher's `reference` (the rest of the dream).

    semantic = 1.0 if `same_meaning` (the judge's verdict, computed elsewhere) else 0.0;
    surface = levenshtein_reward(completion, reference, z0=z0); total = gamma * semantic + (1 - gamma) * surface.
    """
    semantic = 1.0 if same_meaning else 0.0
    surface = levenshtein_reward(completion, reference, z0=z0)
    return ImitationScore(semantic=semantic, surface=surface, total=imitation_reward(semantic, surface, gamma=gamma))


_STRIP = string.punctuation + "\u201c\u201d\u2018\u2019\u2026"


def parse_judge_verdict(text: str) -> bool | None:
    """The judge's verdict from its continuation of a prompt ending "...Same meaning?".

    Takes the first whitespace-separated word, lowercases it and strips punctuation (ASCII and curly quotes,
    ellipsis) from both ends: "yes" -> True, "no" -> False, anything else (including empty text) -> None.

        parse_judge_verdict(" Yes.") is True;  parse_judge_verdict(" no, they differ") is False
        parse_judge_verdict(" maybe") is None;  parse_judge_verdict("Yesterday") is None
    """
    words = text.split()
    if not words:
        return None
    word = words[0].lower().strip(_STRIP)
    if word == "yes":
        return True
    if word == "no":
        return False
    return None
