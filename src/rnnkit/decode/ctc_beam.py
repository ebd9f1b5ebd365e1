"""CTC prefix beam search, batched, with dictionary constraint, language models and hotwords.

The search keeps, per output prefix, the probability of all alignments ending in a blank
(p_b) and in a token (p_nb); identical prefixes reached in different ways merge, and a
repeated token needs a blank between (see :mod:`rnnkit.decode.ctc_beam_kernels`). The
ranking score of a prefix is

    log(p_b + p_nb) + lm_weight * log P_LM(prefix) + word_score * words + lexicon + hotwords

Where the work happens:

* compiled, per frame and prefix: the CTC recursion, the lexicon (a hard lexicon never
  creates a prefix that leaves it), the word bonus, and a word n-gram model
  (:class:`NGramLM` with a word delimiter) with its look-ahead through the lexicon trie
  (:mod:`rnnkit.decode.word_lm`);
* Python, once per *new* prefix and batched: token-level scorers (an RNN language model,
  hotwords, a character n-gram model, your own :class:`Scorer`);
* Python, once per new prefix that *ends a word*: a word-level :class:`TextLM` of your own,
  given the word read back from the prefix trie.

Without Python scorers the search of an utterance is one compiled call, and a batch's
utterances are searched apart, on as many threads as torch uses (``torch.get_num_threads()``):
a batch is never slower per utterance than one at a time. With Python scorers the batch
moves frame by frame together, so that each frame calls a scorer once for all utterances.
A :class:`CTCBeamDecoder` is built once (options, lexicon tables, scorers) and called per
batch; :func:`ctc_beam_search` is its one-line form.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from rnnkit.ctc import _Batch, _lattice_cpu, _viterbi  # the kernels' wrappers, on inputs checked here
from rnnkit.checks import is_int
from rnnkit.decode import ctc_beam_kernels as K
from rnnkit.decode.hypothesis import Hypothesis, describe
from rnnkit.decode.inputs import check_ctc_decoder_inputs
from rnnkit.decode.lm_scorer import NGramLM
from rnnkit.decode.scorers import Hotwords, Lexicon, Scorer, TextLM, TokenTextScorer
from rnnkit.decode import word_lm as WL

#: Prefixes the trie may gain beyond twice its live size before dead ones are dropped.
COMPACTION_SLACK = 65536


@dataclass(frozen=True)
class BeamSearchOptions:
    """The search's settings (see :class:`CTCBeamDecoder`).

    beam_width: prefixes kept per frame (>= 1). nbest: hypotheses returned per row, best first.
    blank: the blank's id. lm_weight: weight of the language model's natural-log score.
    word_score: bonus per word (needs ``word_delimiter``). token_min_logp: tokens below this
    log-probability in a frame are not tried (the frame's best always is); -inf tries every
    token. beam_prune_logp: drop prefixes scoring below the frame's best plus this (<= 0).
    hotword_weight: bonus per matched hotword token (when hotwords are given as phrases).
    lm_lookahead: how a word n-gram model (:class:`NGramLM` with a word delimiter) scores a
    word before it ends, to guide pruning: "max" (the best unigram below the prefix's
    lexicon node), "logadd" (their total probability) or "none" (see
    :mod:`rnnkit.decode.word_lm`). It never changes a finished hypothesis' score.
    recombine: with a compiled word n-gram model, of two prefixes in a frame that end in the
    same LM state, lexicon node and token, drop one when the other's p_b and p_nb (with
    their scores) are both at least as high, so that the beam holds more distinct futures
    (decoders that merge hypotheses by LM state, such as flashlight's, do the like). An
    approximation: a prefix's sum over alignments then misses the paths through the
    dropped one, and the search may rank a less probable output first (tested: it does, on
    a tiny case). Off by default; on the PTB benchmark it lowered WER at equal cost.
    """

    beam_width: int = 16
    nbest: int = 1
    blank: int = 0
    lm_weight: float = 0.5
    word_score: float = 0.0
    token_min_logp: float = -5.0
    beam_prune_logp: float = -10.0
    hotword_weight: float = 2.0
    lm_lookahead: str = "max"
    recombine: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.beam_width, int) or self.beam_width < 1:
            raise ValueError(f"beam_width must be an integer >= 1. Received: {self.beam_width!r}")
        if not is_int(self.blank) or self.blank < 0:
            raise ValueError(f"blank must be a class id >= 0. Received: {self.blank!r}")
        if not isinstance(self.nbest, int) or not 1 <= self.nbest <= self.beam_width:
            raise ValueError(f"nbest must be an integer in [1, beam_width={self.beam_width}]. Received: {self.nbest!r}")
        for name in ("lm_weight", "word_score", "hotword_weight"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number. Received: {value!r}")
        for name in ("token_min_logp", "beam_prune_logp"):  # -inf is allowed: no threshold
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or math.isnan(value) or value == math.inf:
                raise ValueError(f"{name} must be a number or -inf. Received: {value!r}")
        if not isinstance(self.recombine, bool):
            raise ValueError(f"recombine must be True or False. Received: {self.recombine!r}")
        if self.lm_lookahead not in WL.LOOKAHEAD_MODES:
            raise ValueError(f"lm_lookahead must be one of {WL.LOOKAHEAD_MODES}. Received: {self.lm_lookahead!r}")
        if self.beam_prune_logp > 0:
            raise ValueError(f"beam_prune_logp must be <= 0 (a log-probability margin). Received: {self.beam_prune_logp}")


class CTCBeamDecoder:
    """Prefix beam search over CTC outputs, built once, called per batch.

    The lexicon's trie tables, the hotword automaton and the language model's scorer are
    prepared here, once; each call decodes a batch of log-probabilities.

    Args:
        options: a :class:`BeamSearchOptions`.
        tokens: token strings by id (for text, lexicon spelling and text LMs).
        word_delimiter: the id of the token between words.
        lexicon: a :class:`Lexicon`: only dictionary words (or an unknown-word penalty).
        lm: a language model: a :class:`TextLM` such as :class:`NGramLM` (scored per word
            with a word delimiter, per token string without), :class:`RNNLMScorer`, or any
            :class:`Scorer`; weighted by ``options.lm_weight``. An :class:`NGramLM` with a
            word delimiter is compiled into the search (its tables built once, here).
        hotwords: phrases to boost (strings or token-id sequences), ``options.hotword_weight``
            per matched token; or a prepared :class:`Hotwords`.
        threads: utterances searched at once when no Python scorer is used (default:
            ``torch.get_num_threads()``); the results do not depend on it.
        compile_word_lm: False scores an :class:`NGramLM` per word in Python instead (the
            path the compiled one is tested against; no look-ahead or recombination there).

    Call arguments:
        log_probs: (B, T, C) log-probabilities. lengths: (B,) frames per row (default T).

    Returns:
        Per row, up to ``nbest`` :class:`Hypothesis`, best first; ``acoustic_score`` is the
        log-probability of the ids summed over the alignments the search kept (exactly
        -ctc_loss with a wide beam and no pruning). A row where every prefix was pruned
        gets an empty list.

    Example:
        >>> decoder = CTCBeamDecoder(BeamSearchOptions(beam_width=32), tokens=list("_ abc"), word_delimiter=1,
        ...                          lexicon=Lexicon(["ab", "cab"], tokens=list("_ abc"), word_delimiter=1))
        >>> hyps = decoder(log_probs)        # as often as needed
        >>> hyps[0][0].text
    """

    def __init__(self, options: BeamSearchOptions | None = None, tokens: Sequence[str] | None = None,
                 word_delimiter: int | None = None, lexicon: Lexicon | None = None, lm: Any = None,
                 hotwords: Hotwords | Iterable[str] | None = None, threads: int | None = None,
                 compile_word_lm: bool = True) -> None:
        self.options = o = options or BeamSearchOptions()
        if threads is not None and (not is_int(threads) or threads < 1):
            raise ValueError(f"threads must be an integer >= 1 or None. Received: {threads!r}")
        self.threads = threads
        self.tokens = None if tokens is None else list(tokens)
        self.word_delimiter = word_delimiter
        if o.word_score != 0 and word_delimiter is None:
            raise ValueError(f"word_score needs word_delimiter=. Received: word_score={o.word_score}, no delimiter")
        if lexicon is not None:
            if not isinstance(lexicon, Lexicon):
                raise ValueError(f"lexicon must be an rnnkit.decode.Lexicon. Received: {type(lexicon).__name__}")
            if lexicon.word_delimiter != word_delimiter:
                raise ValueError(f"the lexicon's word_delimiter ({lexicon.word_delimiter}) differs from the "
                                 f"decoder's ({word_delimiter})")
            if self.tokens is not None:
                lexicon.tables(len(self.tokens))  # the trie as arrays, once
        self.lexicon = lexicon
        self.word_lm = None  # a TextLM scored in Python per word
        self.compiled_lm = WL.unused_rules()
        self.word_trie = lexicon  # the trie the compiled word LM reads words from
        self.token_scorers: list[tuple[bool, Scorer, float]] = []  # (is the LM, scorer, weight)
        if hotwords is not None:
            if not isinstance(hotwords, Hotwords):
                hotwords = Hotwords(list(hotwords), weight=o.hotword_weight, tokens=self.tokens)
            self.token_scorers.append((False, hotwords, 1.0))
        if lm is not None and o.lm_weight != 0:
            if isinstance(lm, TextLM):
                if self.tokens is None:
                    raise ValueError("a text language model (e.g. NGramLM) needs tokens= to spell the output")
                if word_delimiter is not None and isinstance(lm, NGramLM) and compile_word_lm:
                    tables, word_id = lm.compiled()
                    if lexicon is None:
                        self.word_trie = WL.vocabulary_lexicon(list(word_id), self.tokens, word_delimiter)
                    self.compiled_lm = WL.word_lm_rules(tables, word_id, self.word_trie, self.tokens, o.lm_weight,
                                                        o.lm_lookahead)
                elif word_delimiter is not None:
                    self.word_lm = lm  # scored once per completed word
                else:
                    self.token_scorers.append((True, TokenTextScorer(lm, self.tokens), float(o.lm_weight)))
            else:
                self.token_scorers.append((True, lm, float(o.lm_weight)))

    def __call__(self, log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None) -> list[list[Hypothesis]]:
        x, lens = check_ctc_decoder_inputs(log_probs, lengths, self.options.blank, self.tokens, self.word_delimiter)
        nbest = self.options.nbest
        if self.token_scorers or self.word_lm is not None:  # Python scorers: the batch frame by frame, together
            search = _Search(self, x, lens)
            search.run()
            return [search.finish(b, nbest) for b in range(x.shape[0])]

        def one(b: int) -> list[Hypothesis]:
            search = _Search(self, x[b : b + 1], lens[b : b + 1])
            search.run()
            return search.finish(0, nbest)

        workers = min(self.threads or torch.get_num_threads(), x.shape[0])
        if workers <= 1:
            return [one(b) for b in range(x.shape[0])]
        with ThreadPoolExecutor(workers) as pool:
            return list(pool.map(one, range(x.shape[0])))


def ctc_beam_search(log_probs: Tensor, lengths: Tensor | Sequence[int] | None = None, beam_width: int = 16,
                    blank: int = 0, lexicon: Lexicon | None = None, lm: Any = None, lm_weight: float = 0.5,
                    word_score: float = 0.0, token_min_logp: float = -5.0, beam_prune_logp: float = -10.0,
                    nbest: int = 1, tokens: Sequence[str] | None = None, word_delimiter: int | None = None,
                    hotwords: Hotwords | Iterable[str] | None = None,
                    hotword_weight: float = 2.0, lm_lookahead: str = "max", recombine: bool = False,
                    threads: int | None = None, compile_word_lm: bool = True) -> list[list[Hypothesis]]:
    """Prefix beam search in one call: ``CTCBeamDecoder(BeamSearchOptions(...), ...)(log_probs, lengths)``.

    Arguments as :class:`BeamSearchOptions` and :class:`CTCBeamDecoder`. Build the decoder
    once instead when decoding many batches with a lexicon or a language model.

    Example:
        >>> hyps = ctc_beam_search(lp, beam_width=32, tokens=list("_ abc"), word_delimiter=1)
        >>> hyps[0][0].text
    """
    options = BeamSearchOptions(beam_width=beam_width, nbest=nbest, blank=blank, lm_weight=lm_weight,
                                word_score=word_score, token_min_logp=token_min_logp,
                                beam_prune_logp=beam_prune_logp, hotword_weight=hotword_weight,
                                lm_lookahead=lm_lookahead, recombine=recombine)
    return CTCBeamDecoder(options, tokens=tokens, word_delimiter=word_delimiter, lexicon=lexicon, lm=lm,
                          hotwords=hotwords, threads=threads, compile_word_lm=compile_word_lm)(log_probs, lengths)


class _Search:
    """The state of one batched search: the prefix trie, the beams, the scorers' states."""

    @property
    def prefixes(self) -> K.Prefixes:
        return self._prefixes

    @prefixes.setter
    def prefixes(self, prefixes: K.Prefixes) -> None:
        """The trie, and views of its link fields for Python to read (one view per field and
        table, not per read: building a structured-array field view costs a microsecond)."""
        self._prefixes = prefixes
        self.parent, self.token, self.lex, self.boundary, self.lm_state = (prefixes.nodes[f] for f in K.NODE.names)

    def __init__(self, decoder: CTCBeamDecoder, x: np.ndarray, lens: np.ndarray) -> None:
        B, T, C = x.shape
        o = decoder.options
        self.x, self.lens, self.blank = x, lens, o.blank
        self.token_min_logp, self.beam_prune_logp = o.token_min_logp, o.beam_prune_logp
        self.tokens, self.delimiter = decoder.tokens, decoder.word_delimiter
        trie = decoder.word_trie
        if trie is not None:
            nxt, is_word = trie.tables(C)
            penalty = -np.inf if trie.unknown_penalty is None else float(trie.unknown_penalty)
        else:
            nxt, is_word, penalty = np.zeros((1, C), dtype=np.int64), np.zeros(1, dtype=np.bool_), 0.0
        self.rules = K.LexiconRules(nxt, is_word, trie is not None, penalty,
                                    -1 if self.delimiter is None else self.delimiter, float(o.word_score))
        self.compiled_lm = decoder.compiled_lm
        self.recombine = o.recombine
        self.token_scorers, self.word_lm, self.word_lm_weight = decoder.token_scorers, decoder.word_lm, float(o.lm_weight)
        self.prefixes = K.new_prefixes(max(1024, 4 * B * o.beam_width), B, self.compiled_lm.lm.start)
        self.children = K.new_children()
        self.n_nodes = B
        self.beams = K.new_beams(B, o.beam_width)
        self.lm_total = np.zeros(self.prefixes.slot.shape[0])  # unweighted LM log-probability per prefix
        self.states = [{b: s.initial_state() for b in range(B)} for _, s, _ in self.token_scorers]
        self.word_states = {b: self.word_lm.initial_state() for b in range(B)} if self.word_lm is not None else {}

    def run(self) -> None:
        if not self.token_scorers and self.word_lm is None:
            self.prefixes, self.children, self.n_nodes = K.decode(
                self.x, self.lens, self.blank, self.token_min_logp, self.beam_prune_logp, self.beams, self.prefixes,
                self.children, self.n_nodes, self.rules, self.compiled_lm, COMPACTION_SLACK,
                self.rules.next.shape[0] if self.compiled_lm.used and self.recombine else 0)
            self.lm_total = np.zeros(self.prefixes.slot.shape[0])  # no language model: 0 for every prefix
            return
        after_compaction = self.n_nodes
        B, _, C = self.x.shape
        candidates, new = K.frame_buffers(B, self.beams.node.shape[1], C)
        for t in range(self.x.shape[1]):
            active = t < self.lens
            if not active.any():
                break
            if self.n_nodes > 2 * after_compaction + COMPACTION_SLACK:
                self._compact()
                after_compaction = self.n_nodes
            need = K.capacity_needed(self.n_nodes, self.beams, C)
            if need > self.prefixes.slot.shape[0]:
                self.prefixes = K.grow(self.prefixes, need)
            if 2 * need > self.children.keys.shape[0]:
                self.children = K.children_with_room(self.children, need)
            # -inf: no prefix is left out before the scorers (a hotword may lift it above the floor)
            self.n_nodes, n_new = K.extend(self.x[:, t], active, self.blank, self.token_min_logp, -np.inf, self.beams,
                                           self.prefixes, self.children, self.n_nodes, self.rules, self.compiled_lm,
                                           candidates, new)
            grown = self.prefixes.slot.shape[0] - self.lm_total.shape[0]
            if grown > 0:
                self.lm_total = np.concatenate([self.lm_total, np.zeros(grown)])
            if n_new:
                self._score(new[:n_new])
            K.select(active, self.prefixes, self.beam_prune_logp, candidates, self.beams, 0, C)
            self._keep_states()

    def _compact(self) -> None:
        """Drop the prefixes no beam can reach again; renumber everything that refers to nodes."""
        old_n = self.n_nodes
        self.prefixes, self.children, self.n_nodes, old_to_new = K.compact(self.prefixes, old_n, self.beams,
                                                                           self.x.shape[2])
        lm_total = np.zeros(self.prefixes.slot.shape[0])
        kept = np.nonzero(old_to_new >= 0)[0]
        lm_total[old_to_new[kept]] = self.lm_total[:old_n][kept]
        self.lm_total = lm_total
        for st in [*self.states, self.word_states]:
            moved = {int(old_to_new[n]): v for n, v in st.items() if n < old_n and old_to_new[n] >= 0}
            st.clear()
            st.update(moved)

    # -- scorers ------------------------------------------------------------------------------

    def _score(self, new: np.ndarray) -> None:
        """Add the Python scorers' increments to the new prefixes' non-acoustic scores (a prefix ruled
        out by one scorer is shown to no later one)."""
        parent, token, score = self.parent, self.token, self.prefixes.non_acoustic
        self.lm_total[new] = self.lm_total[parent[new]]
        for (is_lm, scorer, weight), st in zip(self.token_scorers, self.states):
            new = new[score[new] > -np.inf]
            if new.size == 0:
                return
            deltas, new_states = scorer.score_many([st[p] for p in parent[new].tolist()], token[new].tolist())
            score[new] += weight * deltas
            if is_lm:
                self.lm_total[new] += deltas
            st.update(zip(new.tolist(), new_states))
        if self.word_lm is not None:
            ends = new[(token[new] == self.delimiter) & (score[new] > -np.inf)]
            for n in ends.tolist():
                delta, state = self._score_word(int(parent[n]))
                self.word_states[n] = state
                score[n] += self.word_lm_weight * delta
                self.lm_total[n] += delta

    def _ids(self, n: int, stop: int) -> list[int]:
        """The token ids on the path from ancestor ``stop`` (exclusive) down to prefix n.

        Reads the field views (see :attr:`prefixes`): one record at a time,
        ``nodes[n]["token"]``, costs a numpy record object per access."""
        parent, token = self.parent, self.token
        ids = []
        while n != stop:
            ids.append(int(token[n]))
            n = int(parent[n])
        ids.reverse()
        return ids

    def _score_word(self, n: int) -> tuple[float, Any]:
        """The word LM's (ln P(word | words before), state) for the word that prefix n ends with."""
        boundary = int(self.boundary[n])
        state = self.word_states[boundary]
        if n == boundary:
            return 0.0, state
        return self.word_lm.score(state, "".join(self.tokens[i] for i in self._ids(n, boundary)))

    def _keep_states(self) -> None:
        """Make sure every prefix in a beam has its scorer states; now and then drop the others."""
        beams, parent, token = self.beams, self.parent, self.token
        alive = [int(n) for b in range(beams.node.shape[0]) for n in beams.node[b, : beams.size[b]]]
        for (_, scorer, _), st in zip(self.token_scorers, self.states):
            missing = [n for n in alive if n not in st]
            if missing:  # a prefix scored on an earlier frame, evicted, now back in a beam
                _, new_states = scorer.score_many([st[int(parent[n])] for n in missing],
                                                  [int(token[n]) for n in missing])
                st.update(zip(missing, new_states))
            if len(st) > 8 * len(alive) + 4096:
                keep = {n: st[n] for n in alive}
                st.clear()
                st.update(keep)
        if self.word_lm is not None and len(self.word_states) > 8 * len(alive) + 4096:
            keep = {b: self.word_states[b] for b in {int(b) for b in self.boundary[alive]}}
            self.word_states.clear()
            self.word_states.update(keep)

    # -- results ------------------------------------------------------------------------------

    def _final(self, n: int, end: float, lm_end: float) -> tuple[float, float]:
        """(weighted end-of-output score, its LM part) of prefix n, given the compiled part
        (:func:`~rnnkit.decode.ctc_beam_kernels.ends`): the Python scorers' ends added."""
        for (is_lm, scorer, weight), st in zip(self.token_scorers, self.states):
            delta = scorer.final(st[n])
            end += weight * delta
            lm_end += delta if is_lm else 0.0
        if self.word_lm is not None and end > -np.inf:
            last = int(self.token[n])
            delta, state = self._score_word(n) if last != self.delimiter else (0.0, self.word_states[n])
            delta += self.word_lm.final(state)
            end += self.word_lm_weight * delta
            lm_end += delta
        return end, lm_end

    def _lattice_inputs(self, b: int, ids: list[int]) -> tuple[Tensor, _Batch]:
        """Row b's log-probabilities and ``ids`` as rnnkit.ctc's kernels take them (inputs the
        search already checked)."""
        T_b = int(self.lens[b])
        batch = _Batch(np.array([ids] if ids else [[0]], dtype=np.int64), np.array([T_b]), np.array([len(ids)]))
        return torch.from_numpy(self.x[b : b + 1, :T_b]), batch

    def _emission_frames(self, b: int, ids: list[int]) -> tuple[list[int], list[int]]:
        """Where each token's run starts and ends on the best alignment of ids (Viterbi, as forced_align)."""
        if not ids:
            return [], []
        pos = _viterbi(*self._lattice_inputs(b, ids), self.blank)[0][0]
        token = pos % 2 == 1
        starts = np.nonzero(token & (np.diff(pos, prepend=-1) != 0))[0]
        ends = np.nonzero(token & (np.diff(pos, append=-1) != 0))[0]
        return starts.tolist(), ends.tolist()

    def _exact_acoustic(self, b: int, ids: list[int]) -> float:
        """The CTC log-probability of ``ids`` over every alignment (the search's own sum misses the
        alignments through tokens it pruned): the lattice's forward pass, without autograd."""
        return -float(_lattice_cpu(*self._lattice_inputs(b, ids), self.blank, False, False)[0][0])

    def finish(self, b: int, nbest: int) -> list[Hypothesis]:
        """Rank row b's final prefixes; spell out (ids, frames, text) the best ``nbest`` only."""
        ranked = []
        beams = self.beams
        compiled_end, compiled_lm_end = K.ends(beams.node[b, : beams.size[b]], self.prefixes, self.rules,
                                               self.compiled_lm)
        for k in range(beams.size[b]):
            n = int(beams.node[b, k])
            acoustic = float(np.logaddexp(beams.p_blank[b, k], beams.p_token[b, k]))
            end, lm_end = self._final(n, float(compiled_end[k]), float(compiled_lm_end[k]))
            score = acoustic + float(self.prefixes.non_acoustic[n]) + end
            if score > -np.inf:
                ranked.append((score, acoustic, float(self.lm_total[n] + self.prefixes.lm_score[n]) + lm_end, n))
        ranked.sort(key=lambda r: -r[0])
        results = []
        for score, acoustic, lm_score, n in ranked[:nbest]:
            ids = self._ids(n, b)  # node b is row b's root, the empty prefix
            frames, ends = self._emission_frames(b, ids)
            text, words = describe(ids, frames, self.tokens, self.delimiter)
            exact = self._exact_acoustic(b, ids)
            results.append(Hypothesis(ids=ids, score=score - acoustic + exact, acoustic_score=exact,
                                      lm_score=lm_score, text=text, frames=frames, end_frames=ends, word_frames=words))
        results.sort(key=lambda h: -h.score)
        return results
