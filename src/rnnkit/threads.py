"""How many threads numba's parallel kernels use, decided in one place: the CTC lattice's
(:func:`kernel_threads` of torch's count: its rows at once) and a compiled pass over a
recurrent step's rows (:func:`pass_parts`).

Every parallel kernel has a one-thread twin, run instead in a forked child and while another
Python thread holds numba's threads (the last two points below).

The LSTM's time loop at larger batches (:class:`rnnkit.kernels.LSTMKernel`) alternates torch's
matmul for the recurrent product, which runs on torch's intra-op threads, with one compiled
pass over the step's rows for the pointwise maths (:mod:`rnnkit.lstm_loop`). On one thread
that pass leaves the other cores idle for half the loop; rows are independent within a step,
so :func:`pass_parts` cuts them into one range per thread and numba's parallel loop runs the
ranges at once. Parts are used when all of these hold:

* torch may use more than one thread (``torch.get_num_threads()``, lowered by users with
  ``torch.set_num_threads`` or ``OMP_NUM_THREADS`` for jobs side by side): as many parts as
  torch's threads, capped by numba's pool (``NUMBA_NUM_THREADS``) and by the rows;
* a step has at least :data:`MIN_PART_UNITS` units (rows x H) per part: below it, starting the
  threads costs more than they save (``python benchmarks/recurrent.py --batches``);
* no other Python thread is inside such a pass: numba's portable threading layer
  (workqueue) is not thread-safe, so a second caller runs its pass on one thread rather
  than wait;
* the process is not a fork of one that started numba's threads (GNU OpenMP, numba's layer
  on Linux, aborts a forked child that uses them): a forked child runs on one thread.

The result does not depend on timing: part k always gets the same rows, and the sums of the
parameters' gradients are kept per part and added in order after the loop (so they differ
only by float64 rounding between thread counts).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager

import numba
import torch

__all__ = ["MIN_PART_UNITS", "available", "describe", "kernel_threads", "pass_parts", "set_numba_threads",
           "step_parts"]

#: a part of a step's rows must hold at least this many units (rows x hidden size) for the
#: rows to be cut into parts: starting numba's threads costs ~4 us, the pointwise maths of a
#: row of 256 units ~1.5 us. Measured (fwd+bwd, T = 100, layer-norm and peephole LSTMs, two
#: threads against one): no change at 2-4 rows of 256 at any threshold, 3-12% faster from
#: 8 rows of 256, 16 of 128 and 32 of 64 with 1024, 10-25% at 32-64 rows
MIN_PART_UNITS = 1024

_LOCK = threading.Lock()
_forked = False


def _in_forked_child() -> None:
    global _forked
    _forked = True


os.register_at_fork(after_in_child=_in_forked_child)


def set_numba_threads(n: int) -> None:
    """Run numba's next parallel kernels on n threads (capped by its pool), leaving torch's
    count alone: numba's OpenMP threading layer sets OpenMP's thread count, which torch shares,
    to every core when it starts (a CTC loss after ``torch.set_num_threads(1)`` once left
    torch on every core)."""
    torch_threads = torch.get_num_threads()
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))  # starts numba's pool once
    if torch.get_num_threads() != torch_threads:
        torch.set_num_threads(torch_threads)


def _most_parts() -> int:
    return 1 if _forked else min(torch.get_num_threads(), numba.config.NUMBA_NUM_THREADS)


def available() -> bool:
    """Whether passes may be cut into parts in this process now (more than one thread for
    torch and numba, not a forked child); another thread's pass may still take them."""
    return _most_parts() > 1


def step_parts(parts: int, rows: int, hidden_size: int) -> int:
    """How many of ``parts`` a step of ``rows`` rows of ``hidden_size`` units is cut into
    (at least :data:`MIN_PART_UNITS` units each; 1: run it on the calling thread)."""
    return max(1, min(parts, rows * hidden_size // MIN_PART_UNITS))


@contextmanager
def kernel_threads(wanted: int) -> Iterator[int]:
    """Threads for numba's parallel kernels run in the block: ``wanted`` capped by torch's and
    numba's counts, held for the block; 1 (run the one-thread twin) in a forked child, while
    another Python thread holds them, or when one is wanted."""
    n = min(wanted, _most_parts())
    if n < 2 or not _LOCK.acquire(blocking=False):
        yield 1
        return
    try:
        set_numba_threads(n)
        yield n
    finally:
        _LOCK.release()


def pass_parts(rows: int, hidden_size: int) -> AbstractContextManager[int]:
    """The number of parts (1: one thread) for passes over steps of at most ``rows`` rows of
    ``hidden_size`` units, held for the block (other threads get 1 meanwhile)."""
    return kernel_threads(step_parts(_most_parts(), rows, hidden_size))


def describe() -> str:
    """One line on the parts this process would use (``rnnkit info`` prints it)."""
    if not available():
        return ("one thread (torch.get_num_threads() or NUMBA_NUM_THREADS is 1)" if not _forked
                else "one thread (a forked child)")
    return (f"up to {_most_parts()} parts on numba's threads (torch's {torch.get_num_threads()}, numba's "
            f"{numba.config.NUMBA_NUM_THREADS}), for steps of at least {2 * MIN_PART_UNITS} units (rows x H)")
