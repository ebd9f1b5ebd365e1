"""Unrolling one recurrent layer (one direction) over time: rnnkit's loops over time (with rnnkit.lstm_loop).

Three ways to run the same recurrence, chosen per layer by :func:`rnnkit.dispatch.choose_path`:

* ``native_scan``: torch's own RNN ops (cuDNN on GPU, oneDNN/ATen on CPU), used when a
  cell is exactly torch.nn.LSTM/GRU/RNN and torch's kernel is the faster one on that device.
* ``fused_scan``: our BPTT engine for the built-in cells. The input projection U x_t + b is
  one matmul for all steps (done by autograd before the loop); the loop does W h_{t-1} and
  the cell's step kernel; backward runs the textbook recursion
      dL/dh_{t-1} = W^T dL/drec_t + (direct terms),   dL/dW = sum_t dL/drec_t^T h_{t-1}
  with the sum over t done as a single matmul after the loop. The loop over t runs in Python
  (a few torch ops a step) or, for LSTM cells on the CPU, compiled whole
  (:mod:`rnnkit.lstm_loop`, the "compiled" path), writing the same buffers.
* ``loop_scan``: plain autograd through ``cell(x_t, state)``, for any cell (yours included).

Layout. Sequences are sorted longest first and stored as a packed batch (torch's
PackedSequence layout): step t holds the b_t sequences still running, in rows o_t : o_t + b_t
of an (N, features) tensor, N = sum_t b_t::

    lengths 3, 2, 1 (sorted)        t=0     t=1    t=2
    padded (B=3, T=3)               a0      a1     a2        rows: a0 b0 c0 | a1 b1 | a2
                                    b0      b1     .         b_t:     3        2      1
                                    c0      .      .         o_t:     0        3      5

A sequence that has ended is simply absent from later steps, so its state stays frozen at
its last real step and padding costs nothing.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor

from rnnkit.cells import Cell, State
from rnnkit.dispatch import Engine, NativeOp
from rnnkit.kernels import StepKernel
from rnnkit.precision import autocast_enabled
from rnnkit.workspace import Tape


class PackedLayout:
    """Geometry of a packed batch (see the module docstring).

    Attributes:
        batch_size: B. total_length: T of the padded tensor.
        order: the sorting permutation (sorted position -> original index), or None when
            every sequence has length T and nothing moves.
        lengths: sorted lengths (B,) on the data's device (None when uniform).
        batch_sizes: b_t as a CPU int64 tensor, as torch's packed RNN ops want.
    """

    def __init__(self, batch_sizes: Tensor, B: int, T: int, order: Tensor | None,
                 lengths: Tensor | None, device: torch.device) -> None:
        self.batch_size = B
        self.total_length = T
        self.order = order
        self.lengths = lengths
        self.batch_sizes = batch_sizes
        self.device = device

    @classmethod
    def build(cls, lengths: Tensor | None, B: int, T: int, device: torch.device) -> PackedLayout:
        """PackedLayout for a (B, T) padded batch; ``lengths`` None means every length is T."""
        if lengths is None or bool((lengths == T).all()):
            return cls(torch.full((T,), B, dtype=torch.long), B, T, None, None, device)
        sorted_lengths, order = torch.sort(lengths.to("cpu", torch.long), descending=True, stable=True)
        max_len = int(sorted_lengths[0])
        batch_sizes = (sorted_lengths.unsqueeze(0) > torch.arange(max_len).unsqueeze(1)).sum(1)
        return cls(batch_sizes, B, T, order.to(device), sorted_lengths.to(device), device)

    @functools.cached_property
    def steps(self) -> list[tuple[int, int]]:
        """(o_t, b_t) per step."""
        bs = self.batch_sizes.tolist()
        offsets = [0]
        for b in bs[:-1]:
            offsets.append(offsets[-1] + b)
        return list(zip(offsets, bs))

    @functools.cached_property
    def offsets(self) -> Tensor:
        """o_t, on the data's device."""
        return torch.tensor([o for o, _ in self.steps], device=self.device)

    @functools.cached_property
    def time_of_row(self) -> Tensor:
        """(N,) the step each row belongs to."""
        return torch.repeat_interleave(torch.arange(len(self.steps)), self.batch_sizes).to(self.device)

    @functools.cached_property
    def seq_of_row(self) -> Tensor:
        """(N,) the (sorted) sequence each row belongs to: row - o_t."""
        return torch.arange(self.num_rows, device=self.device) - self.offsets[self.time_of_row]

    @property
    def uniform(self) -> bool:
        """Every sequence runs for all T steps (rows are time-major: row = t B + j)."""
        return self.order is None

    @property
    def num_rows(self) -> int:
        return self.batch_size * self.total_length if self.uniform else int(self.batch_sizes.sum())

    def _padded_rows(self) -> Tensor:
        """Row of x.reshape(B*T, F) that each packed row comes from (sorted j -> order[j])."""
        return self.order[self.seq_of_row] * self.total_length + self.time_of_row

    def pack(self, x: Tensor) -> Tensor:
        """(B, T, F) batch-first padded -> (N, F) packed."""
        B, T, F = x.shape
        if self.uniform:
            return x.transpose(0, 1).reshape(T * B, F)
        return x.reshape(B * T, F).index_select(0, self._padded_rows())

    def unpack(self, data: Tensor) -> Tensor:
        """(N, H) packed -> (B, T, H) batch-first padded, zeros past each length."""
        B, T, H = self.batch_size, self.total_length, data.shape[1]
        if self.uniform:
            return data.view(T, B, H).transpose(0, 1).contiguous()
        out = data.new_zeros(B * T, H).index_copy(0, self._padded_rows(), data)
        return out.view(B, T, H)

    def sort(self, s: Tensor) -> Tensor:
        """Per-sequence tensor (B, ...) from the caller's order into sorted order."""
        return s if self.order is None else s.index_select(0, self.order)

    def unsort(self, s: Tensor) -> Tensor:
        """Per-sequence tensor (B, ...) from sorted order back to the caller's order."""
        if self.order is None:
            return s
        return s.new_empty(s.shape).index_copy(0, self.order, s)

    def last(self, hist: Tensor) -> Tensor:
        """Rows of each sequence's last real step from an (N, ...) history: (B, ...), a copy."""
        if self.uniform:
            return hist[-self.batch_size :].clone()
        rows = self.offsets[self.lengths - 1] + torch.arange(self.batch_size, device=hist.device)
        return hist.index_select(0, rows)

    def previous(self, first: Tensor, hist: Tensor) -> Tensor:
        """state_{t-1} for every row: ``first`` (B, ...) at t = 0, else the history's row at t-1."""
        n_first = self.steps[0][1]
        ext = torch.cat([first[:n_first], hist])
        if self.uniform:
            return ext[: hist.shape[0]]
        # row (t, j) reads row (t-1, j) = o_{t-1} + j, shifted by the n_first rows of `first`
        shift = torch.where(self.time_of_row == 0, 0, n_first + self.offsets[self.time_of_row - 1])
        return ext.index_select(0, shift + self.seq_of_row)

    def reverse(self, data: Tensor) -> Tensor:
        """Reverse every sequence within its own length (an involution on packed rows)."""
        if self.uniform:
            return data.view(self.total_length, self.batch_size, -1).flip(0).view(data.shape)
        t_rev = self.lengths[self.seq_of_row] - 1 - self.time_of_row
        return data.index_select(0, self.offsets[t_rev] + self.seq_of_row)

    def per_row(self, per_seq: Tensor) -> Tensor:
        """Spread a per-sequence tensor (B, ...) in sorted order to every row: (N, ...)."""
        if self.uniform:
            return per_seq.repeat(self.total_length, *([1] * (per_seq.dim() - 1)))
        return per_seq.index_select(0, self.seq_of_row)


