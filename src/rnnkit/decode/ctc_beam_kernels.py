"""Compiled kernels of the CTC prefix beam search (numba).

Prefixes are nodes of a trie shared by the whole batch (:class:`Prefixes`, one entry per
node in each array):

    parent[n], token[n]   the prefix is parent's plus ``token`` (-1 at a root: the empty prefix)
    lex[n]                the lexicon-trie node its current word has reached
    boundary[n]           the nearest ancestor ending in the word delimiter (or the root): the
                          words of a prefix are read back through ``parent`` from there
    non_acoustic[n]       the total of its non-acoustic scores (lexicon, word bonus, and what
                          the caller's scorers add)
    slot[n]               scratch: its candidate slot in the frame being extended, or -1
    children              parent * C + token -> child, so an extension that reaches an
                          existing prefix finds it and the two merge

Per frame, for every prefix n in the beam, with log-probabilities p_b (ending in blank) and
p_nb (ending in a token), total = logaddexp(p_b, p_nb), last token l and frame
log-probabilities lp:

    n      +blank      : p_b(n)      <- total + lp(blank)
    n      +l (repeat) : p_nb(n)     <- p_nb + lp(l)           (same prefix: repeats merge)
    n + c  (c != l)    : p_nb(n + c) <- total + lp(c)
    n + l              : p_nb(n + l) <- p_b + lp(l)            (a repeat needs a blank between)

"<-" accumulates with logaddexp over every way of reaching the prefix. Tokens with
lp(c) < token_min_logp are not tried (the frame's best token always is). The beam
(:class:`Beams`) keeps the beam_width prefixes with the highest logaddexp(p_b, p_nb) +
non_acoustic.

The trie only grows while prefixes are created; :func:`compact` drops every node that is
neither in a beam nor an ancestor of one. Such a prefix can only come back as a new
extension of its parent, and then no other node stands for it, so nothing merges wrongly.

The lexicon (:class:`LexiconRules`) is a table ``next[u, c]`` (the trie node after token c
from node u, -1 if none; the last row is the "unknown word" state) with ``is_word[u]``
marking word ends; a hard lexicon never creates a prefix that leaves it.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit
from numba.core import types
from numba.typed import Dict

NEG_INF = -np.inf


class Prefixes(NamedTuple):
    """The prefix trie (see the module docstring); arrays may hold more rows than nodes."""

    parent: np.ndarray  # int64
    token: np.ndarray  # int64
    lex: np.ndarray  # int64
    boundary: np.ndarray  # int64
    non_acoustic: np.ndarray  # float64
    slot: np.ndarray  # int64
    children: Dict  # int64 -> int64


class Beams(NamedTuple):
    """Per utterance, the prefixes kept after a frame: node ids and log p_b, log p_nb (B, W)."""

    node: np.ndarray
    p_blank: np.ndarray
    p_token: np.ndarray
    size: np.ndarray  # (B,) how many of the W slots are used


class LexiconRules(NamedTuple):
    """The lexicon and word bonus as the kernel applies them."""

    next: np.ndarray  # (U + 1, C) int64
    is_word: np.ndarray  # (U + 1,) bool
    used: bool
    unknown_penalty: float
    delimiter: int  # -1: none
    word_score: float


def new_prefixes(capacity: int, roots: int) -> Prefixes:
    """A trie with ``roots`` empty prefixes (one per utterance) at ids 0..roots-1."""
    prefixes = _empty(capacity)
    prefixes.lex[:roots] = 0
    prefixes.boundary[:roots] = np.arange(roots)
    return prefixes


def new_beams(batch: int, width: int) -> Beams:
    """Each utterance's beam holds its empty prefix (node b) with p_b = 1."""
    beams = Beams(np.zeros((batch, width), dtype=np.int64), np.full((batch, width), -np.inf),
                  np.full((batch, width), -np.inf), np.ones(batch, dtype=np.int64))
    beams.node[:, 0] = np.arange(batch)
    beams.p_blank[:, 0] = 0.0
    return beams


