"""The imitation critic of Learning-to-Imitate (stage 1): how well did the student complete a teacher sentence?

    r = gamma * r_sem + (1 - gamma) * r_lev        (sleep_ray.rewards.imitation)

r_sem is the verdict of a frozen judge: the pre-sleep model prompted with the judging format it was pretrained
on ("Statement A: ...\\nStatement B: ...\\nSame meaning?" -> yes/no), comparing the two whole sentences
(prefix + completion against prefix + reference). Where the reference is short (at most `short_words` words,
e.g. a city name) the judge adds nothing that a normalized exact match does not, so that is used instead.
r_lev is the character Levenshtein similarity of the completion to the reference, zero beyond z0.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from sleep_ray.data.prompts import PromptFormat
from sleep_ray.eval.metrics import exact_match
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.records import ImitationItem
from sleep_ray.rewards.imitation import ImitationScore, parse_judge_verdict, score_imitation


class ImitationCritic:
    """The frozen judge plus the edit-distance reward. Construct from a checkpoint; usable as a Ray actor."""

    def __init__(
        self,
        checkpoint: str,
        *,
        gamma: float,
        z0: float,
        threads: int = 1,
        short_words: int = 2,
        dtype: str = "float32",
    ):
        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer = load_pretrained(checkpoint, dtype)
        self.fmt = PromptFormat.of(self.tokenizer)
        self.gamma, self.z0, self.short_words = gamma, z0, short_words

    def same_meaning(self, pairs: Sequence[tuple[str, str]]) -> list[bool]:
        """The judge's verdicts on (a, b) sentence pairs; an unparseable answer counts as "no"."""
        if not pairs:
            return []
        texts = [self.fmt.judging(a, b) for a, b in pairs]
        raw = complete(self.model, self.tokenizer, texts, max_new_tokens=2)
        return [parse_judge_verdict(r) is True for r in raw]

    def score(self, dreams: Sequence[ImitationItem], completions: Sequence[str]) -> list[ImitationScore]:
        """One score per (dream, completion), completions[i] completing dreams[i].prefix."""
        if len(dreams) != len(completions):
            raise ValueError(f"{len(dreams)} dreams but {len(completions)} completions")
        short = [len(d.reference.split()) <= self.short_words for d in dreams]
        judged = [(d.prefix + c.rstrip("\n"), d.prefix + d.reference) for d, c, s in zip(dreams, completions, short)]
        verdicts = iter(self.same_meaning([p for p, s in zip(judged, short) if not s]))
        out = []
        for d, c, s in zip(dreams, completions, short):
            same = exact_match(c, d.reference) > 0 if s else next(verdicts)
            out.append(score_imitation(c.strip(), d.reference.strip(), same, gamma=self.gamma, z0=self.z0))
        return out
