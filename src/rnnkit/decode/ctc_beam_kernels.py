"""Compiled kernels of the CTC prefix beam search (numba).

Prefixes are nodes of a trie shared by the whole batch: node n has ``parent[n]``,
``token[n]`` (its last token; -1 for a root), ``frame[n]`` (the frame where the token most
probably starts: argmax_t of the probability of entering it at t, kept in ``entry[n]``) and
``fused[n]``, the total of the non-acoustic scores of the prefix (language model, lexicon,
hotwords; 0 without scorers). ``children`` maps parent * C + token to the child, so an
extension that reaches an existing prefix finds it and the two merge.

Per frame, for every prefix n in the beam, with log-probabilities p_b (ending in blank) and
p_nb (ending in a token), total = logaddexp(p_b, p_nb), last token l and frame
log-probabilities lp:

    n      +blank      : p_b(n)      <- total + lp(blank)
    n      +l (repeat) : p_nb(n)     <- p_nb + lp(l)           (same prefix: repeats merge)
    n + c  (c != l)    : p_nb(n + c) <- total + lp(c)
    n + l              : p_nb(n + l) <- p_b + lp(l)            (a repeat needs a blank between)

where "<-" accumulates with logaddexp over every way of reaching the prefix. Tokens with
lp(c) < token_min_logp are not tried (the frame's best token always is). The beam keeps
the beam_width prefixes with the highest logaddexp(p_b, p_nb) + fused.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.core import types
from numba.typed import Dict

NEG_INF = -np.inf


def new_children() -> Dict:
    return Dict.empty(key_type=types.int64, value_type=types.int64)


@njit(cache=True, inline="always")
def _logaddexp(a, b):
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


@njit(cache=True)
def _grow_int(a, n):
    if a.shape[0] >= n:
        return a
    out = np.empty(max(n, 2 * a.shape[0]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def _grow_float(a, n):
    if a.shape[0] >= n:
        return a
    out = np.empty(max(n, 2 * a.shape[0]), dtype=a.dtype)
    out[: a.shape[0]] = a
    return out


@njit(cache=True)
def extend(t, lp, active, blank, token_min_logp, beam_node, beam_pb, beam_pnb, beam_n,
           parent, token, frame, entry, fused, n_nodes, children, slot_of):
    """Extend every active utterance's beam by frame t: the candidates, and the new nodes.

    Returns (parent, token, frame, entry, fused, slot_of, n_nodes, new_nodes, n_new,
    cand_node (B, K), cand_pb, cand_pnb, cand_n (B,)); the node arrays may have grown.
    New nodes get fused = fused[parent]; the caller adds the scorers' increments.
    """
    B, C = lp.shape
    W = beam_node.shape[1]
    tokens = np.empty((B, C), dtype=np.int64)
    n_tok = np.zeros(B, dtype=np.int64)
    for b in range(B):
        if not active[b]:
            continue
        best = 0
        for c in range(C):
            if lp[b, c] > lp[b, best]:
                best = c
        for c in range(C):
            if c != blank and (lp[b, c] >= token_min_logp or c == best):
                tokens[b, n_tok[b]] = c
                n_tok[b] += 1
    K = W * (int(n_tok.max()) + 1) if B > 0 else 1
    cand_node = np.empty((B, K), dtype=np.int64)
    cand_pb = np.empty((B, K))
    cand_pnb = np.empty((B, K))
    cand_n = np.zeros(B, dtype=np.int64)
    need = n_nodes + int(beam_n.sum()) * (int(n_tok.max()) + 1)
    parent = _grow_int(parent, need)
    token = _grow_int(token, need)
    frame = _grow_int(frame, need)
    entry = _grow_float(entry, need)
    fused = _grow_float(fused, need)
    if slot_of.shape[0] < need:
        old = slot_of.shape[0]
        slot_of = _grow_int(slot_of, need)
        slot_of[old:] = -1
    new_nodes = np.empty(need - n_nodes, dtype=np.int64)
    n_new = 0
    for b in range(B):
        if not active[b]:
            continue
        m = 0
        for k in range(beam_n[b]):
            n = beam_node[b, k]
            pb = beam_pb[b, k]
            pnb = beam_pnb[b, k]
            total = _logaddexp(pb, pnb)
            last = token[n]
            # stay on n: a blank, or the last token repeated
            s = slot_of[n]
            if s < 0:
                s = m
                slot_of[n] = s
                cand_node[b, s] = n
                cand_pb[b, s] = NEG_INF
                cand_pnb[b, s] = NEG_INF
                m += 1
            cand_pb[b, s] = _logaddexp(cand_pb[b, s], total + lp[b, blank])
            if last >= 0:
                cand_pnb[b, s] = _logaddexp(cand_pnb[b, s], pnb + lp[b, last])
            # move to n + c
            for j in range(n_tok[b]):
                c = tokens[b, j]
                key = n * C + c
                if key in children:
                    child = children[key]
                else:
                    child = n_nodes
                    n_nodes += 1
                    children[key] = child
                    parent[child] = n
                    token[child] = c
                    entry[child] = NEG_INF
                    fused[child] = fused[n]
                    slot_of[child] = -1
                    new_nodes[n_new] = child
                    n_new += 1
                s = slot_of[child]
                if s < 0:
                    s = m
                    slot_of[child] = s
                    cand_node[b, s] = child
                    cand_pb[b, s] = NEG_INF
                    cand_pnb[b, s] = NEG_INF
                    m += 1
                add = (pb if c == last else total) + lp[b, c]
                cand_pnb[b, s] = _logaddexp(cand_pnb[b, s], add)
                if add > entry[child]:
                    entry[child] = add
                    frame[child] = t
        cand_n[b] = m
        for k in range(m):
            slot_of[cand_node[b, k]] = -1
    return (parent, token, frame, entry, fused, slot_of, n_nodes, new_nodes, n_new,
            cand_node, cand_pb, cand_pnb, cand_n)


@njit(cache=True)
def select(active, fused, beam_prune_logp, cand_node, cand_pb, cand_pnb, cand_n,
           beam_node, beam_pb, beam_pnb, beam_n):
    """Keep each active utterance's best W candidates by logaddexp(p_b, p_nb) + fused."""
    B, W = beam_node.shape
    for b in range(B):
        if not active[b]:
            continue
        m = cand_n[b]
        score = np.empty(m)
        best = NEG_INF
        for k in range(m):
            score[k] = _logaddexp(cand_pb[b, k], cand_pnb[b, k]) + fused[cand_node[b, k]]
            if score[k] > best:
                best = score[k]
        order = np.argsort(-score)
        n = 0
        for k in order[: min(W, m)]:
            if score[k] == NEG_INF or score[k] < best + beam_prune_logp:
                break
            beam_node[b, n] = cand_node[b, k]
            beam_pb[b, n] = cand_pb[b, k]
            beam_pnb[b, n] = cand_pnb[b, k]
            n += 1
        beam_n[b] = n


@njit(cache=True)
def decode(lp, lengths, blank, token_min_logp, beam_prune_logp, beam_node, beam_pb, beam_pnb, beam_n,
           parent, token, frame, entry, fused, n_nodes, children, slot_of):
    """All frames of a batch without scorers: lp (B, T, C). Returns the grown node arrays."""
    B, T, C = lp.shape
    active = np.empty(B, dtype=np.bool_)
    for t in range(T):
        for b in range(B):
            active[b] = t < lengths[b]
        (parent, token, frame, entry, fused, slot_of, n_nodes, _, _,
         cand_node, cand_pb, cand_pnb, cand_n) = extend(
            t, lp[:, t], active, blank, token_min_logp, beam_node, beam_pb, beam_pnb, beam_n,
            parent, token, frame, entry, fused, n_nodes, children, slot_of)
        select(active, fused, beam_prune_logp, cand_node, cand_pb, cand_pnb, cand_n,
               beam_node, beam_pb, beam_pnb, beam_n)
    return parent, token, frame, entry, fused, slot_of, n_nodes
