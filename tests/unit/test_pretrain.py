"""Base pretraining on the hand-written world: loss falls, facts get memorised, resume is exact."""

from __future__ import annotations

import json

import pytest
import torch

from sleep_ray.config import load_config
from sleep_ray.data import prompts
from sleep_ray.eval.metrics import exact_match, first_answer
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import read_meta
from sleep_ray.models.generate import complete
from sleep_ray.train.pretrain import lr_at, pretrain
from tests.helpers import SHORT_PRETRAIN


def _recall(path, world) -> float:
    model, tok = load_pretrained(path)
    qas = [qa for d in world.documents if d.use == "recall" for qa in d.qa]
    preds = complete(model, tok, [prompts.closed_book(qa.question) for qa in qas], max_new_tokens=6)
    return sum(exact_match(first_answer(p), qa.answer) for p, qa in zip(preds, qas)) / len(qas)


@pytest.mark.slow
def test_pretraining_learns_and_writes_a_base_checkpoint(tmp_path, handmade_world):
    cfg = load_config(None, [*SHORT_PRETRAIN, f"run_dir={tmp_path}", "pretrain.steps=300", "pretrain.lr=0.005"])
    first = pretrain(cfg, handmade_world, progress=False, until=1)
    before = _recall(first, handmade_world)
    base = pretrain(cfg, handmade_world, progress=False)
    rows = [json.loads(line) for line in (tmp_path / "pretrain" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == list(range(1, 301))
    early = sum(r["loss"] for r in rows[:10]) / 10
    late = sum(r["loss"] for r in rows[-10:]) / 10
    assert late < 0.5 * early
    assert "base_recall" in rows[-1] and "tokens_per_s" in rows[-1]
    after = _recall(base, handmade_world)
    assert before == 0.0 and after >= 0.5, (before, after)
    assert read_meta(base).producer == "pretrain" and (tmp_path / "pretrain" / "loss.png").is_file()


@pytest.mark.slow
def test_resume_continues_exactly(tmp_path, handmade_world):
    overrides = [*SHORT_PRETRAIN, "pretrain.steps=12", "pretrain.checkpoint_every=100", "pretrain.eval_every=100"]
    straight = load_config(None, [*overrides, f"run_dir={tmp_path / 'a'}"])
    split = load_config(None, [*overrides, f"run_dir={tmp_path / 'b'}"])
    a = pretrain(straight, handmade_world, progress=False)
    pretrain(split, handmade_world, progress=False, until=5)  # "interrupted" after step 5
    b = pretrain(split, handmade_world, progress=False)  # resumes at step 6
    ma, _ = load_pretrained(a)
    mb, _ = load_pretrained(b)
    for (name, x), (_, y) in zip(ma.state_dict().items(), mb.state_dict().items()):
        assert torch.equal(x, y), name
    lines = (tmp_path / "b" / "pretrain" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == list(range(1, 13))


@pytest.mark.slow
def test_continued_pretraining_starts_from_the_checkpoint_and_keeps_its_tokenizer(tmp_path, handmade_world):
    overrides = [*SHORT_PRETRAIN, "pretrain.checkpoint_every=100", "pretrain.eval_every=100", "pretrain.lr=0.005"]
    first = pretrain(
        load_config(None, [*overrides, f"run_dir={tmp_path / 'a'}", "pretrain.steps=150"]),
        handmade_world,
        progress=False,
    )
    more = load_config(
        None, [*overrides, f"run_dir={tmp_path / 'b'}", "pretrain.steps=2", f"pretrain.init_from={first}"]
    )
    second = pretrain(more, handmade_world, progress=False)
    scratch = pretrain(
        load_config(None, [*overrides, f"run_dir={tmp_path / 'c'}", "pretrain.steps=2"]), handmade_world, progress=False
    )
    loss = lambda run: json.loads((tmp_path / run / "pretrain" / "metrics.jsonl").read_text().splitlines()[0])["loss"]  # noqa: E731
    assert loss("b") < 0.5 * loss("c")  # the first step already knows what 150 steps taught
    assert _recall(second, handmade_world) >= _recall(first, handmade_world) - 0.1 > _recall(scratch, handmade_world)
    _, tok_a = load_pretrained(first)
    _, tok_b = load_pretrained(second)
    assert tok_a.get_vocab() == tok_b.get_vocab()


def test_learning_rate_warms_up_stays_flat_then_decays():
    cfg = load_config(None, ["pretrain.steps=100", "pretrain.warmup_steps=10", "pretrain.flat_fraction=0.5"])
    lr = cfg.pretrain.lr
    assert lr_at(0, cfg) == lr / 10 and lr_at(9, cfg) == lr
    assert lr_at(30, cfg) == lr == lr_at(49, cfg)
    assert lr_at(99, cfg) < lr_at(70, cfg) < lr
    assert abs(lr_at(100, cfg) - lr * cfg.pretrain.min_lr_ratio) < 1e-12
