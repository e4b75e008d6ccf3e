"""The GPU path of a sleep on CUDA (skipped without a GPU): growth, a bf16 training step of the student-large, and
the HF rollout engine. Run on a GPU machine with `.venv/bin/pytest -m gpu tests/gpu -q`."""

from __future__ import annotations

import copy

import pytest
import torch

from sleep_ray.config import GrowthConfig, load_config
from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
from sleep_ray.models.scoring import completion_logits
from sleep_ray.records import SeedPrompt, TeacherLogits
from sleep_ray.roles.student import distill_loss, make_student, prepare_trainable
from sleep_ray.roles.train_loop import _autocast
from sleep_ray.rollout.engine import to_arrays
from sleep_ray.rollout.hf import HFEngine
from tests.helpers import TINY

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]
PROMPTS = ["Ana Vel lives in", "Question: Where does Ana Vel live?\nAnswer:"]


def test_growth_on_cuda_preserves_the_function(tiny_model, tiny_tokenizer):
    small = copy.deepcopy(tiny_model).to("cuda").eval()
    big, _ = make_student(small, GrowthConfig(d_low=8), seed=1, experts_so_far=0)
    assert next(big.parameters()).device.type == "cuda"
    batch = tiny_tokenizer(PROMPTS, return_tensors="pt", padding=True).to("cuda")
    with torch.no_grad():
        assert torch.allclose(big(**batch).logits, small(**batch).logits, atol=1e-5, rtol=0)


def test_bf16_training_step_moves_only_the_expert(tiny_model, tiny_tokenizer):
    cfg = load_config(None, [*TINY, "sleep.growth.d_low=8"])
    teacher = copy.deepcopy(tiny_model).to("cuda").eval()
    student, record = make_student(teacher, cfg.sleep.growth, seed=0, experts_so_far=0)
    params = prepare_trainable(student, record)
    frozen = {n: p.detach().clone() for n, p in student.named_parameters() if not p.requires_grad}
    q = "Question: Where does Ana Vel live?\nAnswer:"
    memory = "Context: Ana Vel lives in Miravel.\n" + q
    items = [SeedPrompt(q, memory, "question")]
    completions = [tiny_tokenizer(" Miravel\n", add_special_tokens=False)["input_ids"]]
    with torch.no_grad():
        logits, _, _ = completion_logits(teacher, [tiny_tokenizer(memory)["input_ids"]], completions)
    t_logits = [TeacherLogits(logits[0, : len(completions[0])].float().cpu().numpy())]
    optimizer = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.0)
    before = [p.detach().clone() for p in params]
    with _autocast(student, "bfloat16"):
        loss = distill_loss(student, tiny_tokenizer, items, completions, t_logits, cfg.sleep.seeding)
    assert torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    optimizer.step()
    assert all(p.dtype == torch.float32 for p in params)  # float32 master weights under bf16 autocast
    assert any(not torch.equal(b, p.detach()) for b, p in zip(before, params))
    for n, p in student.named_parameters():
        if n in frozen:
            assert torch.equal(frozen[n], p.detach()), n


def test_hf_engine_samples_and_loads_weights_on_cuda(tmp_path, tiny_model, tiny_tokenizer):
    path = save_checkpoint(tmp_path / "ckpt", tiny_model, tiny_tokenizer, CheckpointMeta(version=0, step=0))
    engine = HFEngine(str(path), dtype="bfloat16")
    assert engine.model.device.type == "cuda" and engine.model.dtype == torch.bfloat16
    out = engine.generate(PROMPTS, n=2, max_new_tokens=6, seed=0)
    assert len(out) == 4 and all(r.weight_version == 0 for r in out)
    named = to_arrays({n: torch.zeros_like(p) for n, p in engine.model.named_parameters() if "down_proj" in n})
    assert engine.load_weights(named, version=5) == 5
    assert all(r.weight_version == 5 for r in engine.generate(PROMPTS, max_new_tokens=3, seed=0))
