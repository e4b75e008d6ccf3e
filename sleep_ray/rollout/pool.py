"""The rollout engines one train worker samples from, as one pool: a request's prompts are split over every
engine (so `resources.rollout_engines` scales sampling horizontally), and an engine that dies is not fatal.

    pool = EnginePool(engines, timeout_s=300)
    req = pool.submit(prompts, n=4, seed=7, max_new_tokens=12)     # returns at once; engines sample meanwhile
    rollouts = pool.result(req, weights=lambda: (arrays, version), min_version=version - 2)
    pool.push(arrays, version)                                      # ray.put once, every engine loads in place

Engines are Ray actors created with `max_restarts` (resources.engine_max_restarts): when one dies, Ray starts a
fresh process from the same constructor, which holds the starting weights. The pool notices (the call failed, or
rollouts came back from weights older than `min_version`), waits for the restarted engine, loads the current
weights into it (every train rank holds the same weights, so any rank can) and asks its share again.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import ray
from ray.exceptions import RayActorError

from sleep_ray.records import Rollout, call
from sleep_ray.seeds import for_worker

LatestWeights = Callable[[], tuple[dict[str, np.ndarray], int]]  # () -> (trainable arrays, version)


class EngineLostError(RuntimeError):
    """An engine stayed dead (its restarts are used up) or kept failing the same share."""


@dataclass
class _Part:
    engine: int
    prompts: list[str]
    kwargs: dict[str, Any]
    ref: Any = None


@dataclass
class Request:
    """The shares of one `submit`, in prompt order."""

    parts: list[_Part] = field(default_factory=list)


def split(n: int, k: int) -> list[tuple[int, int]]:
    """[start, end) ranges cutting n items into k contiguous near-equal parts (empty ones dropped)."""
    size = -(-n // k) if k else n
    return [(i, min(n, i + size)) for i in range(0, n, max(1, size))]


class EnginePool:
    def __init__(self, engines: Sequence[Any], timeout_s: float, max_retries: int = 3):
        self.engines, self.timeout_s, self.max_retries = list(engines), timeout_s, max_retries
        self.recoveries = 0  # engines found dead (or restarted) and given the weights again

    def submit(self, prompts: Sequence[str], *, seed: int, **kwargs: Any) -> Request:
        """Ask every engine for its share of `prompts` (generate keywords in `kwargs`); returns at once."""
        req = Request()
        for k, (a, b) in enumerate(split(len(prompts), len(self.engines))):
            part = _Part(k, list(prompts[a:b]), {**kwargs, "seed": for_worker(seed, k)})
            self._send(part)
            req.parts.append(part)
        return req

    def _send(self, part: _Part) -> None:
        part.ref = self.engines[part.engine].generate.remote(part.prompts, **part.kwargs)

    def result(self, req: Request, weights: LatestWeights, min_version: int | None = None) -> list[Rollout]:
        """The rollouts of `req` in prompt order. A share whose engine died, or that came from weights older than
        `min_version` (a restarted engine), is re-asked after `weights()` is loaded into that engine."""
        out: list[Rollout] = []
        for part in req.parts:
            for attempt in range(self.max_retries + 1):
                try:
                    got = call(part.ref, self.timeout_s, "rollout engine generate")
                except RayActorError:
                    got = None
                if got is not None and (min_version is None or all(r.weight_version >= min_version for r in got)):
                    out.extend(got)
                    break
                if attempt == self.max_retries:
                    raise EngineLostError(f"rollout engine {part.engine} failed {attempt + 1} times in a row")
                self._recover(part.engine, weights)
                self._send(part)
        return out

    def push(self, arrays: dict[str, np.ndarray], version: int) -> None:
        """Put the arrays in the object store once; every engine loads them in place (a dead one is recovered)."""
        ref = ray.put(arrays)
        refs = [e.load_weights.remote(ref, version) for e in self.engines]
        for k, r in enumerate(refs):
            try:
                call(r, self.timeout_s, "weight push")
            except RayActorError:
                self._recover(k, lambda: (arrays, version))

    def _recover(self, k: int, weights: LatestWeights) -> None:
        """Wait for Ray to restart engine k, then load the current weights into it."""
        self.recoveries += 1
        deadline = time.time() + self.timeout_s
        while True:
            try:
                arrays, version = weights()
                call(self.engines[k].load_weights.remote(ray.put(arrays), version), self.timeout_s, "weight push")
                return
            except RayActorError as e:  # in-flight calls of a dying actor fail; later ones wait for its restart
                if time.time() > deadline:
                    raise EngineLostError(
                        f"rollout engine {k} did not come back within {self.timeout_s:g} s "
                        "(resources.engine_max_restarts may be used up)"
                    ) from e
                time.sleep(1.0)
