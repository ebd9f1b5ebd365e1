"""Generation from a recurrent language model with the whole token loop compiled (CPU).

Generating a token at batch 1 is little arithmetic (a 2 x 256 LSTM: ~0.9 M multiply-adds,
tens of us on one core), while running it as torch calls from Python (embedding, each
layer's step, the output layer, the filters, the sampling, the bookkeeping) costs ~20 calls
of 5-40 us each. Here one compiled call (numba, cached on disk across processes) runs a
block of tokens for every row, in the notation of :class:`rnnkit.models.LanguageModel`:

    x_t = P[y_{t-1}]                                   the embedding row of the last token
    h^l_t = cell(W^l [x^l_t; h^l_{t-1}] + b^l)         each layer, torch's gate order
                                                       (:mod:`rnnkit.inference_step`'s maths)
    z_t = V h^L_t + c                                  (after the projection, tied weights)
    log p_t = z_t - logsumexp(z_t)
    y_t = argmax log p_t, or the first k with q_1 + ... + q_k > u_t sum(q)

where q is the sampling distribution of :func:`rnnkit.decode.filter_log_probs` (temperature,
top-k, top-p) and u_t the generator's uniforms, drawn as :func:`rnnkit.decode.generate`
draws them, so both give the same tokens and scores (the tests hold them to it). Products
use :func:`rnnkit.lstm_loop.product` (one thread: its row kernel for one row, blocks of four
rows beyond), the cell maths :func:`rnnkit.inference_step._pointwise`.

It runs when :func:`plan` says so: a :class:`~rnnkit.models.LanguageModel` (not a subclass
that changes its step) whose stack is unidirectional layers of cells equal to torch's ops,
implementation "auto", float32/64 on the CPU, at most
:data:`rnnkit.dispatch.GENERATION_LOOP_BATCH` rows, and no stop policy other than an end
token or per-row lengths; anything else runs :func:`rnnkit.decode.generate` step by step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import torch
from torch import Tensor

from rnnkit.checks import is_int, require
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.decode.sampling import UNIFORM_BLOCK, draw_uniforms, filter_log_probs
from rnnkit.decode.stopping import StopAtLength, StopOnToken, StopPolicy, as_policy
from rnnkit.dispatch import GENERATION_LOOP_BATCH, PathChoice
from rnnkit.inference_step import MODES, _pointwise
from rnnkit.lstm_loop import product
from rnnkit.precision import autocast_enabled

if TYPE_CHECKING:
    from rnnkit.models.lm import LanguageModel

__all__ = ["plan", "GenerationLoop"]

_NO_LIMIT = 2**62


@numba.njit(cache=True)
def _affine(a, w, bias, out):
    """out = a w^T (+ bias) for rows a (B, K), w (G, K) in torch's layout; bias (G,) or (0,)."""
    product(a, w, out, np.zeros((4, a.shape[1]), a.dtype), np.zeros((4, w.shape[0]), a.dtype))
    if bias.shape[0] > 0:
        for r in range(out.shape[0]):
            out[r] += bias