# --------------------------------------------------------------------------- fused BPTT


class _Inputs(NamedTuple):
    """The differentiable inputs of :class:`_FusedBPTT`, by name, in ``apply``'s order after
    (kernel, layout): used both to read ``ctx.needs_input_grad`` and to lay out the gradients."""

    xp: Any
    weight_hh: Any
    bias_hh: Any
    mask: Any
    state0: tuple
    params: tuple

    @classmethod
    def split(cls, flat: Sequence[Any], n_state: int) -> _Inputs:
        """From the flat positional form ``xp, weight_hh, bias_hh, mask, *state0, *params``."""
        xp, w, b, mask, *rest = flat
        return cls(xp, w, b, mask, tuple(rest[:n_state]), tuple(rest[n_state:]))

    def flat(self) -> tuple:
        return (self.xp, self.weight_hh, self.bias_hh, self.mask, *self.state0, *self.params)


class _FusedBPTT(torch.autograd.Function):
    """One layer-direction of a built-in cell: forward loop and hand-derived BPTT.

    Called as ``apply(kernel, layout, *_Inputs(...).flat())``.
    """

    @staticmethod
    def forward(ctx, kernel: StepKernel, layout: PackedLayout, xp: Tensor, weight_hh: Tensor,
                bias_hh: Tensor | None, mask: Tensor | None, *state0_and_params: Tensor):
        n_state = len(state0_and_params) - len(kernel.params())
        state0 = state0_and_params[:n_state]
        bs = [b for _, b in layout.steps]
        tape = Tape(bs, xp, views=not kernel.compiled)
        H = weight_hh.shape[1]
        # state_t of every row; h is the output, so it escapes the workspace
        states = [tape.buffer(w, escapes=(k == 0)) for k, w in enumerate(kernel.state_widths(H))]
        history = [steps for _, steps in states]
        kernel.allocate(tape, H, xp)
        if kernel.compiled:
            kernel.scan_forward(layout.batch_sizes.numpy(), xp, weight_hh, bias_hh, mask, state0,
                                [full for full, _ in states])
        else:
            _forward_steps(kernel, tape, xp, weight_hh, bias_hh, mask, state0, history)
        h = states[0][0]  # (N, H): the outputs
        final = tuple(layout.last(full) for full, _ in states)
        ctx.kernel, ctx.layout, ctx.tape = kernel, layout, tape
        ctx.other_states = [full for full, _ in states[1:]]  # h is saved below, as an output
        ctx.has_bias = bias_hh is not None
        ctx.save_for_backward(weight_hh, mask, h, *state0)
        return (h, *final)

    @staticmethod
    def backward(ctx, d_out: Tensor | None, *d_final: Tensor | None):
        weight_hh, mask, h, *state0 = ctx.saved_tensors
        kernel, layout, tape = ctx.kernel, ctx.layout, ctx.tape
        kernel.allocate_grads(tape, weight_hh.shape[1])
        states = [h, *ctx.other_states]
        # running dL/dstate_t of every sequence (sorted order). A sequence that is not yet
        # running (in reverse time) keeps dL/dfinal until its last real step comes.
        d_state = [
            torch.zeros_like(s, memory_format=torch.contiguous_format) if d is None
            else d.clone(memory_format=torch.contiguous_format)
            for d, s in zip(d_final, state0)
        ]
        if kernel.compiled:
            kernel.scan_backward(d_out, d_state, weight_hh, states)
        else:
            _backward_steps(kernel, tape, d_out, d_state, weight_hh, mask, state0,
                            [tape.rows(full) for full in states])
        needs = _Inputs.split(ctx.needs_input_grad[2:], len(state0))
        need_bias = ctx.has_bias and needs.bias_hh
        d_w = d_b = None
        if needs.weight_hh or need_bias:
            d_rec_all = kernel.d_rec()  # (N, G)
            if needs.weight_hh:
                h_prev = layout.previous(state0[0], h)  # h_{t-1} per row (N, H)
                if mask is not None:
                    h_prev = h_prev * layout.per_row(mask)
                d_w = d_rec_all.t().mm(h_prev)  # sum_t dL/drec_t^T h_{t-1}   (G, H)
            if need_bias:
                d_b = d_rec_all.sum(0)
        d_params: tuple[Tensor | None, ...] = ()
        if kernel.params():  # a compiled loop summed them itself and needs no state_{t-1}
            prev_all = None if kernel.compiled else [layout.previous(s, full) for s, full in zip(state0, states)]
            d_params = kernel.param_grads(prev_all, states, needs.params)
        grads = _Inputs(xp=kernel.d_xp() if needs.xp else None, weight_hh=d_w, bias_hh=d_b, mask=None,
                        state0=tuple(d if need else None for d, need in zip(d_state, needs.state0)),
                        params=d_params)
        return (None, None, *grads.flat())


