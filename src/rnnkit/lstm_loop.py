"""The LSTM's whole time loop, compiled: forward and hand-derived BPTT in one call each.

The fused engine (:mod:`rnnkit.unroll`) runs a step as a dozen torch ops called from Python,
2-5 us of dispatch each; with peepholes and layer norm that is ~60 ops a step, which at
small batch sizes costs far more than the arithmetic. Here the loop over t itself is
compiled (numba, cached on disk across processes): per step one product ``rec_t = W h_{t-1}``
(:func:`product`) and one pass over the rows for the pointwise maths, in the notation of :class:`rnnkit.kernels.LSTMKernel`:

    a = N_x(xp_t) + N_h(rec_t);  i, f = sigmoid(a_if + p_if ⊙ c_{t-1});  g = act(a_g)
    c_t = f ⊙ c_{t-1} + i ⊙ g;  o = sigmoid(a_o + p_o ⊙ c_t);  h_t = o ⊙ tanh(N_c(c_t))

and backward, from t = T-1 down, with dh = dL/dh_t (+ dL/dy_t), dc = dL/dc_t:

    da_o = dh ⊙ tanh(N_c(c_t)) ⊙ o(1-o);   dc += N_c'^T (dh ⊙ o ⊙ (1 - tanh^2)) + p_o ⊙ da_o
    da_i = dc ⊙ g ⊙ i(1-i);  da_f = dc ⊙ c_{t-1} ⊙ f(1-f);  da_g = dc ⊙ i ⊙ act'(a_g)
    dc_{t-1} = dc ⊙ f + p_i ⊙ da_i + p_f ⊙ da_f;   dh_{t-1} = W^T N_h'^T da  (⊙ m);   dxp_t = N_x'^T da

where N'^T is layer norm's input gradient, dx = rstd (dx̂ - mean(dx̂) - x̂ mean(dx̂ ⊙ x̂)) with
dx̂ = gain ⊙ dy (without layer norm every N is the identity, and xp_t holds the bias b; with
it b is N_x's shift). Rows are in the packed layout (step t owns rows o_t : o_t + b_t,
longest sequences first). Both functions write into buffers the kernel allocated, so the
gradient of W is formed after the loop as on the Python loop, which stays the fallback
(CUDA, other dtypes) and the oracle of the tests; the peepholes' and the layer norms'
gradients are summed in the loop.

Both also run a range of steps without the recurrent products, which the caller then forms
by torch's matmul between the calls (:class:`rnnkit.kernels.LSTMKernel` does so once a
step's product outgrows this loop's one-thread product: torch's uses every core, and the
loop still replaces the ~60 small tensor ops of a step's pointwise maths). The pointwise
maths of one step is then :func:`forward_parallel` / :func:`backward_parallel` when
:mod:`rnnkit.threads` allows: the step's rows, independent of each other, in ranges that
numba's threads run at once (the per-row work is one function, :func:`_forward_rows` /
:func:`_backward_rows`, for both).
"""

from __future__ import annotations

import math

import numba
import numpy as np

__all__ = ["ACTIVATIONS", "forward", "backward", "forward_parallel", "backward_parallel", "product", "activation_into", "activation_derivative",
           "row_offsets", "recurrent_product", "backprop_to_state", "backprop_scratch"]

#: the candidate activations act(a_g) the compiled loop knows, by code
ACTIVATIONS = {"tanh": 0, "sigmoid": 1, "relu": 2, "elu": 3}


