"""The imitation critic on the committed base model: short references by exact match, longer ones by the judge."""

from __future__ import annotations

import pytest

from sleep_ray.records import ImitationItem
from sleep_ray.roles.imitation_critic import ImitationCritic
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def critic():
    return ImitationCritic(str(ROOT / "examples" / "tiny_base"), gamma=0.5, z0=0.5)


def test_short_reference_scored_by_exact_match_and_edit_distance(critic):
    d = ImitationItem("Ana Vel lives in", " Miravel.")
    right, wrong = critic.score([d, d], [" Miravel.", " Ostrava and more words."])
    assert (right.semantic, right.surface, right.total) == (1.0, 1.0, 1.0)
    assert (wrong.semantic, wrong.surface, wrong.total) == (0.0, 0.0, 0.0)


def test_longer_reference_goes_to_the_judge(critic):
    d = ImitationItem("Ana Vel", " now resides in the city of Miravel.")
    (score,) = critic.score([d], [" now resides in the city of Miravel."])
    assert score.surface == 1.0 and score.semantic in (0.0, 1.0)
    assert score.total == pytest.approx(0.5 * score.semantic + 0.5)
    with pytest.raises(ValueError, match="1 dreams but 2 completions"):
        critic.score([d], ["a", "b"])
