"""The prompt formats shared by pretraining, evaluation and sleep. One place, so every role agrees.

The base model is pretrained on exactly these shapes, which is what lets the same small model later act
as reader (teacher-self), closed-book answerer (student), question writer (dream generator) and judge.
"""

from __future__ import annotations

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
