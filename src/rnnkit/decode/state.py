"""Helpers for model states: nested tuples/lists of tensors whose first dimension is the batch."""

from __future__ import annotations

from typing import Any

from torch import Tensor


def select_rows(state: Any, index: Tensor) -> Any:
    """The state of rows ``index`` (reordering, repeating or dropping rows)."""
    if isinstance(state, Tensor):
        return state.index_select(0, index.to(state.device))
    if isinstance(state, (tuple, list)):
        return type(state)(select_rows(s, index) for s in state)
    if state is None:
        return None
    raise TypeError(f"a model state must be tensors in nested tuples/lists. Received: {type(state).__name__}")