@numba.njit(cache=True)
def _choose(z, u, greedy, temperature, top_k, top_p, q):
    """The token for logits z (C,) and its log-probability log p = z - logsumexp(z); q (C,)
    float64 scratch. Sampling inverts the cumulative sum of the filtered distribution at u.
    A NaN logsumexp gives token -1."""
    C = z.shape[0]
    top = -np.inf
    best = 0
    for k in range(C):
        if z[k] > top:
            top, best = z[k], k
    total = 0.0
    for k in range(C):
        total += math.exp(z[k] - top)
    lse = top + math.log(total)
    if math.isnan(lse) or math.isinf(lse):
        return -1, np.nan
    if greedy:
        return best, z[best] - lse
    # q = log_softmax(log p / temperature), then top-k, then top-p, then renormalised
    m = -np.inf
    for k in range(C):
        q[k] = (z[k] - lse) / temperature
        m = max(m, q[k])
    total = 0.0
    for k in range(C):
        total += math.exp(q[k] - m)
    q -= m + math.log(total)
    if top_k < C:
        kth = np.sort(q)[C - top_k]
        for k in range(C):
            if q[k] < kth:
                q[k] = -np.inf
    if top_p < 1.0:
        order = np.argsort(-q, kind="mergesort")
        mass = 0.0
        drop = np.zeros(C, dtype=np.bool_)
        for j in range(C):  # drop a token once the more probable ones reach top_p
            p = math.exp(q[order[j]])
            mass += p
            drop[order[j]] = mass - p >= top_p
        for k in range(C):
            if drop[k]:
                q[k] = -np.inf
    m = q.max()
    total = 0.0
    for k in range(C):
        total += math.exp(q[k] - m)
    shift = m + math.log(total)
    cdf = 0.0
    for k in range(C):  # the cumulative sum of q = exp(q - shift), then the first k past u sum(q)
        q[k] = math.exp(q[k] - shift)
        cdf += q[k]
    target = min(u * cdf, np.nextafter(cdf, 0.0))  # below the total, so q_k > 0 where the sum passes it
    cdf = 0.0
    for k in range(C):
        cdf += q[k]
        if cdf > target:
            return k, z[k] - lse
    return C - 1, z[C - 1] - lse  # not reached: the sum ends at the total


@numba.njit(cache=True)
def _run(modes, w_in, w_rec, b_in, b_rec, h, c, embedding, proj_w, proj_b, dec_w, dec_b, tokens, uniforms,
         greedy, temperature, top_k, top_p, eos, emit_stop, lengths, first, done, total, out, keep):
    """Up to ``out.shape[0]`` steps for every row (B rows), from the input ``tokens`` (B,) and the
    state h[l], c[l] (B, H_l), both updated in place. Per layer l: w_in[l] = [W_ih W_hh]
    (G, F + H) and b_in[l] = b_ih + b_hh, w_rec[l] and b_rec[l] empty; for the GRU w_in[l] =
    W_ih, w_rec[l] = W_hh and their biases. proj_w (0, 0) when there is no projection.
    ``first``: the index of this block's first step (stops by length compare to it). Writes the
    tokens, whether each joins its row's output, and adds the log-probabilities to ``total``
    for rows not yet ``done``. Returns the number of steps run (fewer once every row is done),
    or -(1 + step) when a row's log-probabilities were NaN at that step."""
    B = tokens.shape[0]
    L = len(modes)
    C = dec_w.shape[0]
    z = np.empty((B, C), dtype=embedding.dtype)
    q = np.empty(C, dtype=np.float64)
    top = np.empty((B, proj_w.shape[0]), dtype=embedding.dtype)
    for i in range(out.shape[0]):
        x = np.empty((B, embedding.shape[1]), dtype=embedding.dtype)
        for r in range(B):
            x[r] = embedding[tokens[r]]
        for l in range(L):
            hl = h[l]
            G = w_in[l].shape[0]
            gi = np.empty((B, G), dtype=x.dtype)
            if modes[l] == 1:  # GRU: r multiplies W_hn h + b_hn alone, two products
                gh = np.empty((B, G), dtype=x.dtype)
                _affine(x, w_in[l], b_in[l], gi)
                _affine(hl, w_rec[l], b_rec[l], gh)
            else:
                gh = np.empty((0, G), dtype=x.dtype)
                F = x.shape[1]
                xh = np.empty((B, F + hl.shape[1]), dtype=x.dtype)
                xh[:, :F] = x
                xh[:, F:] = hl
                _affine(xh, w_in[l], b_in[l], gi)
            _pointwise(modes[l], gi, gh, hl, c[l], hl, c[l])  # each element read before it is written
            x = hl
        if proj_w.shape[0] > 0:
            _affine(x, proj_w, proj_b, top)
            x = top
        _affine(x, dec_w, dec_b, z)
        for r in range(B):
            token, log_p = _choose(z[r], uniforms[i, r] if uniforms.shape[0] > 0 else 0.0, greedy, temperature,
                                   top_k, top_p, q)
            if token < 0:
                return -(1 + first + i)
            ends = token == eos or first + i + 1 >= lengths[r]
            keep[i, r] = not done[r] and (not ends or emit_stop)
            if not done[r]:
                total[r] += log_p
            done[r] = done[r] or ends
            out[i, r] = token
            tokens[r] = token
        if done.all():
            return i + 1
    return out.shape[0]