def _forward_steps(kernel: StepKernel, tape: Tape, xp: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
                   mask: Tensor | None, state0: tuple[Tensor, ...], history: list[list[Tensor]]) -> None:
    """The forward loop over t in Python, a few tensor ops a step (:class:`_FusedBPTT`)."""
    bs = tape.batch_sizes
    xp_steps = tape.rows(xp)
    masks = None if mask is None else {b: mask[:b] for b in set(bs)}
    w_t = weight_hh.t()
    for t, b in enumerate(bs):
        prev = _previous(t, b, bs, state0, history)
        new = [steps[t] for steps in history]
        h_in = prev[0] if masks is None else prev[0] * masks[b]
        rec = kernel.rec_target(t, new)
        if kernel.input_in_rec:
            torch.addmm(xp_steps[t], h_in, w_t, out=rec)  # xp_t + W h_{t-1}
        elif bias_hh is not None:
            torch.addmm(bias_hh, h_in, w_t, out=rec)  # W h_{t-1} + b_hh
        else:
            torch.mm(h_in, w_t, out=rec)  # W h_{t-1}
        kernel.forward(t, prev, new)


def _backward_steps(kernel: StepKernel, tape: Tape, d_out: Tensor | None, d_state: list[Tensor],
                    weight_hh: Tensor, mask: Tensor | None, state0: tuple[Tensor, ...],
                    history: list[list[Tensor]]) -> None:
    """The backward loop over t in Python (:class:`_FusedBPTT`): ``d_state`` goes from
    dL/dstate_final to dL/dstate0 in place."""
    bs = tape.batch_sizes
    d_views = {b: [d[:b] for d in d_state] for b in set(bs)}
    masks = None if mask is None else {b: mask[:b] for b in set(bs)}
    d_out_steps = None if d_out is None else tape.rows(d_out)
    for t in range(len(bs) - 1, -1, -1):
        b = bs[t]
        ds = d_views[b]
        if d_out_steps is not None:
            ds[0].add_(d_out_steps[t])  # dL/dh_t = dL/dy_t + (from step t+1)
        cur = [steps[t] for steps in history]
        direct, d_rec = kernel.backward(t, ds, _previous(t, b, bs, state0, history), cur)
        # dL/dh_{t-1} = W^T dL/drec_t (masked) + direct terms
        if masks is None and direct is None:
            torch.mm(d_rec, weight_hh, out=ds[0])
        elif masks is None:
            torch.addmm(direct, d_rec, weight_hh, out=ds[0])
        else:
            torch.mm(d_rec, weight_hh, out=ds[0]).mul_(masks[b])
            if direct is not None:
                ds[0].add_(direct)