#: fastmath flags of the pointwise passes: enough to vectorise (fused multiply-add, reordered
#: sums) without assuming away NaN or infinity
_FAST = {"contract", "reassoc", "nsz", "arcp"}
# exp(x) = 2^n 2^f, n = round(x log2 e), |f| <= 1/2; 2^f = sum_k (f ln 2)^k / k! to degree 7
# (relative error 3e-9, below float32's rounding); 2^n is built in the exponent bits
_LOG2E = np.float32(1.4426950408889634)
_EXP2 = [np.float32(math.log(2.0) ** k / math.factorial(k)) for k in range(8)]
_E0, _E1, _E2, _E3, _E4, _E5, _E6, _E7 = _EXP2
_LO, _HI, _HALF, _ONE, _TWO = (np.float32(v) for v in (-126.0, 126.0, 0.5, 1.0, 2.0))


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _exp_into(x, scale, out, bits):
    """out = exp(scale x). float32: a polynomial the compiler vectorises (x clamped to
    float32's normal range, enough for the sigmoid and tanh built on it); float64: libm."""
    n = x.shape[0]
    if out.itemsize == 8:
        for k in range(n):
            out[k] = math.exp(scale * x[k])
        return
    s = np.float32(scale) * _LOG2E
    for k in range(n):
        y = min(max(x[k] * s, _LO), _HI)
        m = np.floor(y + _HALF)
        f = y - m
        out[k] = ((((((_E7 * f + _E6) * f + _E5) * f + _E4) * f + _E3) * f + _E2) * f + _E1) * f + _E0
        bits[k] = (np.int32(m) + 127) << 23
    two_n = bits[:n].view(np.float32)
    for k in range(n):
        out[k] *= two_n[k]


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _sigmoid_into(x, out, bits):
    """out = 1 / (1 + exp(-x))."""
    _exp_into(x, -1.0, out, bits)
    for k in range(x.shape[0]):
        out[k] = _ONE / (_ONE + out[k])


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _tanh_into(x, out, bits):
    """out = tanh(x) = 2 sigmoid(2x) - 1 (libm's tanh is 3-5x slower here; this is within
    an ulp of 1 absolute, which is what the gradients see)."""
    _exp_into(x, -2.0, out, bits)
    for k in range(x.shape[0]):
        out[k] = _TWO / (_ONE + out[k]) - _ONE


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def activation_into(act, x, out, bits):
    """out = act(x) for a code of :data:`ACTIVATIONS`."""
    if act == 0:
        _tanh_into(x, out, bits)
    elif act == 1:
        _sigmoid_into(x, out, bits)
    elif act == 2:
        for k in range(x.shape[0]):
            out[k] = x[k] if x[k] > 0.0 else 0.0 * x[k]
    else:
        for k in range(x.shape[0]):
            out[k] = x[k] if x[k] > 0.0 else math.expm1(x[k])


@numba.njit(cache=True, inline="always")
def activation_derivative(act, y):
    """act'(a) from y = act(a)."""
    if act == 0:
        return 1.0 - y * y
    if act == 1:
        return y * (1.0 - y)
    if act == 2:
        return 1.0 if y > 0.0 else 0.0
    return 1.0 if y > 0.0 else y + 1.0


@numba.njit(cache=True, fastmath=True)
def _product_block(a, b, out, r):
    """out[r:r+4] = a[r:r+4] b^T, two columns of out at a time: 8 independent sums that the
    compiler vectorises along K, each row of b read once for four rows of a."""
    n, K = b.shape
    for k in range(0, n - 1, 2):
        s0 = a[r, 0] * b[k, 0]
        s1 = a[r + 1, 0] * b[k, 0]
        s2 = a[r + 2, 0] * b[k, 0]
        s3 = a[r + 3, 0] * b[k, 0]
        t0 = a[r, 0] * b[k + 1, 0]
        t1 = a[r + 1, 0] * b[k + 1, 0]
        t2 = a[r + 2, 0] * b[k + 1, 0]
        t3 = a[r + 3, 0] * b[k + 1, 0]
        for j in range(1, K):
            u = b[k, j]
            v = b[k + 1, j]
            s0 += a[r, j] * u
            s1 += a[r + 1, j] * u
            s2 += a[r + 2, j] * u
            s3 += a[r + 3, j] * u
            t0 += a[r, j] * v
            t1 += a[r + 1, j] * v
            t2 += a[r + 2, j] * v
            t3 += a[r + 3, j] * v
        out[r, k], out[r + 1, k], out[r + 2, k], out[r + 3, k] = s0, s1, s2, s3
        out[r, k + 1], out[r + 1, k + 1], out[r + 2, k + 1], out[r + 3, k + 1] = t0, t1, t2, t3
    if n % 2:
        out[r : r + 4, n - 1] = np.dot(a[r : r + 4], b[n - 1])


