"""Buffers of the fused BPTT engine: a pool that recycles them, and the tape of one scan.

The fused engine (:mod:`rnnkit.unroll`) keeps every per-step quantity of a scan (gates, states,
their gradients) in full (N, width) tensors, split once into per-step row views (packed
layout, see :class:`rnnkit.unroll.PackedLayout`). These tensors are large and short-lived, so
on the CPU they come from a pool instead of the OS.
"""

from __future__ import annotations

import threading
import weakref

from torch import Tensor


class Workspace:
    """Recycles the fused engine's internal CPU buffers from one call to the next.

    A fresh multi-megabyte buffer is mapped from the OS on every call and its pages fault
    on first touch (about 10 us per 4 KiB page on a VM: 30 ms for one 13 MB buffer), while
    torch's per-step tensors are small enough for malloc to reuse. Buffers return here
    when the tape that owns them is freed (after backward, or at once without a graph);
    nothing that leaves the engine (outputs, gradients) comes from here. CUDA has its own
    caching allocator and bypasses this. At most ``max_bytes`` are kept.
    """

    def __init__(self, max_bytes: int = 1 << 30) -> None:
        self.max_bytes = max_bytes
        self._free: dict[tuple, list[Tensor]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def take(self, rows: int, width: int, like: Tensor) -> Tensor:
        key = (rows, width, like.dtype)
        with self._lock:
            stack = self._free.get(key)
            if stack:
                buf = stack.pop()
                self._bytes -= buf.nbytes
                return buf
        return like.new_empty(rows, width)

    def give(self, buffers: list[Tensor]) -> None:
        with self._lock:
            for buf in buffers:
                if self._bytes + buf.nbytes > self.max_bytes:
                    continue
                self._free.setdefault((*buf.shape, buf.dtype), []).append(buf)
                self._bytes += buf.nbytes

    def clear(self) -> None:
        """Give every kept buffer back to the allocator."""
        with self._lock:
            self._free.clear()
            self._bytes = 0


WORKSPACE = Workspace()


class Tape:
    """Buffers of one scan: each a full (N, width) tensor and its per-step row views.

    Internal buffers come from :data:`WORKSPACE` on the CPU and go back to it when the tape
    is freed; ``escapes=True`` buffers (outputs, gradients handed to autograd) do not.
    With ``views=False`` (a compiled time loop, which indexes the full tensors itself) the
    per-step view lists are empty: splitting costs ~0.5 us a view, 5 ms a call at T = 500.
    """

    def __init__(self, batch_sizes: list[int], like: Tensor, views: bool = True) -> None:
        self.batch_sizes = batch_sizes
        self.views = views
        self.like = like
        self.num_rows = sum(batch_sizes)
        self._pooled: list[Tensor] = []
        if like.device.type == "cpu":
            weakref.finalize(self, WORKSPACE.give, self._pooled)

    def rows(self, full: Tensor) -> list[Tensor]:
        """Per-step views of an (N, ...) tensor: rows o_t : o_t + b_t (none without ``views``)."""
        return list(full.split(self.batch_sizes)) if self.views else []

    def buffer(self, width: int, escapes: bool = False) -> tuple[Tensor, list[Tensor]]:
        """An (N, width) buffer and its per-step views (contents undefined)."""
        if escapes or self.like.device.type != "cpu":
            full = self.like.new_empty(self.num_rows, width)
        else:
            full = WORKSPACE.take(self.num_rows, width, self.like)
            self._pooled.append(full)
        return full, self.rows(full)

    def columns(self, full: Tensor, width: int, n: int) -> list[list[Tensor]]:
        """Per-step views of each of the n column blocks of width ``width``."""
        return [self.rows(full[:, k * width : (k + 1) * width]) for k in range(n)]
