"""Shared fixtures: a tiny tokenizer and model built in-process (no download), and the hand-written world."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
HANDMADE = ROOT / "tests" / "data" / "handmade"

TINY = [
    "model.hidden_size=64",
    "model.num_heads=1",
    "model.num_kv_heads=1",
    "model.num_layers=2",
    "model.intermediate_size=128",
    "model.vocab_size=512",
]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from sleep_ray.models.tokenizer import train_tokenizer

    text = (
        "Ana Vel lives in Miravel. Question: Where does Ana Vel live?\nAnswer: Miravel. Bo Tan works for Quinta Labs."
    )
    return train_tokenizer([text] * 20, 512)


@pytest.fixture(scope="session")
def tiny_model(tiny_tokenizer):
    from sleep_ray.config import load_config
    from sleep_ray.models.build import build_model

    return build_model(load_config(None, TINY).model, tiny_tokenizer, seed=0)


# A short pretraining config for tests: tiny model, small batches, the hand-written world.
SHORT_PRETRAIN = [
    *TINY,
    "pretrain.steps=120",
    "pretrain.batch_size=8",
    "pretrain.seq_len=128",
    "pretrain.warmup_steps=10",
    "pretrain.eval_every=150",
    "pretrain.checkpoint_every=150",
    "eval.max_new_tokens=6",
]


@pytest.fixture(scope="session")
def handmade_world():
    from sleep_ray.data.schema import load_world

    return load_world(HANDMADE)
