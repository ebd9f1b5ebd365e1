"""CTC prefix beam search, batched, with dictionary constraint, language models and hotwords.

The search keeps, per output prefix, the probability of all alignments ending in a blank
(p_b) and in a token (p_nb); identical prefixes reached in different ways merge, and a
repeated token needs a blank between (see :mod:`rnnkit.decode.ctc_beam_kernels`). The
ranking score of a prefix is

    log(p_b + p_nb) + lm_weight * log P_LM(prefix) + word_score * words + lexicon + hotwords

Scorers run once per new prefix (never per frame) and only when there are any: without
them the whole search is one compiled call.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from torch import Tensor

from rnnkit.decode import ctc_beam_kernels as K
from rnnkit.decode.hypothesis import Hypothesis, describe
from rnnkit.decode.inputs import check_ctc_decoder_inputs
from rnnkit.decode.scorers import Hotwords, Lexicon, Scorer, TokenTextScorer, WordBonus, WordScorer


def _scorers(lm: Any, lm_weight: float, word_score: float, lexicon: Lexicon | None,
             hotwords: Hotwords | Iterable[str] | None, hotword_weight: float,
             tokens: Sequence[str] | None, word_delimiter: int | None) -> list[tuple[str, Scorer, float]]:
    """(kind, scorer, weight) for every active scorer."""
    out: list[tuple[str, Scorer, float]] = []
    if lm is not None and lm_weight != 0:
        if getattr(lm, "unit", "token") == "text":  # a text model: feed it words or token strings
            if tokens is None:
                raise ValueError("a text language model (e.g. NGramLM) needs tokens= to spell the output")
            lm = WordScorer(lm, tokens, word_delimiter) if word_delimiter is not None else TokenTextScorer(lm, tokens)
        out.append(("lm", lm, float(lm_weight)))
    if word_score != 0:
        if word_delimiter is None:
            raise ValueError(f"word_score needs word_delimiter=. Received: word_score={word_score}, no delimiter")
        out.append(("words", WordBonus(word_score, word_delimiter), 1.0))
    if lexicon is not None:
        if not isinstance(lexicon, Lexicon):
            raise ValueError(f"lexicon must be an rnnkit.decode.Lexicon. Received: {type(lexicon).__name__}")
        if lexicon.word_delimiter != word_delimiter:
            raise ValueError(f"the lexicon's word_delimiter ({lexicon.word_delimiter}) differs from the "
                             f"decoder's ({word_delimiter})")
        out.append(("lexicon", lexicon, 1.0))
    if hotwords is not None:
        if not isinstance(hotwords, Hotwords):
            hotwords = Hotwords(list(hotwords), weight=hotword_weight, tokens=tokens)
        out.append(("hotwords", hotwords, 1.0))
    return out


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
        lm: a language model scorer: :class:`NGramLM` (words, or token strings without a
            word delimiter), :class:`RNNLMScorer`, or any :class:`Scorer`; weighted by
            ``lm_weight``.
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
        (e.g. nothing fits the lexicon) gets an empty list.

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
    scorers = _scorers(lm, lm_weight, word_score, lexicon, hotwords, hotword_weight, tokens, word_delimiter)
    B, T, C = x.shape
    W = beam_width
    cap = max(1024, 4 * B * W)
    parent = np.full(cap, -1, dtype=np.int64)
    token = np.full(cap, -1, dtype=np.int64)
    frame = np.full(cap, -1, dtype=np.int64)
    entry = np.full(cap, -np.inf)
    fused = np.zeros(cap)
    slot_of = np.full(cap, -1, dtype=np.int64)
    children = K.new_children()
    beam_node = np.zeros((B, W), dtype=np.int64)
    beam_pb = np.full((B, W), -np.inf)
    beam_pnb = np.full((B, W), -np.inf)
    beam_node[:, 0] = np.arange(B)  # node b is the empty prefix of row b
    beam_pb[:, 0] = 0.0
    beam_n = np.ones(B, dtype=np.int64)
    n_nodes = B
    lm_total = np.zeros(cap)
    states = [{b: s.initial_state() for b in range(B)} for _, s, _ in scorers]
    if not scorers:
        parent, token, frame, entry, fused, slot_of, n_nodes = K.decode(
            x, lens, blank, token_min_logp, beam_prune_logp, beam_node, beam_pb, beam_pnb, beam_n,
            parent, token, frame, entry, fused, n_nodes, children, slot_of)
        lm_total = np.zeros(fused.shape[0])
    else:
        for t in range(T):
            active = t < lens
            if not active.any():
                break
            (parent, token, frame, entry, fused, slot_of, n_nodes, new_nodes, n_new,
             cand_node, cand_pb, cand_pnb, cand_n) = K.extend(
                t, x[:, t], active, blank, token_min_logp, beam_node, beam_pb, beam_pnb, beam_n,
                parent, token, frame, entry, fused, n_nodes, children, slot_of)
            if lm_total.shape[0] < fused.shape[0]:
                lm_total = np.concatenate([lm_total, np.zeros(fused.shape[0] - lm_total.shape[0])])
            if n_new:
                _score_nodes(new_nodes[:n_new], parent, token, fused, lm_total, scorers, states)
            K.select(active, fused, beam_prune_logp, cand_node, cand_pb, cand_pnb, cand_n,
                     beam_node, beam_pb, beam_pnb, beam_n)
            _keep_states(beam_node, beam_n, parent, token, scorers, states)
    return [_finish(b, nbest, beam_node, beam_pb, beam_pnb, beam_n, parent, token, frame, fused, lm_total,
                    scorers, states, tokens, word_delimiter) for b in range(B)]


def _score_nodes(new: np.ndarray, parent: np.ndarray, token: np.ndarray, fused: np.ndarray,
                 lm_total: np.ndarray, scorers, states) -> None:
    """Add every scorer's increment to the new prefixes' fused score (the kernel set fused[parent])."""
    par, tok = parent[new], token[new]
    lm_total[new] = lm_total[par]
    for (kind, scorer, weight), st in zip(scorers, states):
        deltas, new_states = scorer.score_many([st[p] for p in par.tolist()], tok.tolist())
        fused[new] += weight * deltas
        if kind == "lm":
            lm_total[new] += deltas
        st.update(zip(new.tolist(), new_states))


def _keep_states(beam_node, beam_n, parent, token, scorers, states) -> None:
    """Keep scorer states for the prefixes in the beams only; restore any that were dropped."""
    alive = [int(n) for b in range(beam_node.shape[0]) for n in beam_node[b, : beam_n[b]]]
    for (_, scorer, _), st in zip(scorers, states):
        missing = [n for n in alive if n not in st]
        if missing:  # a prefix scored on an earlier frame, evicted, now back in a beam
            _, new_states = scorer.score_many([st[int(parent[n])] for n in missing], [int(token[n]) for n in missing])
            st.update(zip(missing, new_states))
        keep = {n: st[n] for n in alive}
        st.clear()
        st.update(keep)


def _finish(b, nbest, beam_node, beam_pb, beam_pnb, beam_n, parent, token, frame, fused, lm_total,
            scorers, states, tokens, word_delimiter) -> list[Hypothesis]:
    results = []
    for k in range(beam_n[b]):
        n = int(beam_node[b, k])
        acoustic = float(np.logaddexp(beam_pb[b, k], beam_pnb[b, k]))
        end, lm_end = 0.0, 0.0
        for (kind, scorer, weight), st in zip(scorers, states):
            delta = scorer.final(st[n])
            end += weight * delta
            lm_end += delta if kind == "lm" else 0.0
        score = acoustic + float(fused[n]) + end
        if score == -np.inf:
            continue
        ids, frames = [], []
        while token[n] >= 0:
            ids.append(int(token[n]))
            frames.append(int(frame[n]))
            n = int(parent[n])
        ids.reverse()
        frames.reverse()
        text, words = describe(ids, frames, tokens, word_delimiter)
        results.append(Hypothesis(ids=ids, score=score, acoustic_score=acoustic,
                                  lm_score=float(lm_total[int(beam_node[b, k])]) + lm_end,
                                  text=text, frames=frames, word_frames=words))
    results.sort(key=lambda h: -h.score)
    return results[:nbest]
