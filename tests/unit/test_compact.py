"""Compaction of the student-large: importance, pruning, distillation (sleep_ray.models.compact)."""

from __future__ import annotations

import json
import math
from dataclasses import asdict

import pytest
import torch
from transformers import AutoModelForCausalLM

from sleep_ray.config import GrowthConfig
from sleep_ray.models.compact import compact, count_grown_units, prune_units, unit_importance
from sleep_ray.models.growth import grow

BASE = 128  # the tiny model's intermediate_size
D_LOW = 8
STD = 0.3
TEXTS = [
    "Ana Vel lives in Miravel.",
    "Question: Where does Ana Vel live?\nAnswer: Miravel.",
    "Bo Tan works for Quinta Labs.",
    "Bo Tan works for Quinta Labs. Ana Vel lives in Miravel.",
    "Question: Where does Bo Tan work?\nAnswer: Quinta Labs.",
    "Miravel.",
]


def _grown(model, times: int, seed: int = 0):
    """`model` grown `times` times by D_LOW units, with random grown down columns so that every expert matters."""
    for n in range(times):
        model, _ = grow(model, GrowthConfig(d_low=D_LOW), seed=seed, experts_so_far=n)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for layer in model.model.layers:
            cols = layer.mlp.down_proj.weight[:, BASE:]
            cols.copy_(torch.randn(cols.shape, generator=gen) * STD)
    return model


def _logits(model, tokenizer, texts=TEXTS) -> torch.Tensor:
    batch = tokenizer(texts, return_tensors="pt", padding=True)
    with torch.no_grad():
        return model.eval()(**batch).logits


def _kl(teacher, student, tokenizer, texts=TEXTS) -> float:
    """Forward KL(teacher || student) per token, averaged over every token of `texts` (one text at a time)."""
    total, count = 0.0, 0
    with torch.no_grad():
        for text in texts:
            ids = tokenizer(text, return_tensors="pt")["input_ids"]
            logp = torch.log_softmax(teacher.eval()(input_ids=ids).logits.double(), dim=-1)
            logq = torch.log_softmax(student.eval()(input_ids=ids).logits.double(), dim=-1)
            total += float((logp.exp() * (logp - logq)).sum())
            count += ids.shape[1]
    return total / count


def _snapshot(model) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_prune_keeping_all_is_exact_and_the_pruned_checkpoint_is_a_standard_llama(tmp_path, tiny_model, tiny_tokenizer):
    big = _grown(tiny_model, 2)  # 16 grown units per layer
    before = _snapshot(big)
    full = prune_units(big, BASE, [list(range(16))] * 2)
    assert torch.equal(_logits(full, tiny_tokenizer), _logits(big, tiny_tokenizer))

    keep = [[15, 0, 3, 9], [2, 4, 6, 11]]  # order within a layer does not matter
    pruned = prune_units(big, BASE, keep)
    assert pruned.config.intermediate_size == BASE + 4 == count_grown_units(pruned, 0)
    assert big.config.intermediate_size == BASE + 16 and _same(before, big.state_dict())
    reference = _grown(tiny_model, 2)  # dropping a unit == zeroing its down column
    with torch.no_grad():
        for i, (layer, pruned_layer) in enumerate(zip(reference.model.layers, pruned.model.layers)):
            mlp = pruned_layer.mlp
            assert mlp.gate_proj.weight.shape == mlp.up_proj.weight.shape == (BASE + 4, 64)
            assert mlp.down_proj.weight.shape == (64, BASE + 4)
            assert mlp.gate_proj.out_features == mlp.down_proj.in_features == mlp.intermediate_size == BASE + 4
            kept = [BASE + j for j in sorted(keep[i])]
            assert torch.equal(mlp.up_proj.weight[BASE:], layer.mlp.up_proj.weight[kept])
            assert torch.equal(mlp.down_proj.weight[:, :BASE], layer.mlp.down_proj.weight[:, :BASE])
            dropped = [BASE + j for j in range(16) if j not in keep[i]]
            layer.mlp.down_proj.weight[:, dropped] = 0.0
    assert torch.allclose(_logits(pruned, tiny_tokenizer), _logits(reference, tiny_tokenizer), atol=1e-5, rtol=0)
    assert not torch.allclose(_logits(pruned, tiny_tokenizer), _logits(big, tiny_tokenizer), atol=1e-3, rtol=0)

    pruned.save_pretrained(tmp_path / "pruned")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "pruned", local_files_only=True)
    assert loaded.config.intermediate_size == BASE + 4
    assert torch.equal(_logits(loaded, tiny_tokenizer), _logits(pruned, tiny_tokenizer))


def test_importance_ranks_a_dead_unit_lowest_and_a_strong_unit_highest(tiny_model, tiny_tokenizer):
    big = _grown(tiny_model, 1)
    with torch.no_grad():
        for layer in big.model.layers:
            layer.mlp.down_proj.weight[:, BASE + 2] = 0.0
            layer.mlp.down_proj.weight[:, BASE + 6] *= 50.0
    importance = unit_importance(big, tiny_tokenizer, TEXTS, BASE)
    assert importance.shape == (2, D_LOW)
    assert (importance[:, 2] == 0).all() and (importance[:, [0, 1, 3, 4, 5, 7]] > 0).all()
    assert importance.argmin(dim=1).tolist() == [2, 2]
    assert importance.argmax(dim=1).tolist() == [6, 6]


