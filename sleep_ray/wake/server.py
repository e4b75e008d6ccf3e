"""A serving replica of the wake endpoint (`WakeServer`): holds the weights and answers `Ask`s.

It is not the HTTP ingress: the ingress (`app.py`) validates and authorises a request, then calls `answer` or
`stream` on any replica through a Serve handle. Token counting, retrieval and generation run in worker threads,
so the replica's event loop keeps answering `version` during a long request. A swap arrives as a new
`user_config`; `reconfigure` loads the checkpoint beside the current weights and replaces them in one assignment,
so a request that already took its `Weights` finishes on them and is stamped with their version.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve

from sleep_ray.config import Config, load_config
from sleep_ray.wake.errors import ApiError
from sleep_ray.wake.exchange import Answer, Ask, Choice, Delta
from sleep_ray.wake.model import Generator, Weights, chat_prompt, completion_prompt, encode, load_weights
from sleep_ray.wake.retrieve import context_for
from sleep_ray.wake.shared_store import SharedStore
from sleep_ray.wake.store import StoredMemory, WakeStore


@dataclass(frozen=True)
class _Job:
    """One prompt to continue: where its choices start, the prompt (text or ids), the token limit, the stops."""

    first: int
    prompt: str | tuple[int, ...]
    echo: str
    max_tokens: int
    stops: tuple[str, ...]


@dataclass(frozen=True)
class _Plan:
    jobs: tuple[_Job, ...]
    prompt_tokens: int
    used: tuple[str, ...]


def config_of(args: dict[str, Any]) -> Config:
    return load_config(args.get("config"), list(args.get("overrides", [])))


def store_of(cfg: Config) -> WakeStore:
    """The endpoint's memory store, opened directly (on the head node only: the SleepController)."""
    return WakeStore(Path(cfg.run_dir) / "wake")


def shared_store_of(cfg: Config) -> SharedStore:
    """The endpoint's memory store through its actor (every replica that may run on any node)."""
    return SharedStore.connect(Path(cfg.run_dir) / "wake", cfg.serve.app_name)


def replica_id() -> str:
    """This Serve replica's id ("" outside a replica)."""
    try:
        return str(serve.get_replica_context().replica_id.unique_id)
    except Exception:
        return ""


