"""Recurrent layers: cells unrolled over variable-length batches, deep and bidirectional.

:class:`Recurrent` takes one cell per layer (and per direction) and handles everything that
involves time: lengths, reversal, bidirectional merging, stacking, dropout, carried state.
Each layer runs on the fastest equivalent path, chosen by :func:`rnnkit.dispatch.choose_path`
(the loops themselves are in :mod:`rnnkit.unroll`):

============================  =============================  ==============================
configuration                 CPU                            CUDA
============================  =============================  ==============================
plain LSTM                    torch.lstm (oneDNN)            torch.lstm (cuDNN)
plain GRU, Elman tanh/relu    rnnkit fused BPTT (faster      torch.gru / rnn_* (cuDNN)
                              than torch's unfused CPU loop)
other built-in cells          rnnkit fused BPTT              rnnkit fused BPTT
any other cell (yours)        autograd loop                  autograd loop
============================  =============================  ==============================
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import threads
from rnnkit.cells import Cell, ElmanCell, GRUCell, LeakyCell, LSTMCell, State, TemporalSkip
from rnnkit.dispatch import (COMPILED_STEP_BATCH, IMPLEMENTATIONS, SINGLE_STEP_BATCH, PathChoice,
                             choose_path, single_step_path)
from rnnkit.inference_step import compiled_step
from rnnkit.precision import autocast_enabled
from rnnkit.nested import detach
from rnnkit.unroll import PackedLayout, fused_scan, loop_scan, native_scan

__all__ = ["Recurrent", "RNN", "GRU", "LSTM", "LeakyRNN", "detach"]

RecurrentState = tuple[State, ...]


class Recurrent(nn.Module):
    """Unroll cells over time: stacked layers, optional bidirectional, variable lengths.

    For layer l and direction d the recurrence is ``h_t, s_t = cell[l][d](x_t, s_{t-1})``;
    the backward direction reads each sequence from its last real step to its first.

    Args:
        cells: one cell (a single layer) or a sequence of cells, one per layer. With
            ``bidirectional=True`` an entry may be a pair (forward cell, backward cell);
            a single cell gets a freshly initialised copy for the backward direction.
        bidirectional: also run every layer backwards in time.
        merge: how the two directions combine: "concat" (width 2H) or "sum" (width H).
        dropout: dropout on the outputs of every layer but the last (as torch.nn.LSTM).
        learn_initial_state: learn h_0 (and c_0) per layer and direction instead of zeros.
        input_dropout: variational dropout on every layer's input: one mask per sequence,
            the same at every step (Gal & Ghahramani 2016). For the recurrent connection,
            use the cells' ``recurrent_dropout``.
        implementation: "auto" (fastest equivalent path per layer), or force "native"
            (torch's own ops), "fused" (rnnkit's BPTT engine) or "loop" (autograd through
            the cell): all give the same result within floating-point rounding.

    Call arguments:
        x: ``(batch, time, features)``, batch first.
        lengths: optional ``(batch,)`` integer tensor, 1 <= lengths <= time, on the CPU or
            x's device. Past a sequence's length its outputs are 0 and its state is frozen.
        state: optional initial state, as returned by a previous call (carry it for
            truncated BPTT or streaming; cut the graph with :func:`detach`).

    Returns:
        ``(outputs, final_state)``: outputs ``(batch, time, output_size)``; final_state a
        tuple with one cell state per (layer, direction), index ``layer * D + direction``,
        each taken at the sequence's last real step.

    Example:
        >>> rnn = Recurrent([LSTMCell(8, 16, layer_norm=True), LSTMCell(32, 16)], bidirectional=True)
        >>> out, state = rnn(torch.randn(4, 10, 8), lengths=torch.tensor([10, 7, 3, 1]))
        >>> out.shape
        torch.Size([4, 10, 32])
    """

    def __init__(
        self,
        cells: Cell | Sequence[Cell | Sequence[Cell]],
        bidirectional: bool = False,
        merge: str = "concat",
        dropout: float = 0.0,
        learn_initial_state: bool = False,
        input_dropout: float = 0.0,
        implementation: str = "auto",
    ) -> None:
        super().__init__()
        if merge not in ("concat", "sum"):
            raise ValueError(f"merge must be 'concat' or 'sum'. Received: {merge!r}")
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}. Received: {implementation!r}")
        for name, p in (("dropout", dropout), ("input_dropout", input_dropout)):
            if not 0.0 <= p < 1.0:
                raise ValueError(f"{name} must be in [0, 1). Received: {p!r}")
        self.bidirectional = bool(bidirectional)
        self.num_directions = 2 if bidirectional else 1
        self.merge = merge
        self.dropout = float(dropout)
        self.input_dropout = float(input_dropout)
        self.implementation = implementation
        self.learn_initial_state = bool(learn_initial_state)
        self.layers = nn.ModuleList(nn.ModuleList(self._directions(c, i)) for i, c in enumerate(
            [cells] if isinstance(cells, Cell) else list(cells)))
        if len(self.layers) == 0:
            raise ValueError("cells must hold at least one cell. Received: an empty sequence")
        self._check_sizes()
        self._paths: dict[tuple, tuple[PathChoice, ...]] = {}  # by (device type, mode, implementation), and steps
        self.paths("cpu", training=False)  # a forced implementation the cells cannot run fails here
        if learn_initial_state:
            self.initial_states = nn.ParameterList(
                nn.Parameter(torch.zeros(1, *shape))
                for layer in self.layers for c in layer for shape in c.state_shapes())

    # ------------------------------------------------------------------ construction

    def _directions(self, entry: Cell | Sequence[Cell], index: int) -> list[Cell]:
        if isinstance(entry, Cell):
            cells = [entry]
            if self.bidirectional:
                backward = copy.deepcopy(entry)
                for m in backward.modules():
                    if hasattr(m, "reset_parameters"):
                        m.reset_parameters()
                cells.append(backward)
            return cells
        cells = list(entry)
        if not all(isinstance(c, Cell) for c in cells) or len(cells) != self.num_directions:
            raise ValueError(
                f"cells[{index}] must be a Cell{' or a pair of Cells' if self.bidirectional else ''}. "
                f"Received: {type(entry).__name__} of {len(cells)} items")
        return cells

    def _check_sizes(self) -> None:
        width = self.layers[0][0].input_size
        for i, layer in enumerate(self.layers):
            for d, c in enumerate(layer):
                if c.input_size != width:
                    expected = "the input's features" if i == 0 else f"layer {i - 1}'s output width"
                    raise ValueError(
                        f"cells[{i}] (direction {d}) must take input_size={width} ({expected}). "
                        f"Received: input_size={c.input_size}")
            hidden = {c.hidden_size for c in layer}
            if len(hidden) != 1:
                raise ValueError(
                    f"both directions of layer {i} must have the same hidden_size. Received: {sorted(hidden)}")
            width = layer[0].hidden_size * (self.num_directions if self.merge == "concat" else 1)

    @property
    def input_size(self) -> int:
        return self.layers[0][0].input_size

    @property
    def hidden_size(self) -> int:
        return self.layers[-1][0].hidden_size

    @property
    def num_layers(self) -> int:
        return len(self.layers)

    @property
    def output_size(self) -> int:
        """Width of the outputs: D*H with merge="concat", else H."""
        return self.hidden_size * (self.num_directions if self.merge == "concat" else 1)

    @property
    def cells(self) -> list[Cell]:
        """Every cell, in state order (layer * D + direction)."""
        return [c for layer in self.layers for c in layer]

    # ------------------------------------------------------------------ paths

    def paths(self, device: torch.device | str, training: bool | None = None) -> tuple[PathChoice, ...]:
        """Each layer's path and the reason (:func:`rnnkit.dispatch.choose_path`) on ``device``,
        in the current training mode unless given; decided once per (device type, mode,
        implementation, whether the compiled passes may use several threads)."""
        key = (torch.device(device).type, self.training if training is None else bool(training), self.implementation)
        cached = (*key, threads.available())
        choices = self._paths.get(cached)
        if choices is None:
            choices = self._paths[cached] = tuple(choose_path(list(layer), *key, layer=i)
                                                  for i, layer in enumerate(self.layers))
        return choices

    def step_paths(self, x: Tensor, batch: int) -> tuple[PathChoice, ...]:
        """Each layer's path for one time step of ``x`` in inference
        (:func:`rnnkit.dispatch.single_step_path`); decided once per case, like :meth:`paths`."""
        device = x.device.type
        compilable = not torch.is_grad_enabled() and not autocast_enabled(device) and x.dtype in (torch.float32,
                                                                                                   torch.float64)
        size = (batch <= SINGLE_STEP_BATCH.get(device, 0), batch <= COMPILED_STEP_BATCH.get(device, 0))
        key = ("step", device, self.implementation, compilable, size)
        choices = self._paths.get(key)
        if choices is None:
            full = self.paths(x.device, training=False)
            choices = self._paths[key] = tuple(single_step_path(c, layer, device, batch, self.implementation,
                                                                compilable) for c, layer in zip(full, self.layers))
        return choices

    def layer_path(self, index: int, device: torch.device | str) -> str:
        """Which path layer ``index`` takes on ``device``: "native", "compiled", "fused" or "loop"."""
        return self.paths(device)[index].path

    # ------------------------------------------------------------------ state

    def initial_state(self, batch_size: int, *, device: torch.device | str | None = None,
                      dtype: torch.dtype | None = None) -> RecurrentState:
        """The state a call starts from when ``state`` is not given (zeros or the learned one)."""
        if not self.learn_initial_state:
            return tuple(c.initial_state(batch_size, device=device, dtype=dtype) for c in self.cells)
        learned = iter(self.initial_states)
        return tuple(
            tuple(next(learned).expand(batch_size, *shape) for shape in c.state_shapes())
            for c in self.cells)

    def _check_state(self, state: Any, B: int, like: Tensor) -> RecurrentState:
        cells = self.cells
        if not isinstance(state, (tuple, list)) or len(state) != len(cells):
            got = f"{type(state).__name__} of length {len(state)}" if isinstance(state, (tuple, list)) else type(state).__name__
            raise ValueError(
                f"state must be a tuple of {len(cells)} cell states (num_layers * num_directions), "
                f"as returned by a previous call. Received: {got}")
        for i, (s, c) in enumerate(zip(state, cells)):
            shapes = c.state_shapes()
            if not isinstance(s, (tuple, list)) or len(s) != len(shapes):
                raise ValueError(
                    f"state[{i}] must be a tuple of {len(shapes)} tensors for {type(c).__name__}. "
                    f"Received: {type(s).__name__}")
            for k, (t, shape) in enumerate(zip(s, shapes)):
                expected = (B, *shape)
                if not isinstance(t, Tensor) or tuple(t.shape) != expected:
                    got = tuple(t.shape) if isinstance(t, Tensor) else type(t).__name__
                    raise ValueError(f"state[{i}][{k}] must have shape {expected}. Received: {got}")
                if t.device != like.device or t.dtype != like.dtype:
                    raise ValueError(
                        f"state[{i}][{k}] must be {like.dtype} on {like.device}, like x. "
                        f"Received: {t.dtype} on {t.device}")
        return tuple(tuple(s) for s in state)

    # ------------------------------------------------------------------ forward

    def _no_input(self, state: RecurrentState | None, steps: int | None) -> Tensor:
        """The (B, steps, 0) input of a stack with input_size 0, B from the state (else 1)."""
        if self.input_size != 0:
            raise ValueError(f"x=None needs a stack with input_size=0. Received: input_size={self.input_size}")
        if not isinstance(steps, int) or isinstance(steps, bool) or steps < 1:
            raise ValueError(f"x=None needs steps, the number of steps to run (>= 1). Received: {steps!r}")
        p = next(self.parameters())
        B = state[0][0].shape[0] if state else 1
        return torch.zeros(B, steps, 0, dtype=p.dtype, device=p.device)

    def _check_input(self, x: Any, lengths: Any) -> tuple[int, int]:
        if not isinstance(x, Tensor):
            raise ValueError(f"x must be a torch.Tensor. Received: {type(x).__name__}")
        if x.dim() != 3:
            raise ValueError(
                f"x must be 3-D (batch, time, features), batch first. Received: shape {tuple(x.shape)}")
        B, T, F_ = x.shape
        if F_ != self.input_size:
            raise ValueError(
                f"x must have {self.input_size} features (input_size). Received: shape {tuple(x.shape)}")
        if B == 0 or T == 0:
            raise ValueError(f"x must have at least one sequence and one step. Received: shape {tuple(x.shape)}")
        p = next(self.parameters(), None)
        if p is not None and (x.dtype != p.dtype or x.device != p.device):
            raise ValueError(
                f"x must be {p.dtype} on {p.device}, like the parameters. "
                f"Received: {x.dtype} on {x.device}")
        if lengths is not None:
            if not isinstance(lengths, Tensor):
                raise ValueError(f"lengths must be a 1-D integer tensor. Received: {type(lengths).__name__}")
            if lengths.dim() != 1 or lengths.shape[0] != B:
                raise ValueError(f"lengths must have shape ({B},) (one per sequence). Received: {tuple(lengths.shape)}")
            if lengths.dtype.is_floating_point or lengths.dtype.is_complex or lengths.dtype == torch.bool:
                raise ValueError(f"lengths must be an integer tensor (int64). Received: dtype {lengths.dtype}")
            if lengths.device.type != "cpu" and lengths.device != x.device:
                raise ValueError(
                    f"lengths must be on the CPU or on x's device ({x.device}). Received: {lengths.device}")
            lo, hi = int(lengths.min()), int(lengths.max())
            if lo < 1 or hi > T:
                raise ValueError(f"lengths must lie in [1, {T}] (time steps of x). Received: min {lo}, max {hi}")
        return B, T

    def forward(self, x: Tensor | None, lengths: Tensor | None = None,
                state: RecurrentState | None = None, steps: int | None = None) -> tuple[Tensor, RecurrentState]:
        if x is None:  # a system with no external input: s_t = f(s_{t-1}) for ``steps`` steps
            x = self._no_input(state, steps)
        B, T = self._check_input(x, lengths)
        layout = PackedLayout.build(lengths, B, T, x.device)
        if state is None:
            state = self.initial_state(B, device=x.device, dtype=x.dtype)
        else:
            if autocast_enabled(x.device.type):  # a state carried out of an autocast step may be bfloat16/float16
                state = tuple(tuple(s.to(x.dtype) if isinstance(s, Tensor) else s for s in cs) for cs in state)
            state = self._check_state(state, B, x)
        state = [tuple(layout.sort(s) for s in cs) for cs in state]
        data = layout.pack(x)  # (N, F)
        finals: list[State] = []
        D = self.num_directions
        choices = self.step_paths(x, B) if T == 1 and not self.training else self.paths(x.device)
        for i, (layer, choice) in enumerate(zip(self.layers, choices)):
            if i > 0 and self.dropout > 0:
                data = F.dropout(data, self.dropout, self.training)
            if self.input_dropout > 0 and self.training:
                data = data * layout.per_row(_variational_mask(data, B, self.input_dropout))
            layer_states = state[i * D : (i + 1) * D]
            if choice.path in ("native", "compiled-step"):
                natives = [c.engine().native for c in layer]
                if choice.path == "compiled-step":
                    out, layer_finals = compiled_step(natives, data, layer_states)
                else:
                    out, layer_finals = native_scan(natives, layout, data, layer_states, self.training)
                outs = list(out.chunk(D, 1)) if D == 2 else [out]
            else:
                outs, layer_finals = [], []
                for d, (cell, s0) in enumerate(zip(layer, layer_states)):
                    mask = None
                    if cell.recurrent_dropout > 0 and self.training:
                        mask = _variational_mask(data, B, cell.recurrent_dropout, cell.hidden_size)
                    xd = layout.reverse(data) if d == 1 else data
                    if choice.path in ("compiled", "fused"):
                        compiled = choice.path == "compiled" and B <= choice.compiled_batch
                        out, final = fused_scan(cell.engine(), layout, xd, s0, mask, compiled)
                    else:
                        out, final = loop_scan(cell, layout, xd, s0, mask)
                    outs.append(layout.reverse(out) if d == 1 else out)
                    layer_finals.append(final)
            data = outs[0] if D == 1 else (torch.cat(outs, 1) if self.merge == "concat" else outs[0] + outs[1])
            finals.extend(layer_finals)
        output = layout.unpack(data)
        return output, tuple(tuple(layout.unsort(s) for s in f) for f in finals)

    def extra_repr(self) -> str:
        parts = []
        if self.bidirectional:
            parts.append(f"bidirectional=True, merge={self.merge!r}")
        if self.dropout:
            parts.append(f"dropout={self.dropout}")
        if self.input_dropout:
            parts.append(f"input_dropout={self.input_dropout}")
        if self.learn_initial_state:
            parts.append("learn_initial_state=True")
        if self.implementation != "auto":
            parts.append(f"implementation={self.implementation!r}")
        return ", ".join(parts)


def _variational_mask(like: Tensor, B: int, p: float, width: int | None = None) -> Tensor:
    """One dropout mask per sequence, scaled by 1/(1-p): (B, width)."""
    width = like.shape[1] if width is None else width
    keep = torch.empty(B, width, device=like.device, dtype=like.dtype).bernoulli_(1 - p)
    return keep.div_(1 - p)


# --------------------------------------------------------------------------- convenience


class _Stacked(Recurrent):
    """A stack of one built-in cell type, with torch.nn-compatible weight import/export
    where torch has the same layer (``_torch_class``)."""

    _cell_class: type[Cell]
    _torch_class: type[nn.RNNBase] | None = None

    def __init__(self, input_size: int, hidden_size: int, num_layers: int = 1,
                 bidirectional: bool = False, dropout: float = 0.0, *, merge: str = "concat",
                 learn_initial_state: bool = False, input_dropout: float = 0.0,
                 skip_delay: int | None = None, implementation: str = "auto",
                 **cell_options: Any) -> None:
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1. Received: {num_layers!r}")
        D = 2 if bidirectional else 1
        width_after = hidden_size * (D if merge == "concat" else 1)

        def make(width: int) -> Cell:
            if skip_delay is None:
                return self._cell_class(width, hidden_size, **cell_options)
            return TemporalSkip(self._cell_class(width + hidden_size, hidden_size, **cell_options), skip_delay)

        cells = [[make(input_size if i == 0 else width_after) for _ in range(D)] for i in range(num_layers)]
        super().__init__(cells, bidirectional=bidirectional, merge=merge, dropout=dropout,
                         learn_initial_state=learn_initial_state, input_dropout=input_dropout,
                         implementation=implementation)

    @classmethod
    def _torch_options(cls, module: nn.RNNBase) -> dict[str, Any]:
        return {}

    @classmethod
    def from_torch(cls, module: nn.RNNBase) -> _Stacked:
        """A copy of a torch.nn module (same weights, same outputs; ours is batch-first)."""
        if cls._torch_class is None:
            raise ValueError(f"{cls.__name__} has no torch.nn equivalent to copy from")
        if type(module) is not cls._torch_class:
            raise ValueError(
                f"{cls.__name__}.from_torch expects a torch.nn.{cls._torch_class.__name__}. "
                f"Received: {type(module).__name__}")
        if getattr(module, "proj_size", 0):
            raise ValueError(f"LSTM projections (proj_size) are not supported. Received: proj_size={module.proj_size}")
        ours = cls(module.input_size, module.hidden_size, module.num_layers,
                   bidirectional=module.bidirectional, dropout=module.dropout, bias=module.bias,
                   **cls._torch_options(module))
        ours.to(device=module.weight_ih_l0.device, dtype=module.weight_ih_l0.dtype)
        with torch.no_grad():
            for name, p in _torch_named_weights(ours):
                p.copy_(getattr(module, name))
        return ours

    def to_torch(self) -> nn.RNNBase:
        """The equivalent torch.nn module (batch_first=True), when the configuration allows."""
        if self._torch_class is None:
            raise ValueError(f"{type(self).__name__} has no torch.nn equivalent")
        problems = [f"layer {i}: {c!r}" for i, layer in enumerate(self.layers) for c in layer
                    if (e := c.engine()) is None or e.native is None or c.recurrent_dropout > 0]
        if self.merge != "concat":
            problems.append("merge='sum'")
        if self.learn_initial_state:
            problems.append("learn_initial_state=True")
        if self.input_dropout:
            problems.append(f"input_dropout={self.input_dropout}")
        if problems:
            raise ValueError(
                f"to_torch needs the configuration torch.nn.{self._torch_class.__name__} has; "
                f"not representable: {'; '.join(problems)}")
        first = self.layers[0][0]
        module = self._torch_class(
            self.input_size, self.hidden_size, self.num_layers, bias=first.bias, batch_first=True,
            dropout=self.dropout, bidirectional=self.bidirectional, **self._torch_export_options())
        module.to(device=first.weight_ih.device, dtype=first.weight_ih.dtype)
        with torch.no_grad():
            for name, p in _torch_named_weights(self):
                getattr(module, name).copy_(p)
        return module

    def _torch_export_options(self) -> dict[str, Any]:
        return {}


def _torch_named_weights(stack: Recurrent) -> list[tuple[str, Tensor]]:
    """Our parameters with torch.nn.RNNBase's names: weight_ih_l0, ..., bias_hh_l1_reverse."""
    named = []
    for i, layer in enumerate(stack.layers):
        for d, cell in enumerate(layer):
            suffix = f"_l{i}" + ("_reverse" if d == 1 else "")
            for base, p in zip(("weight_ih", "weight_hh", "bias_ih", "bias_hh"), cell.engine().native.weights):
                named.append((base + suffix, p))
    return named