def test_importance_ignores_padding_and_scales_with_the_down_column(tiny_model, tiny_tokenizer):
    big = _grown(tiny_model, 1, seed=1).train()
    batched = unit_importance(big, tiny_tokenizer, TEXTS, BASE, batch_size=16)  # padded to the longest text
    alone = unit_importance(big, tiny_tokenizer, TEXTS, BASE, batch_size=1)  # no padding at all
    assert torch.allclose(batched, alone, rtol=1e-4, atol=1e-9)
    assert big.training  # the training flag is restored
    with torch.no_grad():  # layer 0's h does not depend on its own down_proj: importance is linear in the norm
        big.model.layers[0].mlp.down_proj.weight[:, BASE + 4] *= 3.0
    scaled = unit_importance(big, tiny_tokenizer, TEXTS, BASE)
    assert torch.allclose(scaled[0, 4], 3.0 * batched[0, 4], rtol=1e-4)
    assert torch.allclose(scaled[0, :4], batched[0, :4], rtol=1e-4)


def test_compact_keeps_the_top_units_trains_only_them_and_moves_toward_the_teacher(tiny_model, tiny_tokenizer):
    big = _grown(tiny_model, 3, seed=2)  # 24 grown units per layer
    big.train()
    before = _snapshot(big)
    small, record = compact(
        big, tiny_tokenizer, base_units=BASE, keep_units=8, texts=TEXTS, steps=30, lr=3e-3, batch_size=4, seed=0
    )
    assert (record.base_units, record.units_before, record.units_after, record.steps) == (BASE, 24, 8, 30)
    assert json.loads(json.dumps(asdict(record)))["kept"] == [list(k) for k in record.kept]

    importance = unit_importance(big, tiny_tokenizer, TEXTS, BASE)
    assert record.kept == tuple(tuple(sorted(row.topk(8).indices.tolist())) for row in importance)
    assert small.config.intermediate_size == BASE + 8 and not small.training
    assert all(p.requires_grad for p in small.parameters())

    pruned = prune_units(big, BASE, record.kept)
    trained, start = small.state_dict(), pruned.state_dict()
    for name, value in trained.items():
        if ".mlp." not in name:
            assert torch.equal(value, before[name]), f"{name} moved"
            continue
        base = (slice(None), slice(None, BASE)) if "down_proj" in name else (slice(None, BASE),)
        grown = (slice(None), slice(BASE, None)) if "down_proj" in name else (slice(BASE, None),)
        assert torch.equal(value[base], before[name][base]), f"{name}: a base unit moved"
        assert not torch.equal(value[grown], start[name][grown]), f"{name}: the kept units did not train"

    assert big.training and _same(before, big.state_dict())  # the teacher is untouched
    assert all(p.requires_grad for p in big.parameters())
    assert record.loss_first > 0 and record.loss_last < record.loss_first
    assert _kl(big, small, tiny_tokenizer) < 0.8 * _kl(big, pruned, tiny_tokenizer)

    ids = tiny_tokenizer(TEXTS[0], return_tensors="pt")["input_ids"]
    small(input_ids=ids, labels=ids).loss.backward()  # no gradient hook is left behind on the result
    assert small.model.layers[0].mlp.gate_proj.weight.grad[:BASE].abs().sum() > 0


def test_compact_is_repeatable(tiny_model, tiny_tokenizer):
    big = _grown(tiny_model, 2, seed=3)
    kwargs = dict(base_units=BASE, keep_units=4, texts=TEXTS, steps=3, lr=1e-2, batch_size=2)
    a, rec_a = compact(big, tiny_tokenizer, **kwargs, seed=5)
    b, rec_b = compact(big, tiny_tokenizer, **kwargs, seed=5)
    assert rec_a == rec_b and _same(a.state_dict(), b.state_dict())


@pytest.mark.parametrize("keep_units", [16, 20])
def test_compact_with_room_to_spare_returns_an_unchanged_copy(tiny_model, tiny_tokenizer, keep_units):
    big = _grown(tiny_model, 2, seed=4)
    same, record = compact(big, tiny_tokenizer, base_units=BASE, keep_units=keep_units, texts=TEXTS, steps=10, lr=1e-2)
    assert same is not big and _same(same.state_dict(), big.state_dict())
    assert same.config.intermediate_size == BASE + 16 and not same.training
    assert (record.units_before, record.units_after, record.steps) == (16, 16, 0)
    assert math.isnan(record.loss_first) and math.isnan(record.loss_last)
    assert record.kept == (tuple(range(16)),) * 2


def test_bad_keep_lists_raise(tiny_model):
    big = _grown(tiny_model, 1)
    with pytest.raises(ValueError, match="same number"):
        prune_units(big, BASE, [[0, 1], [0]])
    with pytest.raises(ValueError, match="2 layers"):
        prune_units(big, BASE, [[0, 1]])
    with pytest.raises(ValueError, match="outside"):
        prune_units(big, BASE, [[0, 8], [0, 1]])
    with pytest.raises(ValueError, match="duplicates"):
        prune_units(big, BASE, [[1, 1], [0, 1]])
    with pytest.raises(ValueError, match="base_units"):
        count_grown_units(big, BASE + D_LOW + 1)
