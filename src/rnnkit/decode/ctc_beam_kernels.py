"""Compiled kernels of the CTC prefix beam search (numba).

Prefixes are nodes of a trie shared by the whole batch, held in :class:`Prefixes`:

    nodes[n].parent, .token   the prefix is parent's plus ``token`` (-1 at a root: the empty prefix)
    nodes[n].lex              the lexicon-trie node its current word has reached
    nodes[n].boundary         the nearest ancestor ending in the word delimiter (or the root):
                              the words of a prefix are read back through ``parent`` from there
    nodes[n].lm               the compiled word LM's state after its finished words
    non_acoustic[n]           the total of its non-acoustic scores (lexicon, word bonus, the
                              compiled word LM with its look-ahead, and what the caller's
                              scorers add)
    lm_score[n]               the compiled word LM's ln-probability of its finished words
    slot[n]                   scratch: its candidate slot in the frame being extended, or -1

and beside it ``children``, a hash table parent * C + token -> child (:mod:`rnnkit.decode.int_hash`),
so an extension that reaches an existing prefix finds it and the two merge. (The layout is
chosen for speed: a node's links share a cache line, the scores and slots stay dense. The
loops read the tuples' arrays through local names, and the slot lookup is written out
twice rather than called: each of the alternatives measured 5-30% slower. The child
links were a numba typed dict, which made a search 1.6x slower.)

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
marking word ends; a hard lexicon never creates a prefix that leaves it. A word n-gram LM
(:class:`rnnkit.decode.word_lm.WordLMRules`) is scored here too, with its look-ahead, when a
prefix's word grows or ends.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

from rnnkit.decode import int_hash
from rnnkit.decode.word_lm import score as word_lm_score

NEG_INF = -np.inf

#: the links of one prefix (see the module docstring)
NODE = np.dtype([("parent", np.int64), ("token", np.int64), ("lex", np.int64), ("boundary", np.int64),
                 ("lm", np.int64)])


class Prefixes(NamedTuple):
    """The prefix trie (see the module docstring); the arrays may hold more rows than nodes."""

    nodes: np.ndarray  # (N,) NODE records
    non_acoustic: np.ndarray  # (N,) float64
    slot: np.ndarray  # (N,) int64
    lm_score: np.ndarray  # (N,) float64


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


class Children(NamedTuple):
    """The trie's child links: parent * C + token -> child, an :mod:`rnnkit.decode.int_hash` table."""

    keys: np.ndarray
    values: np.ndarray


def new_children(capacity: int = 4096) -> Children:
    return Children(*int_hash.new(capacity))


@njit(cache=True)
def children_with_room(children, entries):
    """``children`` able to hold ``entries`` links (see :func:`capacity_needed`)."""
    keys, values = int_hash.with_room(children.keys, children.values, entries)
    return Children(keys, values)


def new_prefixes(capacity: int, roots: int, lm_start: int = 0) -> Prefixes:
    """A trie with ``roots`` empty prefixes (one per utterance) at ids 0..roots-1, in the word
    LM's state ``lm_start``."""
    prefixes = _empty(capacity)
    prefixes.nodes["lex"][:roots] = 0
    prefixes.nodes["boundary"][:roots] = np.arange(roots)
    prefixes.nodes["lm"][:roots] = lm_start
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
    nodes = np.empty(capacity, dtype=NODE)
    for n in range(capacity):
        node = nodes[n]
        node.parent = -1
        node.token = -1
        node.lex = -1
        node.boundary = -1
        node.lm = -1
    return Prefixes(nodes, np.zeros(capacity), np.full(capacity, -1, dtype=np.int64), np.zeros(capacity))


@njit(cache=True, inline="always")
def _logaddexp(a, b):
    if a == NEG_INF:
        return b
    if b == NEG_INF:
        return a
    if a > b:
        return a + math.log1p(math.exp(b - a))
    return b + math.log1p(math.exp(a - b))


def capacity_needed(n_nodes: int, beams: Beams, num_tokens: int) -> int:
    """Nodes :func:`extend` may reach in one frame: each beam entry may gain a child per token."""
    return n_nodes + int(beams.size.sum()) * num_tokens


def frame_buffers(batch: int, width: int, num_tokens: int) -> tuple[Beams, np.ndarray]:
    """(candidates, new_nodes): room for every prefix one frame can reach, reused frame after frame."""
    k = width * num_tokens
    return (Beams(np.empty((batch, k), dtype=np.int64), np.empty((batch, k)), np.empty((batch, k)),
                  np.zeros(batch, dtype=np.int64)), np.empty(batch * k, dtype=np.int64))


