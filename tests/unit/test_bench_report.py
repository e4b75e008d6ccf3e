"""The system benchmark's report: each ratio beside its target, met or missed, and the tables it writes."""

from __future__ import annotations

from sleep_ray.bench.report import lookup, table, verdict, write_report

RESULT = {
    "machine": "x86_64, 2 cores, no GPU",
    "date": "2026-12-01",
    "config": "examples/sleep_tiny.yaml",
    "rollout": {"actor_vs_bare": 0.93, "vllm": "not installed"},
    "push": {"expert": {"push_vs_copy": 0.01}, "full": {"push_vs_copy": 0.3}},
    "train": {"ray_vs_plain": 1.2},
    "sleep": {
        "steps": 100,
        "rows": [
            {
                "memories": 10,
                "total_s": 60.0,
                "material_s": 20.0,
                "train_s": 30.0,
                "per_memory_s": 6.0,
                "material_per_memory_s": 2.0,
            },
            {
                "memories": 50,
                "total_s": 150.0,
                "material_s": 100.0,
                "train_s": 35.0,
                "per_memory_s": 3.0,
                "material_per_memory_s": 2.0,
            },
        ],
    },
}


def test_lookup_walks_dotted_keys_and_misses_give_none():
    assert lookup(RESULT, "push", "full.push_vs_copy") == 0.3
    assert lookup(RESULT, "push", "full.nothing") is None and lookup(RESULT, "swap", "p99_ratio") is None


def test_verdict_against_each_kind_of_bound():
    assert verdict(0.93, (">=", 0.9)) == "met" and verdict(0.89, (">=", 0.9)) == "missed"
    assert verdict(1.2, ("<=", 1.15)) == "missed" and verdict(1.1, ("<=", 1.15)) == "met"
    assert verdict("not installed", (">=", 1.0)) == "" and verdict(2.0, None) == ""


def test_table_has_a_row_per_ratio_of_the_parts_that_ran():
    lines = table(RESULT).splitlines()
    assert len(lines) == 2 + 5  # header + rollout (2) + push (2) + train; no swap row
    assert "| HF engine tokens/s: in a Ray actor / in a bare process | 0.93 | >= 0.9 | met |" in lines
    assert any("vLLM" in line and "| n/a |" in line for line in lines)
    assert any("Ray Train" in line and "missed" in line for line in lines)


def test_write_report_writes_the_tables_and_the_plot(tmp_path):
    write_report(RESULT, tmp_path)
    md = (tmp_path / "system.md").read_text()
    assert "| 50 | 150.0 | 100.0 | 35.0 | 3.0 | 2.0 |" in md
    assert (tmp_path / "plot_sleep_scaling.png").stat().st_size > 1000
