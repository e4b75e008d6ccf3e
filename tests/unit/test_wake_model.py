"""Serving-side generation on the committed tiny base model: streaming equals non-streaming, OpenAI stop
semantics (generation ends at the stop, which is neither returned nor counted), n choices, logprobs, penalties
and logit bias, finish reasons, and the prompt shapes."""

from __future__ import annotations

import pytest
import torch

from sleep_ray.config import GateConfig
from sleep_ray.eval.metrics import agreement, per_memory
from sleep_ray.wake.exchange import Delta, Sampling
from sleep_ray.wake.gate import decide
from sleep_ray.wake.logits import OpenAIAdjustments, biased, penalized, token_counts
from sleep_ray.wake.model import Generator, chat_prompt, completion_prompt, load_weights
from tests.helpers import ROOT


@pytest.fixture(scope="module")
def weights():
    return load_weights(ROOT / "examples" / "tiny_base")


def _one(gen, w, prompt, n, temperature=0.0, stops=(), seed=None, **more):
    """(text, finish, prompt tokens, completion tokens) of one choice."""
    s = Sampling(max_tokens=n, temperature=temperature, seed=seed, **more)
    (c, *_), prompt_tokens = gen.generate(w, prompt, n, s, stops, 0)
    return c.text, c.finish_reason, prompt_tokens, c.tokens


@pytest.mark.parametrize(
    "prompt,stops", [("Question: Where does Ana Vel live?\nAnswer:", ["\n"]), ("Question: Who", [])]
)
def test_stream_equals_generate(weights, prompt, stops):
    gen = Generator()
    text, finish, p_tok, c_tok = _one(gen, weights, prompt, 6, stops=stops)
    items = list(gen.stream(weights, prompt, 6, Sampling(max_tokens=6), stops, 0))
    pieces, tokens = items[:-1], items[-1]
    assert "".join(d.text for d in pieces) == text and tokens == c_tok
    assert pieces[-1] == Delta(0, "", finish) and all(d.finish_reason is None for d in pieces[:-1])
    assert p_tok == weights.count(prompt) and 1 <= c_tok <= 6


def test_a_stop_string_ends_generation_and_counts_only_returned_tokens(weights):
    gen = Generator()
    full, finish, _, n_full = _one(gen, weights, "Question: Who", 8)
    assert finish == "length" and n_full == 8
    word = full.split()[1]
    cut, finish, _, n_cut = _one(gen, weights, "Question: Who", 8, stops=[word])
    assert finish == "stop" and cut == full[: full.index(word)] and word not in cut
    assert n_cut == len(weights.tokenizer(cut, add_special_tokens=False)["input_ids"]) < n_full
    streamed = list(gen.stream(weights, "Question: Who", 8, Sampling(max_tokens=8), [word], 0))
    assert "".join(d.text for d in streamed[:-1]) == cut and streamed[-1] == n_cut


def test_sampling_with_a_seed_repeats_and_n_choices_differ(weights):
    gen = Generator()
    a = _one(gen, weights, "Question:", 8, 1.0, seed=7)[0]
    assert a == _one(gen, weights, "Question:", 8, 1.0, seed=7)[0]
    choices, _ = gen.generate(weights, "Question:", 8, Sampling(8, temperature=1.0, n=4, seed=3), (), 2)
    assert [c.index for c in choices] == [2, 3, 4, 5] and len({c.text for c in choices}) > 1
    greedy, _ = gen.generate(weights, "Question:", 8, Sampling(8, n=3), (), 0)
    assert len({c.text for c in greedy}) == 1 and len(greedy) == 3


def test_logprobs_are_the_models_and_penalties_and_bias_change_the_text(weights):
    gen = Generator()
    prompt = "Question: Where does Ana Vel live?\nAnswer:"
    (c,), _ = gen.generate(weights, prompt, 4, Sampling(4, logprobs=2), (), 0)
    assert c.logprobs is not None and len(c.logprobs) == c.tokens == 4
    assert "".join(t.token for t in c.logprobs) == c.text
    first = c.logprobs[0]
    assert first.top[0][0] == first.token and first.top[0][1] == pytest.approx(first.logprob)  # greedy: the best
    assert all(lp <= 0 for _, lp in first.top) and first.top[0][1] >= first.top[1][1]
    ids = weights.tokenizer(c.text, add_special_tokens=False)["input_ids"]
    banned, _ = gen.generate(weights, prompt, 4, Sampling(4, logit_bias={ids[0]: -100.0}), (), 0)
    assert banned[0].text != c.text


def test_openai_penalties_and_bias_on_hand_computed_logits():
    generated = torch.tensor([[2, 2, 0], [1, 1, 1]])
    counts = token_counts(generated, 4)
    assert counts.tolist() == [[1, 0, 2, 0], [0, 3, 0, 0]]
    logits = torch.zeros(2, 4)
    out = penalized(logits, counts, frequency=0.5, presence=1.0)
    assert out.tolist() == [[-1.5, 0.0, -2.0, 0.0], [0.0, -2.5, 0.0, 0.0]]
    assert biased(logits, {3: -100.0, 9: 5.0}).tolist() == [[0, 0, 0, -100.0]] * 2  # id 9 is outside: ignored
    step = OpenAIAdjustments(prompt_length=1, frequency=1.0, presence=0.0, bias={0: 2.0})
    ids = torch.tensor([[3, 1, 1]])  # the prompt's token 3 is not penalised
    assert step(ids, torch.zeros(1, 4)).tolist() == [[2.0, -2.0, 0.0, 0.0]]


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
