"""CTC prefix beam search, batched, with dictionary constraint, language models and hotwords.

The search keeps, per output prefix, the probability of all alignments ending in a blank
(p_b) and in a token (p_nb); identical prefixes reached in different ways merge, and a
repeated token needs a blank between (see :mod:`rnnkit.decode.ctc_beam_kernels`). The
ranking score of a prefix is

    log(p_b + p_nb) + lm_weight * log P_LM(prefix) + word_score * words + lexicon + hotwords

Where the work happens:

* compiled, per frame and prefix: the CTC recursion, the lexicon (a hard lexicon never
  creates a prefix that leaves it) and the word bonus;
* Python, once per *new* prefix and batched: token-level scorers (an RNN language model,
  hotwords, a character n-gram model, your own :class:`Scorer`);
* Python, once per new prefix that *ends a word*: a word-level language model
  (:class:`NGramLM` with a word delimiter), given the word read back from the prefix trie.

Without Python scorers the whole search is one compiled call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from rnnkit import ctc_kernels
from rnnkit.decode import ctc_beam_kernels as K
from rnnkit.decode.hypothesis import Hypothesis, describe
from rnnkit.decode.inputs import check_ctc_decoder_inputs
from rnnkit.decode.scorers import Hotwords, Lexicon, Scorer, TokenTextScorer

#: Prefixes the trie may gain beyond twice its live size before dead ones are dropped.
COMPACTION_SLACK = 65536


def ctc_beam_search(log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None, beam_width: int = 16,
                    blank: int = 0, lexicon: Lexicon | None = None, lm: Any = None, lm_weight: float = 0.5,
                    word_score: float = 0.0, token_min_logp: float = -5.0, beam_prune_logp: float = -10.0,
                    nbest: int = 1, tokens: Sequence[str] | None = None, word_delimiter: int | None = None,
                    hotwords: Hotwords | Iterable[str] | None = None,
                    hotword_weight: float = 2.0) -> list[list[Hypothesis]]:
    """Prefix beam search over CTC outputs, for a batch at once.

    Args:
        log_probs: (B, T, C) log-probabilities. lengths: (B,) frames per row (default T).
        beam_width: prefixes kept per frame (>= 1).
        lexicon: a :class:`Lexicon`: only dictionary words (or an unknown-word penalty).
        lm: a language model: :class:`NGramLM` (scored per word with a word delimiter, per
            token string without), :class:`RNNLMScorer`, or any :class:`Scorer`; weighted
            by ``lm_weight``.
        word_score: bonus per word (needs ``word_delimiter``).
        token_min_logp: tokens below this log-probability in a frame are not tried (the
            frame's best always is); -inf tries every token.
        beam_prune_logp: drop prefixes scoring below the frame's best plus this (<= 0).
        nbest: hypotheses returned per row, best first.
        tokens: token strings by id (for text, lexicon spelling and text LMs).
        word_delimiter: the id of the token between words.
        hotwords: phrases to boost (strings or token-id sequences), ``hotword_weight`` per
            matched token; or a prepared :class:`Hotwords`.

    Returns:
        Per row, up to ``nbest`` :class:`Hypothesis`, best first; ``acoustic_score`` is the
        log-probability of the ids summed over the alignments the search kept (exactly
        -ctc_loss with a wide beam and no pruning). A row where every prefix was pruned
        gets an empty list.

    Example:
        >>> hyps = ctc_beam_search(lp, beam_width=32, tokens=list("_ abc"), word_delimiter=1)
        >>> hyps[0][0].text
    """
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"beam_width must be an integer >= 1. Received: {beam_width!r}")
    if not isinstance(nbest, int) or not 1 <= nbest <= beam_width:
        raise ValueError(f"nbest must be an integer in [1, beam_width={beam_width}]. Received: {nbest!r}")
    if beam_prune_logp > 0:
        raise ValueError(f"beam_prune_logp must be <= 0 (a log-probability margin). Received: {beam_prune_logp}")
    x, lens = check_ctc_decoder_inputs(log_probs, lengths, blank, tokens, word_delimiter)
    if word_score != 0 and word_delimiter is None:
        raise ValueError(f"word_score needs word_delimiter=. Received: word_score={word_score}, no delimiter")
    search = _Search(x, lens, beam_width, blank, token_min_logp, beam_prune_logp, tokens, word_delimiter,
                     word_score, lexicon, _token_scorers(lm, lm_weight, hotwords, hotword_weight, tokens,
                                                          word_delimiter), _word_lm(lm, lm_weight, tokens, word_delimiter),
                     float(lm_weight))
    search.run()
    return [search.finish(b, nbest) for b in range(x.shape[0])]


def _is_text_lm(lm: Any) -> bool:
    return lm is not None and getattr(lm, "unit", "token") == "text"


def _word_lm(lm: Any, lm_weight: float, tokens: Sequence[str] | None, word_delimiter: int | None):
    if not _is_text_lm(lm) or lm_weight == 0 or word_delimiter is None:
        return None
    if tokens is None:
        raise ValueError("a text language model (e.g. NGramLM) needs tokens= to spell the output")
    return lm


def _token_scorers(lm: Any, lm_weight: float, hotwords, hotword_weight: float, tokens: Sequence[str] | None,
                   word_delimiter: int | None) -> list[tuple[bool, Scorer, float]]:
    """(is the language model, scorer, weight) for the scorers called once per new prefix."""
    out: list[tuple[bool, Scorer, float]] = []
    if hotwords is not None:
        if not isinstance(hotwords, Hotwords):
            hotwords = Hotwords(list(hotwords), weight=hotword_weight, tokens=tokens)
        out.append((False, hotwords, 1.0))
    if lm is not None and lm_weight != 0:
        if _is_text_lm(lm):
            if word_delimiter is not None:
                return out  # scored per word (_word_lm)
            if tokens is None:
                raise ValueError("a text language model (e.g. NGramLM) needs tokens= to spell the output")
            lm = TokenTextScorer(lm, tokens)
        out.append((True, lm, float(lm_weight)))
    return out


class _Search:
    """The state of one batched search: the prefix trie, the beams, the scorers' states."""

    def __init__(self, x, lens, beam_width, blank, token_min_logp, beam_prune_logp, tokens, word_delimiter,
                 word_score, lexicon, token_scorers, word_lm, word_lm_weight) -> None:
        B, T, C = x.shape
        self.x, self.lens, self.blank = x, lens, blank
        self.token_min_logp, self.beam_prune_logp = token_min_logp, beam_prune_logp
        self.tokens, self.delimiter, self.word_score = tokens, word_delimiter, float(word_score)
        if lexicon is not None:
            if not isinstance(lexicon, Lexicon):
                raise ValueError(f"lexicon must be an rnnkit.decode.Lexicon. Received: {type(lexicon).__name__}")
            if lexicon.word_delimiter != word_delimiter:
                raise ValueError(f"the lexicon's word_delimiter ({lexicon.word_delimiter}) differs from the "
                                 f"decoder's ({word_delimiter})")
            self.lex_next, self.lex_word = lexicon.tables(C)
            self.unknown_penalty = -np.inf if lexicon.unknown_penalty is None else float(lexicon.unknown_penalty)
        else:
            self.lex_next, self.lex_word = np.zeros((1, C), dtype=np.int64), np.zeros(1, dtype=np.bool_)
            self.unknown_penalty = 0.0
        self.use_lexicon = lexicon is not None
        self.token_scorers, self.word_lm, self.word_lm_weight = token_scorers, word_lm, word_lm_weight
        self.ints, self.fused = K.new_nodes(max(1024, 4 * B * beam_width), B)
        self.slot_of = np.full(self.ints.shape[0], -1, dtype=np.int64)
        self.children = K.new_children()
        self.n_nodes = B
        self.beam_node = np.zeros((B, beam_width), dtype=np.int64)
        self.beam_pb = np.full((B, beam_width), -np.inf)
        self.beam_pnb = np.full((B, beam_width), -np.inf)
        self.beam_node[:, 0] = np.arange(B)  # node b is the empty prefix of row b
        self.beam_pb[:, 0] = 0.0
        self.beam_n = np.ones(B, dtype=np.int64)
        self.lm_total = np.zeros(self.ints.shape[0])  # unweighted LM log-probability per prefix
        self.states = [{b: s.initial_state() for b in range(B)} for _, s, _ in token_scorers]
        self.word_states = {b: word_lm.initial_state() for b in range(B)} if word_lm is not None else {}

    def _kernel_args(self):
        return (self.lex_next, self.lex_word, self.use_lexicon, self.unknown_penalty,
                -1 if self.delimiter is None else self.delimiter, self.word_score)

    def run(self) -> None:
        args = (self.beam_node, self.beam_pb, self.beam_pnb, self.beam_n)
        if not self.token_scorers and self.word_lm is None:
            self.ints, self.fused, self.slot_of, self.n_nodes, self.children = K.decode(
                self.x, self.lens, self.blank, self.token_min_logp, self.beam_prune_logp, *args,
                self.ints, self.fused, self.n_nodes, self.children, self.slot_of, *self._kernel_args(),
                COMPACTION_SLACK)
            self.lm_total = np.zeros(self.ints.shape[0])  # no language model: 0 for every prefix
            return
        after_compaction = self.n_nodes
        for t in range(self.x.shape[1]):
            active = t < self.lens
            if not active.any():
                break
            if self.n_nodes > 2 * after_compaction + COMPACTION_SLACK:
                self._compact()
                after_compaction = self.n_nodes
            (self.ints, self.fused, self.slot_of, self.n_nodes, new, n_new,
             cand_node, cand_pb, cand_pnb, cand_n) = K.extend(
                self.x[:, t], active, self.blank, self.token_min_logp, *args, self.ints, self.fused,
                self.n_nodes, self.children, self.slot_of, *self._kernel_args())
            if self.lm_total.shape[0] < self.ints.shape[0]:
                self.lm_total = np.concatenate([self.lm_total, np.zeros(self.ints.shape[0] - self.lm_total.shape[0])])
            if n_new:
                self._score(new[:n_new])
            K.select(active, self.fused, self.beam_prune_logp, cand_node, cand_pb, cand_pnb, cand_n, *args)
            self._keep_states()

    def _compact(self) -> None:
        """Drop the prefixes no beam can reach again; renumber everything that refers to nodes."""
        old_n = self.n_nodes
        self.ints, self.fused, self.n_nodes, self.children, old_to_new = K.compact(
            self.ints, self.fused, self.n_nodes, self.beam_node, self.beam_n, self.x.shape[2])
        self.slot_of = np.full(self.ints.shape[0], -1, dtype=np.int64)
        lm_total = np.zeros(self.ints.shape[0])
        kept = np.nonzero(old_to_new >= 0)[0]
        lm_total[old_to_new[kept]] = self.lm_total[:old_n][kept]
        self.lm_total = lm_total
        for st in [*self.states, self.word_states]:
            moved = {int(old_to_new[n]): v for n, v in st.items() if n < old_n and old_to_new[n] >= 0}
            st.clear()
            st.update(moved)

    # -- scorers ------------------------------------------------------------------------------

    def _score(self, new: np.ndarray) -> None:
        """Add the Python scorers' increments to the new prefixes' fused scores (a prefix ruled
        out by one scorer is shown to no later one)."""
        parent, fused = self.ints[new, K.PARENT], self.fused
        self.lm_total[new] = self.lm_total[parent]
        for (is_lm, scorer, weight), st in zip(self.token_scorers, self.states):
            new = new[fused[new] > -np.inf]
            if new.size == 0:
                return
            deltas, new_states = scorer.score_many([st[p] for p in self.ints[new, K.PARENT].tolist()],
                                                   self.ints[new, K.TOKEN].tolist())
            fused[new] += weight * deltas
            if is_lm:
                self.lm_total[new] += deltas
            st.update(zip(new.tolist(), new_states))
        if self.word_lm is not None:
            ends = new[(self.ints[new, K.TOKEN] == self.delimiter) & (fused[new] > -np.inf)]
            for n in ends.tolist():
                delta, state = self._score_word(int(self.ints[n, K.PARENT]))
                self.word_states[n] = state
                fused[n] += self.word_lm_weight * delta
                self.lm_total[n] += delta

    def _score_word(self, n: int) -> tuple[float, Any]:
        """The word LM's (ln P(word | words before), state) for the word that prefix n ends with."""
        boundary = int(self.ints[n, K.BOUNDARY])
        chars = []
        while n != boundary:
            chars.append(self.tokens[int(self.ints[n, K.TOKEN])])
            n = int(self.ints[n, K.PARENT])
        state = self.word_states[boundary]
        if not chars:
            return 0.0, state
        return self.word_lm.score(state, "".join(reversed(chars)))

    def _keep_states(self) -> None:
        """Make sure every prefix in a beam has its scorer states; now and then drop the others."""
        alive = [int(n) for b in range(self.beam_node.shape[0]) for n in self.beam_node[b, : self.beam_n[b]]]
        for (_, scorer, _), st in zip(self.token_scorers, self.states):
            missing = [n for n in alive if n not in st]
            if missing:  # a prefix scored on an earlier frame, evicted, now back in a beam
                _, new_states = scorer.score_many([st[int(self.ints[n, K.PARENT])] for n in missing],
                                                  [int(self.ints[n, K.TOKEN]) for n in missing])
                st.update(zip(missing, new_states))
            if len(st) > 8 * len(alive) + 4096:
                keep = {n: st[n] for n in alive}
                st.clear()
                st.update(keep)
        if self.word_lm is not None and len(self.word_states) > 8 * len(alive) + 4096:
            keep = {b: self.word_states[b] for b in {int(self.ints[n, K.BOUNDARY]) for n in alive}}
            self.word_states.clear()
            self.word_states.update(keep)

    # -- results ------------------------------------------------------------------------------

    def _final(self, n: int) -> tuple[float, float]:
        """(weighted end-of-output score, its LM part) of prefix n."""
        end, lm_end = 0.0, 0.0
        last = int(self.ints[n, K.TOKEN])
        if self.use_lexicon:
            u = int(self.ints[n, K.LEX])
            if not (u == 0 or u == self.lex_next.shape[0] - 1 or self.lex_word[u]):
                end += self.unknown_penalty
        if last >= 0 and last != self.delimiter:
            end += self.word_score
        for (is_lm, scorer, weight), st in zip(self.token_scorers, self.states):
            delta = scorer.final(st[n])
            end += weight * delta
            lm_end += delta if is_lm else 0.0
        if self.word_lm is not None and end > -np.inf:
            delta, state = self._score_word(n) if last != self.delimiter else (0.0, self.word_states[n])
            delta += self.word_lm.final(state)
            end += self.word_lm_weight * delta
            lm_end += delta
        return end, lm_end

    def _emission_frames(self, b: int, ids: list[int]) -> list[int]:
        """Where each token starts on the best alignment of ids (Viterbi, as forced_align)."""
        if not ids:
            return []
        T_b = int(self.lens[b])
        positions = np.full((1, T_b), -1, dtype=np.int64)
        ctc_kernels.viterbi(self.x[b : b + 1, :T_b], np.array([ids], dtype=np.int64), np.array([T_b]),
                            np.array([len(ids)]), self.blank, positions, np.empty(1), np.empty(1, dtype=np.int8))
        starts = np.nonzero((positions[0] % 2 == 1) & (np.diff(positions[0], prepend=-1) != 0))[0]
        return starts.tolist()

    def finish(self, b: int, nbest: int) -> list[Hypothesis]:
        """Rank row b's final prefixes; spell out (ids, frames, text) the best ``nbest`` only."""
        ranked = []
        for k in range(self.beam_n[b]):
            n = int(self.beam_node[b, k])
            acoustic = float(np.logaddexp(self.beam_pb[b, k], self.beam_pnb[b, k]))
            end, lm_end = self._final(n)
            score = acoustic + float(self.fused[n]) + end
            if score > -np.inf:
                ranked.append((score, acoustic, float(self.lm_total[n]) + lm_end, n))
        ranked.sort(key=lambda r: -r[0])
        results = []
        for score, acoustic, lm_score, n in ranked[:nbest]:
            ids = []
            while self.ints[n, K.TOKEN] >= 0:
                ids.append(int(self.ints[n, K.TOKEN]))
                n = int(self.ints[n, K.PARENT])
            ids.reverse()
            frames = self._emission_frames(b, ids)
            text, words = describe(ids, frames, self.tokens, self.delimiter)
            results.append(Hypothesis(ids=ids, score=score, acoustic_score=acoustic, lm_score=lm_score,
                                      text=text, frames=frames, word_frames=words))
        return results
