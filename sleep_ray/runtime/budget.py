"""How many optimizer steps a night spends: the budget follows the work.

A night's steps grow with the number of memory windows it consolidates (a long memory counts once per window the
teacher reads it in), between a floor and a cap:

    steps = min(cap, max(floor, round(per_window * windows)))

With the defaults (`sleep.seeding`: 26 a window, floor 300, cap 1300; `sleep.dreaming`: 12, 150, 600) the 50-memory
day of examples/sleep_tiny.yaml gets the cap, as before, and a 24-memory day about half of it. `per_window = 0`
always takes the cap. Zero windows take no steps.
"""

from __future__ import annotations


def night_steps(windows: int, *, per_window: float, floor: int, cap: int) -> int:
    """Optimizer steps for a night of `windows` memory windows (module docstring); 0 <= result <= cap."""
    if windows <= 0:
        return 0
    if per_window <= 0:
        return cap
    return int(min(cap, max(floor, round(per_window * windows))))
