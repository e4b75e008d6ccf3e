"""Models and checkpoints: a project checkpoint is a plain Hugging Face directory."""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleep_ray.config import load_config
from sleep_ray.models.build import build_model, load_pretrained
from sleep_ray.models.checkpoint import CheckpointMeta, read_meta, save_checkpoint
from sleep_ray.models.generate import complete
from tests.helpers import TINY


def test_tokenizer_round_trips_any_text_and_adds_bos(tiny_tokenizer):
    text = "Zyx Qorvath moved to Ulmbridge!"  # words the tokenizer never saw
    ids = tiny_tokenizer(text)["input_ids"]
    assert ids[0] == tiny_tokenizer.bos_token_id
    assert tiny_tokenizer.decode(ids, skip_special_tokens=True) == text


def test_model_is_deterministic_for_a_seed(tiny_tokenizer):
    cfg = load_config(None, TINY).model
    a, b = build_model(cfg, tiny_tokenizer, seed=1), build_model(cfg, tiny_tokenizer, seed=1)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert a.config.head_dim == 64


def test_checkpoint_loads_with_plain_transformers_and_same_logits(tmp_path, tiny_model, tiny_tokenizer):
    path = save_checkpoint(tmp_path / "ckpt", tiny_model, tiny_tokenizer, CheckpointMeta(version=3, step=9))
    assert (path / "model.safetensors").is_file()
    model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    batch = tokenizer(["Ana Vel lives in", "Where does"], return_tensors="pt", padding=True)
    with torch.no_grad():
        expected = tiny_model.eval()(**batch).logits
        got = model.eval()(**batch).logits
    assert torch.equal(expected, got)
    assert tokenizer("Ana Vel")["input_ids"] == tiny_tokenizer("Ana Vel")["input_ids"]
    assert read_meta(path).version == 3
    assert not (tmp_path / "ckpt.tmp").exists()


def test_load_pretrained_rejects_a_non_checkpoint(tmp_path):
    import pytest

    with pytest.raises(FileNotFoundError, match="config.json"):
        load_pretrained(tmp_path)


def test_greedy_completion_is_deterministic_and_batch_independent(tiny_model, tiny_tokenizer):
    prompts = ["Ana Vel lives in", "Question: Where does Ana Vel live?\nAnswer:"]
    together = complete(tiny_model, tiny_tokenizer, prompts, max_new_tokens=6)
    alone = [complete(tiny_model, tiny_tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert together == alone
    assert all(isinstance(t, str) for t in together)