@njit(cache=True)
def grow(prefixes, need):
    """``prefixes`` with room for ``need`` nodes (doubling), or itself when it has room."""
    n = prefixes.slot.shape[0]
    if n >= need:
        return prefixes
    grown = _empty(max(need, 2 * n))
    grown.nodes[:n] = prefixes.nodes
    grown.non_acoustic[:n] = prefixes.non_acoustic
    grown.slot[:n] = prefixes.slot
    grown.lm_score[:n] = prefixes.lm_score
    return grown


@njit(cache=True, inline="always")
def _word_end(word_lm, state, u):
    """The word that ends at lexicon node u, after LM state ``state``: (ln P(word | state), the next
    state, the weighted change of score: the node's look-ahead gives way to the true score)."""
    word_lp, state = word_lm_score(word_lm.lm, state, word_lm.word_of[u])
    return word_lp, state, word_lm.weight * (word_lp - word_lm.lookahead[u])


@njit(cache=True)
def extend(lp, active, blank, token_min_logp, early_prune_logp, beams, prefixes, children, n_nodes, rules, word_lm, cand,
           new_nodes):
    """Extend every active utterance's beam by one frame of log-probabilities lp (B, C).

    A new prefix whose score (exact at creation: this frame reaches it one way only) is below
    the score of a candidate already seen plus ``early_prune_logp`` is not created: with
    ``early_prune_logp`` = beam_prune_logp, :func:`select` would prune it anyway (-inf when
    scorers added later may raise it).

    ``prefixes`` and ``children`` must have room for :func:`capacity_needed` nodes
    (:func:`grow`, :func:`children_with_room`); ``cand``
    and ``new_nodes`` are the caller's buffers (:func:`frame_buffers`), filled here:
    ``cand`` with every prefix reached (not yet cut to the beam width), ``new_nodes[:n_new]``
    with the prefixes created. A new node's non-acoustic score is its parent's plus the
    lexicon, word-bonus and compiled word-LM terms; the caller adds its own scorers'. (The caller owns the
    buffers so that a call from Python returns two integers: boxing arrays and tuples on
    every frame cost 10% of the search.)

    Returns (n_nodes, n_new).
    """
    B, C = lp.shape
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
    # locals, not tuple fields, in the loops below: numba then keeps them in registers
    nodes, non_acoustic, slot_of, lm_score = prefixes
    child_keys, child_values = children
    beam_node, beam_pb, beam_pnb, beam_n = beams
    cand_node, cand_pb, cand_pnb, cand_n = cand
    lex_next, lex_word, use_lexicon, unknown_penalty, delimiter, word_score = rules
    lm, word_of, lookahead, lm_weight, use_lm = word_lm
    hard_lexicon = use_lexicon and unknown_penalty == NEG_INF
    n_new = 0
    for b in range(B):
        if not active[b]:
            continue
        m = 0
        floor = NEG_INF  # a candidate's score so far + early_prune_logp: at most the frame's pruning floor
        for k in range(beam_n[b]):
            n = beam_node[b, k]
            pb = beam_pb[b, k]
            pnb = beam_pnb[b, k]
            total = _logaddexp(pb, pnb)
            last = nodes[n].token
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
            floor = max(floor, _logaddexp(cand_pb[b, s], cand_pnb[b, s]) + non_acoustic[n] + early_prune_logp)
            # move to n + c
            u = nodes[n].lex
            for j in range(n_tok[b]):
                c = tokens[b, j]
                if hard_lexicon and (lex_next[u, c] < 0 if c != delimiter else not (u == 0 or lex_word[u])):
                    continue  # leaves the dictionary: never exists (checked before the trie's lookup)
                key = n * C + c
                child = int_hash.find(child_keys, child_values, key)
                if child < 0:
                    bonus = 0.0
                    lex = 0
                    ends_word = c == delimiter and last >= 0 and last != delimiter
                    if use_lexicon:
                        if c == delimiter:  # the word so far must be a word
                            if not (u == 0 or u == unknown or lex_word[u]):
                                bonus += unknown_penalty
                        else:
                            lex = lex_next[u, c]
                            if lex < 0:  # leaves the dictionary
                                bonus += unknown_penalty
                                lex = unknown
                    lm_state = nodes[n].lm
                    word_lp = 0.0
                    if use_lm and bonus > NEG_INF:
                        if ends_word:
                            word_lp, lm_state, delta = _word_end(word_lm, lm_state, u)
                            bonus += delta
                        elif c != delimiter:
                            bonus += lm_weight * (lookahead[lex] - lookahead[u])
                    if bonus == NEG_INF:
                        continue  # a hard lexicon, or a word the LM cannot have: never exists
                    if ends_word:
                        bonus += word_score
                    if (pb if c == last else total) + lp[b, c] + non_acoustic[n] + bonus < floor:
                        continue  # select would prune it: its one way in this frame is this one
                    child = n_nodes
                    n_nodes += 1
                    int_hash.insert(child_keys, child_values, key, child)
                    node = nodes[child]
                    node.parent = n
                    node.token = c
                    node.lex = lex
                    node.boundary = child if c == delimiter else nodes[n].boundary
                    node.lm = lm_state
                    non_acoustic[child] = non_acoustic[n] + bonus
                    lm_score[child] = lm_score[n] + word_lp
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
    return n_nodes, n_new


