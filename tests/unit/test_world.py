"""The synthetic world generator: determinism, template hygiene, name pools, probe correctness, speed."""

from __future__ import annotations

import json
import re
import time
from collections import Counter, defaultdict
from dataclasses import asdict, replace

import pytest

from sleep_ray.config import WorldConfig
from sleep_ray.data import templates as T
from sleep_ray.data import vocab as V
from sleep_ray.data.schema import World, load_world, world_stats, write_world
from sleep_ray.data.world import generate_world

SMALL = WorldConfig(num_base_people=20, num_reading_docs=200, num_heldout_docs=5, num_cycles=3)


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(WorldConfig())


def _person(fact_id: str) -> str:
    kind, name, _ = fact_id.split(":")
    assert kind == "person"
    return name


def _probe_regex(template: str) -> re.Pattern[str]:
    parts = re.split(r"\{\w+\}", template)
    return re.compile(r"[^.?!\n]+?".join(re.escape(p) for p in parts))


def _all_probe_templates() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"sleep": [], "eval": []}
    for rel in [*T.RELATIONS.values(), T.ALIAS]:
        out["sleep"] += rel.probe_sleep
        out["eval"] += rel.probe_eval
    return out


def _jsonl_text(w: World, tmp_path, name: str) -> str:
    d = write_world(w, tmp_path / name)
    return (d / "world.jsonl").read_text() + (d / "stream.jsonl").read_text()


def test_same_seed_same_world_and_other_seed_differs(tmp_path):
    a = _jsonl_text(generate_world(SMALL), tmp_path, "a")
    b = _jsonl_text(generate_world(SMALL), tmp_path, "b")
    c = _jsonl_text(generate_world(replace(SMALL, seed=1)), tmp_path, "c")
    assert a == b
    assert a != c


def test_default_world_is_fast():
    start = time.perf_counter()
    generate_world(WorldConfig())
    assert time.perf_counter() - start < 10.0


def test_template_counts_and_disjoint_wordings():
    for name, rel in [*T.RELATIONS.items(), ("alias", T.ALIAS)]:
        if name != "alias":
            assert len(rel.statements) >= 8 and len(rel.questions) >= 6, name
        assert len(rel.probe_sleep) >= 2 and len(rel.probe_eval) >= 2, name
        assert not set(rel.probe_sleep) & set(rel.probe_eval), name
    probes = _all_probe_templates()
    used = {t for rel in [*T.RELATIONS.values(), T.ALIAS] for t in rel.statements + rel.questions}
    assert not (set(probes["sleep"]) | set(probes["eval"])) & used


def _hits(template: str, lines: list[str]) -> list[str]:
    """Lines where the template appears (its longest literal part first, to keep the regex search fast)."""
    longest = max(re.split(r"\{\w+\}", template), key=len)
    regex = _probe_regex(template)
    return [line for line in lines if longest in line and regex.search(line)]


def test_no_probe_template_appears_in_any_text(world):
    lines = [line for d in world.documents for line in d.text.splitlines()]
    lines += [line for m in world.stream for line in m.text.splitlines()]
    lines += [q.question for d in world.documents for q in d.qa]
    corpus = "\n".join(lines)
    for template in _all_probe_templates()["sleep"] + _all_probe_templates()["eval"]:
        assert not _hits(template, lines), template
        longest = max((p.strip(" ,.?") for p in re.split(r"\{\w+\}", template)), key=len)
        assert len(longest) < 10 or longest not in corpus, (template, longest)
    # the check does find templates that are used: every training question shows up
    assert all(_hits(t, lines) for rel in T.PERSON_RELATIONS for t in T.RELATIONS[rel].questions)


def test_every_probe_uses_a_template_of_its_split(world):
    templates = {s: [_probe_regex(t) for t in ts] for s, ts in _all_probe_templates().items()}
    probes = [p for d in world.documents for p in d.probes] + [p for m in world.stream for p in m.probes]
    for p in probes:
        assert any(r.fullmatch(p.question) for r in templates[p.split]), p
        assert not any(r.fullmatch(p.question) for r in templates["eval" if p.split == "sleep" else "sleep"]), p


