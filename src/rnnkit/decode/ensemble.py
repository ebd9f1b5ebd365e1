"""System combination of CTC models by N-best rescoring.

Two CTC models trained apart emit their spikes on different frames, so their per-frame
posteriors cannot be averaged meaningfully; their sequence probabilities can. Each member m
proposes its best hypotheses of an utterance x; the pooled hypotheses are ranked by

    score(y) = 1/M sum_m log p_m(y | x) + (the decoders' language-model and word terms of y),

where log p_m(y | x) is member m's exact CTC log-probability of y, summed over all its
alignments by the forward algorithm (a log-linear ensemble: the members' geometric mean).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch
from torch import Tensor

from rnnkit.ctc import ctc_feasible, ctc_loss
from rnnkit.decode.hypothesis import Hypothesis

__all__ = ["ctc_ensemble"]


def _log_likelihoods(log_probs: Tensor, candidates: Sequence[Sequence[int]], blank: int) -> np.ndarray:
    """log p(y | x) of every candidate y under one member's (T, C) log-probabilities; -inf
    where y needs more frames than T."""
    T = len(log_probs)
    lengths = [len(y) for y in candidates]
    targets = torch.zeros(len(candidates), max(max(lengths), 1), dtype=torch.long)
    for i, y in enumerate(candidates):
        targets[i, : len(y)] = torch.tensor(y, dtype=torch.long)
    out = np.full(len(candidates), -np.inf)
    fits = ctc_feasible([T] * len(candidates), targets, lengths).numpy()
    if fits.any():
        rows = np.nonzero(fits)[0]
        lp = log_probs[None].expand(len(rows), -1, -1)
        losses = ctc_loss(lp, targets[rows], [T] * len(rows), [lengths[i] for i in rows], blank, reduction="none")
        out[rows] = -losses.double().numpy()
    return out


def ctc_ensemble(nbests: Sequence[Sequence[Sequence[Hypothesis]]], log_probs: Sequence[Sequence[Tensor]],
                 blank: int = 0) -> list[Hypothesis]:
    """The ensemble's best hypothesis of each utterance.

    Args:
        nbests: ``nbests[m][b]``: member m's hypotheses of utterance b (an n-best list, or
            a greedy decoder's one path), each with ``score - acoustic_score`` its decoder's
            language-model and word terms. The members' decoders must share those terms
            (the same LM, weights and lexicon), so that they depend on y alone.
        log_probs: ``log_probs[m][b]``: member m's (T, C) log-probabilities of utterance b
            (members may differ in frame rate, not in their tokens).
        blank: the blank's id.

    Returns:
        Per utterance, the pooled hypothesis with the highest
        ``1/M sum_m log p_m(y | x) + (its decoder terms)``; its ``acoustic_score`` is that
        mean, its frames those of the first member that proposed it. An utterance no member
        proposed anything for gets an empty hypothesis scored -inf.
    """
    M = len(nbests)
    if M == 0 or len(log_probs) != M:
        raise ValueError(f"log_probs must hold one list per member of nbests ({M}). Received: {len(log_probs)}")
    B = len(nbests[0])
    if any(len(n) != B for n in nbests) or any(len(lp) != B for lp in log_probs):
        raise ValueError(f"every member needs hypotheses and log-probabilities of the same {B} utterances. Received: "
                         f"{[len(n) for n in nbests]} hypothesis lists, {[len(lp) for lp in log_probs]} log-probs")
    best = []
    for b in range(B):
        pooled: dict[tuple[int, ...], Hypothesis] = {}
        for m in range(M):
            for h in nbests[m][b]:
                pooled.setdefault(tuple(h.ids), h)
        if not pooled:
            best.append(Hypothesis([], -float("inf"), -float("inf"), text=""))
            continue
        candidates = list(pooled)
        mean = np.mean([_log_likelihoods(log_probs[m][b], candidates, blank) for m in range(M)], axis=0)
        terms = np.array([h.score - h.acoustic_score for h in pooled.values()])
        terms[np.isnan(terms)] = -np.inf  # a hypothesis scored -inf by its own decoder is not chosen
        k = int(np.argmax(mean + terms))
        h = pooled[candidates[k]]
        best.append(replace(h, acoustic_score=float(mean[k]), score=float(mean[k] + terms[k])))
    return best