@numba.njit(cache=True, fastmath=True)
def _row_product(a, b, out):
    """out[0] = b a[0] for one row a (1, K): four sums at a time, vectorised along K. As fast
    as one thread of OpenBLAS's gemv here (17.6 vs 16.9 us at (1024, 320)); OpenBLAS's own
    threads are faster alone but then spin beside torch's and slow its next ops by up to 30%."""
    n, K = b.shape
    g = 0
    while g + 4 <= n:
        s0, s1, s2, s3 = a[0, 0] * b[g, 0], a[0, 0] * b[g + 1, 0], a[0, 0] * b[g + 2, 0], a[0, 0] * b[g + 3, 0]
        for k in range(1, K):
            x = a[0, k]
            s0 += x * b[g, k]
            s1 += x * b[g + 1, k]
            s2 += x * b[g + 2, k]
            s3 += x * b[g + 3, k]
        out[0, g], out[0, g + 1], out[0, g + 2], out[0, g + 3] = s0, s1, s2, s3
        g += 4
    for r in range(g, n):
        out[0, r] = np.dot(a[0], b[r])


@numba.njit(cache=True)
def product(a, b, out, pad_a, pad_out):
    """out = a b^T for row-major a (m, K), b (n, K). One row: :func:`_row_product`; more:
    blocks of four rows (:func:`_product_block`), the last partial block through the
    zero-padded scratch pad_a (4, K), pad_out (4, n). OpenBLAS takes 3-7x longer for
    2-16 rows here, and torch's mm up to 1.6x (issue 16's measurements)."""
    m = a.shape[0]
    if m == 1:
        _row_product(a, b, out)
        return
    full = m - m % 4
    for r in range(0, full, 4):
        _product_block(a, b, out, r)
    if full < m:
        pad_a[:] = 0.0
        pad_a[: m - full] = a[full:]
        _product_block(pad_a, b, pad_out, 0)
        out[full:] = pad_out[: m - full]


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _add(x, y, out):
    """out = x + y."""
    for k in range(x.shape[0]):
        out[k] = x[k] + y[k]


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _normalize(x, mean, rstd, gain, shift, out):
    """out = gain ⊙ (x - mean) rstd + shift, with shift a vector (or empty: none)."""
    n = x.shape[0]
    for k in range(n):
        out[k] = (x[k] - mean) * rstd * gain[k]
    if shift.shape[0] > 0:
        for k in range(n):
            out[k] += shift[k]


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _moments(x, eps):
    """(mean, 1/sqrt(var + eps)) of a row, summed in float64."""
    n = x.shape[0]
    s = 0.0
    for k in range(n):
        s += x[k]
    mean = s / n
    v = 0.0
    for k in range(n):
        d = x[k] - mean
        v += d * d
    return mean, 1.0 / math.sqrt(v / n + eps)


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy")
def _layer_norm_backward(dy, x, gain, mean, rstd, out, d_gain, d_shift):
    """out = N'^T dy for y = gain ⊙ x̂ (+ shift), x̂ = (x - mean) rstd: rstd (dx̂ - mean(dx̂) -
    x̂ mean(dx̂ ⊙ x̂)) with dx̂ = gain ⊙ dy; adds dy ⊙ x̂ to d_gain and dy to d_shift (or none:
    empty). One pass for the sums, in dy's precision (vectorised twice as wide as float64 in
    float32); out may be dy itself (each element is read before it is written)."""
    n = x.shape[0]
    s1 = dy.dtype.type(0.0)
    s2 = dy.dtype.type(0.0)
    shift = d_shift.shape[0] > 0
    for k in range(n):
        xh = (x[k] - mean) * rstd
        dxh = dy[k] * gain[k]
        d_gain[k] += dy[k] * xh
        if shift:
            d_shift[k] += dy[k]
        s1 += dxh
        s2 += dxh * xh
    s1 /= n
    s2 /= n
    for k in range(n):
        out[k] = rstd * (dy[k] * gain[k] - s1 - (x[k] - mean) * rstd * s2)


@numba.njit(cache=True)
def recurrent_product(hp, mask, h_in, w, out, pad_a, pad_out):
    """out = W (h_{t-1} ⊙ m) for the rows of hp (B_t, H): mask (B, H), or (0, H) for none;
    h_in (B, H): scratch for the masked rows."""
    if mask.shape[0] == 0:
        product(hp, w, out, pad_a, pad_out)
        return
    b = hp.shape[0]
    for r in range(b):
        for j in range(hp.shape[1]):
            h_in[r, j] = hp[r, j] * mask[r, j]
    product(h_in[:b], w, out, pad_a, pad_out)


