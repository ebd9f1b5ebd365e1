"""Compiled kernels of the CTC prefix beam search (numba).

Prefixes are nodes of a trie shared by the whole batch, one row per node:

    ints[n]  = parent, token (-1 at a root), lexicon state, word boundary
    fused[n] = the total of the prefix's non-acoustic scores (lexicon, word bonus, and what
               the caller's scorers add)

``boundary`` is the
nearest ancestor ending in the word delimiter (or the root): the words of a prefix are read
back through ``parent`` from there. ``children`` maps parent * C + token to the child, so an
extension that reaches an existing prefix finds it and the two merge.

Per frame, for every prefix n in the beam, with log-probabilities p_b (ending in blank) and
p_nb (ending in a token), total = logaddexp(p_b, p_nb), last token l and frame
log-probabilities lp:

    n      +blank      : p_b(n)      <- total + lp(blank)
    n      +l (repeat) : p_nb(n)     <- p_nb + lp(l)           (same prefix: repeats merge)
    n + c  (c != l)    : p_nb(n + c) <- total + lp(c)
    n + l              : p_nb(n + l) <- p_b + lp(l)            (a repeat needs a blank between)

"<-" accumulates with logaddexp over every way of reaching the prefix. Tokens with
lp(c) < token_min_logp are not tried (the frame's best token always is). The beam keeps
the beam_width prefixes with the highest logaddexp(p_b, p_nb) + fused.

The trie only grows while prefixes are created; :func:`compact` drops every node that is
neither in a beam nor an ancestor of one. Such a prefix can only come back as a new
extension of its parent, and then no other node stands for it, so nothing merges wrongly.

The lexicon is a table ``lex_next[u, c]`` (the trie node after token c from node u, -1 if
none; the last row is the "unknown word" state) with ``lex_word[u]`` marking word ends; a
hard lexicon never creates a prefix that leaves it.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit
from numba.core import types
from numba.typed import Dict

NEG_INF = -np.inf
PARENT, TOKEN, LEX, BOUNDARY = 0, 1, 2, 3  # columns of ints


def new_children() -> Dict:
    return Dict.empty(key_type=types.int64, value_type=types.int64)


def new_nodes(capacity: int, roots: int) -> tuple[np.ndarray, np.ndarray]:
    """Node rows with ``roots`` empty prefixes (one per utterance) at ids 0..roots-1."""
    ints = np.full((capacity, 4), -1, dtype=np.int64)
    ints[:roots, LEX] = 0
    ints[:roots, BOUNDARY] = np.arange(roots)
    return ints, np.zeros(capacity)


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
def _grow(ints, fused, slot_of, need):
    if ints.shape[0] >= need:
        return ints, fused, slot_of
    size = max(need, 2 * ints.shape[0])
    new_ints = np.full((size, 4), -1, dtype=np.int64)
    new_ints[: ints.shape[0]] = ints
    new_fused = np.zeros(size)
    new_fused[: fused.shape[0]] = fused
    new_slot = np.full(size, -1, dtype=np.int64)
    new_slot[: slot_of.shape[0]] = slot_of
    return new_ints, new_fused, new_slot


@njit(cache=True)
def extend(lp, active, blank, token_min_logp, beam_node, beam_pb, beam_pnb, beam_n,
           ints, fused, n_nodes, children, slot_of, lex_next, lex_word, use_lexicon,
           unknown_penalty, delimiter, word_score):
    """Extend every active utterance's beam by one frame of log-probabilities lp (B, C).

    Returns (ints, fused, slot_of, n_nodes, new_nodes, n_new, cand_node (B, K), cand_pb,
    cand_pnb, cand_n (B,)); the node arrays may have grown. A new node's fused score is its
    parent's plus the lexicon and word-bonus terms; the caller adds its own scorers'.
    """
    B, C = lp.shape
    W = beam_node.shape[1]
    unknown = lex_next.shape[0] - 1
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
    width = int(n_tok.max()) + 1 if B > 0 else 1
    cand_node = np.empty((B, W * width), dtype=np.int64)
    cand_pb = np.empty((B, W * width))
    cand_pnb = np.empty((B, W * width))
    cand_n = np.zeros(B, dtype=np.int64)
    ints, fused, slot_of = _grow(ints, fused, slot_of, n_nodes + int(beam_n.sum()) * width)
    new_nodes = np.empty(int(beam_n.sum()) * width, dtype=np.int64)
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
            last = ints[n, TOKEN]
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
                    bonus = 0.0
                    lex = 0
                    if use_lexicon:
                        u = ints[n, LEX]
                        if c == delimiter:  # the word so far must be a word
                            if not (u == 0 or u == unknown or lex_word[u]):
                                bonus += unknown_penalty
                        else:
                            lex = lex_next[u, c]
                            if lex < 0:  # leaves the dictionary
                                bonus += unknown_penalty
                                lex = unknown
                        if bonus == NEG_INF:
                            continue  # a hard lexicon: this prefix never exists
                    if c == delimiter and last >= 0 and last != delimiter:
                        bonus += word_score
                    child = n_nodes
                    n_nodes += 1
                    children[key] = child
                    ints[child, PARENT] = n
                    ints[child, TOKEN] = c
                    ints[child, LEX] = lex
                    ints[child, BOUNDARY] = child if c == delimiter else ints[n, BOUNDARY]
                    fused[child] = fused[n] + bonus
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
                cand_pnb[b, s] = _logaddexp(cand_pnb[b, s], (pb if c == last else total) + lp[b, c])
        cand_n[b] = m
        for k in range(m):
            slot_of[cand_node[b, k]] = -1
    return ints, fused, slot_of, n_nodes, new_nodes, n_new, cand_node, cand_pb, cand_pnb, cand_n


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
def compact(ints, fused, n_nodes, beam_node, beam_n, num_tokens):
    """Keep the beams' prefixes and their ancestors, renumbered in the same order (roots keep
    their ids); beam_node is rewritten in place.

    Returns (ints, fused, n_nodes, children, old_to_new (-1 for dropped nodes)).
    """
    live = np.zeros(n_nodes, dtype=np.bool_)
    for b in range(beam_node.shape[0]):
        for k in range(beam_n[b]):
            n = beam_node[b, k]
            while n >= 0 and not live[n]:
                live[n] = True
                n = ints[n, PARENT]
    for b in range(beam_node.shape[0]):  # roots, even of finished rows
        n = b
        live[n] = True
    old_to_new = np.full(n_nodes, -1, dtype=np.int64)
    m = 0
    for n in range(n_nodes):
        if live[n]:
            old_to_new[n] = m
            m += 1
    new_ints = np.full((max(2 * m, 1024), 4), -1, dtype=np.int64)
    new_fused = np.zeros(new_ints.shape[0])
    children = Dict.empty(key_type=types.int64, value_type=types.int64)
    for n in range(n_nodes):
        k = old_to_new[n]
        if k < 0:
            continue
        new_ints[k] = ints[n]
        new_fused[k] = fused[n]
        p = ints[n, PARENT]
        if p >= 0:
            new_ints[k, PARENT] = old_to_new[p]
            children[old_to_new[p] * num_tokens + ints[n, TOKEN]] = k
        new_ints[k, BOUNDARY] = old_to_new[ints[n, BOUNDARY]]
    for b in range(beam_node.shape[0]):
        for k in range(beam_n[b]):
            beam_node[b, k] = old_to_new[beam_node[b, k]]
    return new_ints, new_fused, m, children, old_to_new


@njit(cache=True)
def decode(lp, lengths, blank, token_min_logp, beam_prune_logp, beam_node, beam_pb, beam_pnb, beam_n,
           ints, fused, n_nodes, children, slot_of, lex_next, lex_word, use_lexicon, unknown_penalty,
           delimiter, word_score, compaction_slack):
    """All frames of a batch when no scorer needs Python: lp (B, T, C). The trie is compacted
    whenever it has more than twice its size after the last compaction plus the slack.

    Returns (ints, fused, slot_of, n_nodes, children): the trie may have been compacted.
    """
    B, T, C = lp.shape
    active = np.empty(B, dtype=np.bool_)
    after_compaction = n_nodes
    for t in range(T):
        for b in range(B):
            active[b] = t < lengths[b]
        if n_nodes > 2 * after_compaction + compaction_slack:
            ints, fused, n_nodes, children, _ = compact(ints, fused, n_nodes, beam_node, beam_n, C)
            slot_of = np.full(ints.shape[0], -1, dtype=np.int64)
            after_compaction = n_nodes
        ints, fused, slot_of, n_nodes, _, _, cand_node, cand_pb, cand_pnb, cand_n = extend(
            lp[:, t], active, blank, token_min_logp, beam_node, beam_pb, beam_pnb, beam_n,
            ints, fused, n_nodes, children, slot_of, lex_next, lex_word, use_lexicon, unknown_penalty,
            delimiter, word_score)
        select(active, fused, beam_prune_logp, cand_node, cand_pb, cand_pnb, cand_n,
               beam_node, beam_pb, beam_pnb, beam_n)
    return ints, fused, slot_of, n_nodes, children