@dataclass(frozen=True)
class GenerationLoop:
    """A language model's parameters as arrays for :func:`_run` (views of the tensors, and the
    joined [W_ih W_hh] per layer, both valid while the parameters are not written)."""

    modes: np.ndarray
    w_in: numba.typed.List
    w_rec: numba.typed.List
    b_in: numba.typed.List
    b_rec: numba.typed.List
    embedding: np.ndarray
    proj_w: np.ndarray
    proj_b: np.ndarray
    dec_w: np.ndarray
    dec_b: np.ndarray
    lstm: tuple[bool, ...]

    @classmethod
    def of(cls, model: LanguageModel) -> GenerationLoop:
        dtype = model.embedding.weight.dtype
        empty = torch.empty(0, dtype=dtype)
        modes, w_in, w_rec, b_in, b_rec = [], [], [], [], []
        for (cell,) in model.rnn.layers:
            native = cell.engine().native
            w_ih, w_hh, *biases = (w.detach() for w in native.weights)
            b_ih, b_hh = biases if biases else (empty, empty)
            modes.append(MODES[native.mode])
            if native.mode == "GRU":
                w_in.append(w_ih.contiguous()), w_rec.append(w_hh.contiguous()), b_in.append(b_ih), b_rec.append(b_hh)
            else:
                w_in.append(torch.cat([w_ih, w_hh], 1)), w_rec.append(empty.view(0, 0))
                b_in.append(b_ih + b_hh if biases else empty), b_rec.append(empty)

        def arrays(ts: list[Tensor]) -> tuple[np.ndarray, ...]:
            return tuple(t.detach().contiguous().numpy() for t in ts)

        def layers(ts: list[Tensor]) -> numba.typed.List:  # one compiled _run for any number of layers
            return numba.typed.List(arrays(ts))

        projection = model.projection
        return cls(np.array(modes, dtype=np.int64), layers(w_in), layers(w_rec), layers(b_in), layers(b_rec),
                   *arrays([model.embedding.weight]),
                   *arrays([projection.weight, projection.bias] if projection is not None else [empty.view(0, 0), empty]),
                   *arrays([model.decoder.weight, model.decoder.bias]),
                   tuple(m == MODES["LSTM"] for m in modes))

    def generate(self, state: Any, start: Tensor, max_length: int, *, greedy: bool = False,
                 temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
                 stop: StopPolicy | int | None = None, generator: torch.Generator | None = None,
                 on_token: Callable[[Tensor, Tensor], None] | None = None) -> list[Hypothesis]:
        """As :func:`rnnkit.decode.generate` with the model's step (same arguments, same result)."""
        require(is_int(max_length) and max_length >= 1, "max_length", "an integer >= 1", max_length)
        if not greedy:
            filter_log_probs(torch.zeros(1, 1), temperature, top_k, top_p)  # the options' checks
        policy = as_policy(stop)
        C = self.dec_w.shape[0]
        if policy is not None:
            policy.check_classes(C)
        B = start.shape[0]
        V = self.embedding.shape[0]
        if start.dim() != 1 or bool(((start < 0) | (start >= V)).any()):
            raise ValueError(f"start must be (batch,) token ids in [0, {V}). Received: {start.tolist()}")
        h = numba.typed.List(s[0].detach().contiguous().numpy().copy() for s in state)
        c = numba.typed.List(s[1].detach().contiguous().numpy().copy() if lstm else s[0].new_empty(0, 0).numpy()
                             for s, lstm in zip(state, self.lstm))
        tokens = start.numpy().astype(np.int64)
        lengths = np.full(B, _NO_LIMIT, dtype=np.int64)
        if isinstance(policy, StopAtLength):
            lengths[:] = policy.lengths.cpu().numpy()
        eos = policy.eos if isinstance(policy, StopOnToken) else -1
        emit_stop = policy is None or policy.emit_stop_token
        done, total = np.zeros(B, dtype=np.bool_), np.zeros(B, dtype=np.float64)
        outs, keeps = [], []
        no_uniforms = np.empty((0, B), dtype=np.float64)
        for first in range(0, max_length, UNIFORM_BLOCK):
            uniforms = no_uniforms if greedy else draw_uniforms(first, max_length, B, generator).numpy()
            steps = min(UNIFORM_BLOCK, max_length - first)
            out, keep = np.empty((steps, B), dtype=np.int64), np.empty((steps, B), dtype=np.bool_)
            ran = _run(self.modes, self.w_in, self.w_rec, self.b_in, self.b_rec, h, c, self.embedding,
                       self.proj_w, self.proj_b, self.dec_w, self.dec_b, tokens, uniforms, greedy,
                       float(temperature), int(top_k) if top_k is not None else C,
                       float(top_p) if top_p is not None else 1.0, eos, emit_stop, lengths, first, done, total,
                       out, keep)
            if ran < 0:
                raise ValueError(f"step returned NaN log-probabilities at step {-ran - 1}")
            outs.append(out[:ran]), keeps.append(keep[:ran])
            if on_token is not None:
                for i in range(ran):
                    on_token(torch.from_numpy(out[i]), torch.from_numpy(keep[i]))
            if done.all():
                break
        ids, mask = np.concatenate(outs), np.concatenate(keeps)
        return [Hypothesis(ids=ids[:, b][mask[:, b]].tolist(), score=float(total[b]), acoustic_score=float(total[b]))
                for b in range(B)]


