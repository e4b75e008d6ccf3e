"""The committed tiny base model (examples/tiny_base) belongs to the world the generator makes today, and reads.

If a change to the generator alters the documents, the fingerprint test fails: re-run
`sleep-ray pretrain --config examples/pretrain_tiny.yaml` and commit the new base model.
"""

from __future__ import annotations

import random

import pytest

from sleep_ray.config import load_config
from sleep_ray.data.schema import fingerprint
from sleep_ray.data.world import generate_world
from sleep_ray.eval.harness import accuracy, items
from sleep_ray.models.build import load_pretrained
from sleep_ray.models.checkpoint import read_meta
from tests.helpers import ROOT

BASE = ROOT / "examples" / "tiny_base"
pytestmark = pytest.mark.skipif(not (BASE / "config.json").is_file(), reason="no committed base model")


@pytest.fixture(scope="module")
def world():
    return generate_world(load_config(ROOT / "examples" / "tiny_cpu.yaml").data.world)


def test_committed_base_was_trained_on_the_generated_world(world):
    assert read_meta(BASE).extra["world"] == fingerprint(world)


def test_committed_base_reads_memories_and_recalls_old_facts(world):
    """Loose floors (the measured figures are in docs/BENCHMARKS.md): catches a broken prompt format or loader."""
    model, tokenizer = load_pretrained(BASE)
    cfg = load_config(None).eval
    rng = random.Random(0)
    probes = items(world, ("eval",))
    base = rng.sample([it for it in probes if it.cycle == "base"], 32)
    new = rng.sample([it for it in probes if it.probe.kind == "new"], 32)

    def acc(batch, with_context):
        return accuracy(model, tokenizer, batch, cfg, with_context=with_context)

    assert acc(base, False) >= 0.6
    assert acc(new, True) >= 0.6
    assert acc(new, False) <= 0.3  # unseen memories are not known closed-book
