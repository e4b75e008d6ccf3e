"""The distillation loss of the committed tiny model on a fixed batch, pinned: a change to growth, prompts, the
student's forward pass or the loss that moves the number fails here (update the pin only for a change that is
meant to move it, and say why in the commit)."""

from __future__ import annotations

import pytest
import torch

from sleep_ray.config import load_config
from sleep_ray.roles.student import distill_loss, load_student, prepare_trainable
from sleep_ray.runtime.export import grow_student
from tests.helpers import BASE, fixed_batch

PINNED_BEFORE = 1.6656723
PINNED_AFTER = 1.6575382


def test_the_tiny_models_distillation_loss_on_a_fixed_batch_is_pinned(tmp_path):
    torch.manual_seed(0)
    cfg = load_config(None, [f"run_dir={tmp_path}", "sleep.growth.d_low=8"])
    grow_student(cfg, BASE, tmp_path / "init", cycle=1)
    model, tokenizer, record = load_student(tmp_path / "init")
    items, completions, teacher = fixed_batch()
    optimizer = torch.optim.AdamW(prepare_trainable(model, record), lr=1e-2)
    before = distill_loss(model, tokenizer, items, completions, teacher, cfg.sleep.seeding)
    optimizer.zero_grad()
    before.backward()
    optimizer.step()
    with torch.no_grad():
        after = distill_loss(model, tokenizer, items, completions, teacher, cfg.sleep.seeding)
    loss_before, loss_after = before.item(), after.item()
    assert loss_after < loss_before  # one step on the batch lowers its own loss
    assert loss_before == pytest.approx(PINNED_BEFORE, rel=1e-5)
    assert loss_after == pytest.approx(PINNED_AFTER, rel=1e-5)
