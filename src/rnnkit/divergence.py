"""Divergences between an output sequence and the desired one, for every synchrony setting.

All take logits (B, T, C), batch first, and return a tensor with a ``reduction`` argument
as torch.nn.functional does:

* :func:`sequence_cross_entropy`: time-synchronous outputs (tagging, language models),
  DIV = sum_t w_t Xent(Y_target(t), Y(t)).
* :func:`final_step_cross_entropy`: one target per sequence (classification), read at the
  last real step only, or at every step with weights.
* :func:`aligned_cross_entropy`: a target sequence with a given alignment (symbol
  durations or end frames): the divergence at each symbol's last frame, or the symbol
  repeated over its whole duration.
* :func:`sequence_squared_error`, :func:`sequence_gaussian_nll`: real-valued outputs
  (trajectories, prices), (B, T, D), with the same lengths, weights and reductions.

For order-synchronous outputs with unknown alignment, see :mod:`rnnkit.ctc`.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ["sequence_cross_entropy", "sequence_squared_error", "sequence_gaussian_nll", "final_step_cross_entropy",
           "aligned_cross_entropy", "step_mask"]

#: How every divergence (here and in :mod:`rnnkit.ctc`) reduces its per-item values, as torch.nn.functional.
REDUCTIONS = ("none", "sum", "mean")


def check_reduction(reduction: str) -> None:
    """A clear error for a ``reduction`` outside :data:`REDUCTIONS`."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}. Received: {reduction!r}")


def _check_logits(logits: Tensor) -> tuple[int, int, int]:
    if not isinstance(logits, Tensor) or logits.dim() != 3 or not logits.dtype.is_floating_point:
        got = f"{logits.dtype} of shape {tuple(logits.shape)}" if isinstance(logits, Tensor) else type(logits).__name__
        raise ValueError(f"logits must be a float tensor (batch, time, classes). Received: {got}")
    return tuple(logits.shape)  # type: ignore[return-value]


def step_mask(lengths: Tensor | None, B: int, T: int, device: torch.device | str) -> Tensor:
    """(B, T) True on the real steps (t < length); all True without lengths."""
    if lengths is None:
        return torch.ones(B, T, dtype=torch.bool, device=device)
    if not isinstance(lengths, Tensor) or lengths.shape != (B,) or lengths.dtype.is_floating_point:
        got = f"{lengths.dtype} of shape {tuple(lengths.shape)}" if isinstance(lengths, Tensor) else type(lengths).__name__
        raise ValueError(f"lengths must be an integer tensor of shape ({B},). Received: {got}")
    lo, hi = int(lengths.min()), int(lengths.max())
    if lo < 1 or hi > T:
        raise ValueError(f"lengths must lie in [1, {T}] (time steps of logits). Received: min {lo}, max {hi}")
    return torch.arange(T, device=device)[None, :] < lengths.to(device)[:, None]


def _step_weights(weights: Tensor | None, B: int, T: int, like: Tensor) -> Tensor:
    if weights is None:
        return torch.ones(B, T, dtype=like.dtype, device=like.device)
    if not isinstance(weights, Tensor) or weights.shape not in ((T,), (B, T)):
        got = tuple(weights.shape) if isinstance(weights, Tensor) else type(weights).__name__
        raise ValueError(f"weights must have shape ({T},) per step or ({B}, {T}) per element. Received: {got}")
    return weights.to(like.device, like.dtype).expand(B, T)


def _weighted(losses: Tensor, weights: Tensor, counted: Tensor, reduction: str) -> Tensor:
    """Apply per-step weights, zero what is not counted, reduce. mean = sum(w L) / sum(w); when
    nothing counts (every target ignored, or all weights 0) the mean is 0 with a zero gradient."""
    check_reduction(reduction)
    w = torch.where(counted, weights, 0.0)
    weighted = torch.where(counted, losses * weights, 0.0)  # padding may hold inf or nan
    if reduction == "none":
        return weighted
    if reduction == "sum":
        return weighted.sum()
    total = w.sum()
    return weighted.sum() / total if bool(total != 0) else weighted.sum() * 0.0


