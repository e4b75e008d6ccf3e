"""Trials spread over reward-critic actors, none lost: each has a timeout, and a critic that dies or overruns is
replaced by a fresh one and the trial re-run (at most `max_retries` times per trial, then the sleep fails).

    pool = TrialPool(new_critic, workers=2, timeout_s=120)    # new_critic(worker) -> actor handle
    results = pool.run(dreams, seed=1)                         # one TrialResult per dream, in order
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import ray
from ray.exceptions import RayActorError

from sleep_ray.dream.records import DreamSample, TrialResult
from sleep_ray.seeds import derive


class TrialFailedError(RuntimeError):
    """A trial failed on `max_retries + 1` fresh critics in a row."""


class TrialPool:
    def __init__(self, new_critic: Callable[[int], Any], workers: int, timeout_s: float, max_retries: int = 2):
        self.new_critic, self.timeout_s, self.max_retries = new_critic, timeout_s, max_retries
        self.actors = [new_critic(i) for i in range(workers)]
        self.retries = 0  # trials re-run after a critic died or overran

    def _replace(self, worker: int) -> None:
        ray.kill(self.actors[worker], no_restart=True)
        self.actors[worker] = self.new_critic(worker)

    def run(self, dreams: Sequence[DreamSample], *, seed: int = 0) -> list[TrialResult]:
        """Trial every dream (one at a time per critic, all critics busy); results in the order of `dreams`."""
        todo = list(range(len(dreams)))[::-1]
        tries = [0] * len(dreams)
        out: list[TrialResult | None] = [None] * len(dreams)
        running: dict[Any, tuple[int, int, float]] = {}  # ref -> (dream index, worker, start time)
        idle = list(range(len(self.actors)))
        while todo or running:
            while todo and idle:
                i, w = todo.pop(), idle.pop()
                ref = self.actors[w].trial.remote(dreams[i], seed=derive(seed, i, base=100_003))
                running[ref] = (i, w, time.time())
            done, _ = ray.wait(list(running), num_returns=1, timeout=1.0)
            for ref in done:
                i, w, _ = running.pop(ref)
                try:
                    out[i] = ray.get(ref)
                    idle.append(w)
                except RayActorError:
                    self._retry(i, w, tries, todo, "its critic died")
                    idle.append(w)
            now = time.time()
            for ref, (i, w, started) in list(running.items()):
                if now - started > self.timeout_s:
                    running.pop(ref)
                    self._retry(i, w, tries, todo, f"it ran over {self.timeout_s:g} s (sleep.dreaming.trial_timeout_s)")
                    idle.append(w)
        return [r for r in out if r is not None]

    def _retry(self, i: int, worker: int, tries: list[int], todo: list[int], why: str) -> None:
        tries[i] += 1
        if tries[i] > self.max_retries:
            raise TrialFailedError(f"trial {i} failed {tries[i]} times; the last time {why}")
        self.retries += 1
        self._replace(worker)
        todo.append(i)
