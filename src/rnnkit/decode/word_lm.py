"""A word n-gram language model compiled into the CTC beam search, with look-ahead on the lexicon trie.

**The model as arrays.** Every n-gram listed in the ARPA file gets an id (0 is the empty
context); a hash table maps (context id, word id) to the id of the n-gram (context, word).
A state is the id of the longest listed suffix of the words so far (at most order - 1 of
them), as kenlm keeps it. With natural logs,

    ln P(w | s) = logp[(s, w)]                       if (s, w) is listed
                = backoff[s] + ln P(w | suffix[s])   otherwise (the empty context lists every word)

and the next state is (s', w) for the context s' that listed it, cut to its suffix when it
already holds order words. The same scores as :class:`~rnnkit.decode.NGramLM` (tested),
read by compiled code in a few hash probes instead of a Python call per word.

**Look-ahead.** A lexicon-trie node u is a word begun but not finished; the word LM can only
score it at its end. Until then the search would rank ``th`` as if every word were free, and
prune good prefixes of rare-but-right words late or keep bad ones long. Each node carries

    lookahead[u] = max over the words w below u of ln P(w)            ("max")
                or ln sum over the words w below u of P(w)            ("logadd")

(unigram probabilities; 0 at the root, and ``none`` is 0 everywhere). When a prefix moves
from node u to node u' it gains lm_weight * (lookahead[u'] - lookahead[u]); when its word
ends it gains lm_weight * (ln P(w | s) - lookahead[u]). The look-ahead terms telescope to
zero over a finished word, so they only guide pruning: a complete hypothesis' score is the
same with or without them (tested).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
from numba import njit

from rnnkit.decode import int_hash
from rnnkit.decode.scorers import Lexicon

NEG_INF = -np.inf
LN10 = math.log(10.0)
LOOKAHEAD_MODES = ("max", "logadd", "none")


class NGramTables(NamedTuple):
    """A back-off n-gram model as arrays (see the module docstring); logs are natural."""

    keys: np.ndarray  # context id * num_words + word id -> n-gram id, an rnnkit.decode.int_hash table
    values: np.ndarray
    logp: np.ndarray  # (G,) float64
    backoff: np.ndarray  # (G,) float64 (0 where the file gives none)
    suffix: np.ndarray  # (G,) int64: the longest listed proper suffix (0 = the empty context)
    length: np.ndarray  # (G,) int64: words in the n-gram
    order: int
    num_words: int
    start: int  # the state after <s>
    end: int  # the word id of </s>


class WordLMRules(NamedTuple):
    """The compiled word LM as the beam search applies it, per lexicon-trie node u."""

    lm: NGramTables
    word_of: np.ndarray  # (U+1,) int64: the LM word id of the word ending at u (<unk> or -1 if none)
    lookahead: np.ndarray  # (U+1,) float64
    weight: float
    used: bool


def compile_ngram(log10_p: dict[tuple[str, ...], float], log10_backoff: dict[tuple[str, ...], float],
                  order: int) -> tuple[NGramTables, dict[str, int]]:
    """(tables, word -> id) of a back-off model given as an ARPA file's log10 probabilities and
    back-offs keyed by word tuples (every listed n-gram's prefix must be listed, as ARPA requires)."""
    words = sorted(g[0] for g in log10_p if len(g) == 1)
    word_id = {w: i for i, w in enumerate(words)}
    grams = sorted(log10_p, key=len)
    gram_id = {(): 0}
    for g in grams:
        gram_id[g] = len(gram_id)
    G = len(gram_id)
    lp, bo = np.zeros(G), np.zeros(G)
    suffix, length = np.zeros(G, dtype=np.int64), np.zeros(G, dtype=np.int64)
    keys, values = np.empty(G - 1, dtype=np.int64), np.arange(1, G, dtype=np.int64)
    V = len(words)
    for g in grams:
        i = gram_id[g]
        lp[i] = log10_p[g] * LN10
        bo[i] = log10_backoff.get(g, 0.0) * LN10
        length[i] = len(g)
        context = gram_id.get(g[:-1])
        if context is None:
            raise ValueError(f"the n-gram {' '.join(g)!r} is listed but its prefix {' '.join(g[:-1])!r} is not")
        keys[i - 1] = context * V + word_id[g[-1]]
        s = g[1:]
        while s not in gram_id:
            s = s[1:]
        suffix[i] = gram_id[s]
    hash_keys, hash_values = int_hash.from_pairs(keys, values)
    start = gram_id.get(("<s>",), 0)
    tables = NGramTables(hash_keys, hash_values, lp, bo, suffix, length, order, V, start, word_id.get("</s>", -1))
    return tables, word_id


@njit(cache=True)
def score(lm, state, word):
    """(ln P(word | state), the next state); word -1 (not in the model, no <unk>) scores -inf."""
    if word < 0:
        return NEG_INF, state
    total = 0.0
    s = state
    while True:
        g = int_hash.find(lm.keys, lm.values, s * lm.num_words + word)
        if g >= 0:
            return total + lm.logp[g], (g if lm.length[g] < lm.order else lm.suffix[g])
        if s == 0:
            return NEG_INF, state
        total += lm.backoff[s]
        s = lm.suffix[s]


def vocabulary_lexicon(words: Sequence[str], tokens: Sequence[str], word_delimiter: int) -> Lexicon:
    """The LM's words that ``tokens`` can spell, as a lexicon with no penalty for other words:
    how the search tells words apart (and looks ahead) when the user gives no lexicon."""
    by_string = {t: i for i, t in enumerate(tokens)}
    spelled = []
    for w in words:
        if w in ("<s>", "</s>", "<unk>"):
            continue
        try:
            ids = Lexicon._spell(w, by_string, tokens)
        except ValueError:
            continue  # a word the output cannot spell is never read
        if word_delimiter not in ids:
            spelled.append(ids)
    return Lexicon(spelled, word_delimiter=word_delimiter, unknown_penalty=0.0)


def word_lm_rules(tables: NGramTables, word_id: dict[str, int], lexicon: Lexicon, tokens: Sequence[str],
                  weight: float, lookahead: str) -> WordLMRules:
    """The per-node word ids and look-ahead scores of ``lexicon``'s trie (see the module docstring)."""
    if lookahead not in LOOKAHEAD_MODES:
        raise ValueError(f"lm_lookahead must be one of {LOOKAHEAD_MODES}. Received: {lookahead!r}")
    U = len(lexicon.children)
    unknown = word_id.get("<unk>", -1)
    word_of = np.full(U + 1, unknown, dtype=np.int64)
    for node, ids in lexicon.spellings.items():
        word_of[node] = word_id.get("".join(tokens[i] for i in ids), unknown)
    unigram = np.array([score(tables, 0, int(w))[0] for w in word_of])
    smeared = np.full(U + 1, NEG_INF)
    if lookahead == "none":
        smeared[:] = 0.0
    else:
        combine = np.maximum if lookahead == "max" else np.logaddexp
        smeared[U] = unigram[U]  # the unknown-word state: any word may still be <unk>
        for u in range(U - 1, -1, -1):  # children have larger ids than their parents
            if lexicon.is_word[u]:
                smeared[u] = combine(smeared[u], unigram[u])
            for child in lexicon.children[u].values():
                smeared[u] = combine(smeared[u], smeared[child])
        smeared[0] = 0.0
    return WordLMRules(tables, word_of, smeared, float(weight), True)


def unused_rules() -> WordLMRules:
    """Rules that add nothing (no compiled word LM): the kernels skip them."""
    empty = np.zeros(0, dtype=np.int64)
    tables = NGramTables(*int_hash.new(1), np.zeros(1), np.zeros(1),
                         np.zeros(1, dtype=np.int64), np.zeros(1, dtype=np.int64), 1, 1, 0, -1)
    return WordLMRules(tables, empty, np.zeros(0), 0.0, False)
