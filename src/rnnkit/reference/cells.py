"""NumPy reference for the built-in cells: one step forward, and its derivative by hand.

Column-vector notation of the course, one sequence, no batch:

    a_t = b + W h_{t-1} + U x_t

Every ``*_step`` returns the new state and a cache; every ``*_step_backward`` takes the
gradient of the loss with respect to the step's outputs (dL/dh_t, and dL/dc_t for the
LSTM) and returns the gradients with respect to everything the step read, written out by
the chain rule, one line per equation of the forward pass. :func:`bptt` runs any of them
over a sequence. No torch here: this is the oracle the torch code is tested against.

Gate blocks are stacked in torch's order (LSTM: i, f, g, o; GRU: r, z, n), so
``U = weight_ih``, ``W = weight_hh`` of the torch cells, and b_ih, b_hh their biases.
"""

from __future__ import annotations

import numpy as np

Array = np.ndarray
EPS = 1e-5  # layer norm


def sigmoid(a: Array) -> Array:
    return 1.0 / (1.0 + np.exp(-a))


# ----------------------------------------------------------------------------- activations

def activation(name: str, a: Array) -> Array:
    """act(a) for the Elman activations."""
    if name == "tanh":
        return np.tanh(a)
    if name == "sigmoid":
        return sigmoid(a)
    if name == "relu":
        return np.maximum(a, 0.0)
    if name == "elu":
        return np.where(a > 0, a, np.expm1(a))
    raise ValueError(f"unknown activation {name!r}")


def activation_derivative(name: str, a: Array) -> Array:
    """act'(a)."""
    if name == "tanh":
        return 1.0 - np.tanh(a) ** 2
    if name == "sigmoid":
        s = sigmoid(a)
        return s * (1.0 - s)
    if name == "relu":
        return (a > 0).astype(a.dtype)
    if name == "elu":
        return np.where(a > 0, 1.0, np.exp(a))
    raise ValueError(f"unknown activation {name!r}")


# ----------------------------------------------------------------------------- Elman / leaky

def elman_step(x: Array, h_prev: Array, U: Array, W: Array, b_ih: Array, b_hh: Array,
               act: str = "tanh", alpha: Array | None = None) -> tuple[Array, dict]:
    """h_t = act(a_t), a_t = b + W h_{t-1} + U x_t; with leak rates alpha:
    h_t = (1 - alpha) h_{t-1} + alpha act(a_t)."""
    a = b_ih + b_hh + W @ h_prev + U @ x
    n = activation(act, a)
    h = n if alpha is None else (1.0 - alpha) * h_prev + alpha * n
    return h, dict(x=x, h_prev=h_prev, a=a, n=n, U=U, W=W, act=act, alpha=alpha)


def elman_step_backward(dh: Array, cache: dict) -> dict[str, Array]:
    """dL/d(inputs and parameters) of one Elman step, from dL/dh_t."""
    alpha = cache["alpha"]
    dn = dh if alpha is None else alpha * dh  # h = (1 - alpha) h_prev + alpha n
    da = activation_derivative(cache["act"], cache["a"]) * dn  # n = act(a)
    grads = dict(
        x=cache["U"].T @ da,  # a = ... + U x
        h_prev=cache["W"].T @ da,  # a = ... + W h_prev
        U=np.outer(da, cache["x"]),
        W=np.outer(da, cache["h_prev"]),
        b_ih=da,
        b_hh=da,
    )
    if alpha is not None:
        grads["h_prev"] = grads["h_prev"] + (1.0 - alpha) * dh
        grads["alpha"] = (cache["n"] - cache["h_prev"]) * dh
    return grads


# ----------------------------------------------------------------------------- GRU

def gru_step(x: Array, h_prev: Array, U: Array, W: Array, b_ih: Array, b_hh: Array) -> tuple[Array, dict]:
    """r = sig(U_r x + b_ir + W_r h + b_hr), z = sig(U_z x + b_iz + W_z h + b_hz),
    n = tanh(U_n x + b_in + r (W_n h + b_hn)), h_t = (1 - z) n + z h_{t-1}."""
    gx = U @ x + b_ih  # (3H,)
    gh = W @ h_prev + b_hh
    xr, xz, xn = np.split(gx, 3)
    hr, hz, hn = np.split(gh, 3)
    r = sigmoid(xr + hr)
    z = sigmoid(xz + hz)
    n = np.tanh(xn + r * hn)
    h = (1.0 - z) * n + z * h_prev
    return h, dict(x=x, h_prev=h_prev, r=r, z=z, n=n, hn=hn, U=U, W=W)


