"""The field helper every config dataclass uses, and the error a bad value raises."""

from __future__ import annotations

from dataclasses import field
from typing import Any


class ConfigError(ValueError):
    """A configuration value is unknown, mistyped or out of range. The message names the key."""


def spec(
    default: Any,
    *,
    lo: float | None = None,
    hi: float | None = None,
    choices: tuple[str, ...] | None = None,
    help: str = "",
) -> Any:
    """A dataclass field with a documented range or choice set, checked by `validate`."""
    meta = {"lo": lo, "hi": hi, "choices": choices, "help": help}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: default.copy(), metadata=meta)
    return field(default=default, metadata=meta)
