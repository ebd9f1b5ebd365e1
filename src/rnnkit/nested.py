"""Nested states: tensors in tuples/lists (and None), batch first, as recurrent models carry them.

A recurrent state is any nesting of tuples and lists whose leaves are tensors (or None),
e.g. ``((h_0, c_0), (h_1, c_1))`` for a two-layer LSTM. Every walk over such a state lives
here: cutting the graph (:func:`detach`), picking rows (:func:`select_rows`), joining and
splitting along the batch (:func:`stack`, :func:`split`), and naming the leaves for a file
(:func:`flatten`, :func:`unflatten`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

__all__ = ["map_tensors", "detach", "select_rows", "stack", "split", "flatten", "unflatten"]


def map_tensors(fn: Callable[[Tensor], Any], state: Any, caller: str = "map_tensors") -> Any:
    """``state`` with ``fn`` applied to every tensor; tuples stay tuples, lists lists, None None.
    ``caller`` names the public function in the error for anything else."""
    if isinstance(state, Tensor):
        return fn(state)
    if isinstance(state, (tuple, list)):
        return type(state)(map_tensors(fn, s, caller) for s in state)
    if state is None:
        return None
    raise TypeError(f"{caller} expects tensors in nested tuples/lists. Received: {type(state).__name__}")


def detach(state: Any) -> Any:
    """Cut the autograd graph of a (nested) state between chunks (truncated BPTT).

    Example:
        >>> out, state = rnn(chunk1); state = detach(state); out, state = rnn(chunk2, state=state)
    """
    return map_tensors(Tensor.detach, state, "detach")


def select_rows(state: Any, index: Tensor) -> Any:
    """The state of rows ``index`` (reordering, repeating or dropping rows)."""
    return map_tensors(lambda t: t.index_select(0, index.to(t.device)), state, "select_rows")


def stack(states: Sequence[Any]) -> Any:
    """Join states of the same structure along the batch dimension (``torch.cat`` per leaf)."""
    first = states[0]
    if isinstance(first, Tensor):
        return torch.cat(list(states))
    return type(first)(stack([s[i] for s in states]) for i in range(len(first)))


def split(state: Any, n: int) -> list[Any]:
    """The inverse of :func:`stack` for n states of batch 1: one state per row."""
    if isinstance(state, Tensor):
        return list(state.split(1))
    parts = [split(s, n) for s in state]
    return [type(state)(p[i] for p in parts) for i in range(n)]


def flatten(state: Any, prefix: str = "state") -> tuple[dict[str, Tensor], Any]:
    """(named CPU tensors, a JSON structure of their names): a state as a safetensors file can hold it."""
    tensors: dict[str, Tensor] = {}

    def name(t: Tensor) -> str:
        key = f"{prefix}.{len(tensors)}"
        tensors[key] = t.detach().cpu().contiguous()
        return key

    def walk(s: Any) -> Any:  # lists in JSON, whatever the nesting was
        if s is None or isinstance(s, Tensor):
            return map_tensors(name, s)
        return [walk(x) for x in s]

    return tensors, walk(state)


def unflatten(tensors: dict[str, Tensor], structure: Any, device: torch.device | str) -> Any:
    """The state :func:`flatten` described, as tuples, on ``device``."""
    if structure is None:
        return None
    if isinstance(structure, str):
        return tensors[structure].to(device)
    return tuple(unflatten(tensors, s, device) for s in structure)
