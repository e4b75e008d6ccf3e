"""The test-day generator: deterministic, unfamiliar names, its own sentence and question shapes, stream format."""

from __future__ import annotations

import re

import pytest

from sleep_ray.config import WorldConfig
from sleep_ray.data import templates as T
from sleep_ray.data import vocab as V
from sleep_ray.data.schema import read_stream, write_stream
from sleep_ray.data.testdays import DEV_SEEDS, FINAL_SEEDS, SHAPES, generate_test_days
from sleep_ray.data.world import generate_world

CFG = WorldConfig(num_reading_docs=0)


def _names(day):
    return {p.fact_id.split(":")[1] for m in day for p in m.probes}


def test_deterministic_and_seeds_apart():
    assert generate_test_days(CFG, seed=1, style="foreign") == generate_test_days(CFG, seed=1, style="foreign")
    assert _names(generate_test_days(CFG, seed=1, style="foreign")).isdisjoint(
        _names(generate_test_days(CFG, seed=2, style="foreign"))
    )
    assert set(DEV_SEEDS).isdisjoint(FINAL_SEEDS)
    with pytest.raises(ValueError, match="style"):
        generate_test_days(CFG, seed=1, style="klingon")


def test_foreign_names_use_no_syllable_of_the_world():
    day = generate_test_days(CFG, seed=1, style="foreign", people=24)
    world_names = {x for d in generate_world(CFG).documents for x in re.findall(r"[A-Z][a-z]+", d.text)}
    inventory = re.compile(
        f"^(({'|'.join(V._ONSETS)})({'|'.join(V._VOWELS)})({'|'.join(c for c in V._CODAS if c)})?)+$"
    )
    for full in _names(day):
        for part in full.split():
            assert part not in world_names and not inventory.match(part.lower()), part
    assert len({len(n) for n in _names(day)}) > 3  # other lengths too


def test_shapes_are_the_days_own_and_every_fact_is_stated_and_asked():
    world_shapes = {
        t for r in T.RELATIONS.values() for t in (*r.statements, *r.questions, *r.probe_sleep, *r.probe_eval)
    }
    for shapes in SHAPES.values():
        assert world_shapes.isdisjoint((*shapes.statements, *shapes.probe_sleep, *shapes.probe_eval))
        assert set(shapes.probe_sleep).isdisjoint(shapes.probe_eval)
    day = generate_test_days(CFG, seed=2, style="world", people=6)
    for m in day:
        assert {p.split for p in m.probes} == {"sleep", "eval"} and all(p.kind == "new" for p in m.probes)
        assert all(p.answer in m.text and p.question not in m.text for p in m.probes)


def test_days_are_a_stream_file_and_day_one_does_not_depend_on_how_many_follow(tmp_path):
    days = generate_test_days(CFG, seed=3, style="foreign", people=5, days=2)
    write_stream(tmp_path / "stream.jsonl", days)
    assert read_stream(tmp_path / "stream.jsonl") == days and [m.cycle for m in days] == [1] * 5 + [2] * 5
    assert days[:5] == generate_test_days(CFG, seed=3, style="foreign", people=5)
    assert _names(days[:5]).isdisjoint(_names(days[5:]))
