"""Training precision: float32, or autocast to bfloat16 / float16 (mixed precision).

    "32"        everything in float32 (the default)
    "bf16"      torch.autocast to bfloat16 on the CPU or CUDA: matrix products in bfloat16,
                the parameters, optimiser state and reductions in float32; no loss scaling
                (bfloat16 has float32's range)
    "16-mixed"  torch.autocast to float16 on CUDA with a GradScaler (dynamic loss scaling,
                saved in every checkpoint so a resumed run continues it exactly)

What stays in float32 under autocast, and why: the recurrence of the fused BPTT engine
(:func:`rnnkit.unroll.fused_scan`: its input projection U x_t + b runs in the autocast type,
the step kernels and the state h_t carried through time in float32, as rounding would
otherwise compound over the steps) and CTC's forward-backward (:mod:`rnnkit.ctc`: log-probs
are taken in float32 and alpha/beta accumulate in float64 on the CPU). torch's own RNN ops
(the "native" path) follow torch's autocast rules.
"""

from __future__ import annotations

import contextlib
from typing import Any

import torch

__all__ = ["PRECISIONS", "autocast", "autocast_enabled", "check_precision", "grad_scaler"]

PRECISIONS = ("32", "bf16", "16-mixed")
_DTYPES = {"bf16": torch.bfloat16, "16-mixed": torch.float16}


def check_precision(precision: str, device: torch.device) -> None:
    """A ValueError naming the precision and the device when the two do not go together."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}. Received: {precision!r}")
    if precision == "16-mixed" and device.type != "cuda":
        raise ValueError(f"precision '16-mixed' (float16 with loss scaling) needs a CUDA device; on {device.type} use "
                         "'bf16' or '32'")
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise ValueError("precision 'bf16': this CUDA device has no bfloat16 support; use '16-mixed'")
    if precision == "bf16" and device.type not in ("cpu", "cuda"):
        raise ValueError(f"precision 'bf16' runs on the CPU or CUDA, not on {device.type}; use '32'")


def autocast(precision: str, device: torch.device) -> Any:
    """The context the forward passes run in: torch.autocast for "bf16" and "16-mixed"."""
    if precision == "32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=_DTYPES[precision])


def grad_scaler(precision: str, device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling for "16-mixed"; a pass-through scaler otherwise."""
    return torch.amp.GradScaler(device.type, enabled=precision == "16-mixed")


def autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` here (torch < 2.4 has no device argument)."""
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:
        return torch.is_autocast_cpu_enabled() if device_type == "cpu" else torch.is_autocast_enabled()
