"""Shared fixtures: a tiny tokenizer and model built in-process (no download), and the hand-written world."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.helpers import HANDMADE, TINY  # noqa: E402


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


@pytest.fixture(scope="session")
def handmade_world():
    from sleep_ray.data.schema import load_world

    return load_world(HANDMADE)
