"""Hand-derived forward and backward of one time step of the built-in cells.

The fused BPTT engine (:mod:`rnnkit.unroll`) owns the loop over time and the recurrent
product; the input part ``xp_t = U x_t + b`` has been computed for all steps at once before
the loop. Each step the engine writes ``rec_t = W (m ⊙ h_{t-1}) (+ b_hh)`` (plus ``xp_t`` when
``input_in_rec``) into ``kernel.rec_steps[t]``; the kernel does the rest of the step
(pointwise maths and layer norm) and its exact derivative:

    forward(t):  (xp_t, rec_t, state_{t-1})  ->  state_t            (kept on the tape)
    backward(t): dL/dstate_t  ->  dL/dxp_t (on the tape), dL/drec_t, direct dL/dstate_{t-1}

The engine adds W^T dL/drec_t to dL/dh_{t-1} and forms dL/dW = sum_t dL/drec_t^T h_{t-1}
with one matmul after the loop; :meth:`StepKernel.param_grads` does the same for the
kernel's own small parameters (peepholes, layer-norm gains, leak rates).

Rows are in packed-sequence layout: step t owns rows o_t : o_t + b_t of every (N, ...)
buffer (b_t = sequences still running at t, longest first). Buffers are split into per-step
views once, in C++, so a step touches only list items and runs a dozen tensor ops written
in place or ``out=``: at small batch sizes the number of ops is what costs.
"""

from __future__ import annotations

import abc
import contextlib
import functools

import numpy as np
import torch
from torch import Tensor

from rnnkit import elman_loop, gru_loop, lstm_loop
from rnnkit.threads import pass_parts, step_parts
from rnnkit.workspace import Tape

_layer_norm_backward = torch.ops.aten.native_layer_norm_backward


def sigmoid_derivative(y: Tensor) -> Tensor:
    """sigma'(a) from y = sigma(a): y (1 - y)."""
    return torch.addcmul(y, y, y, value=-1.0)


def activation_backward(activation: str, dy: Tensor, y: Tensor, out: Tensor) -> Tensor:
    """dL/da into ``out``, from dL/dy and the output y = act(a), for the Elman activations."""
    if activation == "tanh":  # 1 - y^2
        return torch.addcmul(dy, dy * y, y, value=-1.0, out=out)
    if activation == "sigmoid":
        return torch.mul(dy, sigmoid_derivative(y), out=out)
    if activation == "relu":
        return torch.mul(dy, y > 0, out=out)
    if activation == "elu":  # y = a for a > 0, exp(a) - 1 otherwise: derivative y + 1
        return torch.where(y > 0, dy, dy * (y + 1.0), out=out)
    raise ValueError(f"unknown activation {activation!r}")


_IN_PLACE = {
    "tanh": Tensor.tanh_,
    "sigmoid": Tensor.sigmoid_,
    "relu": Tensor.relu_,
    "elu": torch.nn.functional.elu_,
}


def contiguous_array(t: Tensor | None, *empty: int, like: Tensor | None = None) -> np.ndarray:
    """t as a contiguous array for compiled code; None (absent) as an empty array of shape
    ``empty`` and ``like``'s dtype."""
    return (like.new_empty(empty) if t is None else t.detach().contiguous()).numpy()


