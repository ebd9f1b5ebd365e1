"""Recurrent cells: one time step each.

A cell maps the input at one step and the state before it to the output and the state after it::

    h_t, state_t = cell(x_t, state_{t-1})

Notation (the course's): x_t input, h_t hidden output, U input->hidden (``weight_ih``),
W hidden->hidden (``weight_hh``), b biases. A cell never loops over time and never sees
padding; :class:`rnnkit.Recurrent` owns the loop, lengths, direction and stacking.

Weight layouts follow ``torch.nn.LSTM``/``GRU``/``RNN`` (gate order i, f, g, o for the
LSTM; r, z, n for the GRU) so that plain configurations run on torch's native RNN ops with
the same parameters.

Writing your own cell: subclass :class:`Cell`, set ``input_size``, ``hidden_size`` and
``state_size``, implement ``forward(x_t, state) -> (h_t, new_state)``. Autograd does the rest.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from rnnkit import kernels, threads
from rnnkit.dispatch import Engine, NativeOp

State = tuple[Tensor, ...]

__all__ = [
    "Cell",
    "ElmanCell",
    "LeakyCell",
    "GRUCell",
    "LSTMCell",
    "TemporalSkip",
    "State",
]


class Cell(nn.Module):
    """Base of every cell: one time step ``h_t, state_t = cell(x_t, state_{t-1})``.

    Attributes:
        input_size: width F of x_t.
        hidden_size: width H of the output h_t.
        state_size: the shape (without the batch dimension) of each state tensor; an int
            means a vector. ``state[k]`` has shape ``(batch, *state_size[k])``.

    Call arguments:
        x_t: ``(batch, input_size)``.
        state: tuple of tensors shaped as ``state_size`` says, batch first.

    Returns:
        ``(h_t, new_state)`` with ``h_t`` of shape ``(batch, hidden_size)``.
    """

    input_size: int
    hidden_size: int
    state_size: tuple[int | tuple[int, ...], ...]
    #: Probability of the variational dropout on h_{t-1} inside the recurrent product;
    #: cells that support it accept ``forward(x_t, state, recurrent_mask=m)``.
    recurrent_dropout: float = 0.0

    def state_shapes(self) -> tuple[tuple[int, ...], ...]:
        """Shape of each state tensor without the batch dimension."""
        return tuple((n,) if isinstance(n, int) else tuple(n) for n in self.state_size)

    def initial_state(
        self,
        batch_size: int,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> State:
        """Zeros of the right shapes, on the cell's device and dtype unless given."""
        p = next(self.parameters(), None)
        if device is None:
            device = p.device if p is not None else None
        if dtype is None:
            dtype = p.dtype if p is not None else None
        return tuple(
            torch.zeros((batch_size, *shape), device=device, dtype=dtype)
            for shape in self.state_shapes()
        )

    def engine(self) -> Engine | None:
        """What this cell can run on besides the autograd loop: its fused step kernel and the
        torch op it equals (see :mod:`rnnkit.dispatch`). None (the default): only the loop."""
        return None

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}"


def _check_dropout(name: str, p: float) -> float:
    if not 0.0 <= p < 1.0:
        raise ValueError(f"{name} must be in [0, 1). Received: {p!r}")
    return float(p)


