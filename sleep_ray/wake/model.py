"""The served weights of one Serve replica, and how a request becomes a prompt and a completion.

A `Weights` snapshot (model, tokenizer, version, checkpoint) is replaced as a whole on a swap: a request takes the
snapshot once when it starts, generates with it and is stamped with its version, so in-flight requests finish
on the old weights while new ones get the new. Generation in a replica is serialised by a lock (one forward pass
at a time keeps a small CPU replica's latency predictable and sampling repeatable).

Prompts go through the checkpoint's `PromptFormat`. A checkpoint whose tokenizer has a chat template gets its
messages through it, memories in a system message (folded into the first user turn when the template has no
system role). The tiny world's models have none: they were pretrained on `Context: ...\\nQuestion: ...\\nAnswer:`,
so a chat turns into that shape (the last user message is the question), and a raw completion prompt gets the
memories as a `Context:` line in front.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import TextIteratorStreamer

from sleep_ray.data.prompts import PromptFormat
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.models.generate import sampling


@dataclass(frozen=True)
class Weights:
    model: Any
    tokenizer: Any
    version: int
    checkpoint: str
    fmt: PromptFormat = PromptFormat()

    @property
    def window(self) -> int:
        return int(getattr(self.model.config, "max_position_embeddings", 2048))

    def count(self, text: str) -> int:
        """Tokens of `text` as a prompt (with the special tokens the tokenizer adds, e.g. BOS)."""
        return len(self.tokenizer(text)["input_ids"])


def load_weights(
    checkpoint: str | Path, version: int | None = None, threads: int = 1, dtype: str = "float32"
) -> Weights:
    """Load a checkpoint directory for serving in `dtype` (model.dtype); its version is `version`, else the one in
    its sleep_ray.json."""
    torch.set_num_threads(threads)
    model, tokenizer = load_pretrained(checkpoint, dtype)
    model.eval()
    v = read_meta(checkpoint).version if version is None else version
    return Weights(model, tokenizer, int(v), str(checkpoint), PromptFormat.of(tokenizer))


def chat_prompt(w: Weights, messages: Sequence[tuple[str, str]], context: str) -> str:
    """(role, content) messages -> one prompt string, with `context` (retrieved memories) placed where the model
    reads context."""
    if w.fmt.chat:
        msgs = [{"role": r, "content": c} for r, c in messages]
        return w.fmt.conversation(msgs, system=f"Things you have been told: {context}" if context else "")
    question = next((c for r, c in reversed(messages) if r == "user"), messages[-1][1]).strip()
    return w.fmt.in_context(context, question) if context else w.fmt.closed_book(question)


def completion_prompt(prompt: str, context: str) -> str:
    """A raw completion prompt with retrieved memories in front, in the pretrained `Context:` shape."""
    return f"Context: {context}\n{prompt}" if context else prompt


def _cut(text: str, stops: Sequence[str]) -> tuple[str, bool]:
    """`text` before the earliest stop string (OpenAI semantics: the stop is not returned), and whether one hit."""
    ends = [text.find(s) for s in stops if s and s in text]
    return (text[: min(ends)], True) if ends else (text, False)


class Generator:
    """Serialised generation on whatever `Weights` the caller took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def _kwargs(self, w: Weights, max_tokens: int, temperature: float) -> dict[str, Any]:
        sample = temperature > 1e-4  # below that, sampling is greedy anyway (and 1/T overflows)
        settings = sampling(w.model, w.tokenizer, max_tokens, do_sample=sample, temperature=temperature)
        return {"generation_config": settings}

    @torch.no_grad()
    def complete(
        self, w: Weights, prompt: str, max_tokens: int, temperature: float, stops: Sequence[str], seed: int | None
    ) -> tuple[str, str, int, int]:
        """(text, finish_reason, prompt_tokens, completion_tokens)."""
        enc = w.tokenizer(prompt, return_tensors="pt")
        with self.lock:
            if seed is not None:
                torch.manual_seed(seed)
            out = w.model.generate(**enc, **self._kwargs(w, max_tokens, temperature))
        new = out[0, enc["input_ids"].shape[1] :]
        raw = w.tokenizer.decode(new, skip_special_tokens=True)
        text, stopped = _cut(raw, stops)
        ended = stopped or (len(new) < max_tokens) or bool(new.numel() and new[-1] == w.tokenizer.eos_token_id)
        return text, "stop" if ended else "length", int(enc["input_ids"].shape[1]), int(len(new))

    def stream(
        self, w: Weights, prompt: str, max_tokens: int, temperature: float, stops: Sequence[str], seed: int | None
    ) -> Iterator[tuple[str, str | None]]:
        """Yields (text delta, None) as tokens arrive, then ("", finish_reason)."""
        enc = w.tokenizer(prompt, return_tensors="pt")
        streamer = TextIteratorStreamer(w.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        kwargs = dict(**enc, **self._kwargs(w, max_tokens, temperature), streamer=streamer)

        def run() -> None:
            with self.lock, torch.no_grad():
                if seed is not None:
                    torch.manual_seed(seed)
                try:
                    w.model.generate(**kwargs)
                except Exception:
                    streamer.end()  # the reader sees the end instead of waiting out the timeout
                    raise

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        sent, finish = "", None
        for piece in streamer:
            text, stopped = _cut(sent + piece, stops)
            if len(text) > len(sent):
                yield text[len(sent) :], None
                sent = text
            if stopped:
                finish = "stop"
                for _ in streamer:  # let generation finish (it holds the lock); the end marker stops this loop
                    pass
                break
        thread.join()
        if finish is None:
            finish = "length" if len(w.tokenizer(sent, add_special_tokens=False)["input_ids"]) >= max_tokens else "stop"
        yield "", finish
