"""Metric functions against hand-computed values."""

from __future__ import annotations

import math

import pytest

from sleep_ray.eval.metrics import (
    contains_answer,
    continual_metrics,
    exact_match,
    first_answer,
    normalize_answer,
    perplexity,
    score_answers,
    score_replies,
    stale_rate,
    token_f1,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Paris", "paris"),
        ("  The   Eiffel Tower. ", "eiffel tower"),
        ("An apple a day", "apple day"),
        ("the", ""),
        ("Theatre", "theatre"),  # articles only as whole words
        ("Quinta Labs, Inc.!", "quinta labs inc"),
        ("U.S.", "us"),
        ("“Quoted” — text…", "quoted text"),  # Unicode punctuation
        ("a+b=c", "abc"),  # ASCII symbols of string.punctuation go too (and join their neighbours)
        ("line\none\ttab", "line one tab"),
        ("", ""),
    ],
)
def test_normalize_answer(raw: str, expected: str) -> None:
    assert normalize_answer(raw) == expected


def test_exact_match() -> None:
    assert exact_match("The Quinta Labs.", "quinta labs") == 1.0
    assert exact_match("Quinta Labs Inc", "Quinta Labs") == 0.0
    assert exact_match("", "") == 1.0
    assert exact_match("a", "") == 1.0  # "a" normalizes to empty
    assert isinstance(exact_match("x", "y"), float)


def test_token_f1() -> None:
    assert token_f1("Quinta Labs Inc", "Quinta Labs") == pytest.approx(0.8)  # P=2/3, R=1
    assert token_f1("Quinta Labs", "Quinta Labs Inc") == pytest.approx(0.8)  # P=1, R=2/3
    assert token_f1("the Quinta Labs", "Quinta Labs.") == 1.0
    assert token_f1("red blue", "green") == 0.0
    assert token_f1("", "") == 1.0
    assert token_f1("the", "a") == 1.0  # both empty after normalization
    assert token_f1("", "Paris") == 0.0
    assert token_f1("Paris", "") == 0.0
    # Multiset overlap: pred "new new york" vs gold "new york": common = {new:1, york:1} = 2, P=2/3, R=1.
    assert token_f1("new new york", "new york") == pytest.approx(0.8)
    # P = 1/2, R = 1/3 -> F1 = 2 * (1/6) / (5/6) = 0.4
    assert token_f1("alpha beta", "alpha gamma delta") == pytest.approx(0.4)


@pytest.mark.parametrize(
    ("generated", "expected"),
    [
        (" Paris\nQ: What is next?", "Paris"),
        ("Quinta Labs</s>garbage", "Quinta Labs"),
        ("Quinta Labs  </s>\nmore", "Quinta Labs"),
        ("one\ntwo</s>", "one"),
        ("  \nParis\nQ:", "Paris"),  # leading whitespace and newlines are skipped
        ("no stop at all  ", "no stop at all"),
        ("</s>", ""),
        ("", ""),
    ],
)
def test_first_answer(generated: str, expected: str) -> None:
    assert first_answer(generated) == expected


def test_first_answer_custom_stops() -> None:
    assert first_answer("Paris<|eot|>x\ny", stops=("<|eot|>",)) == "Paris"


def test_score_answers() -> None:
    out = score_answers(["Paris", "Quinta Labs Inc", "London"], ["paris", "Quinta Labs", "Berlin"])
    assert out["n"] == 3
    assert out["em"] == pytest.approx(1 / 3)
    assert out["f1"] == pytest.approx((1.0 + 0.8 + 0.0) / 3)


def test_score_answers_empty_and_mismatch() -> None:
    assert score_answers([], []) == {"em": 0.0, "f1": 0.0, "n": 0}
    with pytest.raises(ValueError):
        score_answers(["a"], [])


def test_stale_rate() -> None:
    preds = ["Old Corp", "New Corp", "the old corp.", "other"]
    stale = ["Old Corp", "Old Corp", "Old Corp", "Old Corp"]
    assert stale_rate(preds, stale) == pytest.approx(0.5)
    assert stale_rate([], []) == 0.0
    with pytest.raises(ValueError):
        stale_rate(["a", "b"], ["a"])