class _AffineCell(Cell, abc.ABC):
    """Base of the built-in cells, whose pre-activations are affine: U x_t + W h_{t-1} + b.

    Holds U (weight_ih), W (weight_hh), b_ih and b_hh, each of ``blocks`` H-wide blocks
    stacked (1 Elman, 3 GRU, 4 LSTM), and builds the cell's :class:`Engine`.
    """

    blocks: int = 1

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool, recurrent_dropout: float
    ) -> None:
        super().__init__()
        if input_size < 0 or hidden_size < 1:
            raise ValueError(
                "input_size must be >= 0 (0: a system with no external input, s_t = f(s_{t-1})) and "
                f"hidden_size >= 1. Received: input_size={input_size}, hidden_size={hidden_size}"
            )
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.bias = bool(bias)
        self.recurrent_dropout = _check_dropout("recurrent_dropout", recurrent_dropout)
        G = self.blocks * hidden_size
        self.weight_ih = nn.Parameter(torch.empty(G, input_size))  # U
        self.weight_hh = nn.Parameter(torch.empty(G, hidden_size))  # W
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(G))
            self.bias_hh = nn.Parameter(torch.empty(G))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.state_size = (hidden_size,)

    def reset_parameters(self) -> None:
        """U(-1/sqrt(H), 1/sqrt(H)) for every weight, as torch.nn.RNN/GRU/LSTM."""
        k = 1.0 / math.sqrt(self.hidden_size)
        for p in (self.weight_ih, self.weight_hh, self.bias_ih, self.bias_hh):
            if p is not None:
                nn.init.uniform_(p, -k, k)

    def _input_projection(self, x: Tensor) -> Tensor:
        """U x + b for any leading dims: the part of the pre-activation hoisted out of the loop.

        b = b_ih + b_hh, since both simply add (the GRU overrides this).
        """
        return F.linear(x, self.weight_ih, self.bias_ih + self.bias_hh if self.bias else None)

    def _engine_input_projection(self, x: Tensor) -> Tensor:
        """What the fused engine computes for every row before its loop (the input of the kernel's xp)."""
        return self._input_projection(x)

    def _recurrent_input(self, h: Tensor, recurrent_mask: Tensor | None) -> Tensor:
        return h if recurrent_mask is None else h * recurrent_mask

    @abc.abstractmethod
    def _kernel(self) -> kernels.StepKernel:
        """A fresh step kernel for the fused engine (each built-in cell names its own)."""

    def _native_mode(self) -> str | None:
        """torch's RNN mode ("LSTM", "GRU", "RNN_TANH", "RNN_RELU") this cell equals, or None."""
        return None

    def _recurrent_bias(self) -> Tensor | None:
        """Bias that must stay inside the loop, next to W h_{t-1} (only the GRU's b_hh)."""
        return None

    #: the kernel's compiled time loop (:mod:`rnnkit.lstm_loop`, :mod:`rnnkit.gru_loop`,
    #: :mod:`rnnkit.elman_loop`) takes
    #: batches of at most this many sequences under implementation="auto" (0: it has none); where
    #: it beats the Python loop, measured with benchmarks/recurrent.py --batches
    _compiled_loop_batch = 0

    def engine(self) -> Engine:
        mode = self._native_mode() if self.input_size > 0 else None  # torch's ops need an input
        native = None
        if mode is not None:
            weights = (self.weight_ih, self.weight_hh) + ((self.bias_ih, self.bias_hh) if self.bias else ())
            native = NativeOp(mode, weights)
        return Engine(kernel=self._kernel, input_projection=self._engine_input_projection, weight_hh=self.weight_hh,
                      recurrent_bias=self._recurrent_bias(), native=native,
                      compiled_batch=self._compiled_loop_batch)

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}"
        if not self.bias:
            s += ", bias=False"
        if self.recurrent_dropout:
            s += f", recurrent_dropout={self.recurrent_dropout}"
        return s


ACTIVATIONS = {"tanh": torch.tanh, "relu": torch.relu, "sigmoid": torch.sigmoid, "elu": F.elu}