@njit(cache=True)
def _empty(capacity):
    return Prefixes(np.full(capacity, -1, dtype=np.int64), np.full(capacity, -1, dtype=np.int64),
                    np.full(capacity, -1, dtype=np.int64), np.full(capacity, -1, dtype=np.int64),
                    np.zeros(capacity), np.full(capacity, -1, dtype=np.int64),
                    Dict.empty(key_type=types.int64, value_type=types.int64))


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
def _grow(prefixes, need):
    n = prefixes.parent.shape[0]
    if n >= need:
        return prefixes
    grown = _empty(max(need, 2 * n))
    grown.parent[:n] = prefixes.parent
    grown.token[:n] = prefixes.token
    grown.lex[:n] = prefixes.lex
    grown.boundary[:n] = prefixes.boundary
    grown.non_acoustic[:n] = prefixes.non_acoustic
    grown.slot[:n] = prefixes.slot
    return Prefixes(grown.parent, grown.token, grown.lex, grown.boundary, grown.non_acoustic, grown.slot,
                    prefixes.children)


@njit(cache=True, inline="always")
def _slot(cand, slot_of, b, n, m):
    """(n's candidate slot in row b, slots used): a new, empty slot m the first time n is reached."""
    s = slot_of[n]
    if s < 0:
        s = m
        slot_of[n] = s
        cand.node[b, s] = n
        cand.p_blank[b, s] = NEG_INF
        cand.p_token[b, s] = NEG_INF
        m += 1
    return s, m


@njit(cache=True)
def extend(lp, active, blank, token_min_logp, beams, prefixes, n_nodes, rules):
    """Extend every active utterance's beam by one frame of log-probabilities lp (B, C).

    Returns (prefixes, n_nodes, new_nodes, n_new, candidates): the trie's arrays may have
    grown; ``candidates`` is a :class:`Beams` of every prefix reached, not yet cut to the
    beam width. A new node's non-acoustic score is its parent's plus the lexicon and
    word-bonus terms; the caller adds its own scorers'.
    """
    B, C = lp.shape
    W = beams.node.shape[1]
    unknown = rules.next.shape[0] - 1
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
    cand = Beams(np.empty((B, W * width), dtype=np.int64), np.empty((B, W * width)), np.empty((B, W * width)),
                 np.zeros(B, dtype=np.int64))
    prefixes = _grow(prefixes, n_nodes + int(beams.size.sum()) * width)
    parent, token, lexs, boundary = prefixes.parent, prefixes.token, prefixes.lex, prefixes.boundary
    non_acoustic, slot_of, children = prefixes.non_acoustic, prefixes.slot, prefixes.children
    new_nodes = np.empty(int(beams.size.sum()) * width, dtype=np.int64)
    n_new = 0
    for b in range(B):
        if not active[b]:
            continue
        m = 0
        for k in range(beams.size[b]):
            n = beams.node[b, k]
            pb = beams.p_blank[b, k]
            pnb = beams.p_token[b, k]
            total = _logaddexp(pb, pnb)
            last = token[n]
            # stay on n: a blank, or the last token repeated
            s, m = _slot(cand, slot_of, b, n, m)
            cand.p_blank[b, s] = _logaddexp(cand.p_blank[b, s], total + lp[b, blank])
            if last >= 0:
                cand.p_token[b, s] = _logaddexp(cand.p_token[b, s], pnb + lp[b, last])
            # move to n + c
            for j in range(n_tok[b]):
                c = tokens[b, j]
                key = n * C + c
                if key in children:
                    child = children[key]
                else:
                    bonus = 0.0
                    lex = 0
                    if rules.used:
                        u = lexs[n]
                        if c == rules.delimiter:  # the word so far must be a word
                            if not (u == 0 or u == unknown or rules.is_word[u]):
                                bonus += rules.unknown_penalty
                        else:
                            lex = rules.next[u, c]
                            if lex < 0:  # leaves the dictionary
                                bonus += rules.unknown_penalty
                                lex = unknown
                        if bonus == NEG_INF:
                            continue  # a hard lexicon: this prefix never exists
                    if c == rules.delimiter and last >= 0 and last != rules.delimiter:
                        bonus += rules.word_score
                    child = n_nodes
                    n_nodes += 1
                    children[key] = child
                    parent[child] = n
                    token[child] = c
                    lexs[child] = lex
                    boundary[child] = child if c == rules.delimiter else boundary[n]
                    non_acoustic[child] = non_acoustic[n] + bonus
                    slot_of[child] = -1
                    new_nodes[n_new] = child
                    n_new += 1
                s, m = _slot(cand, slot_of, b, child, m)
                cand.p_token[b, s] = _logaddexp(cand.p_token[b, s], (pb if c == last else total) + lp[b, c])
        cand.size[b] = m
        for k in range(m):
            slot_of[cand.node[b, k]] = -1
    return prefixes, n_nodes, new_nodes, n_new, cand


