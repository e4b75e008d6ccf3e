"""The natural-English set: hand-written memories and general questions for evaluating a real pretrained model.

Two files ship with the package in `sleep_ray/data/natural/`:

  * `stream.jsonl`, a memory stream in the format of docs/FORMAT.md: fictional passages in ordinary English
    (news items, encyclopaedia entries, emails, diaries, notices, reviews) about invented people, places,
    organisations and products, so no pretrained model can know them. Each is a cycle-1 `document` memory
    with three `new` probes whose gold answers are short spans copied verbatim from the passage;
  * `general.jsonl`, common world-knowledge questions (`{"question", "answer", "aliases"}` per line) that a
    small instruct model has a fair chance of answering: the general-ability check that sleeping should not
    erode. `sleep-ray bench real` asks the base model every question and keeps those it answers right
    (`sleep_ray.bench.real.answered_gold`); nothing here loads a model.

    memories = natural_stream()                              # list[Memory], validated by read_stream
    questions = general_questions()                          # list[GeneralQuestion]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib.resources import as_file, files
from typing import Any

from sleep_ray.data.schema import Memory, read_stream

_PACKAGE = "sleep_ray.data"
STREAM_FILE = "natural/stream.jsonl"
GENERAL_FILE = "natural/general.jsonl"


@dataclass(frozen=True)
class GeneralQuestion:
    """A common-knowledge question, its short gold answer and other accepted spellings ("4" / "four")."""

    question: str
    answer: str
    aliases: tuple[str, ...] = ()

    def golds(self) -> tuple[str, ...]:
        """The answer followed by its aliases: every string a reply may contain to count as right."""
        return (self.answer, *self.aliases)


def natural_stream() -> list[Memory]:
    """The packaged natural-English memory stream, read and validated by the project's stream reader."""
    with as_file(files(_PACKAGE).joinpath(STREAM_FILE)) as path:
        return read_stream(path)


def _parse_general(obj: Any, where: str) -> GeneralQuestion:
    if not isinstance(obj, dict) or set(obj) - {"question", "answer", "aliases"}:
        raise ValueError(f"{where}: expected an object with keys question, answer, aliases")
    question, answer, aliases = obj.get("question"), obj.get("answer"), obj.get("aliases", [])
    for name, value in (("question", question), ("answer", answer)):
        if not isinstance(value, str) or not value.strip():
            raise ValueError(f"{where}: {name} must be a non-empty string")
    if not isinstance(aliases, list) or not all(isinstance(a, str) and a.strip() for a in aliases):
        raise ValueError(f"{where}: aliases must be a list of non-empty strings")
    return GeneralQuestion(str(question), str(answer), tuple(aliases))


def general_questions() -> list[GeneralQuestion]:
    """The packaged general-ability questions, in file order. Raises ValueError on a malformed line."""
    text = files(_PACKAGE).joinpath(GENERAL_FILE).read_text(encoding="utf-8")
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            out.append(_parse_general(json.loads(line), f"{GENERAL_FILE}:{number}"))
    return out
