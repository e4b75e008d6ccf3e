"""The student-large's losses on the tiny model, computed from the records that cross actor boundaries."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sleep_ray.config import load_config
from sleep_ray.models.scoring import completion_logits
from sleep_ray.records import ImitationItem, SeedPrompt, TeacherLogits
from sleep_ray.roles.student import distill_loss, imitation_loss, make_student, prepare_trainable, trainable_arrays
from tests.helpers import TINY

ANSWER = " Miravel\n"


def _student(tiny_model, *extra):
    cfg = load_config(None, [*TINY, "sleep.growth.d_low=8", *extra])
    student, record = make_student(tiny_model, cfg.sleep.growth, seed=0, experts_so_far=0)
    prepare_trainable(student, record)
    return cfg, student


def _teacher_logits(model, tokenizer, items, completions, topk=0):
    """What TeacherSelf.score returns, computed in-process with the same helper."""
    with torch.no_grad():
        logits, _, _ = completion_logits(model, [tokenizer(it.teacher)["input_ids"] for it in items], completions)
    out = []
    for b, c in enumerate(completions):
        row = logits[b, : len(c)]
        if topk:
            top = row.topk(topk, dim=-1)
            out.append(TeacherLogits(top.values.numpy(), top.indices.numpy()))
        else:
            out.append(TeacherLogits(row.numpy()))
    return out


def test_completion_logits_align_with_a_plain_forward_pass(tiny_model, tiny_tokenizer):
    prompts = [tiny_tokenizer("Question: Where does Ana Vel live?\nAnswer:")["input_ids"], [1, 5]]
    completions = [tiny_tokenizer(ANSWER, add_special_tokens=False)["input_ids"], [7]]
    logits, tokens, mask = completion_logits(tiny_model, prompts, completions)
    assert mask.tolist()[1] == [True] + [False] * (len(completions[0]) - 1)
    for b in range(2):
        full = tiny_model(input_ids=torch.tensor([prompts[b] + completions[b]])).logits[0]
        n, start = len(completions[b]), len(prompts[b]) - 1
        assert torch.allclose(logits[b, :n], full[start : start + n], atol=1e-5)
        assert tokens[b, :n].tolist() == completions[b]


@pytest.mark.parametrize("topk", [0, 5])
def test_rehearsal_prompt_has_zero_loss_at_growth(tiny_model, tiny_tokenizer, topk):
    cfg, student = _student(tiny_model)
    q = "Question: Where does Ana Vel live?\nAnswer:"
    items = [SeedPrompt(q, q, "rehearsal")]
    completions = [tiny_tokenizer(ANSWER, add_special_tokens=False)["input_ids"]]
    teacher = _teacher_logits(tiny_model, tiny_tokenizer, items, completions, topk)
    loss = distill_loss(student, tiny_tokenizer, items, completions, teacher, cfg.sleep.seeding)
    assert abs(loss.item()) < 1e-5  # function-preserving growth: the student is the teacher without context


def test_memory_in_context_gives_a_loss_whose_gradient_reaches_only_the_expert(tiny_model, tiny_tokenizer):
    cfg, student = _student(tiny_model)
    q = "Question: Where does Ana Vel live?\nAnswer:"
    items = [SeedPrompt(q, "Context: Ana Vel lives in Miravel.\n" + q, "question")]
    completions = [tiny_tokenizer(ANSWER, add_special_tokens=False)["input_ids"]]
    teacher = _teacher_logits(tiny_model, tiny_tokenizer, items, completions)
    loss = distill_loss(student, tiny_tokenizer, items, completions, teacher, cfg.sleep.seeding)
    assert loss.item() > 0
    loss.backward()
    grads = {n: p.grad for n, p in student.named_parameters() if p.grad is not None}
    assert grads and all("mlp" in n for n in grads)
    old = tiny_model.config.intermediate_size
    down = next(g for n, g in grads.items() if n.endswith("layers.0.mlp.down_proj.weight"))
    assert torch.count_nonzero(down[:, :old]) == 0 and torch.count_nonzero(down[:, old:]) > 0
    assert all(p.grad is None for p in tiny_model.parameters())
    assert set(trainable_arrays(student)) == set(grads)  # a weight push carries exactly what trains


def test_growth_off_trains_every_parameter_and_leaves_the_base_alone(tiny_model):
    _, student = _student(tiny_model, "sleep.growth.enabled=false")
    assert student.config.intermediate_size == tiny_model.config.intermediate_size
    assert all(p.requires_grad for p in student.parameters())
    assert student.model.embed_tokens.weight.data_ptr() != tiny_model.model.embed_tokens.weight.data_ptr()


def test_imitation_loss_raises_the_probability_of_the_better_completion(tiny_model, tiny_tokenizer):
    cfg, student = _student(tiny_model)
    good, bad = (tiny_tokenizer(t, add_special_tokens=False)["input_ids"] for t in (" in Miravel.", " Quinta."))
    dreams = [ImitationItem("Ana Vel lives", " in Miravel.")] * 2
    optim = torch.optim.SGD([p for p in student.parameters() if p.requires_grad], lr=0.5)

    def logprob(ids):
        with torch.no_grad():
            logits, tokens, mask = completion_logits(student, [tiny_tokenizer("Ana Vel lives")["input_ids"]], [ids])
            return torch.log_softmax(logits, -1).gather(-1, tokens.unsqueeze(-1)).sum().item()

    before = logprob(good) - logprob(bad)
    for _ in range(3):
        loss = imitation_loss(student, tiny_tokenizer, dreams, [good, bad], [1.0, 0.0], group_size=2, temperature=1.0)
        optim.zero_grad()
        loss.backward()
        optim.step()
    assert logprob(good) - logprob(bad) > before


def test_equal_rewards_give_no_gradient(tiny_model, tiny_tokenizer):
    _, student = _student(tiny_model)
    ids = tiny_tokenizer(" in Miravel.", add_special_tokens=False)["input_ids"]
    loss = imitation_loss(
        student, tiny_tokenizer, [ImitationItem("Ana", " x")] * 2, [ids, ids], [0.5, 0.5], group_size=2, temperature=1.0
    )
    loss.backward()
    assert all(p.grad is None or not p.grad.any() for p in student.parameters())
    assert np.isclose(loss.item(), 0.0)