@numba.njit(cache=True)
def backprop_to_state(d, wt, mask, back, dh, direct, pad_a, pad_out):
    """dL/dh_{t-1} for the b rows of d = dL/drec_t (b, G): dh[:b] = (W^T d) ⊙ m, plus what
    dh[:b] already holds (the cell's direct part) when ``direct``; wt = W^T (H, G) contiguous,
    mask (B, H) or (0, H) for none; back (B, H), pad_a (4, G), pad_out (4, H): scratch."""
    b = d.shape[0]
    H = wt.shape[0]
    product(d, wt, back[:b], pad_a, pad_out)
    masked = mask.shape[0] > 0
    for r in range(b):
        for j in range(H):
            v = back[r, j] * mask[r, j] if masked else back[r, j]
            dh[r, j] = dh[r, j] + v if direct else v


@numba.njit(cache=True)
def backprop_scratch(w, rows):
    """What :func:`backprop_to_state` takes besides its inputs, for W (G, H) and steps of at most
    ``rows`` rows: (W^T (H, G) contiguous, back (rows, H), pad_a (4, G), pad_out (4, H))."""
    G, H = w.shape
    return (np.ascontiguousarray(w.T), np.empty((rows, H), dtype=w.dtype), np.empty((4, G), dtype=w.dtype),
            np.empty((4, H), dtype=w.dtype))


@numba.njit(cache=True)
def row_offsets(bs):
    """o_t of every step of the packed layout (step t owns rows o_t : o_t + bs[t]), and N last: (T + 1,)."""
    offsets = np.zeros(bs.shape[0] + 1, dtype=np.int64)
    for t in range(bs.shape[0]):
        offsets[t + 1] = offsets[t] + bs[t]
    return offsets


@numba.njit(cache=True, inline="always")
def _previous(first, history, offsets, t):
    """state_{t-1} of the rows of step t: the initial state's first rows at t = 0, else the
    rows of step t-1 (packed layout: a step's rows are the first of the step before)."""
    b = offsets[t + 1] - offsets[t]
    return first[:b] if t == 0 else history[offsets[t - 1] : offsets[t - 1] + b]


@numba.njit(cache=True)
def _backward_scratch(dc):
    """Scratch of :func:`_backward_rows`: dL/dN_c(c_t) and N_c'^T of it (H each)."""
    return np.empty(dc.shape[1], dtype=dc.dtype), np.empty(dc.shape[1], dtype=dc.dtype)


@numba.njit(cache=True)
def _forward_scratch(xp, H):
    """Scratch of :func:`_forward_rows`: a, N_x(xp) (4H each), N_c(c) (H), _exp_into's bits (4H)."""
    return (np.empty(4 * H, dtype=xp.dtype), np.empty(4 * H, dtype=xp.dtype), np.empty(H, dtype=xp.dtype),
            np.empty(4 * H, dtype=np.int32))


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy", inline="always")
def _forward_rows(xp, peephole, gain_hh, gain_c, bias_c, gain_x, shift_x, eps, act, h, c, gates, tanh_c, rec,
                  stats_h, stats_c, stats_x, o, cp, lo, hi, scratch):
    """The pointwise maths of :func:`forward` for rows lo <= r < hi of the step whose rows
    start at o (cp: their c_{t-1}), its product already in rec (layer norm) or the gates."""
    H = cp.shape[1]
    layer_norm = gain_hh.shape[0] > 0
    peep = peephole.shape[0] > 0
    a, ax, cn, bits = scratch
    for r in range(lo, hi):
        row = o + r
        g_row, c_row, c_prev = gates[row], c[row], cp[r]
        if layer_norm:  # a = N_x(xp_t) + N_h(rec_t)
            mean, rstd = _moments(xp[row], eps)
            stats_x[0, row] = mean
            stats_x[1, row] = rstd
            _normalize(xp[row], stats_x[0, row], stats_x[1, row], gain_x, shift_x, ax)
            mean, rstd = _moments(rec[row], eps)
            stats_h[0, row] = mean
            stats_h[1, row] = rstd
            _normalize(rec[row], stats_h[0, row], stats_h[1, row], gain_hh, ax, a)
        else:  # the product was written into the gates
            _add(xp[row], g_row, a)
        if peep:
            for j in range(H):
                a[j] += peephole[0, j] * c_prev[j]
                a[H + j] += peephole[1, j] * c_prev[j]
        _sigmoid_into(a[: 2 * H], g_row[: 2 * H], bits)  # i, f
        activation_into(act, a[2 * H : 3 * H], g_row[2 * H : 3 * H], bits)  # g
        for j in range(H):
            c_row[j] = g_row[H + j] * c_prev[j] + g_row[j] * g_row[2 * H + j]
        if peep:
            for j in range(H):
                a[3 * H + j] += peephole[2, j] * c_row[j]
        _sigmoid_into(a[3 * H :], g_row[3 * H :], bits)  # o
        if layer_norm:  # tanh(N_c(c_t))
            mean, rstd = _moments(c_row, eps)
            stats_c[0, row] = mean
            stats_c[1, row] = rstd
            _normalize(c_row, stats_c[0, row], stats_c[1, row], gain_c, bias_c, cn)
            _tanh_into(cn, tanh_c[row], bits)
        else:
            _tanh_into(c_row, tanh_c[row], bits)
        h_row, tc_row = h[row], tanh_c[row]
        for j in range(H):
            h_row[j] = g_row[3 * H + j] * tc_row[j]


