"""Connectionist temporal classification: training over all alignments.

For an input of T frames (log-probabilities lp_t(c), batch first) and a target l of S
symbols, CTC sums over every alignment pi of the blank-extended target l' (see
:mod:`rnnkit.reference.ctc`):

    L = -log P(l | x) = -log sum_{pi : B(pi) = l} prod_t y_t(pi_t)

computed with the forward (alpha) and backward (beta) recursions, and its gradient is the
exact derivative dL/dlp_t(c) = -sum_{s : l'_s = c} gamma_t(s), gamma the posterior
occupancy of extended position s at frame t.

The course defines the divergence as the expectation over alignments,
DIV = -sum_t sum_s gamma_t(s) log y_t(l'_s) (:func:`ctc_expected_divergence`). With gamma
held fixed its gradient is the same -gamma, but its value is larger:
DIV = -log P(l | x) + H, H the entropy of the posterior over alignments P(pi | l, x), so the
two agree only when one alignment takes all the mass (a trained, peaky model).

Functions: :func:`ctc_loss`, :func:`ctc_expected_divergence`, :func:`ctc_posteriors`,
:func:`forced_align` (Viterbi, with segments), :func:`viterbi_loss` (hard-alignment
training) and :func:`ctc_feasible`.

Backends: on the CPU, rnnkit's compiled lattice kernels (:mod:`rnnkit.ctc_kernels`,
several times faster than torch's CPU kernel). On CUDA the loss uses torch's CUDA kernel,
with its gradient exp(lp) - gamma corrected to the exact -gamma; posteriors and alignments
move to the CPU.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from rnnkit import ctc_kernels
from rnnkit.divergence import check_reduction
from rnnkit.threads import kernel_threads

__all__ = ["ctc_loss", "ctc_expected_divergence", "ctc_posteriors", "forced_align", "viterbi_loss", "ctc_feasible",
           "Alignment", "Segment"]

IntsLike = Tensor | Sequence[int]


# ----------------------------------------------------------------------------- input checks


@dataclass
class _Batch:
    """Validated CTC inputs on the CPU: padded targets (B, S_max) and lengths (B,), int64."""

    targets: np.ndarray
    input_lengths: np.ndarray
    target_lengths: np.ndarray


def _as_lengths(name: str, value: IntsLike, B: int) -> np.ndarray:
    if isinstance(value, Tensor):
        if value.dtype.is_floating_point or value.dtype == torch.bool or value.dim() != 1:
            raise ValueError(f"{name} must be a 1-D integer tensor of {B} lengths. "
                             f"Received: {value.dtype} of shape {tuple(value.shape)}")
        arr = value.detach().to("cpu", torch.long).numpy()
    else:
        arr = np.asarray(value)
        if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
            raise ValueError(f"{name} must be {B} integer lengths. Received: {value!r}")
        arr = arr.astype(np.int64)
    if arr.shape[0] != B:
        raise ValueError(f"{name} must have one length per sequence: {B} (the batch size of "
                         f"log_probs). Received: {arr.shape[0]}")
    if arr.size and arr.min() < 0:
        raise ValueError(f"{name} must be >= 0. Received: {arr.tolist()}")
    return np.ascontiguousarray(arr)


def check_log_probs(log_probs: Tensor, blank: int | None, normalised: bool = True) -> tuple[int, int, int]:
    """(B, T, C) of a batch-first float tensor of per-frame class scores, with ``blank`` one of
    its classes (None: no blank) and, if ``normalised``, log-probabilities (<= 0); else a
    ValueError saying which.

    NaN anywhere is an error naming the rows that hold it (NaN is never read as "no
    alignment"); an empty batch is an error, as in torch. -inf (probability 0) is allowed."""
    if not isinstance(log_probs, Tensor) or log_probs.dim() != 3 or not log_probs.dtype.is_floating_point:
        got = f"{log_probs.dtype} of shape {tuple(log_probs.shape)}" if isinstance(log_probs, Tensor) else type(log_probs).__name__
        raise ValueError(f"log_probs must be a float tensor (batch, time, classes), batch first. Received: {got}")
    B, T, C = log_probs.shape
    if blank is not None and (not isinstance(blank, int) or isinstance(blank, bool)):
        raise ValueError(f"blank must be a class id (an integer). Received: {blank!r}")
    if B == 0 or C == 0:
        raise ValueError(f"log_probs must have at least one row and one class. Received: shape {(B, T, C)}")
    if blank is not None and not 0 <= blank < C:
        raise ValueError(f"blank must be a class index in [0, {C}). Received: {blank}")
    nan = torch.isnan(log_probs.detach()).flatten(1).any(1)
    if bool(nan.any()):
        rows = torch.nonzero(nan).flatten().tolist()
        raise ValueError(f"log_probs contains NaN in rows {rows[:10]}{' ...' if len(rows) > 10 else ''} "
                         "(the model's output went wrong upstream: check its inputs, learning rate and gradients)")
    if normalised and log_probs.numel() and float(log_probs.detach().max()) > 1e-4:
        raise ValueError(
            "log_probs must be log-probabilities (<= 0): apply log_softmax over the classes "
            f"first. Received: a maximum of {float(log_probs.detach().max()):.4g}")
    return B, T, C


def _check(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike,
           blank: int | None, normalised: bool = True) -> _Batch:
    B, T, C = check_log_probs(log_probs, blank, normalised)
    in_len = _as_lengths("input_lengths", input_lengths, B)
    tgt_len = _as_lengths("target_lengths", target_lengths, B)
    if in_len.size and in_len.max() > T:
        raise ValueError(f"input_lengths must be <= {T} (frames in log_probs). Received: max {in_len.max()}")
    tg = targets.detach().cpu().numpy() if isinstance(targets, Tensor) else np.asarray(targets)
    if tg.size and not np.issubdtype(tg.dtype, np.integer):
        raise ValueError(f"targets must be integer class ids. Received: dtype {tg.dtype}")
    tg = tg.astype(np.int64)
    if tg.ndim == 1:
        if tg.shape[0] != tgt_len.sum():
            raise ValueError(
                f"concatenated targets must hold sum(target_lengths) = {tgt_len.sum()} symbols. "
                f"Received: {tg.shape[0]}")
        padded = np.zeros((B, max(int(tgt_len.max(initial=0)), 1)), dtype=np.int64)
        ends = np.cumsum(tgt_len)
        for b in range(B):
            padded[b, : tgt_len[b]] = tg[ends[b] - tgt_len[b] : ends[b]]
    elif tg.ndim == 2:
        if tg.shape[0] != B:
            raise ValueError(f"padded targets must have {B} rows (the batch size of log_probs). "
                             f"Received: shape {tg.shape}")
        if tgt_len.size and tgt_len.max() > tg.shape[1]:
            raise ValueError(f"target_lengths must be <= {tg.shape[1]} (columns of the padded targets). "
                             f"Received: max {tgt_len.max()}")
        padded = np.zeros((B, max(tg.shape[1], 1)), dtype=np.int64)
        padded[:, : tg.shape[1]] = tg
    else:
        raise ValueError(f"targets must be padded (batch, S) or concatenated 1-D. Received: shape {tg.shape}")
    valid = np.arange(padded.shape[1])[None, :] < tgt_len[:, None]
    ids = padded[valid]
    if ids.size:
        if ids.min() < 0 or ids.max() >= C:
            raise ValueError(f"targets must be class ids in [0, {C}). Received: min {ids.min()}, max {ids.max()}")
        if blank is not None and (ids == blank).any():
            rows = sorted({int(b) for b in np.nonzero((padded == blank) & valid)[0]})
            raise ValueError(f"targets must not contain the blank ({blank}). Received: it in rows {rows}")
    padded[~valid] = 0
    return _Batch(np.ascontiguousarray(padded), in_len, tgt_len)


def _warn_infeasible(rows: Sequence[int], what: str) -> None:
    if len(rows):
        shown = list(rows[:20]) + (["..."] if len(rows) > 20 else [])
        warnings.warn(
            f"{what}: rows {shown} have no alignment (the target needs more frames than the input "
            "has, counting a blank between repeated symbols, or its symbols have probability 0); "
            "their loss is inf and their gradient 0. Use zero_infinity=True, or "
            "rnnkit.ctc.ctc_feasible to find such rows before training.",
            RuntimeWarning, stacklevel=3)


def ctc_feasible(input_lengths: IntsLike, targets: IntsLike, target_lengths: IntsLike) -> Tensor:
    """Which rows can be aligned at all: input_length >= S + (number of repeated neighbours).

    An alignment emits each symbol at least once and needs a blank between two equal
    neighbours; rows that fail can never contribute a finite CTC loss.

    Returns:
        Bool tensor (B,): True where an alignment exists.

    Example:
        >>> ctc_feasible([3, 3], torch.tensor([[1, 1], [1, 2]]), [2, 2])
        tensor([True, True])
        >>> ctc_feasible([2], torch.tensor([[1, 1]]), [2])   # "1 1" needs "1 _ 1"
        tensor([False])
    """
    tgt_len = _as_lengths("target_lengths", target_lengths, len(target_lengths))
    in_len = _as_lengths("input_lengths", input_lengths, len(tgt_len))
    dummy = torch.zeros(len(tgt_len), max(int(in_len.max(initial=0)), 1), 1 + _max_id(targets) + 1)
    batch = _check(dummy, targets, in_len, tgt_len, blank=dummy.shape[2] - 1, normalised=False)
    return torch.from_numpy(in_len >= ctc_kernels.min_frames(batch.targets, batch.target_lengths))


def _max_id(targets: IntsLike) -> int:
    t = targets if isinstance(targets, Tensor) else torch.as_tensor(np.asarray(targets))
    return int(t.max()) if t.numel() else 0


# ----------------------------------------------------------------------------- lattice backends


def _on_threads(parallel, serial, *args) -> None:
    """Run a lattice kernel over the batch's rows on torch's thread count, or its one-thread
    twin where numba's threads are unsafe (:func:`rnnkit.threads.kernel_threads`)."""
    with kernel_threads(torch.get_num_threads()) as n:
        (parallel if n > 1 else serial)(*args)


def _lattice_cpu(lp: Tensor, batch: _Batch, blank: int, want_grad: bool, want_gamma: bool):
    """Run the compiled forward-backward: (loss (B,) f64, grad (B,T,C) or None, gamma, status)."""
    x = lp.detach().contiguous().numpy()
    B, T, C = x.shape
    S_ = 2 * batch.targets.shape[1] + 1
    loss = np.empty(B)
    status = np.empty(B, dtype=np.int8)
    grad = np.zeros((B, T, C), dtype=x.dtype) if want_grad else np.zeros((1, 1, 1), dtype=x.dtype)
    gamma = np.zeros((B, T, S_)) if want_gamma else np.zeros((1, 1, 1))
    _on_threads(ctc_kernels.forward_backward, ctc_kernels.forward_backward_serial, x, batch.targets,
                batch.input_lengths, batch.target_lengths, blank, want_grad, want_gamma, loss, grad, gamma, status)
    return loss, grad if want_grad else None, gamma if want_gamma else None, status


def _lattice_torch(lp: Tensor, batch: _Batch, blank: int) -> tuple[Tensor, Tensor]:
    """Loss and exact gradient -gamma per row through torch's own CTC kernel (log space).

    torch's gradient is exp(lp) - gamma (it assumes lp is log_softmax output); adding
    -exp(lp) on the frames of each input gives -gamma for any lp.
    """
    x = lp.detach().clone().requires_grad_()
    dev = lp.device
    in_len = torch.from_numpy(batch.input_lengths).to(dev)
    tgt_len = torch.from_numpy(batch.target_lengths).to(dev)
    with torch.enable_grad():
        losses = F.ctc_loss(x.transpose(0, 1), torch.from_numpy(batch.targets).to(dev), in_len, tgt_len,
                            blank=blank, reduction="none", zero_infinity=False)
        (grad,) = torch.autograd.grad(losses.sum(), x)
    frames = torch.arange(lp.shape[1], device=dev)[None, :, None] < in_len[:, None, None]
    grad = torch.where(frames, grad - x.detach().exp(), 0.0)
    bad = ~torch.isfinite(losses)
    losses = torch.where(bad, torch.inf, losses)
    grad = torch.where(bad[:, None, None] | ~torch.isfinite(grad), 0.0, grad)
    return losses.detach(), grad


def _loss_and_grad(lp: Tensor, batch: _Batch, blank: int, want_grad: bool) -> tuple[Tensor, Tensor | None]:
    """Per-row loss (B,) in lp's dtype and gradient (B, T, C), on lp's device."""
    if lp.device.type != "cpu":
        losses, grad = _lattice_torch(lp, batch, blank)
        return losses.to(lp.dtype), grad if want_grad else None
    loss, grad, _, status = _lattice_cpu(lp, batch, blank, want_grad, False)
    losses = torch.from_numpy(loss)
    grad_t = torch.from_numpy(grad) if want_grad else None
    redo = np.nonzero(status == ctc_kernels.UNDERFLOW)[0]
    if redo.size:  # a probability ratio below 1e-308 inside one frame: redo those rows in logs
        sub = _Batch(batch.targets[redo], batch.input_lengths[redo], batch.target_lengths[redo])
        sub_loss, sub_grad = _lattice_torch(lp.detach()[torch.from_numpy(redo)].double(), sub, blank)
        losses[redo] = sub_loss
        if want_grad:
            grad_t[torch.from_numpy(redo)] = sub_grad.to(grad_t.dtype)
    return losses.to(lp.dtype), grad_t


class _CTC(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_probs: Tensor, batch: _Batch, blank: int) -> Tensor:
        losses, grad = _loss_and_grad(log_probs, batch, blank, log_probs.requires_grad)
        ctx.save_for_backward(grad)
        return losses

    @staticmethod
    def backward(ctx, d_losses: Tensor):
        (grad,) = ctx.saved_tensors
        return grad * d_losses[:, None, None].to(grad.dtype), None, None


def _at_least_float32(log_probs: Tensor) -> Tensor:
    """float16/bfloat16 log-probs (from autocast) as float32: the lattice is computed in float32
    or float64 (rnnkit.precision)."""
    return log_probs.float() if log_probs.dtype in (torch.float16, torch.bfloat16) else log_probs


def _alignment_loss(function: type[torch.autograd.Function], name: str, log_probs: Tensor, targets: IntsLike,
                    input_lengths: IntsLike, target_lengths: IntsLike, blank: int, reduction: str,
                    zero_infinity: bool) -> Tensor:
    """Check, run ``function`` (the all-alignments or the best-alignment loss), report rows
    without any alignment (inf, or 0 with ``zero_infinity``), reduce."""
    check_reduction(reduction)
    batch = _check(log_probs, targets, input_lengths, target_lengths, blank)
    losses = function.apply(_at_least_float32(log_probs), batch, blank)
    bad = torch.isinf(losses)
    if bool(bad.any()):
        _warn_infeasible(torch.nonzero(bad).flatten().tolist(), name)
        if zero_infinity:
            losses = torch.where(bad, torch.zeros_like(losses), losses)
    return _reduce(losses, batch.target_lengths, reduction)


def _reduce(losses: Tensor, target_lengths: np.ndarray, reduction: str) -> Tensor:
    if reduction == "none":
        return losses
    if reduction == "sum":
        return losses.sum()
    per_symbol = torch.from_numpy(np.maximum(target_lengths, 1)).to(losses.device, losses.dtype)
    return (losses / per_symbol).mean()


def ctc_loss(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike,
             blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """CTC loss L = -log P(l | x), summed over all alignments by the forward-backward algorithm.

    Args:
        log_probs: (B, T, C) log-probabilities, batch first (log_softmax over C).
        targets: padded (B, S) ids or all targets concatenated (1-D); never the blank.
        input_lengths: (B,) frames of each input, 0 <= T_b <= T.
        target_lengths: (B,) symbols of each target.
        blank: index of the blank.
        reduction: "none" (B,), "sum", or "mean": each loss divided by its target length
            (at least 1), then averaged, as torch.nn.functional.ctc_loss.
        zero_infinity: rows with no alignment give 0 instead of inf.

    The gradient w.r.t. log_probs is -gamma per symbol, the exact derivative for any
    log_probs (normalised or not); through log_softmax it equals torch's softmax - gamma.
    Rows with no alignment give inf (or 0) with a zero gradient and one warning naming them.

    Example:
        >>> lp = torch.randn(2, 30, 5).log_softmax(-1)
        >>> ctc_loss(lp, torch.tensor([[1, 2, 2], [3, 4, 0]]), [30, 25], [3, 2])
    """
    return _alignment_loss(_CTC, "ctc_loss", log_probs, targets, input_lengths, target_lengths, blank, reduction,
                           zero_infinity)


def ctc_expected_divergence(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike,
                            target_lengths: IntsLike, blank: int = 0, reduction: str = "mean") -> Tensor:
    """The course's CTC divergence, the expectation over alignments:

        DIV = -sum_t sum_s gamma_t(s) log y_t(l'_s) = E_{pi ~ P(pi | l, x)}[-log P(pi | x)]
            = -log P(l | x) + H(P(pi | l, x))

    Its gradient treats gamma as fixed, as the course's derivation does: dDIV/dlp_t(c) =
    -sum_{s : l'_s = c} gamma_t(s), the same as :func:`ctc_loss`'s, so training with either
    takes the same steps; the values differ by the entropy H of the posterior over
    alignments (>= 0, 0 when one alignment has all the mass). Arguments and ``reduction`` as
    :func:`ctc_loss`; rows with no alignment give inf and a warning.
    """
    check_reduction(reduction)
    batch = _check(log_probs, targets, input_lengths, target_lengths, blank)
    _, gamma_sym = ctc_posteriors(log_probs, targets, input_lengths, target_lengths, blank)
    gamma = gamma_sym.detach().to(log_probs.dtype)
    weighted = torch.where(gamma > 0, gamma * log_probs, torch.zeros_like(log_probs))  # 0 * -inf is 0 here
    losses = -weighted.sum((1, 2))
    # a row with frames but no occupancy has no alignment (ctc_posteriors warned about it)
    aligned = (gamma.sum((1, 2)) > 0) | torch.from_numpy(batch.input_lengths == 0).to(losses.device)
    losses = torch.where(aligned, losses, torch.full_like(losses, float("inf")))
    return _reduce(losses, batch.target_lengths, reduction)


# ----------------------------------------------------------------------------- posteriors


def ctc_posteriors(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike,
                   blank: int = 0) -> tuple[Tensor, Tensor]:
    """The occupancy the forward-backward algorithm computes.

    Returns:
        (gamma_ext, gamma_sym): gamma_ext (B, T, 2 S_max + 1), the posterior probability of
        being at extended-target position s at frame t, gamma = alpha beta / (y P); and
        gamma_sym (B, T, C), the posterior of each symbol per frame (gamma summed over the
        positions holding it). Each row of a frame sums to 1 within the input; frames past
        the input and rows with no alignment are 0.
    """
    batch = _check(log_probs, targets, input_lengths, target_lengths, blank, normalised=False)
    cpu = _at_least_float32(log_probs.detach().to("cpu"))
    _, grad, gamma, status = _lattice_cpu(cpu, batch, blank, True, True)
    gamma_t = torch.from_numpy(gamma)
    gamma_sym = -torch.from_numpy(grad).double()
    redo = np.nonzero(status == ctc_kernels.UNDERFLOW)[0]
    if redo.size:
        raise FloatingPointError(
            f"ctc_posteriors: probabilities inside a frame of rows {redo.tolist()} span more than "
            "1e-308; rescale the log-probabilities (e.g. log_softmax) first")
    _warn_infeasible(np.nonzero(status == ctc_kernels.INFEASIBLE)[0].tolist(), "ctc_posteriors")
    return gamma_t.to(log_probs.device, log_probs.dtype), gamma_sym.to(log_probs.device, log_probs.dtype)


# ----------------------------------------------------------------------------- Viterbi


@dataclass(frozen=True)
class Segment:
    """One target symbol in a forced alignment: frames [start, end), and the sum of its
    frames' log-probabilities."""

    symbol: int
    start: int
    end: int
    score: float


@dataclass(frozen=True)
class Alignment:
    """The best path of one utterance.

    Attributes:
        path: symbol per frame (blank included), length input_length.
        positions: extended-target position per frame (even = blank, 2i+1 = target i).
        segments: one :class:`Segment` per target symbol, in order.
        score: sum_t lp_t(path_t), the log-probability of the best path.
    """

    path: list[int]
    positions: list[int]
    segments: list[Segment]
    score: float


def _viterbi(log_probs: Tensor, batch: _Batch, blank: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    x = log_probs.detach().to("cpu").contiguous().numpy()
    B, T, _ = x.shape
    positions = np.full((B, T), -1, dtype=np.int64)
    score = np.empty(B)
    status = np.empty(B, dtype=np.int8)
    _on_threads(ctc_kernels.viterbi, ctc_kernels.viterbi_serial, x, batch.targets, batch.input_lengths,
                batch.target_lengths, blank, positions, score, status)
    symbols = np.where(positions % 2 == 1, np.take_along_axis(batch.targets, np.maximum(positions - 1, 0) // 2, 1), blank)
    symbols[positions < 0] = -1
    return positions, symbols, score, status


def forced_align(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike,
                 blank: int = 0) -> list[Alignment | None]:
    """Best alignment of each target to its input (Viterbi with back-pointers).

    The best path maximises sum_t lp_t(pi_t) over the alignments that collapse to the
    target (repeats separated by a blank). Rows with no alignment give None and a warning.

    Example:
        >>> a = forced_align(lp, torch.tensor([[3, 3, 1]]), [20], [3])[0]
        >>> [(s.symbol, s.start, s.end) for s in a.segments]
    """
    batch = _check(log_probs, targets, input_lengths, target_lengths, blank, normalised=False)
    positions, symbols, score, status = _viterbi(log_probs, batch, blank)
    x = log_probs.detach().to("cpu", torch.float64).numpy()
    out: list[Alignment | None] = []
    for b in range(len(score)):
        if status[b] != ctc_kernels.OK:
            out.append(None)
            continue
        T = int(batch.input_lengths[b])
        pos = positions[b, :T]
        frame_scores = x[b, np.arange(T), symbols[b, :T]]
        segments = []
        for i in range(int(batch.target_lengths[b])):
            frames = np.nonzero(pos == 2 * i + 1)[0]
            segments.append(Segment(int(batch.targets[b, i]), int(frames[0]), int(frames[-1]) + 1,
                                    float(frame_scores[frames].sum())))
        out.append(Alignment(symbols[b, :T].tolist(), pos.tolist(), segments, float(score[b])))
    _warn_infeasible([b for b, a in enumerate(out) if a is None], "forced_align")
    return out


class _Viterbi(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_probs: Tensor, batch: _Batch, blank: int) -> Tensor:
        _, symbols, score, _ = _viterbi(log_probs, batch, blank)
        ctx.symbols = torch.from_numpy(symbols).to(log_probs.device)
        ctx.shape = log_probs.shape
        return torch.from_numpy(-score).to(log_probs.device, log_probs.dtype)

    @staticmethod
    def backward(ctx, d_losses: Tensor):
        # L = -sum_t lp_t(pi*_t): -1 on the best path's symbol at each frame
        symbols = ctx.symbols
        grad = torch.zeros(ctx.shape, dtype=d_losses.dtype, device=d_losses.device)
        on_path = symbols >= 0
        grad.scatter_(2, symbols.clamp(min=0).unsqueeze(2), -on_path.unsqueeze(2).to(grad.dtype))
        return grad * d_losses[:, None, None], None, None


def viterbi_loss(log_probs: Tensor, targets: IntsLike, input_lengths: IntsLike, target_lengths: IntsLike,
                 blank: int = 0, reduction: str = "mean", zero_infinity: bool = False) -> Tensor:
    """Hard-alignment (Viterbi) training: L = -max_pi sum_t lp_t(pi_t) over valid alignments.

    The divergence of the single best alignment instead of the expectation over all of them;
    its gradient is -1 at the best path's symbol of every frame. Arguments as :func:`ctc_loss`.
    """
    return _alignment_loss(_Viterbi, "viterbi_loss", log_probs, targets, input_lengths, target_lengths, blank,
                           reduction, zero_infinity)