@serve.deployment
class WakeServer:
    """One serving replica: the weights of `user_config`, generation, retrieval of memories in context."""

    def __init__(self, args: dict[str, Any]):
        self.cfg = config_of(args)
        self.store = shared_store_of(self.cfg)
        self.gen = Generator()
        self.weights: Weights | None = None
        self.retrieval = self.cfg.serve.retrieval

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """A swap: load the named checkpoint beside the current weights, then replace them in one assignment."""
        ckpt, version = str(user_config["checkpoint"]), int(user_config["version"])
        self.retrieval = bool(user_config.get("retrieval", self.cfg.serve.retrieval))
        w = self.weights
        if w is None or (w.checkpoint, w.version) != (ckpt, version):
            threads = self.cfg.resources.threads_per_process
            self.weights = await asyncio.to_thread(load_weights, ckpt, version, threads, self.cfg.model.dtype)

    def _w(self) -> Weights:
        if self.weights is None:
            raise ApiError(503, "no weights loaded yet", code="not_ready")
        return self.weights

    async def version(self) -> tuple[int, str]:
        """(weight version, checkpoint) this replica serves now."""
        w = self._w()
        return w.version, w.checkpoint

    async def answer(self, ask: Ask) -> Answer:
        w = self._w()
        return await asyncio.to_thread(self._answer, w, ask, await self._memories(ask))

    async def _memories(self, ask: Ask) -> list[StoredMemory]:
        """The memories retrieval may put in context for this ask (none when it does not use memories)."""
        use = self.retrieval if ask.sampling.use_memories is None else ask.sampling.use_memories
        return await self.store.unconsolidated() if use and self.cfg.serve.retrieval_k else []

    async def stream(self, ask: Ask) -> AsyncIterator[tuple[int, str] | Delta | Answer]:
        """(weight version, this replica's id), every choice's `Delta`s in turn, then an `Answer` whose choices
        carry no text, only token counts."""
        w = self._w()
        plan = await asyncio.to_thread(self._plan, w, ask, await self._memories(ask))
        yield w.version, replica_id()
        done: list[Choice] = []
        for job in plan.jobs:
            for i in range(ask.sampling.n):
                pieces = self.gen.stream(w, job.prompt, job.max_tokens, ask.sampling, job.stops, job.first + i)
                finish: Any = "stop"
                if job.echo:
                    yield Delta(job.first + i, job.echo)
                while (item := await asyncio.to_thread(next, pieces, None)) is not None:
                    if isinstance(item, int):
                        done.append(Choice(job.first + i, "", finish, item))
                    else:
                        finish = item.finish_reason or finish
                        yield item
        yield Answer(w.version, tuple(done), plan.prompt_tokens, plan.used, replica_id())

    # ------------------------------------------------------------------------------------------- the work

    def _answer(self, w: Weights, ask: Ask, memories: list[StoredMemory]) -> Answer:
        plan = self._plan(w, ask, memories)
        choices: list[Choice] = []
        for job in plan.jobs:
            got, _ = self.gen.generate(w, job.prompt, job.max_tokens, ask.sampling, job.stops, job.first)
            choices += [Choice(c.index, job.echo + c.text, c.finish_reason, c.tokens, c.logprobs) for c in got]
        return Answer(w.version, tuple(choices), plan.prompt_tokens, plan.used, replica_id())

    def _plan(self, w: Weights, ask: Ask, memories: list[StoredMemory]) -> _Plan:
        """Check the prompts against the limits and put the relevant memories in front of each."""
        s = ask.sampling
        n_new = s.max_tokens or self.cfg.serve.max_new_tokens
        if n_new > self.cfg.serve.max_tokens_limit:
            limit = self.cfg.serve.max_tokens_limit
            raise ApiError(400, f"max_tokens {n_new} is over serve.max_tokens_limit={limit}", "max_tokens")
        jobs, used, total = [], [], 0
        if ask.kind == "chat":
            messages = list(ask.messages)
            query = next((c for r, c in reversed(messages) if r == "user"), "")
            default_stops: tuple[str, ...] = () if w.fmt.chat else ("\n",)  # the tiny models answer in a line
            bare = chat_prompt(w, messages, "")
            tokens = self._count(w, bare, n_new, "messages")
            context, ids = self._context(w, query, memories, tokens, n_new)
            stops = default_stops if s.stop is None else s.stop
            jobs.append(_Job(0, chat_prompt(w, messages, context) if context else bare, "", n_new, stops))
            used, total = ids, len(encode(w, jobs[0].prompt)[0])
        else:
            for i, p in enumerate(ask.prompts):
                query = p if isinstance(p, str) else self._decoded(w, p, i)
                tokens = self._count(w, p, n_new, "prompt")
                context, ids = self._context(w, query, memories, tokens, n_new)
                prompt: str | tuple[int, ...] = p
                if context:
                    prompt = completion_prompt(p, context) if isinstance(p, str) else self._with_context(w, p, context)
                echo = (p if isinstance(p, str) else query) if ask.echo else ""
                jobs.append(_Job(i * s.n, prompt, echo, n_new, s.stop or ()))
                used += [m for m in ids if m not in used]
                total += len(encode(w, prompt)[0])
        return _Plan(tuple(jobs), total, tuple(used))

    def _count(self, w: Weights, prompt: str | Sequence[int], n_new: int, param: str) -> int:
        tokens = len(encode(w, prompt)[0])
        if tokens + n_new > w.window:
            msg = f"{param} ({tokens} tokens) + max_tokens ({n_new}) is over the model's window ({w.window})"
            raise ApiError(400, msg, param, "context_length_exceeded")
        return tokens

    def _context(self, w: Weights, query: str, memories: list, tokens: int, n_new: int) -> tuple[str, list[str]]:
        budget = w.window - tokens - n_new - 8
        if not memories or budget <= 8:
            return "", []
        return context_for(query, memories, self.cfg.serve.retrieval_k, w.count, budget)

    def _decoded(self, w: Weights, ids: Sequence[int], i: int) -> str:
        vocab = len(w.tokenizer)
        if any(not 0 <= t < vocab for t in ids):
            raise ApiError(400, f"prompt.{i}: token ids must lie in [0, {vocab})", "prompt")
        return str(w.tokenizer.decode(list(ids), skip_special_tokens=True))

    def _with_context(self, w: Weights, ids: Sequence[int], context: str) -> tuple[int, ...]:
        head = w.tokenizer(completion_prompt("", context))["input_ids"]
        return (*head, *ids)