@numba.njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def forward(xp, w, offsets, h0, c0, mask, peephole, gain_hh, gain_c, bias_c, gain_x, shift_x, eps, act,
            h, c, gates, tanh_c, rec, stats_h, stats_c, stats_x, first, stop, products):
    """One layer-direction forward over the packed rows of the steps ``first <= t < stop``.

    Inputs: xp (N, 4H) = U x_t + b, or U x_t with layer norm; w = W (4H, H); offsets (T + 1,)
    int64, the packed layout's (:func:`row_offsets`); h0, c0 (B, H); mask (B, H) or (0, H) for none; peephole (3, H) or (0, H); gain_hh, gain_x
    (4H,), gain_c, bias_c (H,) or empty for no layer norm, shift_x (4H,) = b or empty for none;
    act: a code of :data:`ACTIVATIONS`; ``products``: compute
    rec_t = W (h_{t-1} ⊙ m) here, else the caller has written it (into rec with layer norm,
    else into the step's rows of gates).
    Outputs (written): h, c (N, H); gates (N, 4H) = i, f, g, o after their activations;
    tanh_c (N, H) = tanh(N_c(c_t)); with layer norm rec (N, 4H) = W h_{t-1} and stats_h,
    stats_c, stats_x (2, N) = mean and 1/std of N_h, N_c and N_x per row.
    """
    H = w.shape[1]
    layer_norm = gain_hh.shape[0] > 0
    pad_h, pad_g = np.empty((4, H), dtype=xp.dtype), np.empty((4, 4 * H), dtype=xp.dtype)
    h_in = np.empty(mask.shape if products else (0, H), dtype=w.dtype)  # h_{t-1} ⊙ m, for the rows of a step
    scratch = _forward_scratch(xp, H)
    for t in range(first, stop):
        o = offsets[t]
        b = offsets[t + 1] - o
        cp = _previous(c0, c, offsets, t)
        if products:
            hp = _previous(h0, h, offsets, t)
            target = rec[o : o + b] if layer_norm else gates[o : o + b]
            recurrent_product(hp, mask, h_in, w, target, pad_h, pad_g)  # W (h_{t-1} ⊙ m)
        _forward_rows(xp, peephole, gain_hh, gain_c, bias_c, gain_x, shift_x, eps, act, h, c, gates, tanh_c, rec,
                      stats_h, stats_c, stats_x, o, cp, 0, b, scratch)


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FAST, error_model="numpy")
def forward_parallel(xp, w, offsets, h0, c0, mask, peephole, gain_hh, gain_c, bias_c, gain_x, shift_x, eps, act,
                     h, c, gates, tanh_c, rec, stats_h, stats_c, stats_x, t, parts):
    """:func:`forward` of step t without its product, its rows cut into ``parts`` ranges
    that numba's threads run at once (rows are independent within a step)."""
    b = offsets[t + 1] - offsets[t]
    cp = _previous(c0, c, offsets, t)
    for k in numba.prange(parts):
        _forward_rows(xp, peephole, gain_hh, gain_c, bias_c, gain_x, shift_x, eps, act, h, c, gates, tanh_c, rec,
                      stats_h, stats_c, stats_x, offsets[t], cp, k * b // parts, (k + 1) * b // parts,
                      _forward_scratch(xp, cp.shape[1]))