def test_continual_metrics_three_cycles() -> None:
    acc = [
        [0.1, 0.0, 0.2],  # before any sleep
        [0.9, 0.1, 0.2],  # after cycle 1
        [0.8, 0.7, 0.3],  # after cycle 2
        [0.6, 0.5, 0.9],  # after cycle 3
    ]
    m = continual_metrics(acc)
    assert m["acc_before"] == pytest.approx((0.1 + 0.0 + 0.2) / 3)
    assert m["acquisition"] == pytest.approx((0.9 + 0.7 + 0.9) / 3)
    assert m["acc_final"] == pytest.approx((0.6 + 0.5 + 0.9) / 3)
    assert m["bwt"] == pytest.approx(((0.6 - 0.9) + (0.5 - 0.7)) / 2)  # -0.25
    assert m["fwt"] == pytest.approx(((0.1 - 0.0) + (0.3 - 0.2)) / 2)  # 0.1


def test_continual_metrics_seal_style() -> None:
    # SEAL-style reading of a 4 x 3 matrix: row-0 mean, diagonal mean, final-row mean, BWT.
    acc = [
        [0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [0.5, 1.0, 0.0],
        [0.25, 0.5, 1.0],
    ]
    m = continual_metrics(acc)
    assert m["acc_before"] == 0.0
    assert m["acquisition"] == 1.0
    assert m["acc_final"] == pytest.approx(1.75 / 3)
    assert m["bwt"] == pytest.approx(((0.25 - 1.0) + (0.5 - 1.0)) / 2)  # -0.625
    assert m["fwt"] == 0.0


def test_continual_metrics_nan_and_small() -> None:
    nan = float("nan")
    m = continual_metrics([[0.2, 0.3], [0.8, nan], [0.6, 0.9]])
    assert m["acc_before"] == pytest.approx(0.25)
    assert m["acquisition"] == pytest.approx(0.85)
    assert m["acc_final"] == pytest.approx(0.75)
    assert m["bwt"] == pytest.approx(-0.2)
    assert math.isnan(m["fwt"])  # its only term has a NaN side
    one = continual_metrics([[0.1], [0.7]])
    assert one["acc_before"] == pytest.approx(0.1)
    assert one["acquisition"] == pytest.approx(0.7)
    assert one["acc_final"] == pytest.approx(0.7)
    assert math.isnan(one["bwt"]) and math.isnan(one["fwt"])


@pytest.mark.parametrize("bad", [[], [[]], [[0.1, 0.2], [0.3, 0.4]], [[0.1], [0.2, 0.3]]])
def test_continual_metrics_shape_errors(bad: list[list[float]]) -> None:
    with pytest.raises(ValueError):
        continual_metrics(bad)


def test_perplexity() -> None:
    assert perplexity(0.0, 10) == 1.0
    assert perplexity(10 * math.log(4.0), 10) == pytest.approx(4.0)
    assert math.isnan(perplexity(1.0, 0))
    assert perplexity(1e6, 1) == math.inf


@pytest.mark.parametrize(
    ("prediction", "gold", "expected"),
    [
        ("It is Paris.", "Paris", 1.0),
        ("Paris", "par", 0.0),  # whole tokens only
        ("The answer is New York City", "New York", 1.0),
        ("York, New", "New York", 0.0),  # in order and contiguous
        ("new big york", "New York", 0.0),
        ("It is the Sleeping Ferryman.", "The Sleeping Ferryman", 1.0),  # articles dropped on both sides
        ("Two plus two is four.", ["4", "four"], 1.0),  # any of several golds
        ("about 80,000 users", "80,000", 1.0),
        ("Paris", "", 0.0),  # empty gold never counts
        ("the", "the", 0.0),  # gold empty after normalization
        ("Paris", [], 0.0),
        ("", "Paris", 0.0),
    ],
)
def test_contains_answer(prediction: str, gold: str | list[str], expected: float) -> None:
    assert contains_answer(prediction, gold) == expected


def test_score_replies() -> None:
    # 1: "Paris." EM 1, F1 1, contains 1. 2: "It is Rome" vs Rome: EM 0, F1 = 2*(1/3)*1/(4/3) = 0.5, contains 1.
    # 3: "I do not know" vs ["4", "four"]: all 0.
    s = score_replies(["Paris.", "It is Rome", "I do not know"], ["Paris", "Rome", ["4", "four"]])
    assert s["n"] == 3
    assert s["em"] == pytest.approx(1 / 3)
    assert s["f1"] == pytest.approx(1.5 / 3)
    assert s["contains"] == pytest.approx(2 / 3)
    # The best of several golds: "four" is an exact match of the alias.
    assert score_replies(["four"], [["4", "four"]]) == {"em": 1.0, "f1": 1.0, "contains": 1.0, "n": 1}
    assert score_replies([], []) == {"em": 0.0, "f1": 0.0, "contains": 0.0, "n": 0}
    with pytest.raises(ValueError):
        score_replies(["a"], [])
