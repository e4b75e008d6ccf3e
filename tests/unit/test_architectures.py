"""Growth on real MLP shapes: exact for the supported architectures, a clear refusal for the others.

Each architecture is a tiny random-weight model built here (hidden 64, 2 layers), saved with the tiny base
model's tokenizer as a standard Hugging Face directory, so no download is needed.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    Gemma2Config,
    GemmaConfig,
    GPT2Config,
    GPTNeoXConfig,
    LlamaConfig,
    MistralConfig,
    Phi3Config,
    PretrainedConfig,
    Qwen2Config,
    Qwen3Config,
)

from sleep_ray.config import Config, ConfigError, GrowthConfig, load_config
from sleep_ray.models.growth import (
    GrowthUnsupportedError,
    freeze_all_but_expert,
    grow,
    growth_support,
    trainable_expert_mask,
)

torch.set_num_threads(1)

ROOT = Path(__file__).resolve().parents[2]
D_LOW = 8
SUPPORTED = ["qwen2", "mistral", "llama", "gemma", "gemma2", "qwen3"]
REFUSED = ["phi3", "gpt2", "gpt_neox"]
SENTENCE = "Bo Tan works for Quinta Labs. Ana Vel lives in Miravel."


def _config(kind: str, tokenizer: Any) -> PretrainedConfig:
    """A tiny config of architecture `kind` for `tokenizer`: hidden 64, 2 layers, 4 heads (2 KV heads with GQA)."""
    vocab = len(tokenizer)
    ids = dict(
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id
    )
    llama_like: dict[str, Any] = dict(
        **ids,
        vocab_size=vocab,
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
    )
    if kind == "qwen2":
        return Qwen2Config(**llama_like)
    if kind == "qwen3":
        return Qwen3Config(**llama_like, head_dim=16)
    if kind == "mistral":
        return MistralConfig(**llama_like)
    if kind == "llama":  # Llama-3 style: rope_theta 500000, grouped-query attention
        return LlamaConfig(**llama_like, rope_parameters={"rope_type": "default", "rope_theta": 500000.0})
    if kind == "gemma":
        return GemmaConfig(**llama_like, head_dim=16)
    if kind == "gemma2":
        return Gemma2Config(**llama_like, head_dim=16)
    if kind == "phi3":
        return Phi3Config(**llama_like)
    if kind == "gpt2":
        return GPT2Config(**ids, vocab_size=vocab, n_embd=64, n_layer=2, n_head=4, n_positions=256)
    if kind == "gpt_neox":
        return GPTNeoXConfig(
            **ids,
            vocab_size=vocab,
            hidden_size=64,
            num_hidden_layers=2,
            num_attention_heads=4,
            intermediate_size=256,
            max_position_embeddings=256,
        )
    raise AssertionError(kind)


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return AutoTokenizer.from_pretrained(ROOT / "examples" / "tiny_base")


@pytest.fixture(scope="module")
def saved(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every architecture's tiny model, saved with the tokenizer: kind -> directory."""
    out: dict[str, Path] = {}
    for kind in SUPPORTED + REFUSED:
        torch.manual_seed(0)
        model = AutoModelForCausalLM.from_config(_config(kind, tokenizer))
        out[kind] = tmp_path_factory.mktemp(kind)
        model.save_pretrained(out[kind])
        tokenizer.save_pretrained(out[kind])
    return out


