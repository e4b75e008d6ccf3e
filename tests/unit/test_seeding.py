"""Knowledge Seeding's distillation loss on the tiny model: zero where teacher and student see the same thing,
positive with a memory in the teacher's context, and only the new expert gets a gradient."""

from __future__ import annotations

import torch

from sleep_ray.config import load_config
from sleep_ray.models.growth import freeze_all_but_expert, grow
from sleep_ray.sleep.seeding import SeedPrompt, distill_loss
from tests.conftest import TINY


def _student(tiny_model):
    cfg = load_config(None, [*TINY, "sleep.growth.d_low=8"])
    student, record = grow(tiny_model, cfg.sleep.growth, seed=0)
    freeze_all_but_expert(student, record)
    return cfg, student


def test_rehearsal_prompt_has_zero_loss_at_growth(tiny_model, tiny_tokenizer):
    cfg, student = _student(tiny_model)
    completion = tiny_tokenizer(" Miravel", add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    loss = distill_loss(
        tiny_model, student, tiny_tokenizer, SeedPrompt("Where does Ana Vel live?", ""), completion, cfg.sleep
    )
    assert abs(loss.item()) < 1e-5  # function-preserving growth: the student is the teacher without context


def test_memory_in_context_gives_a_loss_whose_gradient_reaches_only_the_expert(tiny_model, tiny_tokenizer):
    cfg, student = _student(tiny_model)
    completion = tiny_tokenizer(" Miravel", add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    item = SeedPrompt("Where does Ana Vel live?", "Ana Vel lives in Miravel.")
    loss = distill_loss(tiny_model, student, tiny_tokenizer, item, completion, cfg.sleep)
    assert loss.item() > 0
    loss.backward()
    grads = {n: p.grad for n, p in student.named_parameters() if p.grad is not None}
    assert grads and all("mlp" in n for n in grads)
    old = tiny_model.config.intermediate_size
    down = next(g for n, g in grads.items() if n.endswith("layers.0.mlp.down_proj.weight"))
    assert torch.count_nonzero(down[:, :old]) == 0 and torch.count_nonzero(down[:, old:]) > 0
    assert all(p.grad is None for p in tiny_model.parameters())