class ElmanCell(_AffineCell):
    """Elman recurrent unit.

    h_t = act(b + W h_{t-1} + U x_t),   act in {tanh, relu, sigmoid, elu}

    with b = b_ih + b_hh. tanh and relu are torch.nn.RNN's two modes.

    Args:
        input_size: F. hidden_size: H.
        activation: "tanh" (default), "relu", "sigmoid" or "elu".
        bias: learn b.
        recurrent_dropout: variational dropout on h_{t-1} in W h_{t-1} (one mask per sequence).

    Example:
        >>> cell = ElmanCell(3, 5, activation="relu")
        >>> h, state = cell(torch.randn(2, 3), cell.initial_state(2))
    """

    blocks = 1

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        activation: str = "tanh",
        bias: bool = True,
        recurrent_dropout: float = 0.0,
    ) -> None:
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)}. Received: {activation!r}"
            )
        super().__init__(input_size, hidden_size, bias, recurrent_dropout)
        self.activation = activation
        self.reset_parameters()

    def _pre_activation(self, x_t: Tensor, h: Tensor, recurrent_mask: Tensor | None) -> Tensor:
        # a_t = b + W h_{t-1} + U x_t                                     # (B, H)
        return F.linear(x_t, self.weight_ih, self.bias_ih) + F.linear(
            self._recurrent_input(h, recurrent_mask), self.weight_hh, self.bias_hh
        )

    def forward(
        self, x_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        (h,) = state
        h_new = ACTIVATIONS[self.activation](self._pre_activation(x_t, h, recurrent_mask))
        return h_new, (h_new,)

    _compiled_loop_batch = 1  # the compiled loop beats the Python loop (one torch.addmm a step) at 1 row

    def _kernel(self) -> kernels.StepKernel:
        return kernels.ElmanKernel(self.activation, alpha=None)

    def _native_mode(self) -> str | None:
        return {"tanh": "RNN_TANH", "relu": "RNN_RELU"}.get(self.activation)

    def extra_repr(self) -> str:
        return super().extra_repr() + f", activation={self.activation!r}"


class LeakyCell(ElmanCell):
    """Leaky-integrator units: each unit keeps a fraction of its past, with time constant 1/alpha.

    h_t = (1 - alpha) ⊙ h_{t-1} + alpha ⊙ act(b + W h_{t-1} + U x_t)

    alpha in (0, 1] per unit; alpha = 1 is the Elman cell. With ``learn_alpha=True`` the
    time constants are learned: alpha = sigmoid(alpha_logit), so it stays in (0, 1).

    Args:
        alpha: a float (every unit) or a sequence of H floats in (0, 1].
        learn_alpha: learn alpha per unit (initialised from ``alpha``, which must then be < 1).
        other arguments as :class:`ElmanCell`.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        alpha: float | Sequence[float] = 0.5,
        learn_alpha: bool = False,
        activation: str = "tanh",
        bias: bool = True,
        recurrent_dropout: float = 0.0,
    ) -> None:
        super().__init__(input_size, hidden_size, activation, bias, recurrent_dropout)
        a = torch.as_tensor(alpha, dtype=torch.get_default_dtype()).flatten()
        if a.numel() == 1:
            a = a.expand(hidden_size).clone()
        if a.numel() != hidden_size:
            raise ValueError(
                f"alpha must be a float or {hidden_size} floats (one per unit). "
                f"Received: {a.numel()} values"
            )
        upper_ok = bool((a < 1).all()) if learn_alpha else bool((a <= 1).all())
        if not (bool((a > 0).all()) and upper_ok):
            bound = "(0, 1)" if learn_alpha else "(0, 1]"
            raise ValueError(f"alpha must lie in {bound}. Received: {a.tolist()}")
        self.learn_alpha = bool(learn_alpha)
        if learn_alpha:
            self.alpha_logit = nn.Parameter(torch.logit(a))
        else:
            self.register_buffer("alpha_fixed", a)

    @property
    def alpha(self) -> Tensor:
        """alpha per unit, (H,)."""
        return torch.sigmoid(self.alpha_logit) if self.learn_alpha else self.alpha_fixed

    def forward(
        self, x_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        (h,) = state
        n = ACTIVATIONS[self.activation](self._pre_activation(x_t, h, recurrent_mask))
        h_new = h + self.alpha * (n - h)  # (1 - alpha) h + alpha n
        return h_new, (h_new,)

    _compiled_loop_batch = 4  # (its Python loop has three more ops a step)

    def _kernel(self) -> kernels.StepKernel:
        return kernels.ElmanKernel(self.activation, alpha=self.alpha)

    def _native_mode(self) -> str | None:
        return None

    def extra_repr(self) -> str:
        return super().extra_repr() + f", learn_alpha={self.learn_alpha}"


class GRUCell(_AffineCell):
    """Gated recurrent unit (Cho et al. 2014), in torch's and cuDNN's form.

    r_t = sigmoid(U_r x_t + b_ir + W_r h_{t-1} + b_hr)
    z_t = sigmoid(U_z x_t + b_iz + W_z h_{t-1} + b_hz)
    n_t = tanh(U_n x_t + b_in + r_t ⊙ (W_n h_{t-1} + b_hn))
    h_t = (1 - z_t) ⊙ n_t + z_t ⊙ h_{t-1}

    The reset gate multiplies W_n h_{t-1} + b_hn (the "reset after" form of torch.nn.GRU and
    cuDNN), so weights move freely between this cell and torch.nn.GRU.

    Example:
        >>> cell = GRUCell(3, 5)
        >>> h, state = cell(torch.randn(2, 3), cell.initial_state(2))
    """

    blocks = 3

    def __init__(
        self, input_size: int, hidden_size: int, bias: bool = True, recurrent_dropout: float = 0.0
    ) -> None:
        super().__init__(input_size, hidden_size, bias, recurrent_dropout)
        self.reset_parameters()

    def forward(
        self, x_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        (h,) = state
        gx = F.linear(x_t, self.weight_ih, self.bias_ih)  # (B, 3H)
        gh = F.linear(self._recurrent_input(h, recurrent_mask), self.weight_hh, self.bias_hh)
        xr, xz, xn = gx.chunk(3, 1)
        hr, hz, hn = gh.chunk(3, 1)
        r = torch.sigmoid(xr + hr)
        z = torch.sigmoid(xz + hz)
        n = torch.tanh(xn + r * hn)
        h_new = (1 - z) * n + z * h
        return h_new, (h_new,)

    def _input_projection(self, x: Tensor) -> Tensor:
        """U x + b_ih: b_hh stays in the loop, inside r ⊙ (W_n h_{t-1} + b_hn)."""
        return F.linear(x, self.weight_ih, self.bias_ih)

    def _recurrent_bias(self) -> Tensor | None:
        return self.bias_hh

    _compiled_loop_batch = 4  # the compiled loop beats the Python loop (seven ops a step) up to 4 rows

    def _kernel(self) -> kernels.StepKernel:
        return kernels.GRUKernel()

    def _native_mode(self) -> str | None:
        return "GRU"


class LSTMCell(_AffineCell):
    """Long short-term memory, with optional peepholes and layer normalisation.

    i_t = sigmoid(a_i + p_i ⊙ c_{t-1})        a = N_x(U x_t) + N_h(W h_{t-1}) + b
    f_t = sigmoid(a_f + p_f ⊙ c_{t-1})
    g_t = act(a_g)                             (the input unit: tanh by default)
    c_t = f_t ⊙ c_{t-1} + i_t ⊙ g_t
    o_t = sigmoid(a_o + p_o ⊙ c_t)
    h_t = o_t ⊙ tanh(N_c(c_t))

    Without layer norm, N_x, N_h and N_c are the identity; without peepholes p = 0. With
    ``layer_norm=True`` (Ba et al. 2016), N_x and N_h normalise the 4H pre-activations with a
    learned gain (the biases b play the role of the shift) and N_c normalises c_t with a
    learned gain and shift. Peepholes are diagonal (Gers & Schmidhuber 2000): the cell state
    feeds the gates. The state is (h_t, c_t).

    Args:
        peephole: add p ⊙ c to the input, forget and output gates.
        layer_norm: layer-normalise as above.
        forget_bias: initial value of the forget gate's bias (in ``bias_ih``; ``bias_hh``'s
            forget block starts at 0). Jozefowicz et al. (2015) recommend 1. ``None`` keeps
            torch.nn.LSTM's uniform initialisation.
        candidate_activation: the input unit's squashing function g = act(a_g): "tanh"
            (default; torch's native kernels need it), "sigmoid", "relu" or "elu" — the course
            allows "any squashing nonlinearity".
        bias, recurrent_dropout: as :class:`ElmanCell`.

    Example:
        >>> cell = LSTMCell(3, 5, peephole=True, layer_norm=True)
        >>> h, (h, c) = cell(torch.randn(2, 3), cell.initial_state(2))
    """

    blocks = 4
    layer_norm_eps = 1e-5

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        peephole: bool = False,
        layer_norm: bool = False,
        forget_bias: float | None = 1.0,
        bias: bool = True,
        recurrent_dropout: float = 0.0,
        candidate_activation: str = "tanh",
    ) -> None:
        super().__init__(input_size, hidden_size, bias, recurrent_dropout)
        if candidate_activation not in ACTIVATIONS:
            raise ValueError(f"candidate_activation must be one of {sorted(ACTIVATIONS)}. "
                             f"Received: {candidate_activation!r}")
        self.candidate_activation = candidate_activation
        self.peephole = bool(peephole)
        self.layer_norm = bool(layer_norm)
        self.forget_bias = forget_bias
        if forget_bias is not None and not bias:
            raise ValueError("forget_bias needs bias=True. Received: bias=False, "
                             f"forget_bias={forget_bias!r} (pass forget_bias=None)")
        H = hidden_size
        self.state_size = (H, H)
        if peephole:
            self.weight_peephole = nn.Parameter(torch.empty(3, H))  # p_i, p_f, p_o
        if layer_norm:
            self.ln_gain_ih = nn.Parameter(torch.empty(4 * H))  # gain of N_x
            self.ln_gain_hh = nn.Parameter(torch.empty(4 * H))  # gain of N_h
            self.ln_gain_c = nn.Parameter(torch.empty(H))  # gain of N_c
            self.ln_bias_c = nn.Parameter(torch.empty(H))  # shift of N_c
        self.reset_parameters()

    def reset_parameters(self) -> None:
        super().reset_parameters()
        H = self.hidden_size
        if self.peephole:
            nn.init.uniform_(self.weight_peephole, -1.0 / math.sqrt(H), 1.0 / math.sqrt(H))
        if self.layer_norm:
            for g in (self.ln_gain_ih, self.ln_gain_hh, self.ln_gain_c):
                nn.init.ones_(g)
            nn.init.zeros_(self.ln_bias_c)
        if self.forget_bias is not None:
            with torch.no_grad():
                self.bias_ih[H : 2 * H].fill_(self.forget_bias)
                self.bias_hh[H : 2 * H].zero_()

    def _layer_norm(self, a: Tensor, gain: Tensor, shift: Tensor | None = None) -> Tensor:
        return F.layer_norm(a, a.shape[-1:], gain, shift, self.layer_norm_eps)

    def _input_projection(self, x: Tensor) -> Tensor:
        """N_x(U x) + b for any number of leading dims: the part hoisted out of the loop."""
        b = self.bias_ih + self.bias_hh if self.bias else None
        if not self.layer_norm:
            return F.linear(x, self.weight_ih, b)
        return self._layer_norm(F.linear(x, self.weight_ih), self.ln_gain_ih, b)  # b as N_x's shift

    def forward(
        self, x_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        h, c = state
        rec = F.linear(self._recurrent_input(h, recurrent_mask), self.weight_hh)  # W h_{t-1}
        if self.layer_norm:
            rec = self._layer_norm(rec, self.ln_gain_hh)
        a_i, a_f, a_g, a_o = (self._input_projection(x_t) + rec).chunk(4, 1)
        if self.peephole:
            p_i, p_f, p_o = self.weight_peephole
            a_i = a_i + p_i * c
            a_f = a_f + p_f * c
        i, f, g = torch.sigmoid(a_i), torch.sigmoid(a_f), ACTIVATIONS[self.candidate_activation](a_g)
        c_new = f * c + i * g
        if self.peephole:
            a_o = a_o + p_o * c_new
        o = torch.sigmoid(a_o)
        c_out = self._layer_norm(c_new, self.ln_gain_c, self.ln_bias_c) if self.layer_norm else c_new
        h_new = o * torch.tanh(c_out)
        return h_new, (h_new, c_new)

    @property
    def _compiled_loop_batch(self) -> int:
        """The compiled loop (its recurrent products torch's once they are large, see
        LSTMKernel.PRODUCT_MACS) beats the Python loop while a step has at most ~64k units
        (rows x H) when its pointwise passes run in parts on several threads
        (:mod:`rnnkit.threads`; measured 3-24% faster at 256 x 256, 128 x 512 and 64 x 1024),
        and ~16k on one thread (up to 64 sequences at H = 256; behind at 128 x 512)."""
        return max(1, (2**16 if threads.available() else 2**14) // self.hidden_size)

    def _kernel(self) -> kernels.StepKernel:
        return kernels.LSTMKernel(
            peephole=self.weight_peephole if self.peephole else None,
            ln_gain_hh=self.ln_gain_hh if self.layer_norm else None,
            ln_gain_c=self.ln_gain_c if self.layer_norm else None,
            ln_bias_c=self.ln_bias_c if self.layer_norm else None,
            eps=self.layer_norm_eps,
            candidate_activation=self.candidate_activation,
            ln_gain_ih=self.ln_gain_ih if self.layer_norm else None,
            ln_shift_ih=self.bias_ih + self.bias_hh if self.layer_norm and self.bias else None,
        )

    def _engine_input_projection(self, x: Tensor) -> Tensor:
        """With layer norm, U x alone: the kernel applies N_x and its shift b (fused into its loop)."""
        return F.linear(x, self.weight_ih) if self.layer_norm else self._input_projection(x)

    def _native_mode(self) -> str | None:
        return None if (self.peephole or self.layer_norm or self.candidate_activation != "tanh") else "LSTM"

    def extra_repr(self) -> str:
        s = super().extra_repr()
        if self.peephole:
            s += ", peephole=True"
        if self.layer_norm:
            s += ", layer_norm=True"
        if self.candidate_activation != "tanh":
            s += f", candidate_activation={self.candidate_activation!r}"
        return s


class TemporalSkip(Cell):
    """Skip connection through time: the output from ``delay`` steps back feeds step t.

    h_t, s_t = cell([x_t, h_{t-d}], s_{t-1})

    so the inner cell's U has extra columns for h_{t-d}: a direct path of length 1 from
    step t-d to step t, through which gradients skip d-1 recurrent steps. The state is the
    inner cell's state plus a history of the last d outputs, (B, d, H), oldest first, so a
    carried state continues a stream exactly.

    Args:
        cell: a cell whose ``input_size`` is F + its ``hidden_size`` (room for h_{t-d}).
        delay: d >= 1.

    Example:
        >>> skip = TemporalSkip(LSTMCell(3 + 8, 8), delay=4)   # input x_t of width 3
        >>> h, state = skip(torch.randn(2, 3), skip.initial_state(2))
    """

    def __init__(self, cell: Cell, delay: int) -> None:
        super().__init__()
        if int(delay) < 1:
            raise ValueError(f"delay must be >= 1. Received: {delay!r}")
        if cell.input_size <= cell.hidden_size:
            raise ValueError(
                "TemporalSkip needs an inner cell with input_size = F + hidden_size (F >= 1), "
                f"room for h_(t-d). Received: input_size={cell.input_size}, "
                f"hidden_size={cell.hidden_size}"
            )
        self.cell = cell
        self.delay = int(delay)
        self.input_size = cell.input_size - cell.hidden_size
        self.hidden_size = cell.hidden_size
        self.recurrent_dropout = cell.recurrent_dropout
        self.state_size = (*cell.state_size, (self.delay, cell.hidden_size))

    def forward(
        self, x_t: Tensor, state: State, recurrent_mask: Tensor | None = None
    ) -> tuple[Tensor, State]:
        *inner, history = state  # history: (B, d, H), history[:, 0] = h_{t-d}
        kwargs = {} if recurrent_mask is None else {"recurrent_mask": recurrent_mask}
        h, inner_new = self.cell(torch.cat([x_t, history[:, 0]], 1), tuple(inner), **kwargs)
        history_new = torch.cat([history[:, 1:], h.unsqueeze(1)], 1)
        return h, (*inner_new, history_new)

    def extra_repr(self) -> str:
        return f"delay={self.delay}"