@njit(cache=True)
def select(active, non_acoustic, beam_prune_logp, cand, beams):
    """Keep each active utterance's best W candidates by logaddexp(p_b, p_nb) + non_acoustic."""
    B, W = beams.node.shape
    for b in range(B):
        if not active[b]:
            continue
        m = cand.size[b]
        score = np.empty(m)
        best = NEG_INF
        for k in range(m):
            score[k] = _logaddexp(cand.p_blank[b, k], cand.p_token[b, k]) + non_acoustic[cand.node[b, k]]
            if score[k] > best:
                best = score[k]
        order = np.argsort(-score)
        n = 0
        for k in order[: min(W, m)]:
            if score[k] == NEG_INF or score[k] < best + beam_prune_logp:
                break
            beams.node[b, n] = cand.node[b, k]
            beams.p_blank[b, n] = cand.p_blank[b, k]
            beams.p_token[b, n] = cand.p_token[b, k]
            n += 1
        beams.size[b] = n


@njit(cache=True)
def compact(prefixes, n_nodes, beams, num_tokens):
    """Keep the beams' prefixes and their ancestors, renumbered in the same order (roots keep
    their ids); ``beams.node`` is rewritten in place.

    Returns (prefixes, n_nodes, old_to_new (-1 for dropped nodes)).
    """
    parent = prefixes.parent
    live = np.zeros(n_nodes, dtype=np.bool_)
    for b in range(beams.node.shape[0]):
        for k in range(beams.size[b]):
            n = beams.node[b, k]
            while n >= 0 and not live[n]:
                live[n] = True
                n = parent[n]
    for b in range(beams.node.shape[0]):  # roots, even of finished rows
        live[b] = True
    old_to_new = np.full(n_nodes, -1, dtype=np.int64)
    m = 0
    for n in range(n_nodes):
        if live[n]:
            old_to_new[n] = m
            m += 1
    kept = _empty(max(2 * m, 1024))
    for n in range(n_nodes):
        k = old_to_new[n]
        if k < 0:
            continue
        kept.token[k] = prefixes.token[n]
        kept.lex[k] = prefixes.lex[n]
        kept.non_acoustic[k] = prefixes.non_acoustic[n]
        p = parent[n]
        if p >= 0:
            kept.parent[k] = old_to_new[p]
            kept.children[old_to_new[p] * num_tokens + prefixes.token[n]] = k
        kept.boundary[k] = old_to_new[prefixes.boundary[n]]
    for b in range(beams.node.shape[0]):
        for k in range(beams.size[b]):
            beams.node[b, k] = old_to_new[beams.node[b, k]]
    return kept, m, old_to_new


@njit(cache=True)
def decode(lp, lengths, blank, token_min_logp, beam_prune_logp, beams, prefixes, n_nodes, rules,
           compaction_slack):
    """All frames of a batch when no scorer needs Python: lp (B, T, C). The trie is compacted
    whenever it has more than twice its size after the last compaction plus the slack.

    Returns (prefixes, n_nodes): the trie may have been compacted.
    """
    B, T, C = lp.shape
    active = np.empty(B, dtype=np.bool_)
    after_compaction = n_nodes
    for t in range(T):
        for b in range(B):
            active[b] = t < lengths[b]
        if n_nodes > 2 * after_compaction + compaction_slack:
            prefixes, n_nodes, _ = compact(prefixes, n_nodes, beams, C)
            after_compaction = n_nodes
        prefixes, n_nodes, _, _, cand = extend(lp[:, t], active, blank, token_min_logp, beams, prefixes, n_nodes,
                                               rules)
        select(active, prefixes.non_acoustic, beam_prune_logp, cand, beams)
    return prefixes, n_nodes