@numba.njit(cache=True, fastmath=_FAST, error_model="numpy", inline="always")
def _backward_rows(d_out, dh, dc, peephole, gain_hh, gain_c, gain_x, act, xp, c, gates, tanh_c, rec, stats_h,
                   stats_c, stats_x, d_xp, d_rec, s_peep, s_gain_hh, s_gain_c, s_bias_c, s_gain_x, s_shift_x,
                   o, cp, lo, hi, scratch):
    """The pointwise maths of :func:`backward` for rows lo <= r < hi of the step whose rows
    start at o (cp: their c_{t-1}); adds into the parameters' gradients given (float64, or
    sums in the data's precision that the caller adds to them: :func:`_sums_like`, :func:`_fold`)."""
    H = cp.shape[1]
    layer_norm = gain_hh.shape[0] > 0
    peep = peephole.shape[0] > 0
    has_out = d_out.shape[0] > 0
    d_tanh, d_from_h = scratch
    for r in range(lo, hi):
        row = o + r
        for j in range(H):
            dhj = dh[r, j]
            if has_out:
                dhj += d_out[row, j]
            og = gates[row, 3 * H + j]
            tc = tanh_c[row, j]
            dao = dhj * tc * og * (1.0 - og)
            d_xp[row, 3 * H + j] = dao
            d_tanh[j] = dhj * og * (1.0 - tc * tc)  # dL/dN_c(c_t)
            if peep:
                s_peep[2, j] += dao * c[row, j]
        if layer_norm:
            _layer_norm_backward(d_tanh, c[row], gain_c, stats_c[0, row], stats_c[1, row], d_from_h, s_gain_c, s_bias_c)
        else:
            for j in range(H):
                d_from_h[j] = d_tanh[j]
        for j in range(H):
            dct = dc[r, j] + d_from_h[j]
            if peep:
                dct += peephole[2, j] * d_xp[row, 3 * H + j]
            i = gates[row, j]
            f = gates[row, H + j]
            g = gates[row, 2 * H + j]
            dai = dct * g * i * (1.0 - i)
            daf = dct * cp[r, j] * f * (1.0 - f)
            d_xp[row, j] = dai
            d_xp[row, H + j] = daf
            d_xp[row, 2 * H + j] = dct * i * activation_derivative(act, g)
            dcp = dct * f
            if peep:
                dcp += peephole[0, j] * dai + peephole[1, j] * daf
                s_peep[0, j] += dai * cp[r, j]
                s_peep[1, j] += daf * cp[r, j]
            dc[r, j] = dcp
        if layer_norm:  # dL/drec_t = N_h'^T dL/da, then dL/dxp = N_x'^T dL/da in place
            _layer_norm_backward(d_xp[row], rec[row], gain_hh, stats_h[0, row], stats_h[1, row], d_rec[row],
                                 s_gain_hh, s_gain_hh[:0])
            _layer_norm_backward(d_xp[row], xp[row], gain_x, stats_x[0, row], stats_x[1, row], d_xp[row],
                                 s_gain_x, s_shift_x)


@numba.njit(cache=True)
def _sums_like(d_peephole, d_gain_hh, d_gain_c, d_bias_c, d_gain_x, d_shift_x, like):
    """Zeroed sums shaped as the gradients given, in like's dtype (float32 sums vectorise twice
    as wide; a part's rows of one step are few enough for them)."""
    t = like.dtype
    return (np.zeros(d_peephole.shape, t), np.zeros(d_gain_hh.shape, t), np.zeros(d_gain_c.shape, t),
            np.zeros(d_bias_c.shape, t), np.zeros(d_gain_x.shape, t), np.zeros(d_shift_x.shape, t))


@numba.njit(cache=True)
def _fold(sums, d_peephole, d_gain_hh, d_gain_c, d_bias_c, d_gain_x, d_shift_x):
    """Move the sums of :func:`_sums_like` into the gradients (the sums are zero after)."""
    d_peephole += sums[0]
    d_gain_hh += sums[1]
    d_gain_c += sums[2]
    d_bias_c += sums[3]
    d_gain_x += sums[4]
    d_shift_x += sums[5]
    sums[0][...] = 0.0
    sums[1][:] = 0.0
    sums[2][:] = 0.0
    sums[3][:] = 0.0
    sums[4][:] = 0.0
    sums[5][:] = 0.0


#: :func:`backward` moves its sums in the data's precision into the float64 gradients at least
#: every this many rows
FOLD_ROWS = 32


