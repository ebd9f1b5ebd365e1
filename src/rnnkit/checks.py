"""Checks of settings, done when a config is built so that a wrong value fails at once, by name."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["require", "is_int", "is_number"]


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: Any) -> bool:
    """A finite int or float (not a bool)."""
    return (is_int(value) or isinstance(value, float)) and math.isfinite(value)


def require(ok: bool, what: str, rule: str, value: Any) -> None:
    """``ValueError("<what> must be <rule>. Received: <value>")`` unless ``ok``."""
    if not ok:
        raise ValueError(f"{what} must be {rule}. Received: {value!r}")