def gru_step_backward(dh: Array, cache: dict) -> dict[str, Array]:
    """dL/d(inputs and parameters) of one GRU step, from dL/dh_t."""
    r, z, n, hn, h_prev = cache["r"], cache["z"], cache["n"], cache["hn"], cache["h_prev"]
    dn = dh * (1.0 - z)  # h = (1 - z) n + z h_prev
    dz = dh * (h_prev - n)
    dh_prev = dh * z
    dan = dn * (1.0 - n**2)  # n = tanh(an), an = xn + r hn
    dr = dan * hn
    dhn = dan * r
    dar = dr * r * (1.0 - r)  # r = sig(ar)
    daz = dz * z * (1.0 - z)
    dgx = np.concatenate([dar, daz, dan])  # gx = U x + b_ih
    dgh = np.concatenate([dar, daz, dhn])  # gh = W h_prev + b_hh
    return dict(
        x=cache["U"].T @ dgx,
        h_prev=dh_prev + cache["W"].T @ dgh,
        U=np.outer(dgx, cache["x"]),
        W=np.outer(dgh, h_prev),
        b_ih=dgx,
        b_hh=dgh,
    )


# ----------------------------------------------------------------------------- LSTM

def layer_norm(a: Array, gain: Array, shift: Array | None) -> tuple[Array, tuple]:
    """N(a) = gain (a - mean(a)) / sqrt(var(a) + eps) + shift."""
    mu = a.mean()
    rstd = 1.0 / np.sqrt(((a - mu) ** 2).mean() + EPS)
    a_hat = (a - mu) * rstd
    out = gain * a_hat + (0.0 if shift is None else shift)
    return out, (a_hat, rstd, gain)


def layer_norm_backward(dout: Array, cache: tuple) -> tuple[Array, Array, Array]:
    """(dL/da, dL/dgain, dL/dshift) of N(a)."""
    a_hat, rstd, gain = cache
    d_hat = dout * gain
    # a_hat = (a - mu) rstd: the mean and the variance both depend on every a_j
    da = rstd * (d_hat - d_hat.mean() - a_hat * (d_hat * a_hat).mean())
    return da, dout * a_hat, dout


def lstm_step(x: Array, h_prev: Array, c_prev: Array, U: Array, W: Array, b_ih: Array, b_hh: Array,
              peephole: Array | None = None, ln: dict | None = None) -> tuple[Array, Array, dict]:
    """i = sig(a_i + p_i c_{t-1}), f = sig(a_f + p_f c_{t-1}), g = tanh(a_g),
    c_t = f c_{t-1} + i g, o = sig(a_o + p_o c_t), h_t = o tanh(N_c(c_t)),
    a = N_x(U x) + N_h(W h_{t-1}) + b_ih + b_hh.

    ``peephole``: (3, H) rows p_i, p_f, p_o. ``ln``: dict of gain_ih, gain_hh, gain_c,
    shift_c for layer norm (None: N_x, N_h, N_c are the identity).
    """
    ux, wh = U @ x, W @ h_prev
    cache = dict(x=x, h_prev=h_prev, c_prev=c_prev, U=U, W=W, peephole=peephole, ln=ln)
    if ln is not None:
        ux, cache["ln_x"] = layer_norm(ux, ln["gain_ih"], None)
        wh, cache["ln_h"] = layer_norm(wh, ln["gain_hh"], None)
    a_i, a_f, a_g, a_o = np.split(ux + wh + b_ih + b_hh, 4)
    if peephole is not None:
        a_i = a_i + peephole[0] * c_prev
        a_f = a_f + peephole[1] * c_prev
    i, f, g = sigmoid(a_i), sigmoid(a_f), np.tanh(a_g)
    c = f * c_prev + i * g
    if peephole is not None:
        a_o = a_o + peephole[2] * c
    o = sigmoid(a_o)
    c_n = c
    if ln is not None:
        c_n, cache["ln_c"] = layer_norm(c, ln["gain_c"], ln["shift_c"])
    tanh_c = np.tanh(c_n)
    h = o * tanh_c
    cache.update(i=i, f=f, g=g, o=o, c=c, tanh_c=tanh_c)
    return h, c, cache


