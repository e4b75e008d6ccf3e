"""Every prompt a model is asked, in one place, rendered the way that model reads: `PromptFormat`.

Two renderings of the same prompts:

- *raw*: the shapes the tiny world's models are pretrained on (`Context: ...\\nQuestion: ...\\nAnswer:`). The
  module-level functions are this rendering; the corpus writes pretraining text with them.
- *chat*: a checkpoint with a chat template (an instruct model) gets every prompt as a conversation rendered by
  its own template, ending where the assistant speaks. Material that is parsed afterwards (a written question
  and answer) keeps the raw continuation shape by opening the assistant's reply with it (`Question:`), so the
  parsers are the same for both renderings.

    fmt = PromptFormat.of(tokenizer)          # chat when the tokenizer has a template, raw otherwise
    fmt.in_context(memory, "Where does Ana Vel live?")
    fmt.reply("Miravel")                      # the completion a student learns for that answer
"""

from __future__ import annotations

from typing import Any

ANSWER = "\nAnswer:"
WRITE_QUESTION = "Write a question and its answer."
RESTATE = "Say it in other words."


def closed_book(question: str) -> str:
    """Prompt for answering from the weights alone; the model continues with ' <answer>'."""
    return f"Question: {question}{ANSWER}"


def in_context(context: str, question: str) -> str:
    """Prompt for answering with a memory (document, dialogue, demonstrations) in the window."""
    return f"Context: {context}\nQuestion: {question}{ANSWER}"


def question_writing(context: str) -> str:
    """Prompt for writing a question/answer pair about a context; continues with ' <q>\\nAnswer: <a>'."""
    return f"Context: {context}\n{WRITE_QUESTION}\nQuestion:"


def restatement(context: str) -> str:
    """Prompt for restating a context in other words."""
    return f"Context: {context}\n{RESTATE}\n"


def judging(a: str, b: str) -> str:
    """Prompt for the same-meaning judge; the model continues with ' yes' or ' no'."""
    return f"Statement A: {a}\nStatement B: {b}\nSame meaning?"


_SHORT = "Answer in a few words."
_READ = "Answer the question using the text. Answer in a few words."
_WRITE = "Write one question about a fact in this text, then its short answer."
# Worked examples shown before the memory (as earlier turns): a small instruct model writes far better-formed
# questions after seeing two. Their names appear in no memory and no probe.
_WRITE_EXAMPLES = (
    (
        "Lena Hartwig opened a bakery called The Copper Loaf in the town of Dunmore in 2015. Her rye bread won a "
        "regional prize two years later.",
        "Question: In which town did Lena Hartwig open The Copper Loaf?\nAnswer: Dunmore",
    ),
    (
        "The Aldgrave Rowing Club was founded by Tomas Reyne, a retired ferry captain. Its boathouse stands on the "
        "east bank of the river Sull.",
        "Question: Who founded the Aldgrave Rowing Club?\nAnswer: Tomas Reyne",
    ),
)
_RESTATE = "Say the text above again in other words, in full sentences."
_JUDGE = "Do A and B mean the same? Answer yes or no."
_ASK = "Write one question about general knowledge that has a short answer, in this form:\nQuestion: ..."
_TELL = "Write a few sentences about something you know well."


