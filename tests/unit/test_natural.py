"""The packaged natural-English set: the stream reads back with the project's reader and keeps the set's rules."""

from __future__ import annotations

from importlib.resources import as_file, files

from sleep_ray.data.corpus import sentences
from sleep_ray.data.natural import GeneralQuestion, general_questions, natural_stream
from sleep_ray.data.schema import read_stream
from sleep_ray.eval.metrics import normalize_answer


def test_stream_reads_with_the_project_reader() -> None:
    with as_file(files("sleep_ray.data").joinpath("natural/stream.jsonl")) as path:
        assert read_stream(path) == natural_stream()


def test_stream_counts_and_shape() -> None:
    memories = natural_stream()
    assert len(memories) >= 24
    assert sum(len(m.probes) for m in memories) >= 72
    assert len({m.memory_id for m in memories}) == len(memories)
    for m in memories:
        assert m.memory_id.startswith("nat-")
        assert (m.cycle, m.kind) == (1, "document")
        assert 3 <= len(sentences(m.text)) <= 6, m.memory_id
        assert len(m.probes) == 3, m.memory_id
        assert all(p.kind == "new" and p.split == "eval" for p in m.probes)
        assert len({p.fact_id for p in m.probes}) == 3


def test_gold_answers_are_short_verbatim_spans_not_given_away() -> None:
    for m in natural_stream():
        for p in m.probes:
            assert p.answer in m.text, (m.memory_id, p.answer)  # case-sensitive, verbatim
            assert 1 <= len(p.answer.split()) <= 4, p.answer
            assert p.answer.lower() not in p.question.lower(), (m.memory_id, p.question)
            assert p.question.endswith("?")


def test_general_questions() -> None:
    questions = general_questions()
    assert len(questions) >= 100
    assert len({q.question for q in questions}) == len(questions)
    for q in questions:
        assert q.question.strip() and q.answer.strip()
        assert all(a.strip() for a in q.aliases)
        for gold in q.golds():  # echoing the question back must not count as answering it
            assert f" {normalize_answer(gold)} " not in f" {normalize_answer(q.question)} ", q.question


def test_a_general_question_counts_as_known_by_the_gold_or_alias_its_reply_holds() -> None:
    from sleep_ray.bench.real import answered_gold

    qs = [
        GeneralQuestion("What is two plus two?", "4", ("four",)),
        GeneralQuestion("What is the capital of France?", "Paris"),
        GeneralQuestion("What colour is grass?", "green"),
        GeneralQuestion("Who wrote Hamlet?", "William Shakespeare", ("Shakespeare",)),
    ]
    replies = ["Two plus two is four.", "The capital of France is Lyon.", "Greenish", "It was Shakespeare!"]
    # alias "four"; "Lyon" wrong; "greenish" is not the token "green"; alias "Shakespeare"
    assert [answered_gold(q, r) for q, r in zip(qs, replies)] == ["four", None, None, "Shakespeare"]
    assert answered_gold(qs[0], "4") == "4"
