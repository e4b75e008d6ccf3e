"""Seed derivation: every seed a sleep, a benchmark or pretraining draws from is derived from `cfg.seed` here.

    derive(cfg.seed, step)            # cfg.seed * 1_000_003 + step: one stream per step
    derive(cfg.seed, cycle, base=1000)  # cfg.seed * 1000 + cycle
    for_worker(seed, k)               # seed + 7919 * k: the k-th of several actors doing the same work

`derive` folds indices into a seed (seed * base + part, part after part); `base` is a prime far larger than the
indices, so different indices never collide. A sleep is repeatable because these are pure functions of the
config's seed and the indices.
"""

from __future__ import annotations

PRIME = 1_000_003
WORKER_STRIDE = 7_919


def derive(seed: int, *parts: int, base: int = PRIME) -> int:
    """`seed` folded with `parts`: ((seed * base + p0) * base + p1) ...; derive(s) == s."""
    for p in parts:
        seed = seed * base + p
    return seed


def for_worker(seed: int, k: int) -> int:
    """The seed of the k-th of several actors sharing one piece of work (k = 0 keeps `seed`)."""
    return seed + WORKER_STRIDE * k
