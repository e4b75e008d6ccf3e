"""The prompt layer: raw shapes for the tiny models, the checkpoint's own chat template otherwise."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from sleep_ray.data import prompts
from sleep_ray.data.prompts import RAW, PromptFormat
from sleep_ray.dream.records import parse_dream

TINY = "examples/tiny_base"

# A ChatML template (system role allowed) and a Gemma-like one that refuses a system turn and writes BOS itself.
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
NO_SYSTEM = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'system' %}"
    "{{ raise_exception('System role not supported') }}{% endif %}"
    "<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<turn>assistant\n{% endif %}"
)


def tokenizer(template: str | None):
    tok = AutoTokenizer.from_pretrained(TINY)
    tok.chat_template = template
    return tok


def test_without_a_template_every_prompt_is_the_raw_shape() -> None:
    fmt = PromptFormat.of(tokenizer(None))
    assert not fmt.chat and fmt.name == "raw"
    assert fmt.closed_book("Q?") == prompts.closed_book("Q?") == "Question: Q?\nAnswer:"
    assert fmt.in_context("C.", "Q?") == "Context: C.\nQuestion: Q?\nAnswer:"
    assert fmt.question_writing("C.") == prompts.question_writing("C.")
    assert fmt.restatement("C.") == prompts.restatement("C.")
    assert fmt.judging("a", "b") == prompts.judging("a", "b")
    assert fmt.free_question() == "Question:" and fmt.reply("Miravel") == " Miravel"
    assert fmt.free_text() == ""  # old text starts after the BOS, as a pretraining document does


def test_chat_prompts_go_through_the_template_and_end_where_the_assistant_speaks() -> None:
    fmt = PromptFormat.of(tokenizer(CHATML))
    assert fmt.chat
    text = fmt.in_context("Ana Vel lives in Miravel.", "Where does Ana Vel live?")
    assert text.startswith("<|im_start|>system\n") and text.endswith("<|im_start|>assistant\n")
    assert "Text: Ana Vel lives in Miravel.\n\nQuestion: Where does Ana Vel live?" in text
    closed = fmt.closed_book("Where does Ana Vel live?")
    assert "Miravel" not in closed and closed.endswith("<|im_start|>assistant\n")
    # written material keeps the raw continuation shape: the reply opens with "Question:"
    assert fmt.question_writing("Ana Vel lives in Miravel.").endswith("<|im_start|>assistant\nQuestion:")
    assert fmt.reply("Miravel") == "Miravel" + str(fmt.end)
    assert fmt.free_text().endswith("<|im_start|>assistant\n")


def test_a_template_without_a_system_role_gets_the_instruction_in_the_user_turn() -> None:
    tok = tokenizer(NO_SYSTEM)
    fmt = PromptFormat.of(tok)
    text = fmt.closed_book("Where does Ana Vel live?")  # would raise if a system turn reached the template
    assert "system" not in text and "Answer in a few words.\n\nQuestion: Where does Ana Vel live?" in text
    chat = fmt.conversation(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}], system="Ana lives in Miravel."
    )
    assert "Ana lives in Miravel.\n\nBe brief.\n\nHi" in chat
    # the tiny tokenizer adds its own BOS, so the BOS the template writes is dropped: one BOS, not two
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1


def test_a_qa_dream_in_the_chat_format_teaches_the_reply_with_its_end() -> None:
    fmt = PromptFormat.of(tokenizer(CHATML))
    ctx = "Ana Vel lives in Miravel."
    d = parse_dream("qa", "m1", ctx, " Where does Ana Vel live?\nAnswer: Miravel\n", "d", 0, fmt=fmt)
    assert d is not None
    assert d.student == fmt.closed_book("Where does Ana Vel live?")
    assert d.teacher == fmt.in_context(ctx, "Where does Ana Vel live?")
    assert d.completion == "Miravel" + fmt.end and d.writer_prompt == fmt.question_writing(ctx)
    raw = parse_dream("qa", "m1", ctx, " Where does Ana Vel live?\nAnswer: Miravel\n", "d", 0)
    assert raw is not None and raw.student == RAW.closed_book("Where does Ana Vel live?")


def test_conversation_needs_a_template() -> None:
    with pytest.raises(AssertionError):
        RAW.conversation([{"role": "user", "content": "hi"}])
