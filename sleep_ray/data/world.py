"""The synthetic knowledge world: made-up people, cities and organisations, written as documents and a stream.

`generate_world(cfg)` is deterministic for a WorldConfig: a single `random.Random(cfg.seed)` drives every
choice, and only lists and insertion-ordered dicts are iterated. What it builds (docs/FORMAT.md):

  * recall documents: `bios_per_person` restated biographies per base person (probes on the first one),
    one note per city (region) and per organisation (city, industry);
  * reading documents: throwaway people in one-person bios (some restated twice), two-/three-person notes,
    dialogues, and demonstrations of made-up relation words over base people;
  * held-out documents: bios never trained on;
  * the stream, per cycle: new-person bios, updates that contradict a base fact, dialogues, demonstrations
    of a new relation word, and long multi-person documents.

Every fact gets one "sleep" and one "eval" probe, worded with templates used nowhere else.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import dataclass

from sleep_ray.config import WorldConfig
from sleep_ray.data import templates as T
from sleep_ray.data import vocab as V
from sleep_ray.data.schema import (
    QA,
    Document,
    Memory,
    Probe,
    World,
)

# Each fact of the old knowledge is asked in this many wordings: varied questions are what let a small model
# answer a question phrased in a way it never saw (the probes), not just recite the pairs it trained on.
RECALL_QUESTIONS = 3

READING_ALIAS_WORDS = 6  # made-up relation words demonstrated in the reading pool (never in the stream)


@dataclass
class _Entity:
    kind: str  # "person" | "city" | "org"
    name: str
    first: str
    facts: dict[str, str]

    def fact_id(self, rel: str) -> str:
        return f"{self.kind}:{self.name}:{rel}"


class _Generator:
    """Holds the random state and the entities while one world is built."""

    def __init__(self, cfg: WorldConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.names = V.NameFactory(self.rng)
        self.cities = [_Entity("city", n, n, {}) for n in (self.names.city() for _ in range(cfg.num_cities))]
        for city in self.cities:
            city.facts["region"] = self.rng.choice(V.REGIONS)
        self.orgs = [_Entity("org", n, n, {}) for n in (self.names.org() for _ in range(cfg.num_orgs))]
        for org in self.orgs:
            org.facts["based_in"] = self.rng.choice(self.cities).name
            org.facts["industry"] = self.rng.choice(V.INDUSTRIES)
        self.base = [self.person() for _ in range(cfg.num_base_people)]

    # ----------------------------------------------------------------------------------------- pieces

    def person(self) -> _Entity:
        name, first = self.names.person()
        r = self.rng
        return _Entity(
            "person",
            name,
            first,
            {
                "born_in": r.choice(self.cities).name,
                "lives_in": r.choice(self.cities).name,
                "works_for": r.choice(self.orgs).name,
                "job": r.choice(V.JOBS),
                "hobby": r.choice(V.HOBBIES),
            },
        )

    def values(self, rel: str) -> list[str]:
        """The closed set a relation's values are drawn from."""
        if rel in ("born_in", "lives_in", "based_in"):
            return [c.name for c in self.cities]
        if rel == "works_for":
            return [o.name for o in self.orgs]
        return list({"job": V.JOBS, "hobby": V.HOBBIES, "region": V.REGIONS, "industry": V.INDUSTRIES}[rel])

    def qa(self, e: _Entity, rels: list[str] | tuple[str, ...], per_fact: int = 1) -> list[QA]:
        """Training questions about `rels` of `e`: `per_fact` differently worded questions for each fact."""
        return [
            QA(T.render(template, name=e.name), e.facts[rel], e.fact_id(rel))
            for rel in rels
            for template in self.rng.sample(T.RELATIONS[rel].questions, per_fact)
        ]

    def probes(self, e: _Entity, rel: str, kind: str, answer: str = "", stale: str = "", word: str = "") -> list[Probe]:
        """One "sleep" and one "eval" probe about `rel` of `e` (asked with the alias `word` when given)."""
        wording = T.ALIAS if word else T.RELATIONS[rel]
        answer = answer or e.facts[rel]
        return [
            Probe(T.render(self.rng.choice(pool), name=e.name, word=word), answer, kind, split, e.fact_id(rel), stale)
            for split, pool in (("sleep", wording.probe_sleep), ("eval", wording.probe_eval))
        ]

    def bio(self, p: _Entity, picks: dict[str, str] | None = None, full_names: bool = False) -> str:
        """A biography stating all five facts, in random order, with `picks` templates or random ones."""
        rels = list(T.PERSON_RELATIONS)
        self.rng.shuffle(rels)
        intro = self.rng.choice(T.BIO_INTROS)
        out = [T.render(intro, name=p.name)] if intro else []
        for i, rel in enumerate(rels):
            ref = p.name if i == 0 or full_names or self.rng.random() < 0.5 else p.first
            template = picks[rel] if picks else self.rng.choice(T.RELATIONS[rel].statements)
            out.append(T.render(template, name=ref, value=p.facts[rel]))
        return " ".join(out)

    def restated_bios(self, p: _Entity, n: int) -> list[str]:
        """`n` biographies of `p`, each with a different template per relation where there are enough."""
        samples = {
            rel: self.rng.sample(T.RELATIONS[rel].statements, min(n, len(T.RELATIONS[rel].statements)))
            for rel in T.PERSON_RELATIONS
        }
        return [self.bio(p, {rel: s[j % len(s)] for rel, s in samples.items()}) for j in range(n)]

    def dialogue(self, p: _Entity) -> str:
        """Two speakers (first names only) talking about `p`, stating all five facts."""
        a = b = p.first
        while a == p.first:
            a = self.names.first_name()
        while b in (p.first, a):
            b = self.names.first_name()
        ask, reply = self.rng.choice(T.DIALOGUE_OPENERS)
        lines = [f"{a}: {ask.format(full=p.name)}", f"{b}: {reply.format(first=p.first)}"]
        rels = list(T.PERSON_RELATIONS)
        self.rng.shuffle(rels)
        for rel in rels:
            if self.rng.random() < 0.6:
                lines.append(f"{a}: {T.render(self.rng.choice(T.RELATIONS[rel].questions), name=p.first)}")
            ref = p.first if self.rng.random() < 0.7 else p.name
            lines.append(f"{b}: {T.render(self.rng.choice(T.RELATIONS[rel].statements), name=ref, value=p.facts[rel])}")
        thanks, welcome = self.rng.choice(T.DIALOGUE_CLOSERS)
        if thanks:
            lines += [f"{a}: {thanks}", f"{b}: {welcome}"]
        return "\n".join(lines)

    def multi(self) -> tuple[str, list[_Entity], list[str]]:
        """A note on a main person (all facts) and one or two distractors (some facts); full names only."""
        people = [self.person() for _ in range(self.rng.choice((2, 3)))]
        main, others = people[0], people[1:]
        said = [(main, rel) for rel in T.PERSON_RELATIONS]
        distractor_rels = []
        for o in others:
            rels = self.rng.sample(T.PERSON_RELATIONS, self.rng.choice((2, 3)))
            said += [(o, rel) for rel in rels]
            distractor_rels.append(rels[0])
        self.rng.shuffle(said)
        order = people[:]
        self.rng.shuffle(order)
        names = ", ".join(x.name for x in order[:-1]) + " and " + order[-1].name
        text = " ".join(
            [T.render(self.rng.choice(T.MULTI_INTROS), names=names)]
            + [
                T.render(self.rng.choice(T.RELATIONS[rel].statements), name=e.name, value=e.facts[rel])
                for e, rel in said
            ]
        )
        return text, people, distractor_rels

    def demonstration(
        self, word: str, rel: str, pool: list[_Entity], asked: int
    ) -> tuple[str, list[_Entity], list[_Entity]]:
        """Examples of the made-up `word` (an alias of `rel`) on 3-4 people of `pool`; also picks `asked` others."""
        shown_n = min(self.rng.choice((3, 4)), len(pool) - 1)  # always leave someone to ask about
        chosen = self.rng.sample(pool, min(len(pool), shown_n + asked))
        shown, rest = chosen[:shown_n], chosen[shown_n:]
        lines = [T.render(self.rng.choice(T.ALIAS_INTROS), word=word)] + [
            T.render(self.rng.choice(T.ALIAS.statements), word=word, name=p.name, value=p.facts[rel]) for p in shown
        ]
        return " ".join(lines), shown, rest

    def alias_qa(self, word: str, rel: str, people: list[_Entity]) -> list[QA]:
        return [
            QA(T.render(self.rng.choice(T.ALIAS.questions), word=word, name=p.name), p.facts[rel], p.fact_id(rel))
            for p in people
        ]

    # --------------------------------------------------------------------------------------- documents

    def recall_documents(self) -> list[Document]:
        docs = []
        for i, p in enumerate(self.base, start=1):
            for j, text in enumerate(self.restated_bios(p, self.cfg.bios_per_person), start=1):
                probes = [x for rel in T.PERSON_RELATIONS for x in self.probes(p, rel, "base")] if j == 1 else []
                docs.append(
                    Document(
                        f"base-{i:04d}-{j}",
                        "bio",
                        "recall",
                        text,
                        f"person:{p.name}",
                        tuple(self.qa(p, T.PERSON_RELATIONS, RECALL_QUESTIONS)),
                        tuple(probes),
                    )
                )
        for i, c in enumerate(self.cities, start=1):
            text = " ".join(
                [
                    T.render(self.rng.choice(T.CITY_INTROS), name=c.name),
                    T.render(self.rng.choice(T.RELATIONS["region"].statements), name=c.name, value=c.facts["region"]),
                ]
            )
            docs.append(
                Document(
                    f"city-{i:03d}",
                    "city",
                    "recall",
                    text,
                    "",
                    tuple(self.qa(c, ["region"], RECALL_QUESTIONS)),
                    tuple(self.probes(c, "region", "base")),
                )
            )
        for i, o in enumerate(self.orgs, start=1):
            rels = ["based_in", "industry"]
            self.rng.shuffle(rels)
            intro = self.rng.choice(T.ORG_INTROS)
            said = [
                T.render(self.rng.choice(T.RELATIONS[rel].statements), name=o.name, value=o.facts[rel]) for rel in rels
            ]
            text = " ".join(([T.render(intro, name=o.name)] if intro else []) + said)
            docs.append(
                Document(
                    f"org-{i:03d}",
                    "org",
                    "recall",
                    text,
                    "",
                    tuple(self.qa(o, rels, RECALL_QUESTIONS)),
                    tuple(x for rel in rels for x in self.probes(o, rel, "base")),
                )
            )
        return docs

    def reading_documents(self, alias_words: list[str]) -> list[Document]:
        n = self.cfg.num_reading_docs
        n_multi, n_dialogue, n_demo = round(0.3 * n), round(0.2 * n), round(0.1 * n)
        n_bio = n - n_multi - n_dialogue - n_demo
        aliases = [(w, self.rng.choice(T.PERSON_RELATIONS)) for w in alias_words]
        made: list[tuple[str, str, str, list[QA]]] = []  # (kind, text, group, qa)
        while len(made) < n_bio:
            p = self.person()
            if n_bio - len(made) >= 2 and self.rng.random() < 0.2:
                made += [
                    ("bio", t, f"person:{p.name}", self.qa(p, T.PERSON_RELATIONS)) for t in self.restated_bios(p, 2)
                ]
            else:
                made.append(("bio", self.bio(p), "", self.qa(p, T.PERSON_RELATIONS)))
        for _ in range(n_multi):
            text, people, rels = self.multi()
            qa = self.qa(people[0], T.PERSON_RELATIONS)
            qa += [q for o, r in zip(people[1:], rels, strict=True) for q in self.qa(o, [r])]
            made.append(("multi", text, "", qa))
        for _ in range(n_dialogue):
            p = self.person()
            made.append(("dialogue", self.dialogue(p), "", self.qa(p, T.PERSON_RELATIONS)))
        for _ in range(n_demo):
            word, rel = self.rng.choice(aliases)
            text, shown, rest = self.demonstration(word, rel, self.base, asked=2)
            made.append(("demonstration", text, "", self.alias_qa(word, rel, rest + shown[:1])))
        self.rng.shuffle(made)
        return [
            Document(f"read-{i:05d}", kind, "reading", text, group, tuple(qa))
            for i, (kind, text, group, qa) in enumerate(made, start=1)
        ]

    def heldout_documents(self) -> list[Document]:
        return [
            Document(f"heldout-{i:04d}", "bio", "heldout", self.bio(self.person()))
            for i in range(1, self.cfg.num_heldout_docs + 1)
        ]

    # ------------------------------------------------------------------------------------------ stream

    def stream(self, alias_words: list[str]) -> list[Memory]:
        cfg, rng = self.cfg, self.rng
        n_updates = cfg.num_cycles * cfg.updates_per_cycle
        n_demos = cfg.num_cycles * cfg.demonstrations_per_cycle
        if n_updates > len(self.base) - (4 if n_demos else 0):
            raise ValueError(
                f"{n_updates} updates need that many distinct base people (plus 4 never updated, for "
                f"demonstrations); num_base_people is {len(self.base)}"
            )
        targets = rng.sample(self.base, n_updates)
        target_names = {p.name for p in targets}
        steady = [p for p in self.base if p.name not in target_names]  # never updated: safe for rule probes
        memories: list[Memory] = []
        for cycle in range(1, cfg.num_cycles + 1):
            made: list[tuple[str, str, list[Probe]]] = []
            for _ in range(cfg.new_people_per_cycle):
                p = self.person()
                made.append(
                    ("document", self.bio(p), [x for r in T.PERSON_RELATIONS for x in self.probes(p, r, "new")])
                )
            for _ in range(cfg.updates_per_cycle):
                made.append(self.update(targets.pop(0)))
            for _ in range(cfg.dialogues_per_cycle):
                p = self.person()
                made.append(
                    ("dialogue", self.dialogue(p), [x for r in T.PERSON_RELATIONS for x in self.probes(p, r, "new")])
                )
            for _ in range(cfg.demonstrations_per_cycle):
                word, rel = alias_words.pop(0), rng.choice(T.PERSON_RELATIONS)
                text, _, asked = self.demonstration(word, rel, steady, asked=4)
                made.append(("demonstration", text, [x for p in asked for x in self.probes(p, rel, "rule", word=word)]))
            for _ in range(cfg.long_docs_per_cycle):
                people = [self.person() for _ in range(cfg.people_per_long_doc)]
                text = "\n\n".join([rng.choice(T.LONG_INTROS)] + [self.bio(p, full_names=True) for p in people])
                made.append(
                    (
                        "long_document",
                        text,
                        [x for p in people for r in T.PERSON_RELATIONS for x in self.probes(p, r, "long")],
                    )
                )
            rng.shuffle(made)
            counts: Counter[str] = Counter()
            for kind, text, probes in made:
                counts[kind] += 1
                memories.append(Memory(cycle, f"c{cycle}-{kind}-{counts[kind]}", kind, text, tuple(probes)))
        return memories

    def update(self, p: _Entity) -> tuple[str, str, list[Probe]]:
        """A memory that changes one fact of base person `p` (in place), with updated and retained probes."""
        rel = self.rng.choice(T.UPDATABLE)
        old = p.facts[rel]
        new = self.rng.choice([v for v in self.values(rel) if v != old])
        lead = self.rng.choice(T.UPDATE_LEADS)
        text = " ".join(
            ([T.render(lead, name=p.name)] if lead else [])
            + [T.render(self.rng.choice(T.UPDATES[rel]), name=p.name, old=old, new=new)]
        )
        kept = self.rng.choice([r for r in T.PERSON_RELATIONS if r != rel])
        probes = self.probes(p, rel, "updated", answer=new, stale=old) + self.probes(p, kept, "retained")
        p.facts[rel] = new
        return "update", text, probes


def value_sets(cfg: WorldConfig) -> tuple[dict[str, list[str]], set[str]]:
    """The closed value set of each person relation in the world `cfg` builds, and every name it gives a base
    person or a city (what another generator of people for this world must draw from, and must not reuse)."""
    gen = _Generator(cfg)
    values = {rel: gen.values(rel) for rel in T.PERSON_RELATIONS}
    taken = {e.name for e in gen.base} | {e.first for e in gen.base} | {e.name for e in gen.cities}
    return values, taken


def generate_world(cfg: WorldConfig) -> World:
    """Build the world described by `cfg`; the same cfg always gives the same world."""
    gen = _Generator(cfg)
    stream_words = gen.names.alias_words(cfg.num_cycles * cfg.demonstrations_per_cycle)
    reading_words = gen.names.alias_words(READING_ALIAS_WORDS)
    documents = gen.recall_documents() + gen.reading_documents(reading_words) + gen.heldout_documents()
    return World(tuple(documents), tuple(gen.stream(stream_words)))
