"""Pretraining examples derived from world documents and their question/answer pairs, whoever wrote them.

Eight kinds, each teaching one skill the small model needs later in some role:

    text              the document itself (language modelling)
    recall            closed-book questions about recall documents   -> student answers from its weights
    reading           document in context, then its questions         -> teacher-self reads memories
    reading_short     one to three sentences of a document, then a question they answer (a reading curriculum:
                      with one fact in view, copying the answer is all there is to learn)
    question_writing  document, then a question and its answer       -> dream generator writes questions
    restatement       document, then another document of its group   -> dream generator restates memories
    judging           two sentences, then "yes"/"no" (same fact?)    -> frozen judge of Learning-to-Imitate
    updating          a change of a person's fact in context, then questions (the new value wins; other facts
                      keep theirs), a question written about it, or the change in other words
                                                                     -> teacher-self reads updates; dreams of them

Reading examples built from `use="reading"` documents swap every stated value for another value of the same
relation (consistently in the text and its answers) each time they are drawn: a small model can memorise a
few thousand practice documents, and then never learns to read. With the values shuffled, the context is the
only way to the answer. Updates are drawn the same way: each time, a random new value of the relation, so the
change in the context is the only way to the new answer (no update of the world's stream is ever stated).

Only `use="recall"` documents are answered closed-book; `use="reading"` documents are only ever seen with the
document in context; `use="heldout"` documents are never used. Sampling is a pure function of the RNG, so a
training step's batch depends only on (seed, step) and resume is exact.
"""

from __future__ import annotations

import random
import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from sleep_ray.data import prompts
from sleep_ray.data import templates as T
from sleep_ray.data.schema import QA, Document

KINDS = ("text", "recall", "reading", "reading_short", "question_writing", "restatement", "judging", "updating")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")


def sentences(text: str) -> list[str]:
    """Split prose into sentences (on ., ! or ? followed by whitespace)."""
    return [s.strip() for s in _SENTENCE.split(text) if s.strip()]


def fact_sentence(text: str, qa: QA) -> str | None:
    """The first sentence of `text` that states `qa`: it holds the answer and, when the fact id names the
    entity ('person:Ana Vel:lives_in'), the entity's first name too (multi-person documents)."""
    parts = qa.fact_id.split(":")
    who = parts[1].split()[0] if len(parts) == 3 and parts[1].strip() else ""
    for s in sentences(text):
        if qa.answer in s and who in s:
            return s
    return None


def same_fact(a: QA, b: QA) -> bool:
    """Two QA pairs state the same fact: same fact id when both have one, else same question and answer."""
    if a.fact_id and b.fact_id:
        return a.fact_id == b.fact_id and a.answer == b.answer
    return a.question == b.question and a.answer == b.answer


def relation_of(qa: QA) -> str:
    """The relation part of a fact id like 'person:Ana Vel:lives_in'; empty when the world gives none."""
    return qa.fact_id.rsplit(":", 1)[-1] if ":" in qa.fact_id else ""


@dataclass(frozen=True)
class _Pair:
    a: str
    b: str
    same: bool


