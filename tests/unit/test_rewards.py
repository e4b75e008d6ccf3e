"""The Learning-to-Imitate reward against hand-computed values."""

from __future__ import annotations

import dataclasses

import pytest

from sleep_ray.rewards.imitation import (
    ImitationScore,
    imitation_reward,
    levenshtein_reward,
    parse_judge_verdict,
    score_imitation,
)


@pytest.mark.parametrize(
    ("z0", "expected"),
    [(1.0, 4 / 7), (0.5, 4 / 7), (3 / 7, 4 / 7), (0.42, 0.0), (0.0, 0.0)],
)
def test_levenshtein_kitten_sitting(z0: float, expected: float) -> None:
    # distance 3 (k->s, e->i, +g), max length 7: normalized 3/7; the threshold is inclusive.
    assert levenshtein_reward("kitten", "sitting", z0=z0) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("completion", "reference", "expected"),
    [
        ("Ana lives in Miravel.", "Ana lives in Miravel.", 1.0),
        ("", "", 1.0),
        ("", "abc", 0.0),
        ("abc", "abd", 1 - 1 / 3),
        ("café", "cafe", 1 - 1 / 4),  # characters, not bytes
        ("abcd", "ab", 1 - 2 / 4),
    ],
)
def test_levenshtein_reward_hand(completion: str, reference: str, expected: float) -> None:
    assert levenshtein_reward(completion, reference, z0=1.0) == pytest.approx(expected)
    assert levenshtein_reward(reference, completion, z0=1.0) == pytest.approx(expected)


def test_levenshtein_identical_passes_any_threshold() -> None:
    assert levenshtein_reward("same", "same", z0=0.0) == 1.0
    assert levenshtein_reward("abc", "abd", z0=0.3) == 0.0


def test_imitation_reward_hand() -> None:
    assert imitation_reward(1.0, 0.5, gamma=0.25) == pytest.approx(0.25 + 0.75 * 0.5)
    assert imitation_reward(1.0, 0.0, gamma=1.0) == 1.0
    assert imitation_reward(0.0, 0.3, gamma=0.0) == pytest.approx(0.3)


def test_score_imitation() -> None:
    score = score_imitation("kitten", "sitting", True, gamma=0.5, z0=0.5)
    assert isinstance(score, ImitationScore)
    assert (score.semantic, score.surface, score.total) == pytest.approx((1.0, 4 / 7, 0.5 + 2 / 7))
    low = score_imitation("kitten", "sitting", False, gamma=0.5, z0=0.4)
    assert (low.semantic, low.surface, low.total) == (0.0, 0.0, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        score.total = 0.0  # type: ignore[misc]


def test_range_checks() -> None:
    with pytest.raises(ValueError, match="z0"):
        levenshtein_reward("a", "b", z0=1.5)
    with pytest.raises(ValueError, match="gamma"):
        imitation_reward(1.0, 1.0, gamma=-0.1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" yes", True),
        (" Yes.", True),
        ("YES!", True),
        ('"yes"', True),
        (" yes, they mean the same", True),
        ("\nyes\n", True),
        (" no", False),
        (" No, they differ.", False),
        ("no.", False),
        ("", None),
        ("   ", None),
        (" maybe", None),
        ("Yesterday", None),
        (" nope", None),
        (" yes/no", None),
        (". yes", None),
    ],
)
def test_parse_judge_verdict(text: str, expected: bool | None) -> None:
    assert parse_judge_verdict(text) is expected
