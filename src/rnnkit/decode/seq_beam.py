"""Beam search for autoregressive models (language models, decoders of encoder-decoders).

Each row keeps ``beam_width`` live prefixes; every step extends all of them with one batched
``step`` call and keeps the best ``beam_width`` extensions. A prefix that ends (stop policy)
moves to the row's finished list. Ranking of finished hypotheses:

    score = log P(y) / |y|^length_normalization + length_penalty * |y|

(length_normalization 0: the raw log-probability, which favours short outputs; 1: the
per-token average); ``length_penalty`` adds a reward (> 0) or cost (< 0) per token.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.checks import is_int, is_number, require
from rnnkit.decode.hypothesis import Hypothesis
from rnnkit.decode.sampling import Step
from rnnkit.nested import select_rows
from rnnkit.decode.stopping import StopPolicy, as_policy, check_step_output


def _rank(logp: float, length: int, length_normalization: float, length_penalty: float) -> float:
    return logp / max(length, 1) ** length_normalization + length_penalty * length


@torch.no_grad()
def beam_search(step: Step, state: Any, start: Tensor, beam_width: int, max_length: int, *,
                stop: StopPolicy | int | None = None, length_normalization: float = 0.0,
                length_penalty: float = 0.0, nbest: int = 1) -> list[list[Hypothesis]]:
    """Beam search from ``start`` (B,) and ``state``: per row the ``nbest`` best outputs.

    Rows that reach ``max_length`` without stopping are finished there. ``score`` is the
    ranking value above; ``acoustic_score`` the model's log-probability of the ids (the
    stop token's included).
    """
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be an integer >= 1. Received: {beam_width!r}")
    require(is_int(nbest) and 1 <= nbest <= beam_width, "nbest", f"an integer in [1, beam_width={beam_width}]", nbest)
    require(is_int(max_length) and max_length >= 1, "max_length", "an integer >= 1", max_length)
    require(is_number(length_normalization) and length_normalization >= 0, "length_normalization",
            "a finite number >= 0", length_normalization)
    require(is_number(length_penalty), "length_penalty", "a finite number", length_penalty)
    policy = as_policy(stop)
    B, W, dev = start.shape[0], beam_width, start.device
    state = select_rows(state, torch.arange(B, device=dev).repeat_interleave(W))  # every row's state, W times
    tokens = start.repeat_interleave(W)
    # the bookkeeping of a step is a few dozen operations on (B, 2W) numbers: numpy, on the CPU
    scores = np.full((B, W), -np.inf)
    scores[:, 0] = 0.0  # one live prefix per row at the start
    history = np.zeros((B * W, 0), dtype=np.int64)  # each live prefix's tokens
    first_beam = np.arange(B)[:, None] * W
    finished: list[list[Hypothesis]] = [[] for _ in range(B)]
    candidate_policy = None
    for i in range(max_length):
        log_probs, state = step(tokens, state)  # (B*W, C)
        check_step_output(log_probs, i, policy)
        C = log_probs.shape[1]
        last = i == max_length - 1
        k = min(2 * W if policy is not None or last else W, W * C)  # room for ends and survivors
        total = (torch.from_numpy(scores).to(dev).reshape(-1, 1) + log_probs.double()).reshape(B, W * C)
        top_scores, top = (t.cpu().numpy() for t in total.topk(k, dim=1))
        beam_of, token_of = np.divmod(top, C)
        src = first_beam + beam_of  # flat parent beam of each candidate (B, k)
        stops = np.zeros(top.shape, dtype=bool)
        if policy is not None:  # the parent's state is the one that produced the token's distribution
            if candidate_policy is None:  # k is the same at every step once a policy may end rows
                candidate_policy = policy.expand(k)  # a row's k candidates
            parents = select_rows(state, torch.from_numpy(src.reshape(-1)).to(dev)) if policy.needs_state else None
            stops = candidate_policy.finished(torch.from_numpy(token_of.reshape(-1)).to(dev), parents, i)
            stops = stops.reshape(B, k).cpu().numpy()
        ends = stops | last
        valid = top_scores > -np.inf  # sorted: the -inf ones come last
        for b, j in zip(*np.nonzero(ends & valid)):  # finished hypotheses, best first per row
            s, tok, parent = float(top_scores[b, j]), int(token_of[b, j]), int(src[b, j])
            keep_token = not stops[b, j] or policy.emit_stop_token
            ids = history[parent].tolist() + ([tok] if keep_token else [])
            finished[b].append(Hypothesis(ids=ids, acoustic_score=s,
                                          score=_rank(s, len(ids), length_normalization, length_penalty)))
        live = ~ends & valid
        rank = live.cumsum(1) - 1  # the survivors: the first W live extensions of each row, in order
        row, col = np.nonzero(live & (rank < W))
        scores = np.full((B, W), -np.inf)
        new_src = np.zeros((B, W), dtype=np.int64)
        new_tok = np.zeros((B, W), dtype=np.int64)
        slot = rank[row, col]
        scores[row, slot], new_src[row, slot], new_tok[row, slot] = top_scores[row, col], src[row, col], token_of[row, col]
        history = np.concatenate([history[new_src.reshape(-1)], new_tok.reshape(-1, 1)], 1)
        if _all_done(finished, scores, nbest, length_normalization, length_penalty, i + 1, max_length):
            break
        state = select_rows(state, torch.from_numpy(new_src.reshape(-1)).to(dev))
        tokens = torch.from_numpy(new_tok.reshape(-1)).to(dev)
    return [sorted(f, key=lambda h: -h.score)[:nbest] for f in finished]


def _all_done(finished, scores, nbest, alpha, beta, length, max_length) -> bool:
    """Stop when no live prefix can still beat every row's nbest-th finished hypothesis
    (exact for alpha = 0 and beta <= 0: extending only lowers a log-probability)."""
    if length >= max_length:
        return True
    if alpha != 0 or beta > 0:
        return bool(np.isinf(scores).all())
    for b, f in enumerate(finished):
        best_live = float(scores[b].max())
        if best_live == -np.inf:
            continue
        if len(f) < nbest or sorted(h.score for h in f)[-nbest] < _rank(best_live, length, alpha, beta):
            return False
    return True
