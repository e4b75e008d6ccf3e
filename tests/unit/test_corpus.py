"""Pretraining examples derived from a world: kinds, who may be asked closed-book, judge pairs."""

from __future__ import annotations

import random

import pytest

from sleep_ray.data.corpus import KINDS, Corpus, fact_sentence, sentences
from sleep_ray.data.schema import QA, Document
from sleep_ray.data.windows import best_window, windows

BIO_A = Document(
    "a1",
    "bio",
    "recall",
    "Ana Vel lives in Miravel. Ana Vel works for Quinta Labs.",
    group="ana",
    qa=(QA("Where does Ana Vel live?", "Miravel", "person:Ana Vel:lives_in"),),
)
BIO_A2 = Document(
    "a2",
    "bio",
    "recall",
    "Quinta Labs employs Ana Vel. Miravel is home to Ana Vel.",
    group="ana",
    qa=(QA("Which city is home to Ana Vel?", "Miravel", "person:Ana Vel:lives_in"),),
)
READ = Document(
    "r1",
    "bio",
    "reading",
    "Bo Tan lives in Qorth.",
    qa=(QA("Where does Bo Tan live?", "Qorth", "person:Bo Tan:lives_in"),),
)
HELD = Document("h1", "bio", "heldout", "Cai Lum lives in Talvik.", qa=(QA("Where does Cai Lum live?", "Talvik"),))
DOCS = [BIO_A, BIO_A2, READ, HELD]


def test_every_kind_is_produced_and_deterministic():
    corpus = Corpus(DOCS, {k: 1.0 for k in KINDS})
    a = [corpus.sample(random.Random(i)) for i in range(200)]
    b = [corpus.sample(random.Random(i)) for i in range(200)]
    assert a == b
    assert {kind for kind, _ in a} == set(KINDS)


def test_updating_states_a_random_new_value_that_the_question_then_asks_for():
    corpus = Corpus([BIO_A, READ], {"updating": 1.0})
    kinds = set()
    for i in range(200):
        text = corpus.sample(random.Random(i))[1]
        if text.startswith("Context: ") and "\nQuestion: " in text and "Write a question" not in text:
            context, qas = text.split("\nQuestion: ", 1)
            new = qas.rsplit("\nAnswer: ", 1)[1]  # one question: each person has one fact here
            old = {"Miravel": "Qorth", "Qorth": "Miravel"}[new]
            assert context.rindex(new) > context.rindex(old)  # the change comes after what it changes
            assert new == "Qorth" or "Ana Vel" not in context  # a known person's value is never swapped first
            kinds.add("qa")
        elif "Say it in other words." in text:
            change, restated = text.split("\nSay it in other words.\n")
            assert restated != change.removeprefix("Context: ") and ("Qorth" in restated) and ("Miravel" in restated)
            kinds.add("restatement")
        else:
            assert "Write a question and its answer.\nQuestion: " in text
            kinds.add("question_writing")
    assert kinds == {"qa", "restatement", "question_writing"}
    assert Corpus([BIO_A], {"updating": 1.0, "text": 1.0}).kinds == ["text"]  # one value of the relation: no update


def test_reading_and_heldout_documents_are_never_asked_closed_book():
    corpus = Corpus(DOCS, {"recall": 1.0})
    texts = [corpus.sample(random.Random(i))[1] for i in range(50)]
    assert all("Bo Tan" not in t and "Cai Lum" not in t for t in texts)
    assert all(t.startswith("Question: ") and "Ana Vel" in t for t in texts)


def test_heldout_documents_are_never_trained_on():
    corpus = Corpus(DOCS, {k: 1.0 for k in KINDS})
    assert all("Cai Lum" not in corpus.sample(random.Random(i))[1] for i in range(300))


def test_reading_example_puts_the_document_before_its_questions():
    corpus = Corpus([READ], {"reading": 1.0})
    assert (
        corpus.sample(random.Random(0))[1]
        == "Context: Bo Tan lives in Qorth.\nQuestion: Where does Bo Tan live?\nAnswer: Qorth"
    )


def test_judge_pairs_match_facts_across_restatements():
    corpus = Corpus(DOCS, {"judging": 1.0})
    pairs = [corpus._judge_pair(random.Random(i)) for i in range(100)]
    same = [p for p in pairs if p.same]
    assert same and all("Miravel" in p.a and "Miravel" in p.b for p in same)
    assert any(not p.same for p in pairs)


def test_fact_sentence_needs_the_entity_in_multi_person_text():
    text = "Bo Tan lives in Miravel. Ana Vel lives in Miravel."
    assert fact_sentence(text, QA("q", "Miravel", "person:Ana Vel:lives_in")) == "Ana Vel lives in Miravel."
    assert sentences("One. Two!  Three?") == ["One.", "Two!", "Three?"]


def test_unknown_mix_kind_is_rejected():
    with pytest.raises(ValueError, match="pretrain.mix"):
        Corpus(DOCS, {"txet": 1.0})


def test_windows_split_on_sentences_and_retrieval_picks_the_matching_one():
    text = "Ana Vel lives in Miravel. Bo Tan works for Quinta Labs. Cai Lum enjoys chess."
    chunks = windows(text, lambda s: len(s.split()), max_tokens=6)
    assert chunks == ["Ana Vel lives in Miravel.", "Bo Tan works for Quinta Labs.", "Cai Lum enjoys chess."]
    assert best_window(chunks, "Who does Bo Tan work for?") == "Bo Tan works for Quinta Labs."
    assert windows(text, lambda s: len(s.split()), max_tokens=100) == [text]


def test_reading_documents_get_their_values_shuffled_consistently_recall_documents_never():
    other = Document(
        "r2",
        "bio",
        "reading",
        "Dee Fo was born in Talvik. Dee Fo lives in Talvik.",
        qa=(
            QA("Where was Dee Fo born?", "Talvik", "person:Dee Fo:born_in"),
            QA("Where does Dee Fo live?", "Talvik", "person:Dee Fo:lives_in"),
        ),
    )
    pool = Document(
        "r3", "bio", "reading", "Eli Ko was born in Qorth.", qa=(QA("Where?", "Qorth", "person:Eli Ko:born_in"),)
    )
    corpus = Corpus([BIO_A, other, pool], {"reading": 1.0})
    seen = set()
    for i in range(40):
        doc = corpus._swapped(other, random.Random(i))
        born, lives = doc.qa
        assert born.answer == lives.answer and doc.text.count(born.answer) == 2  # one value, one mapping
        seen.add(born.answer)
    assert seen == {"Talvik", "Qorth"}  # values of the same relation (born_in) only
    assert corpus._swapped(BIO_A, random.Random(0)) is BIO_A