def _load(path: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()


def _ids(tokenizer: Any) -> torch.Tensor:
    return torch.tensor([tokenizer(SENTENCE)["input_ids"]])


def _logits(model: Any, ids: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model.eval()(input_ids=ids).logits


def _config_json(path: Path) -> dict[str, Any]:
    return json.loads((path / "config.json").read_text())


@pytest.mark.parametrize("kind", SUPPORTED)
def test_growth_is_exact_and_the_grown_checkpoint_is_standard(kind, saved, tokenizer, tmp_path):
    small = _load(saved[kind])
    assert small.config.model_type == kind
    assert growth_support(small.config) is None
    assert growth_support(_config_json(saved[kind])) is None
    ids = _ids(tokenizer)
    big, record = grow(small, GrowthConfig(d_low=D_LOW), seed=1)
    assert record.new_intermediate == record.old_intermediate + D_LOW
    expected = _logits(small, ids)
    assert torch.allclose(_logits(big, ids), expected, atol=1e-6, rtol=0)

    big.save_pretrained(tmp_path)
    again = AutoModelForCausalLM.from_pretrained(tmp_path)  # plain transformers, no project code
    assert again.config.intermediate_size == record.new_intermediate
    assert torch.allclose(_logits(again, ids), expected, atol=1e-6, rtol=0)


@pytest.mark.parametrize("kind", SUPPORTED)
def test_one_step_moves_the_expert_and_no_old_weight(kind, saved, tokenizer):
    big, record = grow(_load(saved[kind]), GrowthConfig(d_low=D_LOW), seed=2)
    freeze_all_but_expert(big, record)
    masks = trainable_expert_mask(big, record)
    before = {n: p.detach().clone() for n, p in big.named_parameters()}
    opt = torch.optim.AdamW([p for p in big.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    ids = _ids(tokenizer)
    big.train()(input_ids=ids, labels=ids).loss.backward()
    opt.step()
    moved = 0
    for name, p in big.named_parameters():
        mask = masks[name]
        assert torch.equal(p.detach()[~mask], before[name][~mask]), name  # every old entry bit-identical
        moved += int(torch.count_nonzero(p.detach()[mask] != before[name][mask]))
    assert moved > 0


@pytest.mark.parametrize("kind", REFUSED)
def test_unsupported_growth_is_refused_with_the_reason(kind, saved):
    model = _load(saved[kind])
    reason = growth_support(model.config)
    assert reason is not None and reason.startswith(f"{kind}: ")
    assert "sleep.growth.enabled=false" in reason and "\n" not in reason
    assert growth_support(_config_json(saved[kind])) == reason
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    with pytest.raises(GrowthUnsupportedError, match=re.escape(reason)):
        grow(model, GrowthConfig(d_low=D_LOW))
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("kind", REFUSED)
def test_config_load_refuses_growth_of_an_unsupported_model(kind, saved):
    with pytest.raises(ConfigError, match=rf"sleep\.growth\.enabled: {kind}: "):
        load_config(None, [f"model.path={saved[kind]}"])
    cfg: Config = load_config(None, [f"model.path={saved[kind]}", "sleep.growth.enabled=false"])
    assert cfg.model.path == str(saved[kind])


@pytest.mark.parametrize("kind", SUPPORTED)
def test_config_load_accepts_a_supported_model(kind, saved):
    assert load_config(None, [f"model.path={saved[kind]}"]).sleep.growth.enabled


@pytest.mark.parametrize("kind", REFUSED)
def test_grow_student_refuses_before_writing_anything(kind, saved, tmp_path):
    from sleep_ray.runtime.export import grow_student

    cfg: Config = load_config(None)  # growth enabled (the default); the checkpoint need not be model.path
    assert cfg.sleep.growth.enabled
    init = tmp_path / "night.work" / "init"
    with pytest.raises(GrowthUnsupportedError, match=f"^{kind}: "):
        grow_student(cfg, str(saved[kind]), init, cycle=1)
    assert not init.exists() and not init.parent.exists()


@pytest.mark.parametrize("kind", REFUSED)
def test_a_sleep_on_an_unsupported_model_refuses_before_its_work_folder_exists(kind, saved, tmp_path):
    from sleep_ray.data.schema import Memory
    from sleep_ray.seeding.run import run_seeding

    out = tmp_path / "cycle-1"
    memory = Memory(1, "m1", "document", "Ana Vel lives in Miravel.")
    with pytest.raises(GrowthUnsupportedError, match=f"^{kind}: "):
        run_seeding(load_config(None), checkpoint=str(saved[kind]), memories=[memory], out_dir=out, cycle=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no .work to mistake for a resume, no .logs


@pytest.mark.parametrize(
    ("config", "words"),
    [
        ({"model_type": "llama", "intermediate_size": [128, 256], "hidden_act": "silu"}, "per layer"),
        ({"model_type": "llama", "intermediate_size": 128, "hidden_act": "silu", "mlp_bias": True}, "mlp_bias"),
        ({"model_type": "llama", "intermediate_size": 128, "hidden_act": "relu"}, "activation"),
        ({"model_type": "mixtral", "intermediate_size": 128, "hidden_act": "silu"}, "mixture-of-experts"),
        ({"model_type": "bert"}, "not supported"),
        ({}, "unknown"),
    ],
)
def test_config_shapes_growth_cannot_widen(config, words):
    reason = growth_support(config)
    assert reason is not None and words in reason and "sleep.growth.enabled=false" in reason


@pytest.mark.parametrize(
    "config",
    [
        {"model_type": "gemma", "intermediate_size": 128, "hidden_act": "gelu_pytorch_tanh"},
        {"model_type": "gemma", "intermediate_size": 128, "hidden_act": "gelu", "hidden_activation": None},
        {"model_type": "gemma2", "intermediate_size": 128, "hidden_activation": "gelu_pytorch_tanh"},
        {"model_type": "llama", "intermediate_size": 128, "hidden_act": "silu", "mlp_bias": False},
    ],
)
def test_gated_silu_and_gelu_mlps_are_supported(config):
    assert growth_support(config) is None


# A Gemma-style template that refuses a system turn: a retrieved memory must still reach the model.
_NO_SYSTEM_TEMPLATE = (
    "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
    "{% endif %}<turn>{{ m['role'] }}\n{{ m['content'] }}</turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<turn>assistant\n{% endif %}"
)


@pytest.mark.parametrize("kind", SUPPORTED + REFUSED)
def test_every_architecture_serves_a_chat_with_a_retrieved_memory(kind, saved):
    """Serving does not depend on growth: every architecture answers a chat whose retrieved memory goes in
    context, also through a template without a system role."""
    from dataclasses import replace

    from sleep_ray.data.prompts import PromptFormat
    from sleep_ray.wake.exchange import Sampling
    from sleep_ray.wake.model import Generator, chat_prompt, load_weights

    w = load_weights(saved[kind])
    w.tokenizer.chat_template = _NO_SYSTEM_TEMPLATE
    w = replace(w, fmt=PromptFormat.of(w.tokenizer))
    prompt = chat_prompt(w, [("user", "Where does Ana Vel live?")], "Ana Vel lives in Miravel.")
    assert "Ana Vel lives in Miravel." in prompt and "system" not in prompt
    (c,), prompt_tokens = Generator().generate(w, prompt, 4, Sampling(max_tokens=4, seed=0), (), 0)
    assert isinstance(c.text, str) and c.finish_reason in ("stop", "length") and prompt_tokens > 0 and c.tokens <= 4
