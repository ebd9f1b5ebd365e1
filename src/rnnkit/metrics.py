"""Evaluation metrics: perplexity, accuracy, character/word error rate, BLEU.

Error rates come from jiwer and BLEU from sacrebleu (the reference implementations people
report with), so the numbers are comparable with published ones.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import Tensor


def perplexity(mean_nll: float) -> float:
    """exp of the mean negative log-likelihood per token (natural log)."""
    return math.exp(min(mean_nll, 700.0))


def accuracy(predictions: Tensor, targets: Tensor, ignore_index: int = -100) -> float:
    """Fraction of positions where prediction == target, skipping ``ignore_index``."""
    if predictions.shape != targets.shape:
        raise ValueError(f"predictions and targets must have the same shape. Received: "
                         f"{tuple(predictions.shape)} and {tuple(targets.shape)}")
    keep = targets != ignore_index
    return float((predictions[keep] == targets[keep]).float().mean()) if bool(keep.any()) else float("nan")


def _check_pairs(hypotheses: Sequence[str], references: Sequence[str]) -> None:
    if len(hypotheses) != len(references):
        raise ValueError(f"need one hypothesis per reference. Received: {len(hypotheses)} and {len(references)}")
    if not references:
        raise ValueError("need at least one reference")


def wer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words (jiwer)."""
    import jiwer

    _check_pairs(hypotheses, references)
    return float(jiwer.wer(list(references), list(hypotheses)))


def cer(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Character error rate (jiwer)."""
    import jiwer

    _check_pairs(hypotheses, references)
    return float(jiwer.cer(list(references), list(hypotheses)))


def bleu(hypotheses: Sequence[str], references: Sequence[str]) -> float:
    """Corpus BLEU (sacrebleu, its default 13a tokenisation), 0-100."""
    import sacrebleu

    _check_pairs(hypotheses, references)
    return float(sacrebleu.corpus_bleu(list(hypotheses), [list(references)]).score)
