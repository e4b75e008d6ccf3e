"""A Ray actor builds the project's tiny model and generates: the shape every role actor builds on."""

from __future__ import annotations

import pytest

from tests.helpers import TINY


class TinyGenerator:
    """Builds a tiny model from config inside the actor process and answers prompts."""

    def __init__(self, overrides: list[str]):
        from sleep_ray.config import load_config
        from sleep_ray.models.build import build_model
        from sleep_ray.models.tokenizer import train_tokenizer

        self.tokenizer = train_tokenizer(["Ana Vel lives in Miravel."] * 10, 512)
        self.model = build_model(load_config(None, overrides).model, self.tokenizer, seed=0)

    def complete(self, prompts: list[str]) -> list[str]:
        from sleep_ray.models.generate import complete

        return complete(self.model, self.tokenizer, prompts, max_new_tokens=4)


@pytest.mark.timeout(300)
def test_actor_generates_like_the_same_code_in_process(ray_cluster):
    ray = ray_cluster
    actor = ray.remote(num_cpus=0.25)(TinyGenerator).remote(TINY)
    remote = ray.get(actor.complete.remote(["Ana Vel", "Where"]), timeout=240)
    local = TinyGenerator(TINY).complete(["Ana Vel", "Where"])
    assert remote == local
    ray.kill(actor)
