"""The tiny model on CUDA gives the CPU's answers (skipped without a GPU)."""

from __future__ import annotations

import pytest
import torch

from sleep_ray.models.generate import complete

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
]


def test_cuda_logits_and_greedy_text_match_cpu(tiny_model, tiny_tokenizer):
    batch = tiny_tokenizer(["Ana Vel lives in", "Where does"], return_tensors="pt", padding=True)
    with torch.no_grad():
        cpu = tiny_model.eval()(**batch).logits
        gpu_model = tiny_model.to("cuda")
        gpu = gpu_model(**batch.to("cuda")).logits.cpu()
    assert torch.allclose(cpu, gpu, atol=1e-4)
    prompts = ["Ana Vel lives in"]
    assert complete(gpu_model, tiny_tokenizer, prompts, 4) == complete(tiny_model.to("cpu"), tiny_tokenizer, prompts, 4)