class PromptFormat:
    """The prompts of one checkpoint. `PromptFormat.of(tokenizer)` picks chat or raw; `PromptFormat()` is raw.

    Every method returns the full text the model continues. In the chat rendering, a context goes into the user
    turn (every template has one), the instruction into the system turn when the template accepts one and into
    the user turn otherwise, and a leading BOS the template writes is dropped when the tokenizer adds its own.
    """

    def __init__(self, tokenizer: Any = None):
        self.tokenizer = tokenizer if tokenizer is not None and getattr(tokenizer, "chat_template", None) else None
        self.chat = self.tokenizer is not None
        self.end = ""  # what closes an assistant turn (the student learns to stop there)
        self._system = False
        self._strip_bos = ""
        if self.tokenizer is not None:
            tok = self.tokenizer
            self.end = str(tok.eos_token or "")
            try:
                self._render([{"role": "system", "content": "s"}, {"role": "user", "content": "u"}])
                self._system = True
            except Exception:  # noqa: BLE001 - a template that refuses a system turn raises its own error type
                self._system = False
            bos = getattr(tok, "bos_token", None)
            ids = tok("x")["input_ids"]
            if bos and ids and ids[0] == tok.bos_token_id:
                self._strip_bos = str(bos)

    @classmethod
    def of(cls, tokenizer: Any) -> PromptFormat:
        return cls(tokenizer)

    @property
    def name(self) -> str:
        return "chat" if self.chat else "raw"

    def _render(self, messages: list[dict[str, str]]) -> str:
        assert self.tokenizer is not None
        text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        return str(text)

    def conversation(self, messages: list[dict[str, str]], *, system: str = "", opening: str = "") -> str:
        """A chat rendered to the point where the assistant speaks (then `opening`, the reply's first words).
        `system` is added as a system turn, or in front of the first user turn when the template has none;
        earlier system turns of a template without a system role are folded the same way."""
        assert self.tokenizer is not None, "conversation() needs a chat template"
        msgs = [dict(m) for m in messages]
        if system and msgs and msgs[0]["role"] == "system":
            msgs[0]["content"] = f"{system}\n\n{msgs[0]['content']}"
        elif system:
            msgs.insert(0, {"role": "system", "content": system})
        if not self._system:
            folded = "\n\n".join(m["content"] for m in msgs if m["role"] in ("system", "developer"))
            msgs = [m for m in msgs if m["role"] not in ("system", "developer")]
            if folded:
                first = next((m for m in msgs if m["role"] == "user"), None)
                if first is None:
                    msgs.insert(0, {"role": "user", "content": folded})
                else:
                    first["content"] = f"{folded}\n\n{first['content']}"
        text = self._render(msgs)
        if self._strip_bos and text.startswith(self._strip_bos):
            text = text[len(self._strip_bos) :]
        return text + opening

    def _ask(self, user: str, *, system: str = "", opening: str = "") -> str:
        return self.conversation([{"role": "user", "content": user}], system=system, opening=opening)

    def closed_book(self, question: str) -> str:
        if not self.chat:
            return closed_book(question)
        return self._ask(f"Question: {question}", system=_SHORT)

    def in_context(self, context: str, question: str) -> str:
        if not self.chat:
            return in_context(context, question)
        return self._ask(f"Text: {context}\n\nQuestion: {question}", system=_READ)

    def question_writing(self, context: str) -> str:
        """Continues with ' <q>\\nAnswer: <a>' in both renderings (the chat reply opens with 'Question:')."""
        if not self.chat:
            return question_writing(context)
        shots = [
            m
            for text, written in _WRITE_EXAMPLES
            for m in ({"role": "user", "content": f"{_WRITE}\n\n{text}"}, {"role": "assistant", "content": written})
        ]
        ask = {"role": "user", "content": f"{_WRITE}\n\n{context}"}
        return self.conversation([*shots, ask], opening="Question:")

    def restatement(self, context: str) -> str:
        if not self.chat:
            return restatement(context)
        return self._ask(f"{context}\n\n{_RESTATE}")

    def judging(self, a: str, b: str) -> str:
        if not self.chat:
            return judging(a, b)
        return self._ask(f"A: {a}\nB: {b}\n{_JUDGE}")

    def free_question(self) -> str:
        """Prompt for a question about old knowledge, written with no memory; continues with ' <q>'."""
        if not self.chat:
            return "Question:"
        return self._ask(_ASK, opening="Question:")

    def free_text(self) -> str:
        """Prompt for free text written with no memory (language modelling of old text): nothing raw (the text
        starts after the tokenizer's BOS, as a pretraining document does); in chat, a request to write some."""
        if not self.chat:
            return ""
        return self._ask(_TELL)

    def reply(self, answer: str) -> str:
        """The completion that answers `answer` after `closed_book`/`in_context`: ' <answer>' raw; in chat the
        answer and the end of the assistant's turn."""
        return f" {answer}" if not self.chat else f"{answer}{self.end}"


RAW = PromptFormat()