@numba.njit(cache=True, nogil=True, fastmath=_FAST, error_model="numpy")
def backward(d_out, dh, dc, w, offsets, c0, mask, peephole, gain_hh, gain_c, gain_x, act, xp,
             c, gates, tanh_c, rec, stats_h, stats_c, stats_x, d_xp, d_rec, d_peephole, d_gain_hh, d_gain_c, d_bias_c,
             d_gain_x, d_shift_x, first, stop, products):
    """BPTT of :func:`forward` over the steps ``stop > t >= first``, from the last, in
    place: on entry dh, dc (B, H) hold dL/dh_t, dL/dc_t of each sequence after those steps
    (dL/dh_T, dL/dc_T of the final state for the last), on return dL/dc before them and, with
    ``products``, dL/dh; without, the caller forms dh[:b] = (W^T dL/drec_t) ⊙ m of the first
    step (its rows of d_rec with layer norm, else of d_xp). d_out (N, H) = dL/dy_t, or
    (0, H) for none. Writes d_xp (N, 4H) = dL/dxp (dL/da, or N_x'^T dL/da with layer norm)
    and d_rec (N, 4H) = dL/drec_t (with layer norm; without it rec_t is inside a and d_rec is
    not touched); adds the gradients of the peepholes (P, 3, H), of the layer norms' gains
    N_h (P, 4H), N_c (P, H) and its shift (P, H), N_x (P, 4H) and its shift b (P, 4H, or
    (P, 0) for none) into their first part (float64 sums over the rows; P >= 1, the parts of
    :func:`backward_parallel`; (P, 0, ...) when absent)."""
    layer_norm = gain_hh.shape[0] > 0
    wt, back, pad_g, pad_h = backprop_scratch(w if products else w[:0], dh.shape[0])
    scratch = _backward_scratch(dc)
    grads = (d_peephole[0], d_gain_hh[0], d_gain_c[0], d_bias_c[0], d_gain_x[0], d_shift_x[0])
    sums = _sums_like(*grads, dc)  # in the data's precision, moved into grads every FOLD_ROWS rows
    pending = 0
    for t in range(stop - 1, first - 1, -1):
        o = offsets[t]
        b = offsets[t + 1] - o
        cp = _previous(c0, c, offsets, t)
        _backward_rows(d_out, dh, dc, peephole, gain_hh, gain_c, gain_x, act, xp, c, gates, tanh_c, rec, stats_h,
                       stats_c, stats_x, d_xp, d_rec, sums[0], sums[1], sums[2], sums[3], sums[4], sums[5],
                       o, cp, 0, b, scratch)
        pending += b
        if pending >= FOLD_ROWS or t == first:
            _fold(sums, *grads)
            pending = 0
        if products:
            d = d_rec[o : o + b] if layer_norm else d_xp[o : o + b]
            backprop_to_state(d, wt, mask, back, dh, False, pad_g, pad_h)  # dL/dh_{t-1} = (W^T dL/drec_t) ⊙ m


@numba.njit(cache=True, nogil=True, parallel=True, fastmath=_FAST, error_model="numpy")
def backward_parallel(d_out, dh, dc, w, offsets, c0, mask, peephole, gain_hh, gain_c, gain_x, act, xp,
                      c, gates, tanh_c, rec, stats_h, stats_c, stats_x, d_xp, d_rec, d_peephole, d_gain_hh, d_gain_c,
                      d_bias_c, d_gain_x, d_shift_x, t, parts):
    """:func:`backward` of step t without its product, its rows cut into ``parts`` ranges
    that numba's threads run at once, part k adding into the k-th of the parameters' gradients."""
    b = offsets[t + 1] - offsets[t]
    cp = _previous(c0, c, offsets, t)
    for k in numba.prange(parts):
        grads = (d_peephole[k], d_gain_hh[k], d_gain_c[k], d_bias_c[k], d_gain_x[k], d_shift_x[k])
        sums = _sums_like(*grads, dc)
        _backward_rows(d_out, dh, dc, peephole, gain_hh, gain_c, gain_x, act, xp, c, gates, tanh_c, rec, stats_h,
                       stats_c, stats_x, d_xp, d_rec, sums[0], sums[1], sums[2], sums[3], sums[4], sums[5],
                       offsets[t], cp, k * b // parts, (k + 1) * b // parts, _backward_scratch(dc))
        _fold(sums, *grads)