def test_one_sleep_and_one_eval_probe_per_fact(world):
    for rec in [*world.documents, *world.stream]:
        per_fact = defaultdict(list)
        for p in rec.probes:
            per_fact[(p.fact_id, p.kind)].append(p.split)
        assert all(sorted(s) == ["eval", "sleep"] for s in per_fact.values()), rec


def test_name_pools_are_disjoint(world):
    base = {d.group.removeprefix("person:") for d in world.documents if d.use == "recall" and d.kind == "bio"}
    reading = {
        _person(q.fact_id) for d in world.documents if d.use == "reading" and d.kind != "demonstration" for q in d.qa
    }
    stream = {
        _person(p.fact_id) for m in world.stream if m.kind != "update" and m.kind != "demonstration" for p in m.probes
    }
    assert len(base) == 120 and len(reading) > 4000 and len(stream) == 5 * (4 + 1 + 8)
    assert not base & reading and not base & stream and not reading & stream
    per_cycle = [
        {
            _person(p.fact_id)
            for m in world.stream
            if m.cycle == c and m.kind in ("document", "long_document")
            for p in m.probes
        }
        for c in range(1, 6)
    ]
    assert sum(map(len, per_cycle)) == len(set().union(*per_cycle))
    heldout = "\n".join(d.text for d in world.documents if d.use == "heldout")
    assert not any(n in heldout for n in sorted(base | stream))


def test_base_knowledge_documents(world):
    bios = [d for d in world.documents if d.use == "recall" and d.kind == "bio"]
    groups = defaultdict(list)
    for d in bios:
        groups[d.group].append(d)
    assert len(groups) == 120 and all(len(g) == 3 for g in groups.values())
    for g in groups.values():
        assert len({d.text for d in g}) == 3
        assert len(g[0].probes) == 10 and all(p.kind == "base" for p in g[0].probes)
        assert all(not d.probes for d in g[1:])
        for d in g:
            assert {q.fact_id.split(":")[2] for q in d.qa} == set(T.PERSON_RELATIONS)
            assert all(q.answer in d.text for q in d.qa)
            assert 25 <= len(d.text.split()) <= 60
    kinds = Counter(d.kind for d in world.documents if d.use == "recall")
    assert kinds == {"bio": 360, "city": 16, "org": 16}


def test_values_come_from_the_known_sets(world):
    cities = {q.fact_id.split(":")[1] for d in world.documents if d.kind == "city" for q in d.qa}
    orgs = {q.fact_id.split(":")[1] for d in world.documents if d.kind == "org" for q in d.qa}
    allowed = {
        "born_in": cities,
        "lives_in": cities,
        "based_in": cities,
        "works_for": orgs,
        "job": set(V.JOBS),
        "hobby": set(V.HOBBIES),
        "region": set(V.REGIONS),
        "industry": set(V.INDUSTRIES),
    }
    items = [q for d in world.documents for q in d.qa] + [
        p for r in [*world.documents, *world.stream] for p in r.probes
    ]
    for x in items:
        assert x.answer in allowed[x.fact_id.split(":")[2]], x


def test_reading_pool_mix(world):
    reading = [d for d in world.documents if d.use == "reading"]
    kinds = Counter(d.kind for d in reading)
    assert kinds == {"bio": 1600, "multi": 1200, "dialogue": 800, "demonstration": 400}
    groups = Counter(d.group for d in reading if d.group)
    assert len(groups) > 50 and set(groups.values()) == {2}
    assert all(d.qa and not d.probes for d in reading)
    assert all(d.text.count("\n") >= 4 for d in reading if d.kind == "dialogue")
    assert not any(d.qa or d.probes for d in world.documents if d.use == "heldout")


def test_new_and_long_answers_appear_in_their_memory(world):
    probes = [(m, p) for m in world.stream for p in m.probes if p.kind in ("new", "long")]
    assert probes
    for m, p in probes:
        assert p.answer in m.text and _person(p.fact_id) in m.text
    for m in world.stream:
        if m.kind == "long_document":
            assert len({p.fact_id for p in m.probes}) == 8 * 5 and len(m.text.split()) > 300


