"""Test days: a second generator of memory streams, for figures on memories nobody tuned the method on.

The world generator (`world.py`) is what the base model was pretrained on and what the sleep defaults were
chosen on. A test day shares only the world's closed value sets (its cities, organisations, jobs, hobbies, so a
closed-book answer is still one of a known set and chance stays low) and nothing of its writing:

  * names come from syllables the world never uses, with other lengths (`style="foreign"`), or from the
    world's own syllable inventory (`style="world"`, fresh people only);
  * every fact is stated with sentence shapes of its own and asked with question shapes of its own, none of
    which appears in `templates.py`, so no pretraining example, memory or probe of the world has them.

A day is a list of `Memory` records in the stream format of docs/FORMAT.md (kind "document", probes of kind
"new" in both splits), so every tool that takes a stream takes it. Seeds are split in two: `DEV_SEEDS` may be
looked at while developing; `FINAL_SEEDS` are for the reported figures only and must never be tuned on.

    day = generate_test_days(world_cfg, seed=1, style="foreign", people=24)          # one day: cycle 1
    month = generate_test_days(world_cfg, seed=1, style="foreign", days=5, people=24)  # cycles 1..5
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from sleep_ray.config import WorldConfig
from sleep_ray.data import vocab as V
from sleep_ray.data.schema import Memory, Probe
from sleep_ray.data.templates import PERSON_RELATIONS, render
from sleep_ray.data.world import value_sets

DEV_SEEDS = (1, 2, 3)  # look at these while building
FINAL_SEEDS = (101, 102)  # reported figures only: never tune a default on them
STYLES = ("world", "foreign")

# Syllables with no onset, vowel or coda of vocab.py's inventory: the names tokenize into rarer pieces.
_ONSETS = ("ch", "ph", "qu", "x", "y", "w", "j", "h", "gl", "pl", "sk", "th", "sn", "c", "fl", "gw")
_VOWELS = ("ae", "ou", "y", "ei", "oa", "au", "ia")
_CODAS = ("", "", "", "x", "th", "ng", "sk", "ck")


@dataclass(frozen=True)
class _Shapes:
    """How a test day states one relation, and how it asks about it (two disjoint question sets)."""

    statements: tuple[str, ...]
    probe_sleep: tuple[str, ...]
    probe_eval: tuple[str, ...]


SHAPES: dict[str, _Shapes] = {
    "born_in": _Shapes(
        ("{name} came into the world in {value}.", "The records list {value} as the place {name} was born."),
        ("As far as you know, where was {name} born?", "Which city saw the birth of {name}?"),
        (
            "Which city was the birthplace of {name}?",
            "Where was the birth of {name}?",
            "Which city did {name} come into the world in?",
        ),
    ),
    "lives_in": _Shapes(
        ("These days {name} keeps a house in {value}.", "{name} has settled down in {value}."),
        ("Where does {name} keep a house these days?", "Which city does {name} call home now?"),
        ("In which city does {name} keep a house?", "Which city has become the home of {name}?"),
    ),
    "works_for": _Shapes(
        ("{name} draws a salary from {value}.", "The employer of {name} at present is {value}."),
        ("Which company pays {name}?", "Which company does {name} draw a salary from?"),
        (
            "Which company is {name} employed by?",
            "For which firm does {name} work these days?",
            "Which firm pays the salary of {name}?",
        ),
    ),
    "job": _Shapes(
        ("{name} earns a living as {a_value}.", "By trade, {name} is {a_value}."),
        ("What line of work is {name} in?", "Which trade does {name} practise?"),
        ("How does {name} earn a living?", "What does {name} do by trade?", "What trade does {name} follow?"),
    ),
    "hobby": _Shapes(
        ("In spare hours {name} enjoys {value}.", "{name} spends weekends on {value}."),
        ("What does {name} enjoy in spare hours?", "What does {name} spend weekends on?"),
        (
            "What does {name} enjoy doing at weekends?",
            "Which pastime does {name} enjoy?",
            "What does {name} enjoy these weekends?",
        ),
    ),
}
_OPENERS = ("A short note on {name}.", "Here is what the register says about {name}.", "")


class _Names:
    """Fresh full names in one style, never a name the world or this day handed out before."""

    def __init__(self, rng: random.Random, style: str, taken: set[str]):
        self.rng, self.style, self.taken = rng, style, taken
        self.world_names = V.NameFactory(rng)

    def _word(self, syllables: int) -> str:
        r = self.rng
        return "".join(r.choice(_ONSETS) + r.choice(_VOWELS) + r.choice(_CODAS) for _ in range(syllables)).title()

    def person(self) -> tuple[str, str]:
        for _ in range(10000):
            if self.style == "world":
                full, first = self.world_names.person()
            else:
                first = self._word(self.rng.choice((1, 2)))
                full = f"{first} {self._word(self.rng.choice((1, 2)))}"
            if full not in self.taken and first not in self.taken:
                self.taken.update((full, first))
                return full, first
        raise RuntimeError("ran out of test-day names")


def generate_test_days(world: WorldConfig, *, seed: int, style: str, days: int = 1, people: int = 24) -> list[Memory]:
    """`days` days (cycles 1..days) of `people` one-person documents each, about fresh people whose facts take the
    world's values; deterministic in (world, seed, style, people), and day k is the same whatever `days` is."""
    if style not in STYLES:
        raise ValueError(f"test-day style {style!r} is not one of {list(STYLES)}")
    values, taken = value_sets(world)
    rng = random.Random(f"testday:{seed}:{style}")
    names = _Names(rng, style, taken)
    out = []
    for cycle in range(1, days + 1):
        for i in range(1, people + 1):
            full, first = names.person()
            facts = {rel: rng.choice(values[rel]) for rel in PERSON_RELATIONS}
            rels = list(PERSON_RELATIONS)
            rng.shuffle(rels)
            opener = rng.choice(_OPENERS)
            said = [render(opener, name=full)] if opener else []
            for j, rel in enumerate(rels):
                who = full if j == 0 or rng.random() < 0.5 else first
                said.append(render(rng.choice(SHAPES[rel].statements), name=who, value=facts[rel]))
            probes = [
                Probe(render(rng.choice(pool), name=full), facts[rel], "new", split, f"person:{full}:{rel}")
                for rel in PERSON_RELATIONS
                for split, pool in (("sleep", SHAPES[rel].probe_sleep), ("eval", SHAPES[rel].probe_eval))
            ]
            mid = f"test-{style}-{seed}-" + (f"{i:03d}" if cycle == 1 else f"d{cycle}-{i:03d}")
            out.append(Memory(cycle, mid, "document", " ".join(said), tuple(probes)))
    return out