def lstm_step_backward(dh: Array, dc: Array, cache: dict) -> dict[str, Array]:
    """dL/d(inputs and parameters) of one LSTM step, from dL/dh_t and dL/dc_t."""
    i, f, g, o, c, tanh_c = (cache[k] for k in ("i", "f", "g", "o", "c", "tanh_c"))
    c_prev, p, ln = cache["c_prev"], cache["peephole"], cache["ln"]
    grads: dict[str, Array] = {}
    do = dh * tanh_c  # h = o tanh(N_c(c))
    dc_n = dh * o * (1.0 - tanh_c**2)
    if ln is not None:
        dc_from_h, grads["gain_c"], grads["shift_c"] = layer_norm_backward(dc_n, cache["ln_c"])
    else:
        dc_from_h = dc_n
    da_o = do * o * (1.0 - o)  # o = sig(a_o + p_o c)
    dc = dc + dc_from_h + (0.0 if p is None else p[2] * da_o)
    di, df, dg = dc * g, dc * c_prev, dc * i  # c = f c_prev + i g
    da_i, da_f, da_g = di * i * (1.0 - i), df * f * (1.0 - f), dg * (1.0 - g**2)
    dc_prev = dc * f
    if p is not None:
        dc_prev = dc_prev + p[0] * da_i + p[1] * da_f
        grads["peephole"] = np.stack([da_i * c_prev, da_f * c_prev, da_o * c])
    da = np.concatenate([da_i, da_f, da_g, da_o])  # a = N_x(U x) + N_h(W h) + b
    dux, dwh = da, da
    if ln is not None:
        dux, grads["gain_ih"], _ = layer_norm_backward(da, cache["ln_x"])
        dwh, grads["gain_hh"], _ = layer_norm_backward(da, cache["ln_h"])
    grads.update(
        x=cache["U"].T @ dux,
        h_prev=cache["W"].T @ dwh,
        c_prev=dc_prev,
        U=np.outer(dux, cache["x"]),
        W=np.outer(dwh, cache["h_prev"]),
        b_ih=da,
        b_hh=da,
    )
    return grads


# ----------------------------------------------------------------------------- BPTT

def bptt(kind: str, xs: Array, state0: tuple[Array, ...], dhs: Array, params: dict,
         d_final: tuple[Array, ...] | None = None) -> tuple[Array, tuple[Array, ...], dict[str, Array]]:
    """Run a cell over a sequence and back-propagate through time, for L with known dL/dh_t.

    Args:
        kind: "elman", "gru" or "lstm".
        xs: (T, F) inputs. state0: (h_0,) or (h_0, c_0).
        dhs: (T, H) dL/dh_t from the outputs at each step (the loss reads h_1..h_T).
        params: the step function's keyword arguments (U, W, b_ih, b_hh, ...).
        d_final: dL/dstate_T from a loss on the final state.

    Returns:
        (hs (T, H), final state, gradients): gradients for xs ("x", (T, F)), the initial
        state ("h_0", "c_0") and every parameter, summed over time.
    """
    forward, backward = {
        "elman": (elman_step, elman_step_backward),
        "gru": (gru_step, gru_step_backward),
        "lstm": (lstm_step, lstm_step_backward),
    }[kind]
    state, hs, caches = state0, [], []
    for x in xs:  # forward through time
        *state, cache = forward(x, *state, **params)
        state = tuple(state)
        hs.append(state[0])
        caches.append(cache)
    final = state
    d_state = tuple(np.zeros_like(s) for s in state0) if d_final is None else d_final
    totals: dict[str, Array] = {}
    dxs = np.zeros_like(xs)
    for t in reversed(range(len(xs))):  # backward through time
        dh = d_state[0] + dhs[t]  # h_t feeds the output at t and the step t+1
        g = backward(dh, *d_state[1:], caches[t])
        dxs[t] = g.pop("x")
        d_state = (g.pop("h_prev"),) + ((g.pop("c_prev"),) if kind == "lstm" else ())
        for k, v in g.items():
            totals[k] = totals.get(k, 0.0) + v
    totals["x"] = dxs
    totals["h_0"] = d_state[0]
    if kind == "lstm":
        totals["c_0"] = d_state[1]
    return np.stack(hs), final, totals
