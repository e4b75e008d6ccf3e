"""`sleep-ray bench consolidation` end to end on the methods that need no Ray (the Sleep methods run the same
`run_seeding` / `run_dreaming` the Ray tests cover): a small world, two cycles, a few SFT steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from sleep_ray.bench.consolidation import run_consolidation
from sleep_ray.cli import main
from sleep_ray.models.checkpoint import read_meta

ROOT = Path(__file__).resolve().parents[2]
SMALL_WORLD = [
    "data.world.num_base_people=8",
    "data.world.num_reading_docs=0",
    "data.world.num_heldout_docs=0",
    "data.world.num_cycles=2",
    "data.world.long_docs_per_cycle=0",
]


def overrides(tmp_path: Path, *extra: str) -> list[str]:
    return [
        f"run_dir={tmp_path}",
        f"model.path={ROOT / 'examples' / 'tiny_base'}",
        *SMALL_WORLD,
        "bench.consolidation.cycles=2",
        "bench.consolidation.methods=[no_sleep,in_context,sft,sft_replay]",
        "bench.consolidation.sft_steps=2",
        "bench.consolidation.sft_batch_size=2",
        "pretrain.seq_len=64",
        "pretrain.threads=1",
        *extra,
    ]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    return tmp, run_consolidation(None, overrides(tmp))


@pytest.mark.slow
def test_every_method_gets_rows_for_the_base_model_and_each_cycle(first_run):
    tmp, result = first_run
    out = tmp / "bench" / "consolidation"
    assert list(result["methods"]) == ["no_sleep", "in_context", "sft", "sft_replay"]
    assert all(len(m["rows"]) == 3 for m in result["methods"].values())
    for f in ("consolidation.json", "consolidation.md", "plot_accuracy.png", "plot_forgetting.png"):
        assert (out / f).is_file(), f
    assert json.loads((out / "consolidation.json").read_text())["summary"].keys() == result["summary"].keys()
    s = result["summary"]
    assert s["no_sleep"]["base_delta"] == 0.0 and s["no_sleep"]["trained"] == 0
    assert result["methods"]["in_context"]["oracle"] and not result["methods"]["sft"]["oracle"]
    base = json.loads((out / "base_eval.json").read_text())
    assert result["methods"]["in_context"]["rows"][2]["closed_book"]["1"] == base["in_context"]["1"]


def test_sft_trains_every_weight_cycle_after_cycle(first_run):
    tmp, result = first_run
    chain = tmp / "bench" / "consolidation" / "sft"
    assert read_meta(chain / "cycle-2").parent == str(chain / "cycle-1")
    assert read_meta(chain / "cycle-1").version == 1 and read_meta(chain / "cycle-2").version == 2
    before = load_file(str(ROOT / "examples" / "tiny_base" / "model.safetensors"))
    after = load_file(str(chain / "cycle-1" / "model.safetensors"))
    assert all(not after[k].equal(before[k]) for k in before if k.endswith("q_proj.weight"))
    assert result["summary"]["sft"]["trained"] == sum(t.numel() for t in before.values())


def test_a_rerun_reuses_finished_cycles_and_redoes_a_half_done_one(first_run):
    tmp, _ = first_run
    chain = tmp / "bench" / "consolidation" / "sft_replay"
    done = (chain / "cycle-1.json").stat().st_mtime_ns
    (chain / "cycle-2.json").unlink()  # as if the run had stopped inside cycle 2
    result = run_consolidation(None, overrides(tmp))
    assert (chain / "cycle-1.json").stat().st_mtime_ns == done
    assert (chain / "cycle-2.json").is_file() and len(result["methods"]["sft_replay"]["cycles"]) == 2


def test_cli_rejects_an_unknown_method_before_any_work(tmp_path, capsys):
    assert main(["bench", "consolidation", *overrides(tmp_path, "bench.consolidation.methods=[sleeep]")]) == 2
    assert "bench.consolidation.methods: unknown ['sleeep']" in capsys.readouterr().out
    assert not (tmp_path / "bench").exists()


def test_too_many_cycles_for_a_world_directory_fail_naming_the_key(tmp_path):
    handmade = f"data.world_dir={ROOT / 'tests' / 'data' / 'handmade'}"
    with pytest.raises(ValueError, match="bench.consolidation.cycles: the stream has no cycle 3"):
        run_consolidation(None, overrides(tmp_path, handmade, "bench.consolidation.cycles=3"))


def test_more_cycles_than_the_world_has_extend_its_stream_and_keep_its_documents():
    from sleep_ray.bench.consolidation import bench_world
    from sleep_ray.config import load_config
    from sleep_ray.data.schema import fingerprint
    from sleep_ray.data.world import generate_world

    cfg = load_config(None, [*SMALL_WORLD, "data.world.num_base_people=20", "bench.consolidation.cycles=4"])
    world = bench_world(cfg)
    assert sorted({m.cycle for m in world.stream}) == [1, 2, 3, 4]
    assert fingerprint(world) == fingerprint(generate_world(cfg.data.world))  # the base model's world


def test_test_days_replace_the_stream_one_day_per_cycle():
    from sleep_ray.bench.consolidation import bench_world
    from sleep_ray.config import load_config

    cfg = load_config(
        None,
        [
            "data.world.num_reading_docs=0",
            "bench.consolidation.cycles=2",
            "bench.consolidation.test_days=foreign",
            "bench.consolidation.test_people=3",
        ],
    )
    world = bench_world(cfg)
    assert [m.cycle for m in world.stream] == [1, 1, 1, 2, 2, 2]
    assert all(m.memory_id.startswith("test-foreign-1-") for m in world.stream)
    assert any(d.use == "recall" for d in world.documents)  # base knowledge stays the world's