def sequence_cross_entropy(logits: Tensor, targets: Tensor, lengths: Tensor | None = None,
                           weights: Tensor | None = None, label_smoothing: float = 0.0,
                           ignore_index: int = -100, reduction: str = "mean") -> Tensor:
    """Time-synchronous divergence DIV = sum_t w_t Xent(Y_target(t), Y(t)).

    Args:
        logits: (B, T, C) unnormalised scores.
        targets: (B, T) class ids; ``ignore_index`` marks steps without a target.
        lengths: (B,) real steps per sequence; padding never counts.
        weights: per step (T,) or per element (B, T); default 1.
        label_smoothing: as torch.nn.functional.cross_entropy.
        reduction: "none" gives (B, T) weighted losses (0 where not counted); "sum"; "mean"
            divides by the sum of the weights of the counted steps (0, with a zero gradient,
            when no step counts).

    Example:
        >>> sequence_cross_entropy(torch.randn(2, 5, 7), torch.randint(0, 7, (2, 5)), lengths=torch.tensor([5, 3]))
    """
    B, T, C = _check_logits(logits)
    if not isinstance(targets, Tensor) or targets.shape != (B, T) or targets.dtype.is_floating_point:
        got = f"{targets.dtype} of shape {tuple(targets.shape)}" if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must be integer class ids of shape ({B}, {T}). Received: {got}")
    counted = step_mask(lengths, B, T, logits.device) & (targets != ignore_index)
    ids = targets[counted]
    if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= C):
        raise ValueError(f"targets must be class ids in [0, {C}) or ignore_index={ignore_index}. "
                         f"Received: min {int(ids.min())}, max {int(ids.max())}")
    safe = torch.where(counted, targets, torch.zeros_like(targets))
    losses = F.cross_entropy(logits.reshape(B * T, C), safe.reshape(-1), reduction="none",
                             label_smoothing=label_smoothing).view(B, T)
    return _weighted(losses, _step_weights(weights, B, T, logits), counted, reduction)


def _check_regression(name: str, prediction: Tensor, targets: Tensor) -> tuple[int, int, int]:
    if not isinstance(prediction, Tensor) or prediction.dim() != 3 or not prediction.dtype.is_floating_point:
        got = f"{prediction.dtype} of shape {tuple(prediction.shape)}" if isinstance(prediction, Tensor) else \
            type(prediction).__name__
        raise ValueError(f"{name} must be a float tensor (batch, time, dims). Received: {got}")
    if not isinstance(targets, Tensor) or targets.shape != prediction.shape:
        got = tuple(targets.shape) if isinstance(targets, Tensor) else type(targets).__name__
        raise ValueError(f"targets must have the shape of {name}, {tuple(prediction.shape)}. Received: {got}")
    return tuple(prediction.shape)  # type: ignore[return-value]


