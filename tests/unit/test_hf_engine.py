"""The HF rollout engine: version-stamped, seeded samples; in-place weight loads that change what it samples."""

from __future__ import annotations

import pytest
import torch

from sleep_ray.models.checkpoint import CheckpointMeta, save_checkpoint
from sleep_ray.rollout.engine import to_arrays
from sleep_ray.rollout.hf import HFEngine


@pytest.fixture()
def engine(tmp_path, tiny_model, tiny_tokenizer):
    path = save_checkpoint(tmp_path / "ckpt", tiny_model, tiny_tokenizer, CheckpointMeta(version=3, step=0))
    return HFEngine(str(path))


def test_samples_are_grouped_seeded_and_stamped(engine):
    a = engine.generate(["Ana Vel", "Where"], n=3, max_new_tokens=5, seed=1)
    b = engine.generate(["Ana Vel", "Where"], n=3, max_new_tokens=5, seed=1)
    assert [r.prompt for r in a] == ["Ana Vel"] * 3 + ["Where"] * 3
    assert [r.text for r in a] == [r.text for r in b]
    assert all(r.weight_version == 0 and r.source == "student" for r in a)
    for r in a:
        assert list(r.token_ids) == engine.tokenizer(r.text, add_special_tokens=False)["input_ids"]


def test_load_weights_in_place(engine):
    before = engine.generate(["Ana Vel"], max_new_tokens=6, temperature=0)[0].text
    named = to_arrays({n: torch.randn_like(p) for n, p in engine.model.named_parameters() if "mlp" in n})
    assert engine.load_weights(named, version=7) == 7
    after = engine.generate(["Ana Vel"], max_new_tokens=6, temperature=0)
    assert after[0].weight_version == 7 and engine.weight_version() == 7
    assert after[0].text != before
    with pytest.raises(KeyError, match="does not have"):
        engine.load_weights({"no.such.weight": named[next(iter(named))]}, version=8)
    with pytest.raises(ValueError, match="shape"):
        name = next(iter(named))
        engine.load_weights({name: named[name][:1]}, version=8)