def plan(model: LanguageModel, batch: int, device: torch.device, stop: Any) -> PathChoice:
    """Whether ``model`` generates ``batch`` rows with this module ("compiled-generation") or
    step by step ("steps"), and why."""
    from rnnkit.models.lm import LanguageModel

    limit = GENERATION_LOOP_BATCH.get(device.type, 0)
    rnn = model.rnn
    natives = [c.engine() for layer in rnn.layers for c in layer]
    dtype = model.embedding.weight.dtype
    why_not = (
        "not a LanguageModel's own step" if type(model).step is not LanguageModel.step
        or type(model).forward is not LanguageModel.forward else
        f"on {device.type}" if device.type != "cpu" else
        f"batch {batch} > {limit}" if batch > limit else
        f"{dtype}" if dtype not in (torch.float32, torch.float64) else
        f"implementation={rnn.implementation!r} asked for" if rnn.implementation != "auto" else
        "a bidirectional stack" if rnn.bidirectional else
        "a cell torch has no op for" if any(e is None or e.native is None for e in natives) else
        "training mode" if model.training else
        "a gradient is recorded" if torch.is_grad_enabled() else
        "autocast" if autocast_enabled(device.type) else
        "a stop policy other than an end token or lengths"
        if not (stop is None or isinstance(stop, int) or type(stop) in (StopOnToken, StopAtLength)) else "")
    if why_not:
        return PathChoice("steps", f"step by step (rnnkit.decode.generate): {why_not}")
    return PathChoice("compiled-generation", f"the whole token loop compiled at batch <= {limit} on the CPU "
                                             "(rnnkit.generation_loop)")
