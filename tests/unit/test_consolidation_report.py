"""The consolidation benchmark's figures, checked against hand-computed values, and its table and verdict."""

from __future__ import annotations

import math
import random

import pytest

from sleep_ray.bench.consolidation_report import accuracy_matrix, oracle_row, summarize, table, verdict, write
from sleep_ray.bench.methods import METHODS, _TextPool, resolve_methods


def row(base: float, cycles: list[float], **extra: dict[str, float]) -> dict[str, dict[str, float]]:
    r = {"closed_book": {"base": base, **{str(j + 1): v for j, v in enumerate(cycles)}}}
    r.update(extra)
    return r


# Two cycles: row 0 = base model, row 1 after cycle 1, row 2 after cycle 2.
ROWS = [
    row(0.90, [0.10, 0.20]),
    row(0.88, [0.60, 0.25]),
    row(
        0.86,
        [0.50, 0.70],
        updated={"1": 0.5, "2": 1.0},
        stale={"1": 0.5, "2": 0.0},
        rule={"1": 0.25},
        new={"1": 0.4, "2": 0.8},
    ),
]
CYCLES = [{"wall_s": 10.0, "trained": 100}, {"wall_s": 12.5, "trained": 100}]


def test_accuracy_matrix_reads_cycle_columns_in_order():
    assert accuracy_matrix(ROWS) == [[0.10, 0.20], [0.60, 0.25], [0.50, 0.70]]


def test_summarize_matches_hand_computed_values():
    s = summarize(ROWS, CYCLES)
    assert s["mean_closed_book"] == pytest.approx((0.50 + 0.70) / 2)  # last row
    assert s["acquisition"] == pytest.approx((0.60 + 0.70) / 2)  # diagonal
    assert s["bwt"] == pytest.approx(0.50 - 0.60)  # cycle 1 after 2 minus right after 1
    assert s["base"] == pytest.approx(0.86) and s["base_delta"] == pytest.approx(-0.04)
    assert s["new"] == pytest.approx(0.6)
    assert s["updated"] == pytest.approx(0.75) and s["stale"] == pytest.approx(0.25)
    assert s["few_shot"] == pytest.approx(0.25)  # cycle 2 has no rule probe: skipped, not zero
    assert math.isnan(s["long"])
    assert s["wall_s"] == 22.5 and s["trained"] == 100


def test_oracle_row_reads_in_context_scores_and_keeps_base_closed_book():
    base = {
        "closed_book": {"base": 0.9, "1": 0.1},
        "in_context": {"base": 0.99, "1": 0.8},
        "updated_in_context": {"1": 0.5},
    }
    o = oracle_row(base)
    assert o["closed_book"] == {"base": 0.9, "1": 0.8}
    assert o["updated"] == {"1": 0.5}


def _result(sleep_mean: float, sleep_base: float) -> dict:
    methods = {"no_sleep": [row(0.9, [0.1, 0.1])] * 3, "sft": [row(0.9, [0.1, 0.1]), row(0.7, [0.4, 0.1]),
               row(0.6, [0.3, 0.5])], "in_context": [row(0.9, [0.1, 0.1])] + [row(0.9, [0.9, 0.9])] * 2,
               "sleep": [row(0.9, [0.1, 0.1]), row(0.9, [0.5, 0.1]), row(sleep_base, [sleep_mean] * 2)]}  # fmt: skip
    result = {
        "cycles": 2,
        "methods": {n: {"rows": r, "cycles": [], "oracle": n == "in_context"} for n, r in methods.items()},
        "meta": {"date": "d", "machine": "m", "config": "c", "overrides": [], "model": "b",
                 "memories_per_cycle": [9, 9], "wall_s": 1.0},
    }  # fmt: skip
    result["summary"] = {n: summarize(m["rows"]) for n, m in result["methods"].items()}
    return result


def test_verdict_ignores_the_oracle_and_checks_base_knowledge():
    good = verdict(_result(0.6, 0.88))
    assert "sleep is the best non-oracle" in good and "within 0.05" in good
    bad = verdict(_result(0.3, 0.80))
    assert "not the best" in bad and "best: sft 0.400" in bad and "outside 0.05" in bad


def test_table_and_files(tmp_path):
    result = _result(0.6, 0.88)
    md = table(result)
    assert md.count("\n") == 1 + 4 and "in_context (oracle)" in md and "| sleep | 0.600 |" in md
    paths = write(result, tmp_path)
    assert {p.name for p in paths.values()} == {
        "consolidation.json",
        "consolidation.md",
        "plot_accuracy.png",
        "plot_forgetting.png",
    }
    assert "null" in paths["json"].read_text()  # NaN figures are written as null, not as invalid JSON


def test_methods_resolve_in_order_and_unknown_names_fail():
    assert resolve_methods([]) == list(METHODS)
    assert resolve_methods(["sleep", "sft"]) == ["sft", "sleep"]
    with pytest.raises(ValueError, match=r"bench.consolidation.methods: unknown \['slep'\]"):
        resolve_methods(["slep"])


def test_replay_pool_draws_its_share_from_earlier_memories_and_none_without_them():
    rng = random.Random(0)
    pool = _TextPool(["new"], ["old"], 0.25)
    kinds = [pool.sample(rng)[0] for _ in range(4000)]
    assert kinds.count("replay") / len(kinds) == pytest.approx(0.25, abs=0.03)
    assert {_TextPool(["new"], [], 0.9).sample(rng)[1] for _ in range(50)} == {"new"}
    with pytest.raises(ValueError, match="no memory text"):
        _TextPool([], ["old"], 0.5)