@njit(cache=True)
def _best_first(score, W, floor):
    """The indices of the at most W highest scores that are >= floor (and > -inf), best first:
    a partial selection, then a sort of the few kept (a full argsort of every candidate was a
    third of the search's time)."""
    m = score.shape[0]
    if m > W:
        floor = max(floor, np.partition(-score, W - 1)[W - 1] * -1.0)
    keep = np.empty(min(W, m), dtype=np.int64)
    n = 0
    for k in range(m):  # above the W-th best first, then ties with it, in candidate order
        if score[k] > floor and score[k] > NEG_INF:
            keep[n] = k
            n += 1
    for k in range(m):
        if n == keep.shape[0]:
            break
        if score[k] == floor and score[k] > NEG_INF:
            keep[n] = k
            n += 1
    keep = keep[:n]
    return keep[np.argsort(-score[keep], kind="mergesort")]


@njit(cache=True)
def select(active, prefixes, beam_prune_logp, cand, beams, recombine_rows, num_tokens):
    """Keep each active utterance's best W candidates by logaddexp(p_b, p_nb) + non_acoustic.

    With ``recombine_rows`` (the lexicon table's rows; 0: off), candidates with the same word-LM
    state, lexicon node and last token are compared first, and one whose p_b and p_nb (plus
    its non-acoustic score) are both at most another's is dropped (see BeamSearchOptions).
    """
    non_acoustic = prefixes.non_acoustic
    nodes = prefixes.nodes
    cand_node, cand_pb, cand_pnb, cand_n = cand
    beam_node, beam_pb, beam_pnb, beam_n = beams
    B, W = beam_node.shape
    for b in range(B):
        if not active[b]:
            continue
        m = cand_n[b]
        score = np.empty(m)
        best = NEG_INF
        for k in range(m):
            score[k] = _logaddexp(cand_pb[b, k], cand_pnb[b, k]) + non_acoustic[cand_node[b, k]]
            if score[k] > best:
                best = score[k]
        if recombine_rows > 0:
            keys, values = int_hash.new(4 * m + 4)
            for k in range(m):
                n = cand_node[b, k]
                key = (nodes[n].lm * recombine_rows + nodes[n].lex) * (num_tokens + 1) + nodes[n].token + 1
                other = int_hash.find(keys, values, key)
                if other < 0:
                    int_hash.insert(keys, values, key, k)
                    continue
                no = non_acoustic[cand_node[b, other]]
                nk = non_acoustic[n]
                if cand_pb[b, k] + nk >= cand_pb[b, other] + no and cand_pnb[b, k] + nk >= cand_pnb[b, other] + no:
                    score[other] = NEG_INF
                    int_hash.insert(keys, values, key, k)
                elif cand_pb[b, other] + no >= cand_pb[b, k] + nk and cand_pnb[b, other] + no >= cand_pnb[b, k] + nk:
                    score[k] = NEG_INF
        order = _best_first(score, W, best + beam_prune_logp)
        n = 0
        for k in order:
            beam_node[b, n] = cand_node[b, k]
            beam_pb[b, n] = cand_pb[b, k]
            beam_pnb[b, n] = cand_pnb[b, k]
            n += 1
        beam_n[b] = n