def _previous(t: int, b: int, bs: list[int], state0, history: list[list[Tensor]]) -> list[Tensor]:
    """state_{t-1} of the b sequences running at step t."""
    if t == 0:
        return [s if s.shape[0] == b else s[:b] for s in state0]
    if bs[t - 1] == b:
        return [steps[t - 1] for steps in history]
    return [steps[t - 1][:b] for steps in history]


def fused_scan(engine: Engine, layout: PackedLayout, x: Tensor, state0: State,
               recurrent_mask: Tensor | None, compiled: bool = False) -> tuple[Tensor, State]:
    """Run a built-in cell, given by its :class:`Engine`, over packed rows x (N, F) with the
    fused BPTT engine; with ``compiled``, on the kernel's compiled time loop where it has one
    for these inputs (else on the Python loop)."""
    kernel = engine.kernel()
    xp = engine.input_projection(x)  # U x_t + b for every row at once   (N, G)
    # under autocast only the projection above is low precision: the recurrence runs in the
    # parameters' dtype (rnnkit.precision), whatever dtype xp and the state arrive in
    low = autocast_enabled(x.device.type)
    with torch.autocast(x.device.type, enabled=False) if low else contextlib.nullcontext():
        dtype = engine.weight_hh.dtype
        inputs = _Inputs(xp.to(dtype), engine.weight_hh, engine.recurrent_bias,
                         None if recurrent_mask is None else recurrent_mask.to(dtype),
                         tuple(s.to(dtype) for s in state0), kernel.params())
        kernel.compiled = compiled and kernel.can_compile(inputs.xp)
        out, *final = _FusedBPTT.apply(kernel, layout, *inputs.flat())
    return out, tuple(final)


