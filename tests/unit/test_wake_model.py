"""Serving-side generation on the committed tiny base model: streaming equals non-streaming, OpenAI stop
semantics (the stop string is not returned), finish reasons, and the prompt shapes."""

from __future__ import annotations

import pytest

from sleep_ray.config import GateConfig
from sleep_ray.wake.gate import agreement, decide, per_memory
from sleep_ray.wake.model import Generator, chat_prompt, completion_prompt, load_weights
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def weights():
    return load_weights(ROOT / "examples" / "tiny_base")


@pytest.mark.parametrize(
    "prompt,stops", [("Question: Where does Ana Vel live?\nAnswer:", ["\n"]), ("Question: Who", [])]
)
def test_stream_equals_complete(weights, prompt, stops):
    gen = Generator()
    text, finish, p_tok, c_tok = gen.complete(weights, prompt, 6, 0.0, stops, None)
    pieces = list(gen.stream(weights, prompt, 6, 0.0, stops, None))
    assert "".join(d for d, _ in pieces) == text
    assert pieces[-1] == ("", finish) and all(f is None for _, f in pieces[:-1])
    assert p_tok == weights.count(prompt) and 1 <= c_tok <= 6


def test_stop_string_is_cut_and_not_returned(weights):
    gen = Generator()
    full, finish, _, _ = gen.complete(weights, "Question: Who", 6, 0.0, [], None)
    assert finish == "length"
    word = full.split()[1]
    cut, finish, _, _ = gen.complete(weights, "Question: Who", 6, 0.0, [word], None)
    assert finish == "stop" and cut == full[: full.index(word)] and word not in cut


def test_sampling_with_a_seed_repeats(weights):
    gen = Generator()
    a = gen.complete(weights, "Question:", 8, 1.0, [], 7)[0]
    assert a == gen.complete(weights, "Question:", 8, 1.0, [], 7)[0]


def test_prompt_shapes_without_a_chat_template(weights):
    msgs = [("system", "be brief"), ("user", "Where does Ana Vel live?")]
    assert chat_prompt(weights, msgs, "") == "Question: Where does Ana Vel live?\nAnswer:"
    assert chat_prompt(weights, msgs, "Ana Vel lives in Miravel.").startswith("Context: Ana Vel lives in Miravel.\n")
    assert completion_prompt("Question: Q\nAnswer:", "C.") == "Context: C.\nQuestion: Q\nAnswer:"
    assert completion_prompt("P", "") == "P"


def test_gate_rule_on_numbers():
    cfg = GateConfig(min_gain=0.1, min_retention=0.9)
    assert decide(0.1, 0.5, 0.95, cfg).passed
    low = decide(0.1, 0.15, 0.99, cfg)
    assert not low.passed and "gate.min_gain" in low.reason
    forgot = decide(0.1, 0.9, 0.5, cfg)
    assert not forgot.passed and "gate.min_retention" in forgot.reason
    unread = decide(0.1, 0.9, 0.95, GateConfig(min_gain=0.1, min_retention=0.9, min_reading=0.8), reading=0.7)
    assert not unread.passed and "gate.min_reading" in unread.reason and unread.metrics["reading"] == 0.7
    assert agreement([" Miravel.\nQuestion", "Oslo"], ["miravel", "Paris"]) == 0.5
    assert agreement([], []) == 0.0
    lost = decide(0.1, 0.9, 0.95, GateConfig(min_gain=0.1, min_retention=0.9, min_regression=0.6), regression=0.5)
    assert not lost.passed and "gate.min_regression" in lost.reason and lost.metrics["regression"] == 0.5
    held = decide(0.1, 0.9, 0.95, GateConfig(min_gain=0.1, min_retention=0.9, min_regression=0.6), regression=0.6)
    assert held.passed and "earlier memories holding 0.600" in held.reason
    compacted = decide(None, 0.0, 0.95, cfg)  # nothing new to learn (a compaction): no gain is asked for
    assert compacted.passed and "serving_new" not in compacted.metrics


def test_per_memory_agreement_groups_answers_by_memory():
    assert per_memory(["a", "a", "b"], ["Oslo", "Rome", "x"], ["oslo", "Paris", "x."]) == {"a": 0.5, "b": 1.0}