class Corpus:
    """Samples training texts of the six kinds from a world's documents, weighted by `mix`."""

    def __init__(self, documents: Sequence[Document], mix: dict[str, float], max_questions: int = 4):
        unknown = set(mix) - set(KINDS)
        if unknown:
            raise ValueError(f"pretrain.mix: unknown example kinds {sorted(unknown)}; known: {list(KINDS)}")
        self.max_questions = max_questions
        trainable = [d for d in documents if d.use in ("recall", "reading")]
        self.text_docs = trainable
        self.recall_qa = [qa for d in trainable if d.use == "recall" for qa in d.qa]
        self.reading_docs = [d for d in trainable if d.qa]
        groups: dict[str, list[Document]] = defaultdict(list)
        for d in trainable:
            if d.group:
                groups[d.group].append(d)
        self.groups = [g for g in groups.values() if len(g) >= 2]
        self.answers_by_relation: dict[str, list[str]] = defaultdict(list)
        for d in trainable:
            for qa in d.qa:
                self.answers_by_relation[relation_of(qa)].append(qa.answer)
        self.updatable = [
            d for d in trainable if d.kind == "bio" and any(relation_of(qa) in T.UPDATABLE for qa in d.qa)
        ]
        available = {
            "text": bool(self.text_docs),
            "recall": bool(self.recall_qa),
            "reading": bool(self.reading_docs),
            "reading_short": bool(self.reading_docs),
            "question_writing": bool(self.reading_docs),
            "restatement": bool(self.groups),
            "judging": bool(self.groups),
            "updating": any(len(set(self.answers_by_relation[r])) > 1 for r in T.UPDATABLE),
        }
        self.kinds = [k for k in KINDS if mix.get(k, 0.0) > 0 and available[k]]
        if not self.kinds:
            raise ValueError("the world has no documents usable for pretraining (need use=recall or reading)")
        self.weights = [mix[k] for k in self.kinds]

    def sample(self, rng: random.Random) -> tuple[str, str]:
        """One (kind, text) training example."""
        kind = rng.choices(self.kinds, weights=self.weights)[0]
        return kind, getattr(self, f"_{kind}")(rng)

    # one method per kind ---------------------------------------------------------------------------

    def _text(self, rng: random.Random) -> str:
        return rng.choice(self.text_docs).text

    def _qa_block(self, qas: Sequence[QA]) -> str:
        return "\n".join(f"Question: {qa.question}\nAnswer: {qa.answer}" for qa in qas)

    def _recall(self, rng: random.Random) -> str:
        k = min(len(self.recall_qa), 4)
        return self._qa_block(rng.sample(self.recall_qa, k))

    def _pick_questions(self, doc: Document, rng: random.Random) -> list[QA]:
        k = rng.randint(1, min(self.max_questions, len(doc.qa)))
        return rng.sample(list(doc.qa), k)

    def _swapped(self, doc: Document, rng: random.Random) -> Document:
        """`doc` with its stated values replaced by random values of the same relations (use="reading" only).

        Documents whose answers are not all in the text (they rely on outside knowledge) are left as they are.
        """
        if doc.use != "reading" or not all(qa.answer in doc.text and relation_of(qa) for qa in doc.qa):
            return doc
        mapping: dict[str, str] = {}
        for qa in doc.qa:
            if qa.answer not in mapping:
                pool = self.answers_by_relation[relation_of(qa)]
                mapping[qa.answer] = rng.choice(pool)
        pattern = re.compile("|".join(re.escape(a) for a in sorted(mapping, key=len, reverse=True)))
        text = pattern.sub(lambda m: mapping[m.group(0)], doc.text)
        swapped = tuple(QA(q.question, mapping[q.answer], q.fact_id) for q in doc.qa)
        return Document(doc.doc_id, doc.kind, doc.use, text, doc.group, swapped, doc.probes)

    def _reading(self, rng: random.Random) -> str:
        doc = self._swapped(rng.choice(self.reading_docs), rng)
        return f"Context: {doc.text}\n" + self._qa_block(self._pick_questions(doc, rng))

    def _reading_short(self, rng: random.Random) -> str:
        doc = self._swapped(rng.choice(self.reading_docs), rng)
        qa = rng.choice(doc.qa)
        fact = fact_sentence(doc.text, qa)
        if fact is None:  # the answer is not stated in the text (e.g. a demonstration's held-out person)
            return self._reading(rng)
        others = [x for x in sentences(doc.text) if x != fact and qa.answer not in x]
        shown = [fact, *rng.sample(others, min(len(others), rng.randint(0, 2)))]
        rng.shuffle(shown)
        return f"Context: {' '.join(shown)}\n" + self._qa_block([qa])

    def _question_writing(self, rng: random.Random) -> str:
        doc = rng.choice(self.reading_docs)
        qa = rng.choice(doc.qa)
        return f"{prompts.question_writing(doc.text)} {qa.question}\nAnswer: {qa.answer}"

    def _restatement(self, rng: random.Random) -> str:
        a, b = rng.sample(rng.choice(self.groups), 2)
        return prompts.restatement(a.text) + b.text

    def _judging(self, rng: random.Random) -> str:
        pair = self._judge_pair(rng)
        return f"{prompts.judging(pair.a, pair.b)} {'yes' if pair.same else 'no'}"

    def _judge_pair(self, rng: random.Random) -> _Pair:
        """Same-fact sentences from two documents of a group, or a hard negative (other value / other fact)."""
        for _ in range(20):
            a, b = rng.sample(rng.choice(self.groups), 2)
            shared = [qa for qa in a.qa if any(same_fact(qa, qb) for qb in b.qa)]
            if not shared:
                continue
            qa = rng.choice(shared)
            sa, sb = fact_sentence(a.text, qa), fact_sentence(b.text, qa)
            if sa is None or sb is None:
                continue
            if rng.random() < 0.5:
                return _Pair(sa, sb, True)
            if rng.random() < 0.5:  # a different value in the same sentence
                others = [x for x in self.answers_by_relation[relation_of(qa)] if x != qa.answer and x not in sb]
                if others:
                    return _Pair(sa, sb.replace(qa.answer, rng.choice(others)), False)
            other = [s for s in sentences(b.text) if qa.answer not in s and s != sb]
            if other:
                return _Pair(sa, rng.choice(other), False)
        return _Pair(self._text(rng), self._text(rng), False)

    def _updating(self, rng: random.Random) -> str:
        """A person's bio (or nothing), then a change of one of their facts; then questions about them, a question
        written about the change, or the change in other words. The new value is drawn at random each time (as
        `_swapped` does for practice facts), so only the context tells it."""
        for _ in range(20):
            doc = self._swapped(rng.choice(self.updatable), rng)
            rel = rng.choice(sorted({relation_of(qa) for qa in doc.qa} & set(T.UPDATABLE)))
            asked = [qa for qa in doc.qa if relation_of(qa) == rel]
            values = sorted({v for v in self.answers_by_relation[rel] if v != asked[0].answer})
            if values:
                break
        else:
            return self._reading(rng)
        old, new, name = asked[0].answer, rng.choice(values), asked[0].fact_id.split(":")[1]
        said, other = rng.sample(T.UPDATES[rel], 2)
        lead = rng.choice(T.UPDATE_LEADS)
        change = " ".join(([T.render(lead, name=name)] if lead else []) + [T.render(said, name=name, old=old, new=new)])
        roll = rng.random()
        if roll < 0.15:
            return prompts.restatement(change) + T.render(other, name=name, old=old, new=new)
        with_doc = rng.random() < 0.5
        context = f"{doc.text} {change}" if with_doc else change
        updated = QA(rng.choice(asked).question, new, asked[0].fact_id)
        if roll < 0.3:
            return f"{prompts.question_writing(context)} {updated.question}\nAnswer: {new}"
        # the other facts keep their values: read from the context, or known from the weights (recall documents)
        kept = [qa for qa in doc.qa if relation_of(qa) != rel] if with_doc or doc.use == "recall" else []
        qas = [updated, *rng.sample(kept, min(len(kept), rng.randint(0, 2)))]
        rng.shuffle(qas)
        return f"Context: {context}\n" + self._qa_block(qas)
