"""Grounding of written texts in their memory: names repaired or dropped, ledger counts, the night's floor."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from sleep_ray.data.grounding import (
    GroundingError,
    Ledger,
    check_grounding,
    ground,
    known_words,
    names,
    subject,
    swap_name,
)
from tests.helpers import ROOT

MEMORY = (
    "A short note on Luran Kretre. Luran Kretre draws a salary from Tesza Works. By trade, Luran is a painter. "
    "These days Luran keeps a house in Sheramor."
)


@pytest.fixture(scope="module")
def known():
    return known_words(AutoTokenizer.from_pretrained(ROOT / "examples" / "tiny_base"))


def test_names_are_capitalised_runs_but_not_ordinary_sentence_starts(known):
    assert [n for _, _, n in names("Where does Luran Kretre live? Kretre works for Tesza Works.", known)] == [
        "Luran Kretre",
        "Kretre",
        "Tesza Works",
    ]
    assert [n for _, _, n in names("What is Luran's job?", known)] == ["Luran"]


def test_a_question_naming_the_memory_is_kept(known):
    g = ground("Which company employs Luran Kretre?", MEMORY, known, require_name=True)
    assert (g.text, g.status) == ("Which company employs Luran Kretre?", "kept")


def test_a_misspelt_name_is_repaired_to_the_memory_name(known):
    g = ground("Where does Luran Kretron live?", MEMORY, known, require_name=True)
    assert (g.text, g.status, g.reason) == (
        "Where does Luran Kretre live?",
        "repaired",
        "Luran Kretron -> Luran Kretre",
    )


def test_an_invented_person_becomes_the_memory_subject_in_a_question(known):
    g = ground("Where does Phoil Kresen live?", MEMORY, known, require_name=True)
    assert (g.text, g.status) == ("Where does Luran Kretre live?", "repaired")
    g = ground("Do you know what job Fetan has?", MEMORY, known, require_name=True)
    assert g.text == "Do you know what job Luran has?"


def test_an_answer_naming_what_the_memory_lacks_is_dropped(known):
    assert ground("Sheramor", MEMORY, known, subject=False).status == "kept"
    assert ground("Sheramorr", MEMORY, known, subject=False).text == "Sheramor"
    g = ground("Kubravel", MEMORY, known, subject=False)
    assert (g.text, g.status) == (None, "dropped") and "Kubravel" in g.reason


def test_a_question_about_nothing_in_the_memory_is_dropped(known):
    g = ground("Where is based in?", MEMORY, known, require_name=True)
    assert (g.text, g.status, g.reason) == (None, "dropped", "names nothing in the memory")
    g = ground("Where does Ana Vel Dor live?", MEMORY, known, require_name=True)  # no three-word name to copy
    assert g.status == "dropped"


def test_ledger_counts_merges_and_keeps_examples():
    a, b = Ledger(examples=1), Ledger(examples=1)
    for text, status in (("q1", "kept"), ("q2", "repaired"), ("q3", "dropped")):
        a.add("question", text, ground_verdict(status))
    b.add("question", "q4", ground_verdict("dropped"))
    b.add("answer", "x", ground_verdict("kept"))
    a.merge(b)
    assert a.counts["question"] == {"written": 4, "kept": 1, "repaired": 1, "dropped": 2}
    assert a.grounded_share(("question",)) == 0.5 and a.grounded_share() == 0.6
    assert len(a.samples["question/dropped"]) == 1 and a.samples["question/dropped"][0]["reason"] == "why"
    assert a.summary()["grounded_share"] == 0.6


def ground_verdict(status: str):
    from sleep_ray.data.grounding import Grounded

    return Grounded(None if status == "dropped" else "t", status, "" if status == "kept" else "why")


def test_a_night_below_the_grounded_floor_fails_with_the_message():
    ledger = Ledger()
    for status in ("kept", "dropped", "dropped", "dropped"):
        ledger.add("question", "q", ground_verdict(status))
    check_grounding(ledger, 0.25, "cycle 1")  # exactly at the floor: trains
    with pytest.raises(GroundingError, match=r"cycle 1: only 0\.25 of the 4 questions .*min_share=0\.5"):
        check_grounding(ledger, 0.5, "cycle 1")
    check_grounding(Ledger(), 1.0, "cycle 1")  # nothing written: nothing to judge


def test_the_teacher_trains_only_on_questions_that_name_their_memory():
    """Real tiny base model on a test day of unfamiliar names: what survives names the memory it is about."""
    from sleep_ray.config import WorldConfig
    from sleep_ray.data.testdays import generate_test_days
    from sleep_ray.roles.teacher import TeacherSelf

    day = generate_test_days(WorldConfig(), seed=1, style="foreign", people=4)
    teacher = TeacherSelf(str(ROOT / "examples" / "tiny_base"), threads=1)
    items = teacher.write_questions(day, per_memory=4, seed=1)
    ledger = teacher.ledger()
    c = ledger.counts["question"]
    assert c["written"] >= len(items) == c["kept"] + c["repaired"] > 0
    assert c["repaired"] > 0  # this model misspells such names: the repair is exercised
    text = {m.memory_id: m.text for m in day}
    for it in items:
        question = it.student.removeprefix("Question: ").removesuffix("\nAnswer:")
        named = [n for _, _, n in names(question, teacher.known)]
        assert named and all(n in text[it.memory_id] for n in named), it.student
    assert teacher.ledger().counts == {}  # reading the ledger starts a fresh one


def test_a_written_question_and_answer_are_grounded_each_by_its_rule(known):
    from sleep_ray.data.grounding import ground_qa

    g = ground_qa(" What is the trade of Kreti Lone?\nAnswer: painter\n", MEMORY, known, answer_mark="\nAnswer:")
    assert (g.text, g.status) == (" What is the trade of Luran Kretre?\nAnswer: painter\n", "repaired")
    g = ground_qa(" Where does Luran live?\nAnswer: Sheramor", MEMORY, known, answer_mark="\nAnswer:")
    assert g.status == "kept"
    g = ground_qa(" Where does Luran live?\nAnswer: Kubravel", MEMORY, known, answer_mark="\nAnswer:")
    assert g.status == "dropped" and "Kubravel" in g.reason
    assert ground_qa(" Where does Luran live?", MEMORY, known, answer_mark="\nAnswer:").reason == "no answer"


def test_a_memory_s_subject_swaps_out_whole_and_by_its_words(known):
    assert subject(MEMORY, known) == "Luran Kretre"  # named twice in full; "Tesza Works" once
    swapped = swap_name(MEMORY, "Luran Kretre", "Hysk Glauth")
    assert swapped == (
        "A short note on Hysk Glauth. Hysk Glauth draws a salary from Tesza Works. By trade, Hysk is a painter. "
        "These days Hysk keeps a house in Sheramor."
    )
    assert swap_name("Luran Kretre met Kretre Luran.", "Luran Kretre", "Kretre Bax") == "Kretre Bax met Bax Kretre."


def test_swapped_reading_asks_of_another_person_whose_name_the_memory_now_carries():
    """Real tiny base on a test day: each swapped item's text and question name the same other person of the
    night, and the text keeps the original memory's facts."""
    from sleep_ray.config import WorldConfig
    from sleep_ray.data.testdays import generate_test_days
    from sleep_ray.roles.teacher import TeacherSelf

    day = generate_test_days(WorldConfig(), seed=1, style="foreign", people=4)
    teacher = TeacherSelf(str(ROOT / "examples" / "tiny_base"), threads=1)
    plain = teacher.write_questions(day, per_memory=4, seed=1, reading=1)
    both = teacher.write_questions(day, per_memory=4, seed=1, reading=1, swapped_reading=2)
    swapped = [it for it in both if it not in plain]
    assert plain == [it for it in both if it in plain] and 0 < len(swapped) <= 2 * len(day)
    people = {m.memory_id: subject(m.text, teacher.known) for m in day}
    text = {m.memory_id: m.text for m in day}
    for it in swapped:
        assert it.kind == "reading" and it.student == it.teacher
        context, question = it.student.rsplit("\nQuestion: ", 1)
        own = people[it.memory_id]
        other = next(p for p in people.values() if p != own and p in context)
        assert not any(w in context + question for w in own.split())
        assert any(w in question for w in other.split())
        assert context.endswith(swap_name(text[it.memory_id], own, other)[-40:])
