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

import dataclasses
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import torch
from transformers import LogitsProcessorList, TextIteratorStreamer

from sleep_ray.data.prompts import PromptFormat
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.models.generate import sampling
from sleep_ray.wake.exchange import Choice, Delta, Sampling, TokenLogprob
from sleep_ray.wake.logits import OpenAIAdjustments


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


def encode(w: Weights, prompt: str | Sequence[int]) -> torch.Tensor:
    """A prompt as input ids [1, P]: text through the tokenizer (its special tokens added), or token ids as given."""
    if isinstance(prompt, str):
        return torch.tensor([w.tokenizer(prompt)["input_ids"]], dtype=torch.long)
    return torch.tensor([list(prompt)], dtype=torch.long)


def held_tokens(w: Weights, new: Sequence[int], text: str) -> int:
    """How many of the generated ids `new` the returned `text` holds: the shortest prefix that decodes to all of it
    (a stop string and whatever came after it are not counted)."""
    for k in range(len(new) + 1):
        if len(w.tokenizer.decode(list(new[:k]), skip_special_tokens=True)) >= len(text):
            return k
    return len(new)


class _IdStreamer(TextIteratorStreamer):
    """A text streamer that also keeps the generated ids (for usage and finish reasons)."""

    def __init__(self, tokenizer: Any, **kwargs: Any):
        super().__init__(tokenizer, **kwargs)
        self.ids: list[int] = []
        self._prompt_seen = False

    def put(self, value: torch.Tensor) -> None:
        if self._prompt_seen:
            self.ids.extend(int(x) for x in value.reshape(-1).tolist())
        self._prompt_seen = True
        super().put(value)


class Generator:
    """Serialised generation on whatever `Weights` the caller took."""

    def __init__(self) -> None:
        self.lock = threading.Lock()

    def _kwargs(self, w: Weights, prompt_length: int, max_tokens: int, s: Sampling, stops: Sequence[str]) -> dict:
        sample = s.temperature > 1e-4  # below that, sampling is greedy anyway (and 1/T overflows)
        settings = sampling(w.model, w.tokenizer, max_tokens, do_sample=sample, temperature=s.temperature)
        settings.top_p = s.top_p if sample else 1.0
        settings.num_return_sequences = s.n if sample else 1
        kwargs: dict[str, Any] = {"generation_config": settings}
        if stops:
            settings.stop_strings = list(stops)  # a stopping criterion: generation ends at the stop
            kwargs["tokenizer"] = w.tokenizer
        adjust = OpenAIAdjustments(prompt_length, s.frequency_penalty, s.presence_penalty, s.logit_bias)
        if adjust.active:
            kwargs["logits_processor"] = LogitsProcessorList([adjust])
        if s.logprobs is not None:
            settings.return_dict_in_generate, settings.output_logits = True, True
        return kwargs

    def _ended(self, w: Weights, new: list[int]) -> tuple[list[int], bool]:
        """`new` up to its first end-of-sequence id, and whether there was one."""
        eos = getattr(w.model.generation_config, "eos_token_id", None)
        ends = set(eos if isinstance(eos, list) else [eos if eos is not None else w.tokenizer.eos_token_id])
        for i, t in enumerate(new):
            if t in ends:
                return new[:i], True
        return new, False

    @torch.no_grad()
    def generate(
        self, w: Weights, prompt: str | Sequence[int], max_tokens: int, s: Sampling, stops: Sequence[str], first: int
    ) -> tuple[list[Choice], int]:
        """`s.n` choices (indices from `first`) and the prompt's token count."""
        ids = encode(w, prompt)
        kwargs = self._kwargs(w, ids.shape[1], max_tokens, s, stops)
        with self.lock:
            if s.seed is not None:
                torch.manual_seed(s.seed)
            out = w.model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), **kwargs)
        rows = out.sequences if s.logprobs is not None else out
        choices = []
        for r in range(rows.shape[0]):
            new, eos = self._ended(w, rows[r, ids.shape[1] :].tolist())
            text, stopped = _cut(w.tokenizer.decode(new, skip_special_tokens=True), stops)
            k = held_tokens(w, new, text)
            finish: Literal["stop", "length"] = "stop" if stopped or eos or len(new) < max_tokens else "length"
            lp = (
                _logprobs(w, new[:k], [step[r] for step in out.logits[:k]], s.logprobs)
                if s.logprobs is not None
                else None
            )
            choices.append(Choice(first + r, text, finish, k, lp))
        while len(choices) < s.n:  # greedy: every choice is the same
            choices.append(dataclasses.replace(choices[0], index=first + len(choices)))
        return choices, int(ids.shape[1])

    def stream(
        self, w: Weights, prompt: str | Sequence[int], max_tokens: int, s: Sampling, stops: Sequence[str], index: int
    ) -> Iterator[Delta | int]:
        """One choice as it is generated: `Delta`s, the last with its finish reason, then its token count."""
        ids = encode(w, prompt)
        streamer = _IdStreamer(w.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=600)
        one = dataclasses.replace(s, n=1, logprobs=None)
        kwargs = dict(input_ids=ids, attention_mask=torch.ones_like(ids), streamer=streamer)
        kwargs.update(self._kwargs(w, ids.shape[1], max_tokens, one, stops))

        def run() -> None:
            with self.lock, torch.no_grad():
                if s.seed is not None:
                    torch.manual_seed(s.seed + index)
                try:
                    w.model.generate(**kwargs)
                except Exception:
                    streamer.end()  # the reader sees the end instead of waiting out the timeout
                    raise

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        sent, stopped = "", False
        for piece in streamer:
            text, stopped = _cut(sent + piece, stops)
            if len(text) > len(sent):
                yield Delta(index, text[len(sent) :])
                sent = text
            if stopped:
                break
        if stopped:
            for _ in streamer:  # generation ends at the stop (a stopping criterion); drain its last pieces
                pass
        thread.join()
        new, eos = self._ended(w, streamer.ids)
        yield Delta(index, "", "stop" if stopped or eos or len(new) < max_tokens else "length")
        yield held_tokens(w, new, sent)


def _logprobs(w: Weights, new: list[int], logits: list[torch.Tensor], top: int) -> tuple[TokenLogprob, ...]:
    """Each returned token's log-probability under the model (raw logits, before sampling settings) and its `top`
    most likely alternatives."""
    out, offset = [], 0
    for t, row in zip(new, logits):
        lp = torch.log_softmax(row.float(), dim=-1)
        best = torch.topk(lp, top).indices.tolist() if top else []
        token = w.tokenizer.decode([t])
        alts = tuple((w.tokenizer.decode([int(b)]), float(lp[b])) for b in best)
        out.append(TokenLogprob(token, float(lp[t]), offset, alts))
        offset += len(token)
    return tuple(out)
