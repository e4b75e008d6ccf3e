"""The teacher-self: the pre-sleep model with a memory in its context window (a Ray actor during sleep).

It writes the sleep's training material itself, with the skills it was pretrained for, and scores sequences:

    write_prompts(memories)  questions about each memory, opening words of its sentences and of the teacher's
                             restatements of it, the same questions read with the memory and question writing
                             (so the student keeps the skills the next night's teacher needs), and
                             self-rehearsal questions about old knowledge (no memory)  -> list[SeedPrompt]
    old_text(n)              the anchor's own free text (`free_texts`) cut at a word (language modelling)
    write_imitation(memories)  restatements of each memory, cut into sentence prefixes (Learning-to-Imitate)
                                                                                 -> list[ImitationItem]
    sample(prompts)          teacher continuations (memory in context)            -> list[Rollout]
    score(prompts, ids)      its logits at every completion position               -> list[TeacherLogits]

A long memory (longer than the window) is read one window at a time: each window counts as its own context.
Everything sampled is seeded, so a sleep is repeatable. Every question, restatement and answer written about a
memory is grounded in it (`sleep_ray.data.grounding`): a name the memory does not hold is repaired or the text
dropped; `ledger()` returns what was written, kept, repaired and dropped since the last call, with examples.

Old knowledge is held to an *anchor* when one is given (the original base model): rehearsal questions and the
free text that rehearses language modelling are answered and scored by the anchor, not by the pre-sleep model,
so drift cannot compound from night to night.
A rehearsal question naming someone a stored memory (`recall`) names gets the latest such memory in the
anchor's context, so an updated fact is rehearsed with its new value.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel

from sleep_ray.data.corpus import sentences
from sleep_ray.data.grounding import Grounded, Ledger, ground, known_words, names, subject, swap_name
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.data.schema import Memory
from sleep_ray.data.windows import windows
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.generate import complete
from sleep_ray.models.scoring import completion_logits
from sleep_ray.records import ImitationItem, Rollout, SeedPrompt, TeacherLogits
from sleep_ray.rollout.engine import make_rollout

OLD_KNOWLEDGE = ("rehearsal", "text")  # the item kinds the anchor answers and scores


def whole_sentences(text: str) -> list[str]:
    """The sentences of `text` that end with a full stop (a sampled text's last one may be cut off)."""
    return [x for x in sentences(text) if x.endswith(".")]


def cut_sentence(sentence: str, rng: random.Random, min_prefix_words: int = 2) -> ImitationItem | None:
    """A random cut of a sentence between words: ("Ana lives in Miravel.") -> prefix "Ana lives", reference
    " in Miravel." (the reference keeps its leading space). None for sentences too short to cut."""
    words = sentence.split(" ")
    if len(words) <= min_prefix_words:
        return None
    k = rng.randint(min_prefix_words, len(words) - 1)
    return ImitationItem(" ".join(words[:k]), " " + " ".join(words[k:]))


class TeacherSelf:
    """The frozen pre-sleep model. Construct from a checkpoint directory; usable in-process or as an actor."""

    def __init__(
        self, checkpoint: str, *, threads: int = 1, context_tokens: int = 0, dtype: str = "float32", anchor: str = ""
    ):
        if threads:
            torch.set_num_threads(threads)
        self.model, self.tokenizer = load_pretrained(checkpoint, dtype)
        same = not anchor or Path(anchor).resolve() == Path(checkpoint).resolve()
        self.anchor = self.model if same else load_pretrained(anchor, dtype)[0]
        window = int(self.model.config.max_position_embeddings)
        self.context_tokens = context_tokens or max(32, window - 160)  # room for the question and the answer
        self.known = known_words(self.tokenizer)
        self.fmt = PromptFormat.of(self.tokenizer)
        self._ledger = Ledger()

    def ledger(self) -> Ledger:
        """What was written about memories since the last call (counts per kind, examples), then a fresh ledger."""
        out, self._ledger = self._ledger, Ledger()
        return out

    def _ground(self, kind: str, text: str, context: str, memory_id: str, **kw: bool) -> str | None:
        verdict = ground(text, context, self.known, **kw)
        self._ledger.add(kind, text, verdict, memory_id=memory_id)
        return verdict.text

    def contexts(self, memories: Sequence[Memory]) -> list[tuple[str, str]]:
        """(memory_id, text) pairs, a long memory split into windows of whole sentences."""
        count = lambda s: len(self.tokenizer(s)["input_ids"])  # noqa: E731
        return [(m.memory_id, w) for m in memories for w in windows(m.text, count, self.context_tokens)]

    def _write(
        self, texts: list[str], seed: int, max_new_tokens: int, temperature: float, model: PreTrainedModel | None = None
    ) -> list[str]:
        """Seeded samples of `texts` by `model` (default: the pre-sleep model)."""
        torch.manual_seed(seed)
        return complete(
            model or self.model, self.tokenizer, texts, max_new_tokens, do_sample=True, temperature=temperature, top_k=0
        )

    def write_prompts(
        self,
        memories: Sequence[Memory],
        *,
        questions_per_memory: int,
        prefixes_per_memory: int,
        restatements_per_memory: int = 0,
        reading_per_memory: int = 0,
        writing_per_memory: int = 0,
        swapped_reading_per_memory: int = 0,
        rehearsal_fraction: float,
        temperature: float,
        seed: int,
        recall: Sequence[Memory] = (),
        text_share: float = 0.0,
    ) -> list[SeedPrompt]:
        """Distillation prompts for `memories` plus self-rehearsal prompts (a `rehearsal_fraction` share;
        `recall` and `text_share` as for `rehearsal`).

        Kinds (SeedPrompt): "question" (closed-book for the student), "prefix", "restatement"; "reading" (the
        first `reading_per_memory` questions of each memory, the student reading the memory too) and "writing"
        (`writing_per_memory` question-writing prompts, student and teacher alike) keep the skills the next
        night's teacher uses, and `swapped_reading_per_memory` more "reading" items each ask one of those
        questions of another of the night's people swapped into the memory (`swapped_reading`); "rehearsal"
        and "text" keep old knowledge."""
        rng = random.Random(seed)
        contexts = self.contexts(memories)
        items: list[SeedPrompt] = []
        asks = [(mid, c) for mid, c in contexts for _ in range(questions_per_memory)]
        written = self._write([self.fmt.question_writing(c) for _, c in asks], seed, 24, temperature)
        read: dict[str, int] = {}
        kept: dict[tuple[str, str], list[str]] = {}
        for (mid, c), raw in zip(asks, written):
            q = raw.split("\n", 1)[0].strip()
            if not q.endswith("?"):  # counted: a writer that rarely forms a question fails the grounding floor
                self._ledger.add("question", raw, Grounded(None, "dropped", "not a question"), memory_id=mid)
                continue
            fixed = self._ground("question", q, c, mid, require_name=True)
            if fixed is None:
                continue
            items.append(SeedPrompt(self.fmt.closed_book(fixed), self.fmt.in_context(c, fixed), "question", mid))
            kept.setdefault((mid, c), []).append(fixed)
            if read.get(c, 0) < reading_per_memory:
                read[c] = read.get(c, 0) + 1
                items.append(SeedPrompt(self.fmt.in_context(c, fixed), self.fmt.in_context(c, fixed), "reading", mid))
        items += self.swapped_reading(kept, swapped_reading_per_memory, seed + 11)
        for mid, c in contexts:
            w = self.fmt.question_writing(c)
            items += [SeedPrompt(w, w, "writing", mid)] * writing_per_memory
        for mid, c in contexts:
            for _ in range(prefixes_per_memory):
                dream = cut_sentence(rng.choice(sentences(c)), rng)
                if dream is not None:
                    items.append(SeedPrompt(dream.prefix, self.fmt.restatement(c) + dream.prefix, "prefix", mid))
        for c, d in self._restated_cuts(contexts, restatements_per_memory, temperature, seed + 3):
            items.append(SeedPrompt(d.prefix, self.fmt.restatement(c) + d.prefix, "restatement", d.memory_id))
        n_rehearsal = round(len(items) * rehearsal_fraction / max(1e-9, 1.0 - rehearsal_fraction))
        rehearsal = self.rehearsal(
            n_rehearsal, seed=seed + 1, temperature=temperature, recall=recall, text_share=text_share
        )
        return items + rehearsal

    def swapped_reading(
        self, questions: dict[tuple[str, str], list[str]], per_memory: int, seed: int
    ) -> list[SeedPrompt]:
        """Reading items that what the night teaches closed-book cannot answer: up to `per_memory` of each memory's
        `questions` ({(memory_id, text): questions}) asked of another of the night's people, whose name replaces
        the memory's subject in both the text and the question. The text (this memory's facts), not what the
        student learns about that person tonight, holds the answer; student and teacher read the same prompt."""
        if per_memory <= 0:
            return []
        rng = random.Random(seed)
        people = {key: subject(key[1], self.known) for key in questions}
        out = []
        for (mid, c), qs in questions.items():
            a = people[(mid, c)]
            others = sorted({p for p in people.values() if a and p and p != a and len(p.split()) == len(a.split())})
            if not a or not others:
                continue
            for q in qs[:per_memory]:
                b = rng.choice(others)
                prompt = self.fmt.in_context(swap_name(c, a, b), swap_name(q, a, b))
                out.append(SeedPrompt(prompt, prompt, "reading", mid))
        return out

    def rehearsal(
        self,
        n: int,
        *,
        seed: int,
        temperature: float = 1.0,
        recall: Sequence[Memory] = (),
        text_share: float = 0.0,
    ) -> list[SeedPrompt]:
        """Self-rehearsal items of old knowledge: about `n` questions (kind "rehearsal"), closed-book for the
        student, and beside them up to `round(n * text_share)` pieces of the anchor's own free text cut at a word
        (kind "text", see `old_text`). The anchor answers the questions: closed-book, or reading the latest of
        `recall` (in stored order) that names someone the question names (its `memory_id` is then that
        memory's)."""
        items = self.old_text(round(n * text_share), seed=seed + 7, temperature=temperature)
        for q in self.old_questions(n, seed=seed, temperature=temperature):
            hit = self._recall(q, recall)
            teacher = self.fmt.closed_book(q) if hit is None else self.fmt.in_context(hit[1], q)
            items.append(SeedPrompt(self.fmt.closed_book(q), teacher, "rehearsal", "" if hit is None else hit[0]))
        return items

    def _recall(self, question: str, recall: Sequence[Memory]) -> tuple[str, str] | None:
        """(memory_id, window) of the latest memory naming a name of `question`, or None."""
        asked = {n for _, _, n in names(question, self.known)}
        if not asked:
            return None
        for m in reversed(recall):
            if asked & {n for _, _, n in names(m.text, self.known)}:
                for mid, window in self.contexts([m]):
                    if any(n in window for n in asked):
                        return mid, window
        return None

    def write_questions(
        self,
        memories: Sequence[Memory],
        *,
        per_memory: int,
        seed: int,
        temperature: float = 1.0,
        reading: int = 0,
        swapped_reading: int = 0,
    ) -> list[SeedPrompt]:
        """Only the question prompts of `write_prompts` (kind "question", and `reading` plus `swapped_reading` of
        kind "reading" per memory): probes and fresh rehearsal questions."""
        return self.write_prompts(
            memories,
            questions_per_memory=per_memory,
            prefixes_per_memory=0,
            reading_per_memory=reading,
            swapped_reading_per_memory=swapped_reading,
            rehearsal_fraction=0.0,
            temperature=temperature,
            seed=seed,
        )

    def old_questions(self, n: int, *, seed: int, temperature: float = 1.0) -> list[str]:
        """Questions about what the model already knows, written with no memory (of `n` tries, the well-formed)."""
        raw_qs = self._write([self.fmt.free_question()] * n, seed, 24, temperature) if n > 0 else []
        return [q for q in (raw.split("\n", 1)[0].strip() for raw in raw_qs) if q.endswith("?")]

    def free_texts(self, n: int, *, seed: int, temperature: float = 1.0, max_new_tokens: int = 64) -> list[str]:
        """`n` texts the anchor writes with no memory (the first line of each): old text as the anchor knows it."""
        if n <= 0:
            return []
        written = self._write([self.fmt.free_text()] * n, seed, max_new_tokens, temperature, model=self.anchor)
        return [raw.split("\n", 1)[0] for raw in written]

    def old_text(self, n: int, *, seed: int, temperature: float = 1.0) -> list[SeedPrompt]:
        """Up to `n` language-modelling items (kind "text"): `free_texts` (2n of them, as some have no sentence
        to cut), each cut at a random word of a random sentence; student and teacher read the same prefix, so the
        loss holds the student's continuation of old text to the anchor's."""
        rng = random.Random(seed)
        opening = self.fmt.free_text()
        items = []
        for text in self.free_texts(2 * n, seed=seed, temperature=temperature):
            said = whole_sentences(text)
            if not said:
                continue
            k = rng.randrange(len(said))
            cut = cut_sentence(said[k], rng)
            if cut is not None:
                prefix = opening + " ".join([*said[:k], cut.prefix])
                items.append(SeedPrompt(prefix, prefix, "text"))
        return items[:n]

    def _restated_cuts(
        self, contexts: list[tuple[str, str]], per_memory: int, temperature: float, seed: int
    ) -> list[tuple[str, ImitationItem]]:
        """(context, cut) pairs: one sentence of each of `per_memory` sampled restatements, cut at random."""
        rng = random.Random(seed)
        asks = [(mid, c) for mid, c in contexts for _ in range(per_memory)]
        written = self._write([self.fmt.restatement(c) for _, c in asks], seed + 2, 64, temperature)
        out = []
        for (mid, c), raw in zip(asks, written):
            said = whole_sentences(raw.split("\n", 1)[0])
            if said:
                fixed = self._ground("restatement", rng.choice(said), c, mid)
                d = cut_sentence(fixed, rng) if fixed is not None else None
                if d is not None:
                    out.append((c, ImitationItem(d.prefix, d.reference, mid)))
        return out

    def write_imitation(
        self, memories: Sequence[Memory], *, per_memory: int, temperature: float, seed: int
    ) -> list[ImitationItem]:
        """Learning-to-Imitate items: sentences of the teacher's restatements of each memory, cut at random."""
        return [d for _, d in self._restated_cuts(self.contexts(memories), per_memory, temperature, seed)]

    def sample(
        self,
        items: Sequence[SeedPrompt],
        *,
        n: int,
        max_new_tokens: int,
        temperature: float,
        seed: int,
        stops: Sequence[str] = ("\n",),
    ) -> list[Rollout]:
        """`n` teacher continuations of each item's teacher prompt, grouped by item (source "teacher"). An answer
        to a question about a memory is grounded in it (ledger kind "answer"): a misspelt name is repaired; an
        answer naming what the memory does not hold is replaced by a grounded answer to the same question, when
        one of the `n` is."""
        texts = [it.teacher for it in items for _ in range(n)]
        written = [""] * len(texts)
        for k, (model, index) in enumerate(self._by_model(items)):  # old knowledge is answered by the anchor
            torch.manual_seed(seed + k)
            out = complete(
                model,
                self.tokenizer,
                [texts[i * n] for i in index for _ in range(n)],
                max_new_tokens,
                do_sample=True,
                temperature=temperature,
                top_k=0,
            )
            for pos, text in zip((i * n + r for i in index for r in range(n)), out):
                written[pos] = text
        for i, it in enumerate(items):
            if it.kind not in ("question", "reading"):
                continue
            group = written[i * n : (i + 1) * n]
            fixed = [
                self._ground("answer", g.split("\n", 1)[0], it.teacher, it.memory_id, subject=False) for g in group
            ]
            good = [f + "\n" for f in fixed if f is not None]
            for j, f in enumerate(fixed):
                if good:
                    written[i * n + j] = f + "\n" if f is not None else good[j % len(good)]
        return [make_rollout(self.tokenizer, t, raw, stops, -1, "teacher") for t, raw in zip(texts, written)]

    def answer(self, texts: Sequence[str], *, max_new_tokens: int) -> list[str]:
        """Greedy continuations of `texts` (the first line): the teacher's answers, e.g. to in-context questions."""
        raw = complete(self.model, self.tokenizer, list(texts), max_new_tokens)
        return [r.split("\n", 1)[0] for r in raw]

    def _by_model(self, items: Sequence[SeedPrompt]) -> list[tuple[PreTrainedModel, list[int]]]:
        """(model, item indices) groups: old-knowledge items go to the anchor when there is one."""
        if self.anchor is self.model:
            return [(self.model, list(range(len(items))))]
        own = [i for i, it in enumerate(items) if it.kind not in OLD_KNOWLEDGE]
        held = [i for i, it in enumerate(items) if it.kind in OLD_KNOWLEDGE]
        return [(m, idx) for m, idx in ((self.model, own), (self.anchor, held)) if idx]

    @torch.no_grad()
    def score(
        self, items: Sequence[SeedPrompt], completions: Sequence[Sequence[int]], *, topk: int = 0
    ) -> list[TeacherLogits]:
        """The teacher's logits on each completion after the item's teacher prompt: [n, V], or top-K with ids."""
        rows: list[torch.Tensor | None] = [None] * len(items)
        for model, index in self._by_model(items):
            prompt_ids = [self.tokenizer(items[i].teacher)["input_ids"] for i in index]
            pad = self.tokenizer.pad_token_id
            logits, _, _ = completion_logits(model, prompt_ids, [completions[i] for i in index], pad_id=pad)
            for b, i in enumerate(index):
                rows[i] = logits[b, : len(completions[i])].float().cpu()
        out = []
        for row in rows:
            assert row is not None
            if topk > 0:
                top = row.topk(min(topk, row.shape[-1]), dim=-1)
                out.append(TeacherLogits(top.values.numpy(), top.indices.numpy()))
            else:
                out.append(TeacherLogits(row.numpy()))
        return out