@njit(cache=True)
def ends(node_ids, prefixes, rules, word_lm):
    """What the end of the output adds to each prefix in ``node_ids``: (weighted score, its word-LM
    part). A last word without a delimiter after it ends here: the lexicon's verdict on it, the
    word bonus, and the word LM's score in place of its look-ahead; then the LM's </s>."""
    nodes = prefixes.nodes
    lex_next, lex_word, use_lexicon, unknown_penalty, delimiter, word_score = rules
    lm, word_of, lookahead, lm_weight, use_lm = word_lm
    unknown = lex_next.shape[0] - 1
    end = np.zeros(node_ids.shape[0])
    lm_end = np.zeros(node_ids.shape[0])
    for i in range(node_ids.shape[0]):
        n = node_ids[i]
        u = nodes[n].lex
        last = nodes[n].token
        open_word = last >= 0 and last != delimiter
        if use_lexicon and open_word and not (u == unknown or lex_word[u]):
            end[i] += unknown_penalty
        if open_word:
            end[i] += word_score
        if use_lm and end[i] > NEG_INF:
            state = nodes[n].lm
            if open_word:
                word_lp, state, delta = _word_end(word_lm, state, u)
                end[i] += delta
                lm_end[i] += word_lp
            sentence_end = word_lm_score(lm, state, lm.end)[0]
            end[i] += lm_weight * sentence_end
            lm_end[i] += sentence_end
    return end, lm_end


@njit(cache=True)
def compact(prefixes, n_nodes, beams, num_tokens):
    """Keep the beams' prefixes and their ancestors, renumbered in the same order (roots keep
    their ids); ``beams.node`` is rewritten in place.

    Returns (prefixes, children, n_nodes, old_to_new (-1 for dropped nodes)).
    """
    nodes = prefixes.nodes
    live = np.zeros(n_nodes, dtype=np.bool_)
    for b in range(beams.node.shape[0]):
        for k in range(beams.size[b]):
            n = beams.node[b, k]
            while n >= 0 and not live[n]:
                live[n] = True
                n = nodes[n].parent
    for b in range(beams.node.shape[0]):  # roots, even of finished rows
        live[b] = True
    old_to_new = np.full(n_nodes, -1, dtype=np.int64)
    m = 0
    for n in range(n_nodes):
        if live[n]:
            old_to_new[n] = m
            m += 1
    kept = _empty(max(2 * m, 1024))
    children = Children(*int_hash.new(max(4 * m, 4096)))
    for n in range(n_nodes):
        k = old_to_new[n]
        if k < 0:
            continue
        node = kept.nodes[k]
        node.token = nodes[n].token
        node.lex = nodes[n].lex
        node.lm = nodes[n].lm
        kept.non_acoustic[k] = prefixes.non_acoustic[n]
        kept.lm_score[k] = prefixes.lm_score[n]
        p = nodes[n].parent
        if p >= 0:
            node.parent = old_to_new[p]
            int_hash.insert(children.keys, children.values, old_to_new[p] * num_tokens + nodes[n].token, k)
        node.boundary = old_to_new[nodes[n].boundary]
    for b in range(beams.node.shape[0]):
        for k in range(beams.size[b]):
            beams.node[b, k] = old_to_new[beams.node[b, k]]
    return kept, children, m, old_to_new


@njit(cache=True, nogil=True)
def decode(lp, lengths, blank, token_min_logp, beam_prune_logp, beams, prefixes, children, n_nodes, rules, word_lm,
           compaction_slack, recombine_rows):
    """All frames of a batch when no scorer needs Python: lp (B, T, C). The trie is compacted
    whenever it has more than twice its size after the last compaction plus the slack.

    Returns (prefixes, children, n_nodes): the trie may have been compacted.
    """
    B, T, C = lp.shape
    W = beams.node.shape[1]
    cand = Beams(np.empty((B, W * C), dtype=np.int64), np.empty((B, W * C)), np.empty((B, W * C)),
                 np.zeros(B, dtype=np.int64))
    new_nodes = np.empty(B * W * C, dtype=np.int64)
    active = np.empty(B, dtype=np.bool_)
    after_compaction = n_nodes
    for t in range(T):
        for b in range(B):
            active[b] = t < lengths[b]
        if n_nodes > 2 * after_compaction + compaction_slack:
            prefixes, children, n_nodes, _ = compact(prefixes, n_nodes, beams, C)
            after_compaction = n_nodes
        prefixes = grow(prefixes, n_nodes + beams.size.sum() * C)
        children = children_with_room(children, n_nodes + beams.size.sum() * C)
        n_nodes, _ = extend(lp[:, t], active, blank, token_min_logp, beam_prune_logp, beams, prefixes, children, n_nodes,
                            rules, word_lm, cand, new_nodes)
        select(active, prefixes, beam_prune_logp, cand, beams, recombine_rows, C)
    return prefixes, children, n_nodes