class RNN(_Stacked):
    """Stacked Elman RNN: h_t = act(b + W h_{t-1} + U x_t) per layer (see :class:`ElmanCell`).

    ``rnnkit.RNN(input_size, hidden_size, num_layers=1, bidirectional=False, dropout=0.0,
    activation="tanh", ...)``; other keywords as :class:`Recurrent` and :class:`ElmanCell`,
    plus ``skip_delay=d`` for a :class:`TemporalSkip` in every layer.
    """

    _cell_class = ElmanCell
    _torch_class = nn.RNN

    @classmethod
    def _torch_options(cls, module: nn.RNNBase) -> dict[str, Any]:
        return {"activation": module.nonlinearity}

    def _torch_export_options(self) -> dict[str, Any]:
        return {"nonlinearity": self.layers[0][0].activation}


class GRU(_Stacked):
    """Stacked GRU (see :class:`GRUCell`); arguments as :class:`RNN`.

    Example:
        >>> gru = rnnkit.GRU(8, 32, num_layers=2, bidirectional=True)
        >>> out, state = gru(torch.randn(4, 10, 8), lengths=torch.tensor([10, 9, 5, 2]))
    """

    _cell_class = GRUCell
    _torch_class = nn.GRU


class LSTM(_Stacked):
    """Stacked LSTM (see :class:`LSTMCell`); arguments as :class:`RNN`, plus the cell's
    ``peephole``, ``layer_norm``, ``forget_bias`` and ``recurrent_dropout``.

    Example:
        >>> lstm = rnnkit.LSTM(8, 32, num_layers=2, layer_norm=True, recurrent_dropout=0.25)
        >>> out, ((h0, c0), (h1, c1)) = lstm(torch.randn(4, 10, 8))
    """

    _cell_class = LSTMCell
    _torch_class = nn.LSTM

    @classmethod
    def _torch_options(cls, module: nn.RNNBase) -> dict[str, Any]:
        return {"forget_bias": None}


class LeakyRNN(_Stacked):
    """Stacked leaky-integrator units (see :class:`LeakyCell`): arguments as :class:`RNN`, plus
    the cell's ``alpha`` and ``learn_alpha``. torch.nn has no equivalent (no from_torch/to_torch).

    Example:
        >>> leaky = rnnkit.LeakyRNN(8, 32, num_layers=2, alpha=0.25, learn_alpha=True)
    """

    _cell_class = LeakyCell