class StepKernel(abc.ABC):
    """Interface of a fused step kernel (see the module docstring).

    The engine owns the state histories (h_t, and c_t for the LSTM) and hands the kernel
    per-step views: ``prev`` = state_{t-1}, ``new``/``cur`` = state_t. The kernel keeps no
    reference to h, which is the scan's output (that would tie the output to its own
    backward node and keep the whole tape alive until the garbage collector runs).

    Attributes:
        input_in_rec: the engine adds xp_t into rec_t (one addmm instead of two ops).
    """

    input_in_rec: bool = False
    #: set by the engine when :meth:`scan_forward` / :meth:`scan_backward` replace the
    #: per-step calls (a kernel with a compiled time loop, on the CPU)
    compiled: bool = False

    def can_compile(self, xp: Tensor) -> bool:
        """Whether this kernel's compiled time loop takes inputs like ``xp`` (on the CPU, float32/64)."""
        return xp.device.type == "cpu" and xp.dtype in (torch.float32, torch.float64)

    @abc.abstractmethod
    def scan_forward(self, batch_sizes: np.ndarray, xp: Tensor, weight_hh: Tensor, bias_hh: Tensor | None,
                     mask: Tensor | None, state0: tuple[Tensor, ...], states: list[Tensor]) -> None:
        """The whole forward loop in one compiled call: fill ``states`` (N, width each) and the
        tape; ``bias_hh`` is the engine's recurrent bias (the GRU's b_hh) or None."""

    @abc.abstractmethod
    def scan_backward(self, d_out: Tensor | None, d_state: list[Tensor], weight_hh: Tensor,
                      states: list[Tensor]) -> None:
        """The whole backward loop in one compiled call: ``d_state`` (B, width each) holds
        dL/dstate_final on entry and dL/dstate0 on return; fills the gradient buffers."""

    def params(self) -> tuple[Tensor, ...]:
        """The kernel's own parameters (gradients come from :meth:`param_grads`)."""
        return ()

    @abc.abstractmethod
    def state_widths(self, H: int) -> tuple[int, ...]:
        """Width of each state tensor, h first."""

    @abc.abstractmethod
    def allocate(self, tape: Tape, H: int, xp: Tensor) -> None:
        """Create the forward buffers for hidden size H."""

    @abc.abstractmethod
    def rec_target(self, t: int, new: list[Tensor]) -> Tensor:
        """Where the engine writes rec_t (or xp_t + rec_t) for step t."""

    @abc.abstractmethod
    def forward(self, t: int, prev: list[Tensor], new: list[Tensor]) -> None:
        """Write state_t into ``new`` from xp_t, rec_t and state_{t-1} = ``prev``."""

    @abc.abstractmethod
    def allocate_grads(self, tape: Tape, H: int) -> None:
        """Create the gradient buffers (``d_xp`` at least)."""

    @abc.abstractmethod
    def backward(self, t: int, d_state: list[Tensor], prev: list[Tensor],
                 cur: list[Tensor]) -> tuple[Tensor | None, Tensor]:
        """Backward of step t.

        ``d_state`` holds views of dL/dstate_t; the kernel overwrites ``d_state[k]`` for
        k >= 1 with dL/dstate_{t-1}, writes dL/dxp_t, and returns (direct part of
        dL/dh_{t-1} or None, dL/drec_t).
        """

    @abc.abstractmethod
    def d_xp(self) -> Tensor:
        """dL/dxp for all rows, (N, G)."""

    @abc.abstractmethod
    def d_rec(self) -> Tensor:
        """dL/drec for all rows, (N, G)."""

    def param_grads(self, prev_all: list[Tensor] | None, states: list[Tensor],
                    needs: tuple[bool, ...]) -> tuple[Tensor | None, ...]:
        """Gradients of :meth:`params`; per state, ``prev_all`` holds state_{t-1} and
        ``states`` state_t of every row (N, width); ``prev_all`` is None after a compiled
        loop, which summed the gradients itself."""
        return ()


