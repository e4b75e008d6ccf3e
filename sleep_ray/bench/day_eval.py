"""The accuracy figures every one-day benchmark reports for cycle 1 of a world: closed-book accuracy by probe
kind on the cycle's held-out probes (or, for tuning, its sleep-split probes), the base model's in-context
accuracy (the teacher's upper bound), base-knowledge accuracy (for retention), how updated facts are answered,
and the skills the next night's teacher needs (reading, question writing, perplexity on old text)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sleep_ray.config import Config
from sleep_ray.data.schema import World
from sleep_ray.eval.harness import accuracy, answer, heldout_perplexity, items
from sleep_ray.eval.metrics import exact_match
from sleep_ray.models.build import load_pretrained


class CycleEval:
    """`split`: "eval" (held-out probes: every reported figure) or "sleep" (what a method may tune on)."""

    def __init__(self, cfg: Config, world: World, cycle: int = 1, split: str = "eval"):
        self.cfg, self.world = cfg, world
        self.by_kind: dict[str, list[Any]] = defaultdict(list)
        for it in items(world, (split,)):
            if it.cycle == str(cycle):
                self.by_kind[it.probe.kind].append(it)
        self.base_probes = [it for it in items(world, ("eval",)) if it.cycle == "base"]

    def _acc(self, model: Any, tok: Any, batch: list[Any], with_context: bool = False) -> float:
        return round(accuracy(model, tok, batch, self.cfg.eval, with_context=with_context), 4)

    def new_people(self, model: Any, tok: Any) -> float:
        """Closed-book accuracy on the cycle's new-people probes of a loaded model (a training curve's point)."""
        return self._acc(model, tok, self.by_kind.get("new", []))

    def closed_book(self, checkpoint: str) -> dict[str, Any]:
        """Closed-book accuracy by kind, base accuracy, and the updated facts' new-vs-stale share."""
        model, tok = load_pretrained(checkpoint)
        out: dict[str, Any] = {k: self._acc(model, tok, v) for k, v in self.by_kind.items()}
        out["base"] = self._acc(model, tok, self.base_probes)
        upd = self.by_kind.get("updated", [])
        preds = answer(model, tok, upd, self.cfg.eval, with_context=False) if upd else []
        new = sum(exact_match(p, it.probe.answer) for p, it in zip(preds, upd))
        stale = sum(exact_match(p, it.probe.stale_answer) for p, it in zip(preds, upd))
        out["updated_new_over_stale"] = round(new / (new + stale), 3) if new + stale else None
        out["updated_stale"] = round(stale / len(upd), 4) if upd else None  # the share answered with the old value
        return out

    def in_context(self, checkpoint: str) -> dict[str, float]:
        model, tok = load_pretrained(checkpoint)
        return {k: self._acc(model, tok, v, True) for k, v in self.by_kind.items()}

    def reading(self, checkpoint: str) -> dict[str, float]:
        """What the next night's teacher needs: in-context accuracy on the cycle's new people and on base
        documents, and perplexity on the world's held-out text."""
        model, tok = load_pretrained(checkpoint)
        return {
            "new_in_context": self._acc(model, tok, self.by_kind.get("new", []), True),
            "base_in_context": self._acc(model, tok, self.base_probes, True),
            "perplexity": round(heldout_perplexity(model, tok, self.world), 3),
        }

    def writing(self, checkpoint: str, memories: list[Any]) -> dict[str, float]:
        """The other skill the next teacher needs: 4 questions written about each of `memories` (the next day's,
        seed 1); the share that named the memory right as written, and the share grounded after repair."""
        from sleep_ray.roles.teacher import TeacherSelf

        writer = TeacherSelf(checkpoint, threads=0)
        writer.write_questions(memories, per_memory=4, seed=1)
        c = writer.ledger().counts.get("question", {"written": 0, "kept": 0, "repaired": 0})
        n = max(1, c["written"])
        return {
            "written": c["written"],
            "named_right": round(c["kept"] / n, 3),
            "grounded": round((c["kept"] + c["repaired"]) / n, 3),
        }

    def counts(self) -> dict[str, int]:
        return {k: len(v) for k, v in self.by_kind.items()}
