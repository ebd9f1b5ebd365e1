"""Estimate a back-off n-gram model from text and write it as an ARPA file.

Absolute discounting with back-off (Ney et al. 1994), normalised exactly: for a history h
seen c(h) times and a word w seen after it c(h, w) times,

    P(w | h) = (c(h, w) - D) / c(h)                        if c(h, w) > 0
             = alpha(h) P(w | h')                           otherwise (h' drops the oldest word)
    alpha(h) = (1 - sum_{w: c(h,w)>0} P(w | h)) / (1 - sum_{w: c(h,w)>0} P(w | h'))

Unigrams are c(w) / N, with the discounted mass given to ``<unk>``. Sentences get ``<s>``
and ``</s>``. Enough for decoding experiments without an external toolkit (kenlm's
``lmplz`` gives better smoothing on large corpora).
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path


def write_arpa(sentences: Iterable[Sequence[str]], path: str | Path, order: int = 3, discount: float = 0.7) -> Path:
    """Count n-grams of the sentences (lists of words) and write an ARPA file to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(arpa_text(sentences, order, discount), encoding="utf-8")
    return path


def arpa_text(sentences: Iterable[Sequence[str]], order: int = 3, discount: float = 0.7) -> str:
    """The ARPA text of the model estimated from the sentences (lists of words)."""
    if order < 1:
        raise ValueError(f"order must be >= 1. Received: {order}")
    if not 0.0 < discount < 1.0:
        raise ValueError(f"discount must be in (0, 1). Received: {discount}")
    counts: list[Counter] = [Counter() for _ in range(order + 1)]
    for sentence in sentences:
        words = ["<s>", *sentence, "</s>"]
        for n in range(1, order + 1):
            for i in range(len(words) - n + 1):
                gram = tuple(words[i : i + n])
                if n == 1 and gram == ("<s>",):
                    continue
                counts[n][gram] += 1
    total = sum(counts[1].values())
    if total == 0:
        raise ValueError("write_arpa needs at least one sentence. Received: none")
    prob: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]
    prob[1] = {g: (c - discount) / total for g, c in counts[1].items()}
    prob[1][("<unk>",)] = prob[1].get(("<unk>",), 0.0) + discount * len(counts[1]) / total
    prob[1][("<s>",)] = 0.0  # never predicted; listed as a context
    backoff: list[dict[tuple[str, ...], float]] = [{} for _ in range(order + 1)]

    def lower(gram: tuple[str, ...]) -> float:
        """P(w | h') for the (n-1)-gram suffix, with back-off."""
        h, w = gram[:-1], gram[-1]
        if len(h) == 0:
            return prob[1].get((w,), prob[1][("<unk>",)])
        p = prob[len(gram)].get(gram)
        if p is not None:
            return p
        return backoff[len(h)].get(h, 1.0) * lower(gram[1:])

    for n in range(2, order + 1):
        followers: dict[tuple[str, ...], list[tuple[str, ...]]] = defaultdict(list)
        history_count: Counter = Counter()
        for gram, c in counts[n].items():
            followers[gram[:-1]].append(gram)
            history_count[gram[:-1]] += c
        for h, grams in followers.items():
            for g in grams:
                prob[n][g] = (counts[n][g] - discount) / history_count[h]
        for h, grams in followers.items():
            seen = sum(prob[n][g] for g in grams)
            seen_lower = sum(lower(g[1:]) for g in grams)
            backoff[n - 1][h] = (1.0 - seen) / max(1.0 - seen_lower, 1e-12)

    lines = ["\\data\\"] + [f"ngram {n}={len(prob[n])}" for n in range(1, order + 1)]
    for n in range(1, order + 1):
        lines += ["", f"\\{n}-grams:"]
        for gram, p in sorted(prob[n].items()):
            log_p = -99.0 if p <= 0 else math.log10(p)
            line = f"{log_p:.6f}\t{' '.join(gram)}"
            if n < order and gram in backoff[n]:
                line += f"\t{math.log10(max(backoff[n][gram], 1e-99)):.6f}"
            lines.append(line)
    return "\n".join(lines + ["", "\\end\\", ""])
