"""Stop strings and sentence cuts: the small rules the sleep roles share."""

from __future__ import annotations

import random

from sleep_ray.roles.teacher import cut_sentence
from sleep_ray.rollout.engine import cut_at_stop


def test_cut_at_stop_keeps_the_earliest_stop():
    assert cut_at_stop(" Miravel\nQuestion: x", ("\n",)) == " Miravel\n"
    assert cut_at_stop(" in Miravel. She works\n", (".", "\n")) == " in Miravel."
    assert cut_at_stop(" no stop here", ("\n",)) == " no stop here"


def test_cut_sentence_splits_between_words():
    rng = random.Random(0)
    for _ in range(20):
        d = cut_sentence("Ana Vel now resides in Miravel.", rng)
        assert d is not None and d.prefix + d.reference == "Ana Vel now resides in Miravel."
        assert len(d.prefix.split()) >= 2 and d.reference.startswith(" ") and d.reference.strip()
    assert cut_sentence("Too short.", rng) is None


def test_shares_cut_work_into_contiguous_near_equal_parts_in_order():
    from sleep_ray.roles.train_loop import shares

    assert shares(list(range(5)), 2) == [[0, 1, 2], [3, 4]]
    assert shares([7], 3) == [[7], [], []]
    assert shares([], 2) == [[], []]
    assert [x for part in shares(list(range(10)), 3) for x in part] == list(range(10))
