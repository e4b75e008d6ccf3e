"""Report writer: files, formatting, plots and the JSON round trip."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from sleep_ray.eval.metrics import continual_metrics
from sleep_ray.eval.report import (
    EvalReport,
    accuracy_matrix,
    cycle_sort_key,
    format_value,
    read_report,
    render_markdown,
    write_report,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = float("nan")


def _report() -> EvalReport:
    return EvalReport(
        model="runs/demo/ckpt",
        world="worlds/w0",
        stages=["base", "after_cycle_1", "after_cycle_2"],
        metrics={
            "base": {
                "closed_book_em": {"base": 0.95, "1": 0.0, "2": 0.05},
                "closed_book_f1": {"base": 0.975, "1": 0.1, "2": 0.12345},
            },
            "after_cycle_1": {
                "closed_book_em": {"base": 0.9, "1": 0.8, "2": 0.1},
                "closed_book_f1": {"base": 0.93, "1": 0.85, "2": NAN},
            },
            "after_cycle_2": {
                "closed_book_em": {"base": 0.88, "1": 0.7, "2": 0.75},
                "n": {"1": 20, "2": 20},
            },
        },
        summary={"base_closed_book_em": 0.95, "bwt": -0.1, "fwt": NAN},
        meta={"seed": 0, "wall_s": 12.5, "config": {"lr": 1e-4, "cycles": [1, 2]}, "machine": "cpu"},
    )


def test_write_report_files(tmp_path: Path) -> None:
    paths = write_report(_report(), tmp_path / "eval")
    assert set(paths) == {
        "results.json",
        "results.md",
        "plot_closed_book_em.png",
        "plot_closed_book_f1.png",
        "plot_n.png",
    }
    for name, path in paths.items():
        assert path == tmp_path / "eval" / name
        assert path.is_file() and path.stat().st_size > 0
        if name.endswith(".png"):
            assert path.read_bytes()[:8] == PNG_MAGIC


def test_json_nan_as_null_and_round_trip(tmp_path: Path) -> None:
    report = _report()
    paths = write_report(report, tmp_path)
    text = paths["results.json"].read_text()
    assert "NaN" not in text
    data = json.loads(text)
    assert data["metrics"]["after_cycle_1"]["closed_book_f1"]["2"] is None
    assert data["summary"]["fwt"] is None
    assert data["meta"]["config"] == {"lr": 1e-4, "cycles": [1, 2]}

    back = read_report(paths["results.json"])
    assert read_report(tmp_path).model == report.model  # a directory works too
    assert back.model == report.model and back.world == report.world and back.stages == report.stages
    assert back.meta == report.meta
    assert math.isnan(back.metrics["after_cycle_1"]["closed_book_f1"]["2"])
    assert math.isnan(back.summary["fwt"])
    assert back.metrics["after_cycle_2"]["n"] == {"1": 20, "2": 20}
    back.metrics["after_cycle_1"]["closed_book_f1"]["2"] = 0.0
    report.metrics["after_cycle_1"]["closed_book_f1"]["2"] = 0.0
    back.summary["fwt"] = report.summary["fwt"] = 0.0
    assert back == report


def test_markdown_tables(tmp_path: Path) -> None:
    md = write_report(_report(), tmp_path)["results.md"].read_text()
    assert "runs/demo/ckpt" in md and "worlds/w0" in md
    assert "**seed**: 0" in md and "**wall_s**: 12.500" in md
    assert "| base_closed_book_em | 0.950 |" in md
    assert "| bwt | -0.100 |" in md
    assert "| fwt | – |" in md
    assert "## Stage: base" in md and "## Stage: after_cycle_2" in md
    assert "| metric | base | cycle 1 | cycle 2 |" in md
    assert "| closed_book_em | 0.950 | 0.000 | 0.050 |" in md
    assert "| closed_book_f1 | 0.975 | 0.100 | 0.123 |" in md
    assert "| closed_book_f1 | 0.930 | 0.850 | – |" in md  # NaN
    assert "| n | – | 20 | 20 |" in md  # missing cycle, int values
    # Stages appear in order.
    assert md.index("Stage: base") < md.index("Stage: after_cycle_1") < md.index("Stage: after_cycle_2")


def test_empty_stage_and_no_summary() -> None:
    report = EvalReport(model="m", world="w", stages=["base"], metrics={}, summary={}, meta={})
    md = render_markdown(report)
    assert "_no summary values_" in md and "_no metrics recorded_" in md


def test_plot_with_missing_metric_in_some_stages(tmp_path: Path) -> None:
    report = EvalReport(
        model="m",
        world="w",
        stages=["base"],
        metrics={"base": {"stale rate/%": {"base": NAN, "1": NAN}}},
    )
    paths = write_report(report, tmp_path)
    assert paths["plot_stale_rate.png"].read_bytes()[:8] == PNG_MAGIC


def test_cycle_order_and_format() -> None:
    assert sorted(["10", "2", "base", "1", "x"], key=cycle_sort_key) == ["base", "1", "2", "10", "x"]
    assert format_value(0.12345) == "0.123"
    assert format_value(1.0) == "1.000"
    assert format_value(3) == "3"
    assert format_value(None) == "–"
    assert format_value(NAN) == "–"


def test_accuracy_matrix_feeds_continual_metrics() -> None:
    acc = accuracy_matrix(_report(), "closed_book_em")
    assert acc == [[0.0, 0.05], [0.8, 0.1], [0.7, 0.75]]
    m = continual_metrics(acc)
    assert m["acquisition"] == pytest.approx((0.8 + 0.75) / 2)
    assert m["bwt"] == pytest.approx(0.7 - 0.8)
    nan_acc = accuracy_matrix(_report(), "closed_book_f1")
    assert math.isnan(nan_acc[1][1]) and math.isnan(nan_acc[2][0])
