"""Checks shared by the CTC decoders."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from rnnkit.ctc import check_log_probs


def check_ctc_decoder_inputs(log_probs: Tensor, lengths: Tensor | Sequence[int] | None, blank: int | None,
                             tokens: Sequence[str] | None, word_delimiter: int | None) -> tuple[np.ndarray, np.ndarray]:
    """(log_probs as a float numpy array (B, T, C), lengths (B,) int64), or a clear ValueError."""
    B, T, C = check_log_probs(log_probs, blank)
    if lengths is None:
        lens = np.full(B, T, dtype=np.int64)
    else:
        raw = lengths.detach().cpu().numpy() if isinstance(lengths, Tensor) else np.asarray(lengths)
        if raw.size and not np.issubdtype(raw.dtype, np.integer):
            raise ValueError(f"lengths must be integer frame counts. Received: dtype {raw.dtype}")
        lens = raw.astype(np.int64)
        if lens.shape != (B,):
            raise ValueError(f"lengths must have shape ({B},). Received: {lens.shape}")
        if lens.size and (lens.min() < 0 or lens.max() > T):
            raise ValueError(f"lengths must lie in [0, {T}]. Received: min {lens.min()}, max {lens.max()}")
    if tokens is not None and len(tokens) != C:
        raise ValueError(f"tokens must name all {C} classes (one string per id). Received: {len(tokens)} tokens")
    if word_delimiter is not None and not (0 <= word_delimiter < C and word_delimiter != blank):
        raise ValueError(f"word_delimiter must be a token id in [0, {C}) other than the blank. Received: {word_delimiter}")
    x = log_probs.detach().to("cpu", torch.float64 if log_probs.dtype == torch.float64 else torch.float32)
    return np.ascontiguousarray(x.numpy()), lens