class ElmanKernel(StepKernel):
    """h_t = act(a_t), or with leak rates alpha: h_t = h_{t-1} + alpha ⊙ (act(a_t) - h_{t-1}).

    a_t = xp_t + rec_t. Backward: dL/da_t = act'(a_t) ⊙ alpha ⊙ dL/dh_t (= d_xp = d_rec),
    direct dL/dh_{t-1} = (1 - alpha) ⊙ dL/dh_t, dL/dalpha = sum_t dL/dh_t ⊙ (n_t - h_{t-1}).
    """

    input_in_rec = True

    def __init__(self, activation: str, alpha: Tensor | None) -> None:
        self.activation = activation
        self.alpha = alpha

    def params(self) -> tuple[Tensor, ...]:
        return () if self.alpha is None else (self.alpha,)

    def state_widths(self, H):
        return (H,)

    def allocate(self, tape, H, xp):
        if self.alpha is not None:
            self.n, self.n_steps = tape.buffer(H)  # a_t, then n_t = act(a_t) in place

    def rec_target(self, t, new):
        # without leak, a_t is written where h_t goes and activated in place
        return new[0] if self.alpha is None else self.n_steps[t]

    def forward(self, t, prev, new):
        if self.alpha is None:
            _IN_PLACE[self.activation](new[0])
            return
        n = _IN_PLACE[self.activation](self.n_steps[t])
        torch.addcmul(prev[0], self.alpha, n - prev[0], out=new[0])

    def can_compile(self, xp):
        return super().can_compile(xp) and self.activation in elman_loop.ACTIVATIONS

    def scan_forward(self, batch_sizes, xp, weight_hh, bias_hh, mask, state0, states):
        H = weight_hh.shape[1]
        array = functools.partial(contiguous_array, like=xp)

        # shared with scan_backward
        self.arrays = {"w": array(weight_hh), "bs": batch_sizes, "h0": array(state0[0]), "mask": array(mask, 0, H),
                       "alpha": array(self.alpha, 0), "n": array(self.n if self.alpha is not None else None, 0, H)}
        a = self.arrays
        elman_loop.forward(array(xp), a["w"], a["bs"], a["h0"], a["mask"], a["alpha"],
                           elman_loop.ACTIVATIONS[self.activation], states[0].numpy(), a["n"])

    def scan_backward(self, d_out, d_state, weight_hh, states):
        a = self.arrays
        d_out = contiguous_array(d_out, 0, weight_hh.shape[1], like=weight_hh)
        self.d_alpha = torch.zeros(a["alpha"].shape, dtype=torch.float64)  # summed over the rows in the loop
        elman_loop.backward(d_out, d_state[0].numpy(), a["w"], a["bs"], a["h0"], a["mask"], a["alpha"],
                            elman_loop.ACTIVATIONS[self.activation], states[0].detach().numpy(), a["n"],
                            self._d_xp.numpy(), self.d_alpha.numpy())

    def allocate_grads(self, tape, H):
        self._d_xp, self.d_xp_steps = tape.buffer(H, escapes=True)
        if self.alpha is not None and not self.compiled:
            self.d_h, self.d_h_steps = tape.buffer(H)

    def backward(self, t, d_state, prev, cur):
        dh = d_state[0]
        d_xp = self.d_xp_steps[t]
        if self.alpha is None:
            return None, activation_backward(self.activation, dh, cur[0], d_xp)
        self.d_h_steps[t].copy_(dh)
        activation_backward(self.activation, dh * self.alpha, self.n_steps[t], d_xp)
        return dh - dh * self.alpha, d_xp

    def d_xp(self):
        return self._d_xp

    def d_rec(self):
        return self._d_xp

    def param_grads(self, prev_all, states, needs):
        if self.alpha is None:
            return ()
        if not needs[0]:
            return (None,)
        if self.compiled:  # summed in the loop (scan_backward)
            return (self.d_alpha.to(self.alpha.dtype),)
        return (((self.n - prev_all[0]) * self.d_h).sum(0),)


