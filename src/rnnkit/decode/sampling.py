"""Autoregressive generation by greedy choice or sampling (temperature, top-k, top-p).

The model is a function ``step(tokens (B,), state) -> (log_probs (B, C), state)``: each new
token costs one step (the prefix is never run again). Rows are generated together and stop
on their own (see :mod:`rnnkit.decode.stopping`).

A token is sampled by inverting the distribution's cumulative sum q_1 + ... + q_k at a
uniform u_t ~ U[0, 1) (the first k with q_1 + ... + q_k > u_t sum(q), in float64), the
uniforms drawn from the generator in blocks of :data:`UNIFORM_BLOCK` steps: the compiled
generation loop (:mod:`rnnkit.generation_loop`) draws the same and so samples the same tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from rnnkit.checks import is_int, is_number, require
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.decode.stopping import StopPolicy, as_policy, check_step_output

Step = Callable[[Tensor, Any], tuple[Tensor, Any]]

#: the uniforms u_t of sampling are drawn for this many steps at a time, (steps, B) float64
UNIFORM_BLOCK = 32


def draw_uniforms(step_index: int, max_length: int, rows: int, generator: torch.Generator | None) -> Tensor:
    """u_t for the steps from ``step_index`` (a multiple of :data:`UNIFORM_BLOCK`) to the end of its
    block or ``max_length``: (steps, rows) float64 on the CPU."""
    steps = min(UNIFORM_BLOCK, max_length - step_index)
    return torch.rand(steps, rows, generator=generator, dtype=torch.float64)


def sample_by_inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """The first token k of each row of ``probs`` (B, C) with q_1 + ... + q_k > u sum(q), for
    u (B,) in [0, 1); u sum(q) is kept below the sum (which rounding could reach), so a token
    of probability 0 is never chosen."""
    cdf = probs.double().cumsum(-1)
    total = cdf[:, -1:]
    below_total = torch.minimum(u.to(cdf.device)[:, None] * total, total.nextafter(torch.zeros_like(total)))
    return torch.searchsorted(cdf, below_total, right=True).squeeze(1)


def filter_log_probs(log_probs: Tensor, temperature: float = 1.0, top_k: int | None = None,
                     top_p: float | None = None) -> Tensor:
    """The sampling distribution, as log-probabilities (B, C), renormalised.

    softmax(log_probs / temperature), then only the ``top_k`` most probable tokens, then
    only the smallest set of most probable tokens whose mass reaches ``top_p`` (nucleus;
    the most probable token always stays).
    """
    require(is_number(temperature) and temperature > 0, "temperature",
            "a finite number > 0 (use greedy=True for argmax)", temperature)
    require(top_k is None or (is_int(top_k) and top_k >= 1), "top_k", "an integer >= 1 or None", top_k)
    require(top_p is None or (is_number(top_p) and 0.0 < top_p <= 1.0), "top_p", "in (0, 1] or None", top_p)
    lp = (log_probs / temperature).log_softmax(-1)
    filtered = False
    if top_k is not None and top_k < lp.shape[-1]:
        kth = lp.topk(top_k, dim=-1).values[..., -1:]
        lp, filtered = lp.masked_fill(lp < kth, -torch.inf), True
    if top_p is not None and top_p < 1.0:
        sorted_lp, order = lp.sort(-1, descending=True)
        mass_before = sorted_lp.exp().cumsum(-1) - sorted_lp.exp()  # mass of the more probable tokens
        drop_sorted = mass_before >= top_p
        lp, filtered = lp.masked_fill(torch.zeros_like(drop_sorted).scatter(-1, order, drop_sorted), -torch.inf), True
    return lp.log_softmax(-1) if filtered else lp


@torch.no_grad()
def generate(step: Step, state: Any, start: Tensor, max_length: int, *, greedy: bool = False,
             temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
             stop: StopPolicy | int | None = None, generator: torch.Generator | None = None,
             on_token: Callable[[Tensor, Tensor], None] | None = None) -> list[Hypothesis]:
    """Generate up to ``max_length`` tokens per row from ``start`` (B,) and ``state``.

    Args:
        step: the model's step function.
        state: the model state before ``start`` (e.g. after a prompt), batch first.
        start: (B,) the first input token of each row (a start symbol, or the prompt's last).
        greedy: take the argmax instead of sampling.
        temperature, top_k, top_p: see :func:`filter_log_probs`.
        stop: a :class:`StopPolicy`, or an end-of-sequence token id.
        generator: a torch.Generator for reproducible sampling (CPU); it gives the uniforms of
            :data:`UNIFORM_BLOCK` steps at a time.
        on_token: called after every step with (tokens (B,), keep (B,) bool: the token joins
            that row's output), to stream the output as it is produced.

    Returns:
        One :class:`Hypothesis` per row: ``ids``, ``score`` = acoustic_score = the model's
        log-probability of the ids (unfiltered; the stop token's included when it ends a row).
    """
    require(is_int(max_length) and max_length >= 1, "max_length", "an integer >= 1", max_length)
    if not greedy:
        filter_log_probs(torch.zeros(1, 1), temperature, top_k, top_p)  # check the options once, up front
    if not isinstance(start, Tensor) or start.dim() != 1:
        raise ValueError(f"start must be a (batch,) tensor of token ids. Received: {type(start).__name__}")
    policy = as_policy(stop)
    B = start.shape[0]
    tokens = start
    done = torch.zeros(B, dtype=torch.bool, device=start.device)
    total = torch.zeros(B, dtype=torch.float64, device=start.device)
    out: list[Tensor] = []
    keep: list[Tensor] = []
    for i in range(max_length):
        log_probs, state = step(tokens, state)
        check_step_output(log_probs, i, policy)
        if greedy:
            tokens = log_probs.argmax(-1)
        else:
            if i % UNIFORM_BLOCK == 0:
                uniforms = draw_uniforms(i, max_length, B, generator)
            probs = filter_log_probs(log_probs.double(), temperature, top_k, top_p).exp()
            tokens = sample_by_inverse_cdf(probs, uniforms[i % UNIFORM_BLOCK])
        chosen = log_probs.gather(1, tokens[:, None]).squeeze(1).double()
        total = total + torch.where(done, 0.0, chosen)
        ends = policy.finished(tokens, state, i) if policy is not None else torch.zeros_like(done)
        keep.append(~done & (~ends | (policy is not None and policy.emit_stop_token)))
        out.append(tokens)
        if on_token is not None:
            on_token(tokens, keep[-1])
        done = done | ends
        if bool(done.all()):
            break
    ids = torch.stack(out, 1).cpu()
    mask = torch.stack(keep, 1).cpu()
    return [Hypothesis(ids=ids[b][mask[b]].tolist(), score=float(total[b]), acoustic_score=float(total[b]))
            for b in range(B)]
