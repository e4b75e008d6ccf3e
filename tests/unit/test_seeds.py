"""Seed derivation: pure functions of the base seed and the indices, against hand-computed values."""

from __future__ import annotations

from sleep_ray.seeds import derive, for_worker


def test_derive_folds_indices_into_the_seed():
    assert derive(7) == 7
    assert derive(3, 5) == 3 * 1_000_003 + 5
    assert derive(3, 5, 2) == (3 * 1_000_003 + 5) * 1_000_003 + 2
    assert derive(2, 1, base=1000) == 2001
    assert len({derive(0, step) for step in range(1000)} | {derive(1, step) for step in range(1000)}) == 2000


def test_worker_seeds_are_spaced_apart_and_the_first_keeps_the_seed():
    assert for_worker(11, 0) == 11
    assert [for_worker(11, k) for k in range(3)] == [11, 11 + 7919, 11 + 2 * 7919]