class GRUKernel(StepKernel):
    """r, z = sigmoid(xp_rz + rec_rz); n = tanh(xp_n + r ⊙ rec_n); h = n + z ⊙ (h_{t-1} - n).

    Backward (dh = dL/dh_t):
        dz  = dh ⊙ (h_{t-1} - n)          dn = dh ⊙ (1 - z)       direct dh_{t-1} = dh ⊙ z
        da_n = dn ⊙ (1 - n^2)             dr = da_n ⊙ rec_n
        da_r = dr ⊙ r (1 - r)             da_z = dz ⊙ z (1 - z)
        d_xp = [da_r, da_z, da_n]         d_rec = [da_r, da_z, r ⊙ da_n]
    """

    def state_widths(self, H):
        return (H,)

    def allocate(self, tape, H, xp):
        self.rec, self.rec_steps = tape.buffer(3 * H)  # W h_{t-1} + b_hh
        self.rec_rz, self.rec_n = tape.columns(self.rec, 2 * H, 2)
        self.gates, _ = tape.buffer(3 * H)  # r, z, n
        self.rz, self.n = tape.columns(self.gates, 2 * H, 2)
        self.r, self.z = tape.columns(self.gates, H, 2)
        self.xp_rz, self.xp_n = tape.columns(xp, 2 * H, 2)

    def rec_target(self, t, new):
        return self.rec_steps[t]

    def scan_forward(self, batch_sizes, xp, weight_hh, bias_hh, mask, state0, states):
        H = weight_hh.shape[1]
        array = functools.partial(contiguous_array, like=xp)

        # shared with scan_backward
        self.arrays = {"w": array(weight_hh), "bs": batch_sizes, "h0": array(state0[0]), "mask": array(mask, 0, H)}
        a = self.arrays
        gru_loop.forward(array(xp), a["w"], array(bias_hh, 0), a["bs"], a["h0"], a["mask"], states[0].numpy(),
                         self.gates.numpy(), self.rec.numpy())

    def scan_backward(self, d_out, d_state, weight_hh, states):
        a = self.arrays
        d_out = contiguous_array(d_out, 0, weight_hh.shape[1], like=weight_hh)
        gru_loop.backward(d_out, d_state[0].numpy(), a["w"], a["bs"], a["h0"], a["mask"],
                          states[0].detach().numpy(), self.gates.numpy(), self.rec.numpy(), self._d_xp.numpy(),
                          self._d_rec.numpy())

    def forward(self, t, prev, new):
        torch.add(self.xp_rz[t], self.rec_rz[t], out=self.rz[t]).sigmoid_()
        n = torch.addcmul(self.xp_n[t], self.r[t], self.rec_n[t], out=self.n[t]).tanh_()
        torch.addcmul(n, self.z[t], prev[0] - n, out=new[0])

    def allocate_grads(self, tape, H):
        self._d_xp, _ = tape.buffer(3 * H, escapes=True)
        self.d_xp_rz, self.d_xp_n = tape.columns(self._d_xp, 2 * H, 2)
        self.d_xp_r, self.d_xp_z = tape.columns(self._d_xp, H, 2)
        self._d_rec, self.d_rec_steps = tape.buffer(3 * H)
        self.d_rec_rz, self.d_rec_n = tape.columns(self._d_rec, 2 * H, 2)

    def backward(self, t, d_state, prev, cur):
        dh = d_state[0]
        n = self.n[t]
        dh_z = dh * self.z[t]  # the direct path to h_{t-1}
        dn = dh - dh_z
        da_n = torch.addcmul(dn, dn * n, n, value=-1.0, out=self.d_xp_n[t])
        torch.mul(da_n, self.rec_n[t], out=self.d_xp_r[t])  # dr
        torch.mul(dh, prev[0] - n, out=self.d_xp_z[t])  # dz
        d_rz = self.d_xp_rz[t].mul_(sigmoid_derivative(self.rz[t]))
        self.d_rec_rz[t].copy_(d_rz)
        torch.mul(da_n, self.r[t], out=self.d_rec_n[t])
        return dh_z, self.d_rec_steps[t]

    def d_xp(self):
        return self._d_xp

    def d_rec(self):
        return self._d_rec


