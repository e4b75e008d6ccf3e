"""The dream-generator (a Ray actor during sleep): the consolidated model with a memory in its context writes
dreams about it, and ReST-EM's M-step fine-tunes it (a LoRA adapter) on the dreams that won their trials.

    write(contexts, per_memory)         -> list[DreamSample]   (E-step sampling; stamped with `version`)
    write_plan(contexts, counts)        -> list[DreamSample]   (as many of each (memory, kind) as a plan says)
    learn(winners)                      -> loss                (M-step: SFT on writer_prompt -> written)
    adapter() / load_adapter(arrays)                           (one generator learns, the others receive it)

Sampling goes through a rollout engine (sleep_ray.rollout.engine's interface), `resources.engine`:
- "hf" (the default): an `HFEngine` around the adapted model itself, so it samples the live adapter; nothing is
  copied or pushed.
- "vllm": a `VLLMEngine` on the same checkpoint; after every M-step (or adapter received) the adapted weights
  W + scale * B @ A of the LoRA-targeted layers are pushed into it in place, stamped with the generator version.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from sleep_ray.config import DreamingConfig
from sleep_ray.data.grounding import Ledger, ground, ground_qa, known_words
from sleep_ray.data.prompts import ANSWER, PromptFormat
from sleep_ray.dream.lora import Adapter
from sleep_ray.dream.records import DreamSample, parse_dream
from sleep_ray.models.build import load_pretrained
from sleep_ray.rollout.hf import HFEngine


class DreamGenerator:
    def __init__(
        self,
        checkpoint: str,
        cfg: DreamingConfig,
        *,
        threads: int = 1,
        seed: int = 0,
        engine: str = "hf",
        engine_kwargs: Mapping[str, Any] | None = None,
        dtype: str = "float32",
    ):
        if threads:
            torch.set_num_threads(threads)
        model, tokenizer = load_pretrained(checkpoint, dtype)  # model.dtype; peft keeps the adapter in float32
        self.cfg = cfg
        self.lora = Adapter(model, tokenizer, r=cfg.lora_rank, seed=seed)
        self.version = 0
        self.known = known_words(tokenizer)
        self.fmt = PromptFormat.of(tokenizer)
        self._ledger = Ledger()  # every dream is grounded in its memory (sleep_ray.data.grounding)
        self.engine: Any
        if engine == "vllm":
            from sleep_ray.rollout.vllm_engine import VLLMEngine

            self.engine = VLLMEngine(checkpoint, version=0, **dict(engine_kwargs or {}))
        elif engine == "hf":
            self.engine = HFEngine.around(self.lora.model, tokenizer)
        else:
            raise ValueError(f"resources.engine: unknown rollout engine {engine!r} (hf or vllm)")

    def write(
        self, contexts: Sequence[tuple[str, str]], *, per_memory: int, seed: int, round_: int = 0
    ) -> list[DreamSample]:
        """`per_memory` dreams about each (memory_id, context), kinds alternating as in `cfg.kinds`."""
        kinds = list(self.cfg.kinds)
        asks = [(mid, c, kinds[j % len(kinds)], j) for mid, c in contexts for j in range(per_memory)]
        return self._write(asks, seed, round_)

    def write_plan(
        self, contexts: Sequence[tuple[str, str]], counts: Mapping[tuple[str, str], int], *, seed: int, round_: int
    ) -> list[DreamSample]:
        """`counts[(memory_id, kind)]` dreams of that kind about each (memory_id, context) (a curriculum's plan)."""
        asks = [(mid, c, k) for mid, c in contexts for k in self.cfg.kinds for _ in range(counts.get((mid, k), 0))]
        return self._write([(mid, c, k, j) for j, (mid, c, k) in enumerate(asks)], seed, round_)

    def _write(self, asks: list[tuple[str, str, str, int]], seed: int, round_: int) -> list[DreamSample]:
        if not asks:
            return []
        rollouts = self.engine.generate(
            [self._writer(k, c) for _, c, k, _ in asks],
            max_new_tokens=self.cfg.max_new_tokens,
            temperature=self.cfg.temperature,
            seed=seed,
            stops=(),
        )
        out = []
        for (mid, c, kind, j), r in zip(asks, rollouts):
            if kind == "qa":
                verdict = ground_qa(r.text, c, self.known, answer_mark=ANSWER)
            else:
                line, nl, rest = r.text.partition("\n")
                verdict = ground(line, c, self.known)
                verdict = replace(verdict, text=verdict.text + nl + rest) if verdict.text is not None else verdict
            self._ledger.add(f"dream_{kind}", r.text, verdict, memory_id=mid)
            if verdict.text is None:
                continue
            d = parse_dream(kind, mid, c, verdict.text, f"{mid}/r{round_}/{j}", self.version, fmt=self.fmt)
            if d is not None:
                out.append(d)
        return out

    def _writer(self, kind: str, context: str) -> str:
        return self.fmt.question_writing(context) if kind == "qa" else self.fmt.restatement(context)

    def ledger(self) -> Ledger:
        """What this generator wrote since the last call: grounding counts and examples, then a fresh ledger."""
        out, self._ledger = self._ledger, Ledger()
        return out

    def learn(self, winners: Sequence[DreamSample], *, seed: int) -> float:
        """ReST-EM M-step: fine-tune the adapter on the winners' (writer prompt -> what it wrote)."""
        if not winners:
            return float("nan")
        torch.manual_seed(seed)
        c = self.cfg
        loss = self.lora.train(
            [d.writer_prompt for d in winners],
            [d.written for d in winners],
            steps=c.generator_steps,
            lr=c.generator_lr,
            batch=c.batch_size,
        )
        self.version += 1
        self._push()
        return loss

    def _push(self) -> None:
        """Give a separate engine the adapted weights (the shared HF engine already samples them)."""
        if isinstance(self.engine, HFEngine):  # built `around` the adapted model itself
            self.engine.version = self.version
        else:
            self.engine.load_weights(self.lora.merged(), self.version)

    def adapter(self) -> tuple[dict[str, np.ndarray], int]:
        return self.lora.arrays(), self.version

    def load_adapter(self, arrays: Mapping[str, np.ndarray], version: int) -> int:
        self.lora.load(arrays)
        self.version = version
        self._push()
        return version