def sequence_squared_error(prediction: Tensor, targets: Tensor, lengths: Tensor | None = None,
                           weights: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Real-valued outputs, time-synchronous: DIV = sum_t w_t ||y_t - yhat_t||^2 (summed over the
    D output dimensions), with the lengths, weights and reductions of
    :func:`sequence_cross_entropy` ("mean" divides by the sum of the counted steps' weights).

    Args:
        prediction, targets: (B, T, D). lengths: (B,) real steps. weights: (T,) or (B, T).
    """
    B, T, _ = _check_regression("prediction", prediction, targets)
    counted = step_mask(lengths, B, T, prediction.device)
    losses = (prediction - targets).pow(2).sum(-1)
    return _weighted(losses, _step_weights(weights, B, T, prediction), counted, reduction)


def sequence_gaussian_nll(mean: Tensor, log_variance: Tensor, targets: Tensor, lengths: Tensor | None = None,
                          weights: Tensor | None = None, reduction: str = "mean") -> Tensor:
    """Real-valued outputs with a predicted spread: y_t ~ N(mu_t, diag sigma_t^2), and
    DIV = sum_t w_t sum_d [log(2 pi) + log sigma_td^2 + (y_td - mu_td)^2 / sigma_td^2] / 2,
    the exact negative log-likelihood (equals torch's gaussian_nll_loss with full=True, summed
    over d). Lengths, weights and reductions as :func:`sequence_squared_error`."""
    B, T, _ = _check_regression("mean", mean, targets)
    if not isinstance(log_variance, Tensor) or log_variance.shape != mean.shape:
        got = tuple(log_variance.shape) if isinstance(log_variance, Tensor) else type(log_variance).__name__
        raise ValueError(f"log_variance must have the shape of mean, {tuple(mean.shape)}. Received: {got}")
    counted = step_mask(lengths, B, T, mean.device)
    per_dim = math.log(2 * math.pi) + log_variance + (targets - mean).pow(2) * torch.exp(-log_variance)
    return _weighted(0.5 * per_dim.sum(-1), _step_weights(weights, B, T, mean), counted, reduction)


def final_step_cross_entropy(logits: Tensor, target: Tensor, lengths: Tensor | None = None,
                             everywhere: bool = False, step_weights: str | Tensor = "uniform",
                             step_normalization: str = "mean", label_smoothing: float = 0.0,
                             reduction: str = "mean") -> Tensor:
    """Sequence classification: one target per sequence.

    By default DIV = Xent(target, Y(L)) at each sequence's last real step L only. That
    pretends the intermediate outputs carry no information; with ``everywhere=True`` the
    target is applied at every real step, with ``step_weights`` "uniform" (w_t = 1),
    "linear" (w_t = t / L, later steps count more, as evidence accumulates), or a (T,) /
    (B, T) tensor, and ``step_normalization``:

    * "sum": DIV = sum_t w_t Xent(target, Y(t)), the course's "divergence everywhere". A
      sequence's divergence grows with its length: in a batch, a sequence of 40 steps weighs
      four times one of 10, and long sequences dominate the gradient.
    * "mean" (default): DIV = sum_t w_t Xent(target, Y(t)) / sum_t w_t. Each sequence counts
      once, whatever its length, on the same scale as the final-step divergence.

    Returns (B,) for reduction="none", else the sum or the mean over sequences.
    """
    B, T, C = _check_logits(logits)
    if not isinstance(target, Tensor) or target.shape != (B,) or target.dtype.is_floating_point:
        got = f"{target.dtype} of shape {tuple(target.shape)}" if isinstance(target, Tensor) else type(target).__name__
        raise ValueError(f"target must be integer class ids of shape ({B},). Received: {got}")
    mask = step_mask(lengths, B, T, logits.device)
    if not everywhere:
        last = mask.sum(1) - 1  # (B,) index of the last real step
        mask = torch.zeros_like(mask).scatter_(1, last[:, None], True)
        weights = None
    elif isinstance(step_weights, Tensor):
        weights = step_weights
    elif step_weights == "uniform":
        weights = None
    elif step_weights == "linear":  # w_t = t / L, so the last real step weighs 1
        weights = torch.arange(1, T + 1, dtype=logits.dtype, device=logits.device)[None] / mask.sum(1, keepdim=True)
    else:
        raise ValueError(f"step_weights must be 'uniform', 'linear' or a tensor. Received: {step_weights!r}")
    check_reduction(reduction)
    if step_normalization not in ("mean", "sum"):
        raise ValueError(f"step_normalization must be 'mean' or 'sum'. Received: {step_normalization!r}")
    w = torch.where(mask, _step_weights(weights, B, T, logits), 0.0)
    if step_normalization == "mean" or not everywhere:
        w = w / w.sum(1, keepdim=True)  # each sequence's weights sum to one
    steps = torch.where(mask, target[:, None].to(logits.device), -100)  # (B, T)
    per_sequence = sequence_cross_entropy(logits, steps, weights=w, label_smoothing=label_smoothing,
                                          ignore_index=-100, reduction="none").sum(1)
    return {"none": per_sequence, "sum": per_sequence.sum(), "mean": per_sequence.mean()}[reduction]


def aligned_cross_entropy(logits: Tensor, symbols: Tensor, durations: Tensor | None = None,
                          ends: Tensor | None = None, symbol_lengths: Tensor | None = None,
                          mode: str = "repeat", ignore_index: int = -100,
                          reduction: str = "mean") -> Tensor:
    """Training from a given alignment: target symbols with known frame boundaries.

    Args:
        logits: (B, T, C).
        symbols: (B, S) target symbols, padded.
        durations: (B, S) frames of each symbol (they follow one another from frame 0), or
        ends: (B, S) exclusive end frame of each symbol (non-decreasing). Give exactly one.
        symbol_lengths: (B,) symbols per row (default: all S).
        mode: "repeat": the symbol is the target at every frame of its duration (frame-level
            cross-entropy); "end": the divergence at each symbol's last frame only.
        reduction: as :func:`sequence_cross_entropy` ("none" gives (B, T)).

    Frames outside every segment carry no divergence.
    """
    B, T, C = _check_logits(logits)
    if (durations is None) == (ends is None):
        raise ValueError("give exactly one of durations= and ends=. Received: "
                         f"durations={'set' if durations is not None else None}, ends={'set' if ends is not None else None}")
    if mode not in ("repeat", "end"):
        raise ValueError(f"mode must be 'repeat' or 'end'. Received: {mode!r}")
    if not isinstance(symbols, Tensor) or symbols.dim() != 2 or symbols.shape[0] != B:
        got = tuple(symbols.shape) if isinstance(symbols, Tensor) else type(symbols).__name__
        raise ValueError(f"symbols must be (B={B}, S) padded symbol ids. Received: {got}")
    S = symbols.shape[1]
    bounds = durations if durations is not None else ends
    name = "durations" if durations is not None else "ends"
    if not isinstance(bounds, Tensor) or bounds.shape != (B, S) or bounds.dtype.is_floating_point:
        got = f"{bounds.dtype} of shape {tuple(bounds.shape)}" if isinstance(bounds, Tensor) else type(bounds).__name__
        raise ValueError(f"{name} must be integers of shape ({B}, {S}) like symbols. Received: {got}")
    n = torch.full((B,), S, device=symbols.device) if symbol_lengths is None else symbol_lengths.to(symbols.device)
    valid = torch.arange(S, device=symbols.device)[None, :] < n[:, None]  # (B, S)
    bounds = torch.where(valid, bounds.to(symbols.device), torch.zeros_like(bounds))
    end = bounds.cumsum(1) if durations is not None else torch.where(valid, bounds, bounds.max(1, keepdim=True).values)
    if bool((bounds < 0).any()) or bool((end.diff(dim=1) < 0).any()):
        raise ValueError(f"{name} must describe consecutive segments: non-negative durations or "
                         f"non-decreasing ends. Received: {bounds.tolist()}")
    if int(end.max()) > T:
        raise ValueError(f"the segments must end within the {T} frames of logits. Received: last end {int(end.max())}")
    start = torch.cat([torch.zeros_like(end[:, :1]), end[:, :-1]], 1)
    frames = torch.arange(T, device=symbols.device)[None, None, :]  # (1, 1, T)
    if mode == "repeat":
        inside = (frames >= start[:, :, None]) & (frames < end[:, :, None]) & valid[:, :, None]  # (B, S, T)
    else:
        inside = (frames == end[:, :, None] - 1) & (end > start)[:, :, None] & valid[:, :, None]
    covered = inside.any(1)  # (B, T)
    which = inside.float().argmax(1)  # the segment of each frame
    targets = torch.where(covered, symbols.gather(1, which), torch.full_like(which, ignore_index))
    return sequence_cross_entropy(logits, targets.to(logits.device), ignore_index=ignore_index, reduction=reduction)