class LSTMKernel(StepKernel):
    """LSTM step with optional diagonal peepholes p and layer norm N_x, N_h, N_c (see LSTMCell).

    xp_t is U x_t + b, or U x_t with layer norm (b is then N_x's shift, and N_x applied here:
    by torch's layer norm over every row at once on the Python loop, per row in the compiled one).

    Forward: a = N_x(xp_t) + N_h(rec_t); i, f = sigmoid(a_if + p_if ⊙ c_{t-1}); g = act(a_g) (tanh by default);
    c_t = f ⊙ c_{t-1} + i ⊙ g; o = sigmoid(a_o + p_o ⊙ c_t); h_t = o ⊙ tanh(N_c(c_t)).

    Backward (dh = dL/dh_t, dc = dL/dc_t from step t+1):
        da_o = dh ⊙ tanh(N_c(c_t)) ⊙ o (1 - o)
        dc  += N_c'^T (dh ⊙ o ⊙ (1 - tanh^2)) + p_o ⊙ da_o
        da_i = dc ⊙ g ⊙ i (1 - i)     da_f = dc ⊙ c_{t-1} ⊙ f (1 - f)     da_g = dc ⊙ i ⊙ act'(a_g)
        dc_{t-1} = dc ⊙ f + p_i ⊙ da_i + p_f ⊙ da_f
        d_xp = N_x'^T da,  d_rec = N_h'^T da
    """

    #: the compiled loop computes the recurrent products itself while a step's product has at
    #: most this many multiply-adds (rows x 4H x H); beyond, torch's matmul does, a step at a
    #: time, and the loop the rest of each step (`python benchmarks/recurrent.py --batches`:
    #: at H = 128 and 4 rows the loop's own product is 7% faster, at H = 256 and 1 row 8% slower)
    PRODUCT_MACS = 2**18

    def __init__(self, peephole: Tensor | None, ln_gain_hh: Tensor | None,
                 ln_gain_c: Tensor | None, ln_bias_c: Tensor | None, eps: float,
                 candidate_activation: str = "tanh", ln_gain_ih: Tensor | None = None,
                 ln_shift_ih: Tensor | None = None) -> None:
        self.candidate_activation = candidate_activation
        self.peephole = peephole
        self.ln_gain_hh = ln_gain_hh
        self.ln_gain_c = ln_gain_c
        self.ln_bias_c = ln_bias_c
        self.ln_gain_ih = ln_gain_ih  # N_x's gain, and its shift b (None: no bias)
        self.ln_shift_ih = ln_shift_ih
        self.layer_norm = ln_gain_hh is not None
        self.eps = eps
        self.input_in_rec = not self.layer_norm  # a = xp + W h in one addmm

    def params(self):
        return tuple(self._named_params().values())

    def _named_params(self) -> dict[str, Tensor]:
        """:meth:`params` by the names of the compiled loop's gradients, in order."""
        named = {"peephole": self.peephole} if self.peephole is not None else {}
        if self.layer_norm:
            named |= {"gain_hh": self.ln_gain_hh, "gain_c": self.ln_gain_c, "bias_c": self.ln_bias_c,
                      "gain_x": self.ln_gain_ih}
            if self.ln_shift_ih is not None:
                named["shift_x"] = self.ln_shift_ih
        return named

    def state_widths(self, H):
        return (H, H)

    def allocate(self, tape, H, xp):
        self.H = H
        self.gates, self.a_steps = tape.buffer(4 * H)  # pre-activations, then i, f, g, o in place
        self.i, self.f, self.g, self.o = tape.columns(self.gates, H, 4)
        self.if_, _ = tape.columns(self.gates, 2 * H, 2)
        self.tanh_c, self.tanh_c_steps = tape.buffer(H)  # tanh(N_c(c_t))
        self.xp = xp
        if self.layer_norm and not self.compiled:  # N_x(xp) for every row at once; the compiled loop's is per row
            xp, *self.stats_x = torch.native_layer_norm(xp, (4 * H,), self.ln_gain_ih, self.ln_shift_ih, self.eps)
        self.xp_steps = tape.rows(xp)
        if self.layer_norm:
            self.rec, self.rec_steps = tape.buffer(4 * H)  # W h_{t-1}, input of N_h
            self.stats_h: list[tuple[Tensor, Tensor]] = []  # (mean, 1/std) of N_h per step
            self.stats_c: list[tuple[Tensor, Tensor]] = []
        else:
            self.rec_steps = self.a_steps  # the engine writes xp_t + W h_{t-1} straight here
        if self.peephole is not None:
            self.p_i, self.p_f, self.p_o = self.peephole

    def rec_target(self, t, new):
        return self.rec_steps[t]

    def forward(self, t, prev, new):
        H = self.H
        c_prev = prev[1]
        if self.layer_norm:
            rec_n, mean, rstd = torch.native_layer_norm(self.rec_steps[t], (4 * H,), self.ln_gain_hh, None, self.eps)
            self.stats_h.append((mean, rstd))
            torch.add(self.xp_steps[t], rec_n, out=self.a_steps[t])
        i, f, g, o = self.i[t], self.f[t], self.g[t], self.o[t]
        if self.peephole is not None:
            i.addcmul_(self.p_i, c_prev)
            f.addcmul_(self.p_f, c_prev)
        else:
            o.sigmoid_()
        self.if_[t].sigmoid_()
        _IN_PLACE[self.candidate_activation](g)
        c = torch.mul(f, c_prev, out=new[1]).addcmul_(i, g)
        if self.peephole is not None:
            o.addcmul_(self.p_o, c).sigmoid_()
        if self.layer_norm:
            c, mean, rstd = torch.native_layer_norm(c, (H,), self.ln_gain_c, self.ln_bias_c, self.eps)
            self.stats_c.append((mean, rstd))
        torch.mul(o, torch.tanh(c, out=self.tanh_c_steps[t]), out=new[0])

    def scan_forward(self, batch_sizes, xp, weight_hh, bias_hh, mask, state0, states):
        H, N = self.H, xp.shape[0]
        array = functools.partial(contiguous_array, like=xp)

        # shared with scan_backward: the inputs, the parameters, and the (2, N) mean and 1/std of
        # N_h, N_c and N_x per row
        self.mask = mask
        self.arrays = {"xp": array(xp), "w": array(weight_hh), "offsets": lstm_loop.row_offsets(batch_sizes),
                       "c0": array(state0[1]),
                       "mask": array(mask, 0, H), "peephole": array(self.peephole, 0, H),
                       "gain_hh": array(self.ln_gain_hh, 0), "gain_c": array(self.ln_gain_c, 0),
                       "gain_x": array(self.ln_gain_ih, 0), "rec": array(self.rec if self.layer_norm else None, 0, 4 * H)}
        for k in ("moments_h", "moments_c", "moments_x"):
            self.arrays[k] = np.empty((2, N if self.layer_norm else 0), self.arrays["w"].dtype)
        a = self.arrays
        args = (a["xp"], a["w"], a["offsets"], array(state0[0]), a["c0"], a["mask"], a["peephole"], a["gain_hh"],
                a["gain_c"], array(self.ln_bias_c, 0), a["gain_x"], array(self.ln_shift_ih, 0), self.eps,
                lstm_loop.ACTIVATIONS[self.candidate_activation], states[0].numpy(), states[1].numpy(),
                self.gates.numpy(), self.tanh_c.numpy(), a["rec"], a["moments_h"], a["moments_c"], a["moments_x"])
        T = len(batch_sizes)
        if self._products_compiled():
            lstm_loop.forward(*args, 0, T, True)
            return
        # rec_t = W (h_{t-1} ⊙ m) by torch's matmul (every core), the rest compiled, a step at a
        # time, its rows in parts on numba's threads (rnnkit.threads)
        offsets, h, w_t = a["offsets"], states[0], weight_hh.t()
        target = self.rec if self.layer_norm else self.gates
        with pass_parts(int(batch_sizes[0]), H) as parts:
            for t in range(T):
                b, o = int(batch_sizes[t]), int(offsets[t])
                hp = state0[0][:b] if t == 0 else h[offsets[t - 1] : offsets[t - 1] + b]
                torch.mm(hp if mask is None else hp * mask[:b], w_t, out=target[o : o + b])
                cut = step_parts(parts, b, H)
                if cut > 1:
                    lstm_loop.forward_parallel(*args, t, cut)
                else:
                    lstm_loop.forward(*args, t, t + 1, False)

    def _products_compiled(self) -> bool:
        """Whether the compiled loop also computes the recurrent products (its blocked product,
        one thread) or torch's matmul does (every core): see :data:`PRODUCT_MACS`."""
        offsets = self.arrays["offsets"]
        return int(offsets[1] - offsets[0]) * self.arrays["w"].size <= self.PRODUCT_MACS

    def scan_backward(self, d_out, d_state, weight_hh, states):
        H, a = self.H, self.arrays
        d_out = contiguous_array(d_out, 0, H, like=weight_hh)
        d_rec = self._d_rec if self.layer_norm else weight_hh.new_empty(0, 4 * H)
        offsets = a["offsets"]
        compiled_products = self._products_compiled()
        with contextlib.nullcontext(1) if compiled_products else pass_parts(int(offsets[1]), H) as parts:
            # the kernel's own parameters' gradients, summed over the rows in the loop, per part
            named = self._named_params()
            by_name = {k: torch.zeros((parts, *p.shape), dtype=torch.float64) for k, p in named.items()}
            empty = {2: torch.empty(parts, 0, H, dtype=torch.float64), 1: torch.empty(parts, 0, dtype=torch.float64)}
            d_peephole = by_name.get("peephole", empty[2])
            d_ln = [by_name.get(k, empty[1]).numpy() for k in ("gain_hh", "gain_c", "bias_c", "gain_x", "shift_x")]
            args = (d_out, d_state[0].numpy(), d_state[1].numpy(), a["w"], offsets, a["c0"], a["mask"], a["peephole"],
                    a["gain_hh"], a["gain_c"], a["gain_x"], lstm_loop.ACTIVATIONS[self.candidate_activation], a["xp"],
                    states[1].detach().numpy(), self.gates.numpy(), self.tanh_c.numpy(), a["rec"], a["moments_h"],
                    a["moments_c"], a["moments_x"], self._d_xp.numpy(), d_rec.numpy(), d_peephole.numpy(), *d_ln)
            T = len(offsets) - 1
            if compiled_products:
                lstm_loop.backward(*args, 0, T, True)
            else:  # dL/dh_{t-1} = (W^T dL/drec_t) ⊙ m by torch's matmul, the rest compiled, a step at a time
                dh, mask = d_state[0], self.mask
                d_rows = d_rec if self.layer_norm else self._d_xp
                for t in range(T - 1, -1, -1):
                    o = int(offsets[t])
                    b = int(offsets[t + 1]) - o
                    cut = step_parts(parts, b, H)
                    if cut > 1:
                        lstm_loop.backward_parallel(*args, t, cut)
                    else:
                        lstm_loop.backward(*args, t, t + 1, False)
                    torch.mm(d_rows[o : o + b], weight_hh, out=dh[:b])
                    if mask is not None:
                        dh[:b].mul_(mask[:b])
        self.d_params = [d.sum(0) for d in by_name.values()]  # the parts' sums, added in order

    def allocate_grads(self, tape, H):
        self._d_xp, self.d_xp_steps = tape.buffer(4 * H, escapes=True)
        self.d_i, self.d_f, self.d_g, self.d_o = tape.columns(self._d_xp, H, 4)
        self.d_if, _ = tape.columns(self._d_xp, 2 * H, 2)
        if self.layer_norm:
            self._d_rec, self.d_rec_steps = tape.buffer(4 * H)
            if not self.compiled:
                self.d_cn, self.d_cn_steps = tape.buffer(H)  # dL/dN_c(c_t), for N_c's gain and shift
                self._n_x_grads: list[Tensor] | None = None

    def backward(self, t, d_state, prev, cur):
        dh, dc = d_state
        H = self.H
        i, f, g, o, tanh_c = self.i[t], self.f[t], self.g[t], self.o[t], self.tanh_c_steps[t]
        da_o = torch.mul(dh, tanh_c, out=self.d_o[t]).mul_(sigmoid_derivative(o))
        d_tanh = dh * o
        if self.layer_norm:  # dL/dN_c(c_t), kept for the gain and shift of N_c
            d_cn = torch.addcmul(d_tanh, d_tanh * tanh_c, tanh_c, value=-1.0, out=self.d_cn_steps[t])
            mean, rstd = self.stats_c[t]
            d_cn = _layer_norm_backward(d_cn, cur[1], (H,), mean, rstd,
                                        self.ln_gain_c, self.ln_bias_c, [True, False, False])[0]
        else:
            d_cn = torch.addcmul(d_tanh, d_tanh * tanh_c, tanh_c, value=-1.0)
        dc_t = dc + d_cn  # dL/dc_t in full
        if self.peephole is not None:
            dc_t.addcmul_(self.p_o, da_o)
        torch.mul(dc_t, g, out=self.d_i[t])
        torch.mul(dc_t, prev[1], out=self.d_f[t])
        d_g = torch.mul(dc_t, i, out=self.d_g[t])
        self.d_if[t].mul_(sigmoid_derivative(self.if_[t]))
        activation_backward(self.candidate_activation, d_g, g, out=d_g)
        torch.mul(dc_t, f, out=dc)  # dL/dc_{t-1} (direct)
        if self.peephole is not None:
            dc.addcmul_(self.p_i, self.d_i[t]).addcmul_(self.p_f, self.d_f[t])
        da = self.d_xp_steps[t]
        if not self.layer_norm:
            return None, da
        mean, rstd = self.stats_h[t]
        d_rec = self.d_rec_steps[t]
        d_rec.copy_(_layer_norm_backward(da, self.rec_steps[t], (4 * H,), mean, rstd,
                                         self.ln_gain_hh, None, [True, False, False])[0])
        return None, d_rec

    def d_xp(self):
        if self.layer_norm and not self.compiled:  # the compiled loop wrote N_x'^T dL/da itself
            return self._input_norm_grads()[0]
        return self._d_xp

    def _input_norm_grads(self) -> list[Tensor]:
        """N_x'^T dL/da and the gradients of N_x's gain and shift, over every row at once
        (the Python loop's d_xp buffer holds dL/da)."""
        if self._n_x_grads is None:
            mean, rstd = self.stats_x
            self._n_x_grads = _layer_norm_backward(self._d_xp, self.xp, (4 * self.H,), mean, rstd, self.ln_gain_ih,
                                                   self.ln_shift_ih, [True, True, self.ln_shift_ih is not None])
        return self._n_x_grads

    def d_rec(self):
        return self._d_rec if self.layer_norm else self._d_xp

    def param_grads(self, prev_all, states, needs):
        if self.compiled:  # summed in the loop (scan_backward)
            return tuple(d.to(p.dtype) if need else None for d, p, need in zip(self.d_params, self.params(), needs))
        grads: list[Tensor | None] = []
        c = states[1]
        H = self.H
        da = self._d_xp
        k = 0
        if self.peephole is not None:
            if needs[0]:
                c_prev = prev_all[1]
                grads.append(torch.stack([
                    (da[:, :H] * c_prev).sum(0),
                    (da[:, H : 2 * H] * c_prev).sum(0),
                    (da[:, 3 * H :] * c).sum(0),
                ]))
            else:
                grads.append(None)
            k = 1
        if self.layer_norm:
            # the gains' and shift's gradients over all rows at once, without big temporaries
            mean, rstd = (torch.cat(s) for s in zip(*self.stats_h))
            d_gain_hh = _layer_norm_backward(da, self.rec, (4 * H,), mean, rstd, self.ln_gain_hh,
                                             None, [False, True, False])[1]
            mean, rstd = (torch.cat(s) for s in zip(*self.stats_c))
            _, d_gain_c, d_bias_c = _layer_norm_backward(
                self.d_cn, c, (H,), mean, rstd, self.ln_gain_c, self.ln_bias_c,
                [False, needs[k + 1], needs[k + 2]])
            _, d_gain_x, d_shift_x = self._input_norm_grads()
            grads += [d_gain_hh if needs[k] else None, d_gain_c, d_bias_c, d_gain_x if needs[k + 3] else None]
            if self.ln_shift_ih is not None:
                grads.append(d_shift_x if needs[k + 4] else None)
        return tuple(grads)
