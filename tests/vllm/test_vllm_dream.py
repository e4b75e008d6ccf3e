"""A dream-generator that writes through a real vLLM engine, and samples its adapted model after an M-step.

Runs only in `.venv-vllm` (`make test-vllm`); skipped elsewhere.
"""

from __future__ import annotations

import pytest

pytest.importorskip("vllm")

pytestmark = pytest.mark.vllm

CTX = "Ana Vel lives in Miravel. Ana Vel works for Quinta Labs. Ana Vel is a baker."


@pytest.mark.timeout(600)
def test_vllm_dream_generator_writes_what_the_hf_one_writes_before_and_after_learning(monkeypatch):
    from sleep_ray.config import load_config
    from sleep_ray.data import prompts
    from sleep_ray.dream.generator import DreamGenerator
    from sleep_ray.dream.records import DreamSample
    from tests.helpers import ROOT

    monkeypatch.setenv("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
    monkeypatch.setenv("VLLM_NO_USAGE_STATS", "1")
    base = str(ROOT / "examples" / "tiny_base")
    # near-greedy sampling, so the two engines must agree; a strong M-step, so the outputs must change
    overrides = [
        "sleep.dreaming.temperature=0.001",
        "sleep.dreaming.generator_steps=30",
        "sleep.dreaming.generator_lr=0.01",
    ]
    cfg = load_config(None, overrides).sleep.dreaming
    hf = DreamGenerator(base, cfg, threads=0, seed=0)
    vllm = DreamGenerator(base, cfg, threads=0, seed=0, engine="vllm", engine_kwargs={"max_model_len": 512})
    contexts = [("m1", CTX)]

    def written(gen: DreamGenerator) -> list[str]:
        return [d.written for d in gen.write(contexts, per_memory=4, seed=0)]

    before = written(hf)
    assert before and written(vllm) == before
    winner = DreamSample(
        "w", "m1", "qa", prompts.question_writing(CTX), " What does Ana Vel do?\nAnswer: baker\n", "", "", ""
    )
    hf.learn([winner], seed=0)
    arrays, version = hf.adapter()
    assert vllm.load_adapter(arrays, version) == 1 and vllm.engine.weight_version() == 1
    after = written(hf)
    assert after != before  # the M-step changed what the generator writes
    assert written(vllm) == after  # and the vLLM engine received it: W + scale * B @ A, pushed in place
    assert all(d.generator_version == 1 for d in vllm.write(contexts, per_memory=2, seed=0))
