"""Growth of the student-large: function preservation, freezing, standard checkpoints (sleep_ray.models.growth)."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM

from sleep_ray.config import GrowthConfig
from sleep_ray.models.generate import complete
from sleep_ray.models.growth import (
    GrowthRecord,
    expert_parameters,
    freeze_all_but_expert,
    grow,
    trainable_expert_mask,
)

D_LOW = 8
PROMPTS = ["Ana Vel lives in", "Question: Where does Ana Vel live?\nAnswer:"]
SENTENCE = "Bo Tan works for Quinta Labs. Ana Vel lives in Miravel."


def _logits(model, tokenizer, prompts=PROMPTS) -> torch.Tensor:
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model.eval()(**batch).logits


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_grown_model_computes_exactly_what_the_small_one_did(tiny_model, tiny_tokenizer):
    big, record = grow(tiny_model, GrowthConfig(d_low=D_LOW), seed=3)
    assert record == GrowthRecord(
        d_low=D_LOW, layers=(0, 1), old_intermediate=128, new_intermediate=136, expert_index=0
    )
    assert torch.allclose(_logits(big, tiny_tokenizer), _logits(tiny_model, tiny_tokenizer), atol=1e-6, rtol=0)
    expected = complete(tiny_model, tiny_tokenizer, PROMPTS, max_new_tokens=6)
    assert complete(big, tiny_tokenizer, PROMPTS, max_new_tokens=6) == expected


def test_shapes_grow_config_updates_and_the_original_is_untouched(tiny_model):
    before = _snapshot(tiny_model)
    big, record = grow(tiny_model, GrowthConfig(d_low=D_LOW))
    assert big.config.intermediate_size == 128 + D_LOW
    assert tiny_model.config.intermediate_size == 128
    for layer, old in zip(big.model.layers, tiny_model.model.layers):
        assert layer.mlp.gate_proj.weight.shape == (136, 64) == layer.mlp.up_proj.weight.shape
        assert layer.mlp.down_proj.weight.shape == (64, 136)
        assert layer.mlp.gate_proj.out_features == 136 and layer.mlp.down_proj.in_features == 136
        assert torch.count_nonzero(layer.mlp.down_proj.weight[:, 128:]) == 0  # function-preserving
        assert torch.count_nonzero(layer.mlp.gate_proj.weight[128:]) > 0  # but not a dead saddle
        assert torch.equal(layer.mlp.gate_proj.weight[:128], old.mlp.gate_proj.weight)
        assert old.mlp.gate_proj.weight.shape == (128, 64)
    after = tiny_model.state_dict()
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert big.lm_head.weight is big.model.embed_tokens.weight  # tying survives the copy
    assert expert_parameters(big, record) == 2 * 3 * 64 * D_LOW


def test_only_the_expert_trains_and_old_entries_stay_bit_identical(tiny_model, tiny_tokenizer):
    big, record = grow(tiny_model, GrowthConfig(d_low=D_LOW), seed=1)
    freeze_all_but_expert(big, record)
    masks = trainable_expert_mask(big, record)
    trainable = {n for n, p in big.named_parameters() if p.requires_grad}
    assert trainable == {
        f"model.layers.{i}.mlp.{p}.weight" for i in (0, 1) for p in ("gate_proj", "up_proj", "down_proj")
    }
    assert sum(int(m.sum()) for m in masks.values()) == expert_parameters(big, record)
    assert masks["model.layers.0.mlp.down_proj.weight"][:, 128:].all()
    assert not masks["model.layers.0.mlp.down_proj.weight"][:, :128].any()
    assert not masks["model.embed_tokens.weight"].any()

    params = dict(big.named_parameters())
    before = {n: p.detach().clone() for n, p in params.items()}
    logits_before = _logits(big, tiny_tokenizer, [SENTENCE])
    opt = torch.optim.AdamW([p for p in big.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.0)
    batch = tiny_tokenizer([SENTENCE], return_tensors="pt")
    big.train()
    losses = []
    for _ in range(5):
        loss = big(**batch, labels=batch["input_ids"]).loss
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    for name, p in params.items():
        mask = masks[name]
        assert torch.equal(p.detach()[~mask], before[name][~mask]), f"{name}: an old entry moved"
        if mask.any():
            assert not torch.equal(p.detach()[mask], before[name][mask]), f"{name}: the expert did not train"
    assert losses[-1] < losses[0] or not torch.equal(_logits(big, tiny_tokenizer, [SENTENCE]), logits_before)


def test_grown_checkpoint_loads_with_plain_transformers(tmp_path, tiny_model, tiny_tokenizer):
    big, record = grow(tiny_model, GrowthConfig(d_low=D_LOW), seed=2)
    with torch.no_grad():  # make the expert matter, so the round trip is a real check
        for layer in big.model.layers:
            layer.mlp.down_proj.weight[:, 128:].normal_(0.0, 0.05)
    big.save_pretrained(tmp_path / "big")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "big", local_files_only=True)
    assert loaded.config.intermediate_size == record.new_intermediate
    assert torch.equal(_logits(loaded, tiny_tokenizer), _logits(big, tiny_tokenizer))
    assert not torch.equal(_logits(loaded, tiny_tokenizer), _logits(tiny_model, tiny_tokenizer))


def test_two_growths_preserve_function(tiny_model, tiny_tokenizer):
    cfg = GrowthConfig(d_low=D_LOW)
    once, first = grow(tiny_model, cfg, seed=0, experts_so_far=0)
    freeze_all_but_expert(once, first)  # hooks on the grown model must not break the next growth
    twice, second = grow(once, cfg, seed=0, experts_so_far=1)
    assert twice.config.intermediate_size == 128 + 2 * D_LOW
    assert (second.old_intermediate, second.new_intermediate, second.expert_index) == (136, 144, 1)
    assert not torch.equal(
        twice.model.layers[0].mlp.gate_proj.weight[136:], twice.model.layers[0].mlp.gate_proj.weight[128:136]
    )
    assert torch.allclose(_logits(twice, tiny_tokenizer), _logits(tiny_model, tiny_tokenizer), atol=1e-6, rtol=0)
    assert torch.count_nonzero(trainable_expert_mask(twice, second)["model.layers.1.mlp.up_proj.weight"][:136]) == 0
    with pytest.raises(ValueError, match="new_intermediate"):
        freeze_all_but_expert(twice, first)  # a stale record is refused


def test_subset_growth_keeps_non_chosen_layers_dead_and_frozen(tiny_model, tiny_tokenizer):
    big, record = grow(tiny_model, GrowthConfig(d_low=D_LOW, layers=[1]), seed=4)
    assert record.layers == (1,)
    assert big.config.intermediate_size == 136  # every layer is widened: one standard Llama width
    dead = big.model.layers[0].mlp
    assert all(
        torch.count_nonzero(getattr(dead, p).weight[..., 128:] if p == "down_proj" else getattr(dead, p).weight[128:])
        == 0
        for p in ("gate_proj", "up_proj", "down_proj")
    )
    freeze_all_but_expert(big, record)
    assert not any(p.requires_grad for p in dead.parameters())
    assert expert_parameters(big, record) == 3 * 64 * D_LOW
    assert torch.allclose(_logits(big, tiny_tokenizer), _logits(tiny_model, tiny_tokenizer), atol=1e-6, rtol=0)
    with pytest.raises(ValueError, match="sleep.growth.layers"):
        grow(tiny_model, GrowthConfig(layers=[2]))
