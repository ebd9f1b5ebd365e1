"""Which computation path a recurrent layer runs on, decided in one place.

A layer (one cell per direction) can run three ways, all equal within floating-point rounding:

* ``"native"``: torch's own RNN op (cuDNN on CUDA, oneDNN/ATen on the CPU) on the cells'
  parameters, when a cell is exactly torch.nn.LSTM/GRU/RNN and torch's op is the faster one;
* ``"compiled"``: the fused engine with its whole time loop compiled, forward and backward
  one call each (:mod:`rnnkit.lstm_loop`, :mod:`rnnkit.gru_loop`, :mod:`rnnkit.elman_loop`):
  LSTM, GRU, Elman and leaky cells, on the CPU, float32/64 (the LSTM's larger recurrent
  products by torch's matmul between compiled steps, each step's rows then in parts on
  numba's threads: :mod:`rnnkit.threads`);
* ``"fused"``: rnnkit's fused BPTT engine (:mod:`rnnkit.unroll`), for cells with a
  hand-derived step kernel (:mod:`rnnkit.kernels`), its loop over t in Python;
* ``"loop"``: autograd through ``cell(x_t, state)``, step by step: any cell, yours included.

and, for one time step in inference at a small batch (token-by-token generation), also
``"compiled-step"``: the step of a cell equal to torch's op as its products by torch's
matmul and one numba call (:mod:`rnnkit.inference_step`); :func:`single_step_path` decides.

A cell only *declares* what it can run on, with :meth:`rnnkit.Cell.engine` (an
:class:`Engine`, or None); :func:`choose_path` decides, from the cells, the device, the
training mode and the implementation asked for, and says why (``rnnkit info`` prints it).
:class:`rnnkit.Recurrent` caches the decision per (device type, training mode, implementation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from torch import Tensor

if TYPE_CHECKING:
    from rnnkit.cells import Cell
    from rnnkit.kernels import StepKernel

__all__ = ["Engine", "NativeOp", "PathChoice", "choose_path", "single_step_path", "IMPLEMENTATIONS",
           "NATIVE_PREFERRED", "SINGLE_STEP_BATCH", "COMPILED_STEP_BATCH", "GENERATION_LOOP_BATCH"]

#: What ``Recurrent(implementation=...)`` accepts: "auto" lets :func:`choose_path` decide.
IMPLEMENTATIONS = ("auto", "native", "compiled", "fused", "loop")

#: torch ops that beat rnnkit's fused engine, per device type (measured with
#: benchmarks/recurrent.py: torch's CPU GRU and RNN ops are per-step loops).
NATIVE_PREFERRED = {
    "cpu": {"LSTM"},
    "cuda": {"LSTM", "GRU", "RNN_TANH", "RNN_RELU"},
}




#: One time step in inference (token-by-token generation) of at most this many rows, per
#: device type, runs on the cell's own ops (the loop) rather than the fused engine, whose
#: calling costs more than the step's arithmetic (measured with benchmarks/generation.py: a
#: 2x256 LSTM step at batch 1 took 0.33 ms on the loop, 0.57 ms fused).
SINGLE_STEP_BATCH = {"cpu": 16}

#: ... and for cells equal to torch's ops, up to this many rows, in rnnkit.inference_step
#: (products by torch's matmul, the rest one compiled call): one 256-unit layer against
#: torch's op, `python benchmarks/generation.py --layer` (Xeon, 2 threads): LSTM 0.23x its
#: time at 1 row, 0.61x at 32, 0.85-1.02x at 64-128, 1.14-1.22x at 256; GRU and Elman
#: 0.68-1.03x up to 128, 1.08-1.13x at 256.
COMPILED_STEP_BATCH = {"cpu": 128}

#: A LanguageModel of such cells generates (sampling or greedy) at most this many rows with
#: its whole token loop compiled (rnnkit.generation_loop), per device type: its products are
#: one thread's, so more rows run step by step on torch's matmul (measured with
#: `python benchmarks/generation.py --batches`).
GENERATION_LOOP_BATCH = {"cpu": 8}


@dataclass(frozen=True)
class NativeOp:
    """torch's own RNN op that computes a cell exactly.

    mode: "LSTM", "GRU", "RNN_TANH" or "RNN_RELU" (torch.nn.LSTM / GRU / RNN).
    weights: the cell's parameters in the order the op wants: U, W and, with biases, b_ih, b_hh.
    """

    mode: str
    weights: tuple[Tensor, ...]

    @property
    def has_bias(self) -> bool:
        return len(self.weights) == 4


@dataclass(frozen=True)
class Engine:
    """What a built-in cell can run on besides the autograd loop.

    The fused engine computes a layer as ``xp = input_projection(x)`` (U x_t + b for every
    step at once), then per step ``rec_t = W h_{t-1} (+ recurrent_bias)`` and the kernel's
    pointwise maths.

    Attributes:
        kernel: makes a fresh :class:`rnnkit.kernels.StepKernel` (one per scan; it holds buffers).
        input_projection: x (..., F) -> xp (..., G), the part hoisted out of the loop.
        weight_hh: W, (G, H).
        recurrent_bias: a bias that must stay inside the loop (the GRU's b_hh), or None.
        native: the torch op equal to the cell, or None.
        compiled_batch: the kernel has a compiled time loop (on the CPU, for float32/64; other
            dtypes run the Python loop of the same engine), which runs on one thread: under
            implementation="auto" it takes batches of at most this many sequences, and larger
            ones the Python loop, whose torch ops use every core (0: no compiled loop).
    """

    kernel: Callable[[], StepKernel]
    input_projection: Callable[[Tensor], Tensor]
    weight_hh: Tensor
    recurrent_bias: Tensor | None = None
    native: NativeOp | None = None
    compiled_batch: int = 0


@dataclass(frozen=True)
class PathChoice:
    """The path of one layer and the reason, in words; on the "compiled" path under
    implementation="auto", batches of more than ``compiled_batch`` sequences run the fused
    engine's Python loop."""

    path: str
    reason: str
    compiled_batch: int = 0


def _describe(cells: Sequence[Cell]) -> str:
    return ", ".join(repr(c) for c in cells)


def _native_mode(cells: Sequence[Cell], engines: Sequence[Engine | None]) -> tuple[str | None, str]:
    """torch's mode shared by every direction of the layer, or (None, why not)."""
    natives = [e.native if e is not None else None for e in engines]
    if any(n is None for n in natives):
        odd = next(c for c, n in zip(cells, natives) if n is None)
        return None, f"torch has no op equal to {odd!r}"
    if len({n.mode for n in natives}) != 1 or len({n.has_bias for n in natives}) != 1:
        return None, "the two directions differ (torch's op needs them alike)"
    return natives[0].mode, ""


def choose_path(cells: Sequence[Cell], device_type: str, training: bool,
                implementation: str = "auto", layer: int = 0) -> PathChoice:
    """Choose how one layer (its cells, one per direction) runs; see the module docstring.

    Args:
        cells: the layer's cells. device_type: "cpu", "cuda", ...
        training: training mode (recurrent dropout applies only then, and torch's op cannot).
        implementation: "auto", or a path forced by the user.
        layer: the layer's index, for error messages.

    Returns:
        A :class:`PathChoice`. Raises ValueError when a forced path cannot run these cells.

    Example:
        >>> choose_path([LSTMCell(3, 4)], "cpu", training=True).path
        'native'
    """
    if implementation not in IMPLEMENTATIONS:
        raise ValueError(f"implementation must be one of {IMPLEMENTATIONS}. Received: {implementation!r}")
    engines = [c.engine() for c in cells]
    mode, why_not_native = _native_mode(cells, engines)
    dropout = training and any(c.recurrent_dropout > 0 for c in cells)
    if implementation == "native":
        if mode is None:
            raise ValueError(f"implementation='native' needs plain LSTM/GRU/Elman tanh or relu cells; layer "
                             f"{layer} has {_describe(cells)} ({why_not_native}). Use implementation='auto'.")
        if dropout:
            raise ValueError(f"implementation='native' cannot apply recurrent_dropout (layer {layer}) in "
                             "training mode. Use implementation='auto'.")
        return PathChoice("native", f"asked for: torch's {mode} op")
    unfusable = next((type(c).__name__ for c, e in zip(cells, engines) if e is None), None)
    compiled = device_type == "cpu" and all(e is not None and e.compiled_batch > 0 for e in engines)
    limit = min(e.compiled_batch for e in engines) if compiled else 0
    if implementation == "compiled":
        if not compiled:
            raise ValueError(f"implementation='compiled' needs LSTM, GRU, Elman or leaky cells on the CPU; layer {layer} has "
                             f"{_describe(cells)} on {device_type}. Use implementation='auto' or 'fused'.")
        return PathChoice("compiled", "asked for: rnnkit's fused BPTT, its time loop compiled", 2**62)
    if implementation == "fused":
        if unfusable is not None:
            raise ValueError(f"implementation='fused' needs built-in cells; layer {layer} has "
                             f"{unfusable}, which has no fused kernel. Use implementation='auto' or 'loop'.")
        return PathChoice("fused", "asked for: rnnkit's fused BPTT")
    if implementation == "loop":
        return PathChoice("loop", "asked for: autograd through the cell")
    if unfusable is not None:
        return PathChoice("loop", f"{unfusable} has no fused kernel: autograd through the cell")
    fused = PathChoice("compiled", f"rnnkit's fused BPTT, its time loop compiled for batches of at most {limit}, "
                                   "larger ones on its Python loop", limit) if compiled else \
        PathChoice("fused", "rnnkit's fused BPTT")
    if mode is None:
        return PathChoice(fused.path, f"{fused.reason}: {why_not_native}", fused.compiled_batch)
    if dropout:
        return PathChoice(fused.path, f"{fused.reason}: recurrent dropout in training, which torch's op lacks",
                          fused.compiled_batch)
    if mode in NATIVE_PREFERRED.get(device_type, ()):
        return PathChoice("native", f"torch's {mode} op, the faster one on {device_type}")
    return PathChoice(fused.path, f"{fused.reason}, faster than torch's {mode} op on {device_type}",
                      fused.compiled_batch)


def single_step_path(choice: PathChoice, cells: Sequence[Cell], device_type: str, batch: int,
                     implementation: str = "auto", compilable: bool = True) -> PathChoice:
    """The path of a layer for one time step in inference at ``batch`` rows, where calling
    costs more than computing: "compiled-step" (:mod:`rnnkit.inference_step`) up to
    :data:`COMPILED_STEP_BATCH` rows for cells equal to torch's ops when ``compilable`` (no
    gradient recorded, no autocast, float32/64 on the CPU); else the loop up to
    :data:`SINGLE_STEP_BATCH` rows; otherwise ``choice`` (and always a path the user forced)."""
    if implementation != "auto":
        return choice
    engines = [c.engine() for c in cells]
    if (compilable and device_type == "cpu" and batch <= COMPILED_STEP_BATCH["cpu"]
            and all(e is not None and e.native is not None for e in engines)):
        return PathChoice("compiled-step", f"one step in inference at batch <= {COMPILED_STEP_BATCH['cpu']}: torch's "
                                           "op's maths, its products by matmul, the rest in one compiled call "
                                           "(rnnkit.inference_step)")
    if batch > SINGLE_STEP_BATCH.get(device_type, 0) or choice.path == "loop":
        return choice
    return PathChoice("loop", f"one step in inference at batch <= {SINGLE_STEP_BATCH[device_type]}: "
                              f"the cell's own ops cost less to call than the {choice.path} path")