def test_updates_contradict_base_once(world):
    base = {p.fact_id: p.answer for d in world.documents if d.use == "recall" for p in d.probes}
    updated = []
    for m in world.stream:
        if m.kind != "update":
            continue
        kinds = Counter(p.kind for p in m.probes)
        assert kinds == {"updated": 2, "retained": 2}
        for p in m.probes:
            if p.kind == "updated":
                assert p.stale_answer and p.stale_answer != p.answer
                assert p.stale_answer == base[p.fact_id] and p.answer in m.text and p.stale_answer in m.text
                updated.append(_person(p.fact_id))
            else:
                assert p.answer == base[p.fact_id] and not p.stale_answer
    assert len(updated) == 2 * 10 and len(set(updated)) == 10  # two probes per update, each person once


def test_rule_probes_ask_other_base_people(world):
    base = {p.fact_id: p.answer for d in world.documents if d.use == "recall" for p in d.probes}
    updated = {p.fact_id.split(":")[1] for m in world.stream for p in m.probes if p.kind == "updated"}
    reading_text = "\n".join(d.text for d in world.documents if d.use == "reading")
    words = set()
    for m in world.stream:
        if m.kind != "demonstration":
            continue
        word = re.search(r"\b([a-z]+(?:" + "|".join(V._ALIAS_TAILS) + r"))\b", m.text).group(1)
        words.add(word)
        assert word not in reading_text
        assert 3 <= m.text.count(word) - 1 <= 4
        assert len(m.probes) == 8 and all(p.kind == "rule" and word in p.question for p in m.probes)
        for p in m.probes:
            assert _person(p.fact_id) not in m.text and _person(p.fact_id) not in updated
            assert p.answer == base[p.fact_id]
    assert len(words) == 5


def test_write_and_load_round_trip(tmp_path):
    cfg = replace(SMALL, num_reading_docs=30)
    w = generate_world(cfg)
    for fmt in ("jsonl", "parquet"):
        d = write_world(w, tmp_path / "w", fmt=fmt, config=cfg)
        assert load_world(d) == w
        meta = json.loads((d / "meta.json").read_text())
        assert meta["format_version"] == 1 and meta["world_config"] == asdict(cfg) and meta["format"] == fmt
        assert meta["stats"] == json.loads(json.dumps(world_stats(w)))
        assert sorted(p.name for p in d.iterdir()) == ["meta.json", f"stream.{fmt}", f"world.{fmt}"]


def test_load_world_errors(tmp_path):
    with pytest.raises(FileNotFoundError):
        load_world(tmp_path)
    w = generate_world(replace(SMALL, num_reading_docs=10))
    write_world(w, tmp_path)
    (tmp_path / "stream.jsonl").unlink()
    assert load_world(tmp_path).stream == ()
    (tmp_path / "world.parquet").write_bytes(b"")
    with pytest.raises(ValueError, match="both"):
        load_world(tmp_path)


def test_tiny_and_empty_configs():
    w = generate_world(
        WorldConfig(
            num_cities=4,
            num_orgs=4,
            num_base_people=4,
            bios_per_person=1,
            num_reading_docs=0,
            num_heldout_docs=0,
            num_cycles=1,
            new_people_per_cycle=0,
            updates_per_cycle=0,
            dialogues_per_cycle=0,
            demonstrations_per_cycle=1,
            long_docs_per_cycle=0,
        )
    )
    assert len(w.documents) == 4 + 4 + 4 and [m.kind for m in w.stream] == ["demonstration"]
    with pytest.raises(ValueError, match="distinct base people"):
        generate_world(WorldConfig(num_base_people=10, updates_per_cycle=3))


def test_the_sleep_example_has_50_memories_a_cycle_and_the_base_documents_of_the_default_world():
    from sleep_ray.config import load_config
    from sleep_ray.data.schema import fingerprint
    from tests.helpers import ROOT

    sleep_world = generate_world(load_config(ROOT / "examples" / "sleep_tiny.yaml").data.world)
    assert sum(m.cycle == 1 for m in sleep_world.stream) >= 50
    assert fingerprint(sleep_world) == fingerprint(generate_world(load_config().data.world))
