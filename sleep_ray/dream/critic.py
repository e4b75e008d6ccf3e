"""The reward-critic of Dreaming (Ray actors, several in parallel): it rates a dream by trial.

A trial trains an isolated LoRA copy of the student (a fresh adapter; the student's weights never change) on
one dream for a few steps, then measures closed-book agreement with the teacher's in-context answers on that
memory's sleep-time probes. Reward 1 if the copy agrees more than before training (`TrialResult`).

    importance(dreams)   -> list[float]    gradient norm of each dream's SFT loss on the student's new expert
    trial(dream)         -> TrialResult
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from sleep_ray.config import DreamingConfig
from sleep_ray.dream.lora import Adapter
from sleep_ray.dream.records import DreamSample, SelfProbe, TrialResult
from sleep_ray.dream.select import importance
from sleep_ray.eval.metrics import agreement
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.models.growth import GrowthRecord, freeze_all_but_expert


class TrialCritic:
    def __init__(
        self,
        checkpoint: str,
        probes: Sequence[SelfProbe],
        cfg: DreamingConfig,
        *,
        growth: GrowthRecord | None = None,
        threads: int = 1,
        worker: int = 0,
        score: str = "exact",
        dtype: str = "float32",
    ):
        if threads:
            torch.set_num_threads(threads)
        self.cfg, self.worker, self.score = cfg, worker, score
        model, self.tokenizer = load_pretrained(checkpoint, dtype)  # model.dtype; peft keeps the adapter in float32
        if growth is not None:
            freeze_all_but_expert(model, growth)  # the new expert: what importance is measured on
        self.expert = [p for p in model.parameters() if p.requires_grad]
        self.lora = Adapter(model, self.tokenizer, r=cfg.lora_rank, seed=worker)
        self.probes: dict[str, list[SelfProbe]] = {}
        for p in probes:
            self.probes.setdefault(p.memory_id, []).append(p)
        self._before: dict[str, float] = {}

    def importance(self, dreams: Sequence[DreamSample]) -> list[float]:
        """||grad L_SFT(dream)|| over the student's new expert (all its parameters when it was not grown)."""
        with self.lora.model.disable_adapter():
            for p in self.expert:
                p.requires_grad_(True)
            try:
                prompts, completions = [d.student for d in dreams], [d.completion for d in dreams]
                return importance(self.lora.model, self.tokenizer, prompts, completions, self.expert)
            finally:
                for p in self.expert:
                    p.requires_grad_(False)

    def _agreement(self, memory_id: str) -> float:
        probes = self.probes.get(memory_id, [])
        answers = complete(self.lora.model, self.tokenizer, [p.prompt for p in probes], self.cfg.max_new_tokens)  # type: ignore[arg-type]
        return agreement(answers, [p.reference for p in probes], self.score)

    def trial(self, dream: DreamSample, *, seed: int = 0) -> TrialResult:
        t0 = time.time()
        self.lora.reset()
        if dream.memory_id not in self._before:
            self._before[dream.memory_id] = self._agreement(dream.memory_id)
        torch.manual_seed(seed)
        c = self.cfg
        self.lora.train([dream.student], [dream.completion], steps=c.trial_steps, lr=c.trial_lr, batch=1)
        after = self._agreement(dream.memory_id)
        return TrialResult(
            dream.dream_id, dream.memory_id, self._before[dream.memory_id], after, time.time() - t0, self.worker
        )

    def ping(self) -> int:
        return self.worker
