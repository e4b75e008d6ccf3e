"""The night's step budget follows the work: per window, between a floor and a cap."""

from __future__ import annotations

from sleep_ray.config import load_config
from sleep_ray.runtime.budget import night_steps


def test_a_smaller_day_gets_fewer_steps():
    s = load_config().sleep.seeding
    kw = {"per_window": s.steps_per_memory, "floor": s.min_steps, "cap": s.steps}
    assert night_steps(10, **kw) < night_steps(24, **kw) < night_steps(50, **kw)
    assert night_steps(24, **kw) == round(24 * s.steps_per_memory)


def test_floor_cap_and_edges():
    assert night_steps(1, per_window=26, floor=300, cap=1300) == 300
    assert night_steps(100, per_window=26, floor=300, cap=1300) == 1300
    assert night_steps(20, per_window=26, floor=300, cap=1300) == 520
    assert night_steps(20, per_window=0, floor=300, cap=1300) == 1300  # no rule: always the cap
    assert night_steps(0, per_window=26, floor=300, cap=1300) == 0
    assert night_steps(5, per_window=26, floor=300, cap=4) == 4  # a cap below the floor wins (tests use it)


def test_the_world_day_keeps_its_measured_budget():
    """The 50-memory day of examples/sleep_tiny.yaml (53 windows) gets the caps it was measured with."""
    cfg = load_config("examples/sleep_tiny.yaml")
    s, d = cfg.sleep.seeding, cfg.sleep.dreaming
    assert night_steps(53, per_window=s.steps_per_memory, floor=s.min_steps, cap=s.steps) == 1300
    assert (
        night_steps(53, per_window=d.rehearsal_steps_per_memory, floor=d.min_rehearsal_steps, cap=d.rehearsal_steps)
        == 600
    )