# --------------------------------------------------------------------------- autograd loop


def loop_scan(cell: Cell, layout: PackedLayout, x: Tensor, state0: State,
              recurrent_mask: Tensor | None) -> tuple[Tensor, State]:
    """Run any cell over packed rows x (N, F) with autograd through ``cell(x_t, state)``."""
    B = layout.batch_size
    state = state0
    outputs = []
    for t, (o, b) in enumerate(layout.steps):
        state_in = state if b == B else tuple(s[:b] for s in state)
        if recurrent_mask is None:
            h, new = cell(x[o : o + b], state_in)
        else:
            h, new = cell(x[o : o + b], state_in, recurrent_mask=recurrent_mask[:b])
        if t == 0:
            _check_cell_output(cell, h, new, state_in)
        state = tuple(new) if b == B else tuple(torch.cat([n, s[b:]]) for n, s in zip(new, state))
        outputs.append(h)
    return torch.cat(outputs), state


def _check_cell_output(cell: Cell, h: object, new: object, state_in: State) -> None:
    name = type(cell).__name__
    b = state_in[0].shape[0] if state_in else None
    if not isinstance(h, Tensor) or h.dim() != 2 or h.shape[1] != cell.hidden_size:
        shape = tuple(h.shape) if isinstance(h, Tensor) else type(h).__name__
        raise ValueError(
            f"{name}.forward must return (h_t, state) with h_t of shape (batch, hidden_size="
            f"{cell.hidden_size}). Received: h_t {shape}"
        )
    if not isinstance(new, (tuple, list)) or len(new) != len(state_in):
        raise ValueError(
            f"{name}.forward must return a state tuple of {len(state_in)} tensors, like its "
            f"input state. Received: {type(new).__name__} of length {len(new) if isinstance(new, (tuple, list)) else '-'}"
        )
    for k, (n, s) in enumerate(zip(new, state_in)):
        if not isinstance(n, Tensor) or n.shape != s.shape:
            shape = tuple(n.shape) if isinstance(n, Tensor) else type(n).__name__
            raise ValueError(
                f"{name}.forward returned state[{k}] of shape {shape}; expected the input "
                f"state's shape {tuple(s.shape)} (batch {b})"
            )


# --------------------------------------------------------------------------- torch native

_NATIVE_OPS = {"LSTM": torch.lstm, "GRU": torch.gru, "RNN_TANH": torch.rnn_tanh, "RNN_RELU": torch.rnn_relu}


def native_scan(natives: list[NativeOp], layout: PackedLayout, x: Tensor, states: list[State],
                training: bool) -> tuple[Tensor, list[State]]:
    """Run one layer (1 or 2 directions) with torch's own op on the cells' parameters.

    Returns the packed output (N, D*H) and the final state of each direction.
    """
    mode = natives[0].mode
    op = _NATIVE_OPS[mode]
    bidirectional = len(natives) == 2
    weights = [w for n in natives for w in n.weights]
    hx = tuple(torch.stack(parts) for parts in zip(*states))  # each (D, B, H)
    hx_arg = hx if mode == "LSTM" else hx[0]
    has_bias = natives[0].has_bias
    if layout.uniform:
        T, B = layout.total_length, layout.batch_size
        out, *finals = op(x.view(T, B, -1), hx_arg, weights, has_bias, 1, 0.0, training,
                          bidirectional, False)
        out = out.reshape(T * B, -1)
    else:
        out, *finals = op(x, layout.batch_sizes, hx_arg, weights, has_bias, 1, 0.0, training,
                          bidirectional)
    return out, [tuple(f[d] for f in finals) for d in range(len(natives))]
