"""Typed records of Dreaming that cross actor boundaries; each names the generator weights that wrote it."""

from __future__ import annotations

from dataclasses import dataclass

from sleep_ray.data.prompts import ANSWER, RAW, PromptFormat

KINDS = ("qa", "restatement")


@dataclass(frozen=True)
class DreamSample:
    """One dream: what the dream-generator wrote about a memory, and the two views of it that training uses.

    writer_prompt -> written   the generator's own prompt and output (ReST-EM fine-tunes on winning pairs)
    student + completion       the closed-book text the student learns (no memory in context)
    teacher + completion       the same completion after the memory (the teacher-self scores it there)
    """

    dream_id: str
    memory_id: str
    kind: str
    writer_prompt: str
    written: str
    student: str
    teacher: str
    completion: str
    generator_version: int = 0


@dataclass(frozen=True)
class SelfProbe:
    """A sleep-time probe of one memory: a question written by the pre-sleep model (held-out seed) and its
    in-context answer, the reference a trial copy must agree with closed-book. No human label."""

    memory_id: str
    prompt: str  # the closed-book question prompt
    reference: str


@dataclass(frozen=True)
class TrialResult:
    """A dream's trial: agreement on its memory's probes of an isolated LoRA copy before and after training on it.

    reward is 1.0 when `after > before` (the binary reward of the method), else 0.0; `gain` keeps the size.
    """

    dream_id: str
    memory_id: str
    before: float
    after: float
    seconds: float
    worker: int = 0

    @property
    def gain(self) -> float:
        return self.after - self.before

    @property
    def reward(self) -> float:
        return 1.0 if self.after > self.before else 0.0


def parse_dream(
    kind: str,
    memory_id: str,
    context: str,
    written: str,
    dream_id: str,
    version: int,
    cut_words: int = 2,
    fmt: PromptFormat = RAW,
) -> DreamSample | None:
    """Turn the generator's raw output into a dream, or None when it is malformed.

    qa: the generator continues `question_writing(context)` with " <q>\\nAnswer: <a>"; the student learns
    `closed_book(q)` -> `fmt.reply(a)`. restatement: the generator continues `restatement(context)` with
    sentences; the student learns their first `cut_words` words -> the rest (the teacher reads the same after the
    memory). Every prompt is rendered by `fmt`, the model's own prompt format.
    """
    if kind == "qa":
        head, sep, tail = written.partition(ANSWER)
        q, a = head.strip(), tail.split("\n", 1)[0].strip()
        if not sep or not q.endswith("?") or not a:
            return None
        writer, text = fmt.question_writing(context), f" {q}{ANSWER} {a}\n"
        return DreamSample(
            dream_id,
            memory_id,
            kind,
            writer,
            text,
            fmt.closed_book(q),
            fmt.in_context(context, q),
            fmt.reply(a),
            version,
        )
    if kind == "restatement":
        said = written.split("\n", 1)[0].strip()
        words = said.split(" ")
        if len(words) <= cut_words or not said.endswith("."):
            return None
        head, rest = " ".join(words[:cut_words]), " " + " ".join(words[cut_words:])
        writer = fmt.restatement(context)
        return DreamSample(dream_id, memory_id, kind, writer, said + "\n", head, writer + head, rest, version)
    raise ValueError(f"unknown dream kind {kind!r}; expected one of {KINDS}")
