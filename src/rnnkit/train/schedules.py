"""Learning-rate schedules and the teacher-forcing curriculum, as plain functions of progress.

Everything here is a function of (step, epoch) plus, for "plateau", a small JSON state, so
checkpoints resume it exactly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from rnnkit.checks import is_int, is_number, require

SCHEDULES = ("constant", "step", "plateau", "cosine")


@dataclass
class ScheduleConfig:
    """The shape of the learning-rate schedule (see :class:`LRSchedule`)."""

    kind: str = "constant"
    decay_start: int = 0
    decay_factor: float = 0.5
    warmup_steps: int = 0
    patience: int = 1
    plateau_factor: float = 0.5
    min_lr: float = 0.0

    def __post_init__(self) -> None:
        require(self.kind in SCHEDULES, "schedule.kind", f"one of {SCHEDULES}", self.kind)
        for name in ("decay_start", "warmup_steps", "patience"):
            value = getattr(self, name)
            require(is_int(value) and value >= 0, f"schedule.{name}", "an integer >= 0", value)
        for name in ("decay_factor", "plateau_factor"):
            value = getattr(self, name)
            require(is_number(value) and 0 < value <= 1, f"schedule.{name}", "in (0, 1]", value)
        require(is_number(self.min_lr) and self.min_lr >= 0, "schedule.min_lr", "a number >= 0", self.min_lr)


class LRSchedule:
    """lr(step, epoch) = base_lr * warm-up * one of (``config.kind``):

    constant: 1.  step: decay_factor^max(0, e + 1 - decay_start) in the 0-based epoch e:
    ``decay_start`` epochs at the full rate, then one decay per epoch (Zaremba et al. 2014,
    small: 4 epochs at lr 1, halved in the 5th and every epoch after).
    cosine: (1 + cos(pi * progress)) / 2 down to min_lr over total_steps.
    plateau: multiplied by plateau_factor when the dev metric has not improved for more than
    ``patience`` evaluations (:meth:`evaluated`).  Warm-up: linear over warmup_steps.

    Example:
        >>> LRSchedule(ScheduleConfig("step", decay_start=4), base_lr=1.0).lr(step=0, epoch=4)
        0.5
    """

    def __init__(self, config: ScheduleConfig | None = None, base_lr: float = 1e-3,
                 total_steps: int | None = None) -> None:
        c = config or ScheduleConfig()
        if c.kind not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}. Received: {c.kind!r}")
        if c.kind == "cosine" and not total_steps:
            raise ValueError("the cosine schedule needs total_steps (or max_steps) > 0")
        self.kind, self.base_lr = c.kind, base_lr
        self.decay_start, self.decay_factor = c.decay_start, c.decay_factor
        self.warmup_steps, self.total_steps = c.warmup_steps, total_steps
        self.patience, self.plateau_factor, self.min_lr = c.patience, c.plateau_factor, c.min_lr
        self.scale, self.best, self.bad = 1.0, math.inf, 0

    def lr(self, step: int, epoch: int) -> float:
        warm = min(1.0, (step + 1) / self.warmup_steps) if self.warmup_steps else 1.0
        if self.kind == "step":
            f = self.decay_factor ** max(0, epoch + 1 - self.decay_start)
        elif self.kind == "cosine":
            progress = min(1.0, max(0, step - self.warmup_steps) / max(1, self.total_steps - self.warmup_steps))
            lo = self.min_lr / self.base_lr
            f = lo + (1 - lo) * 0.5 * (1 + math.cos(math.pi * progress))
        elif self.kind == "plateau":
            f = self.scale
        else:
            f = 1.0
        return max(self.base_lr * f * warm, self.min_lr if self.kind != "constant" else 0.0)

    def evaluated(self, metric: float) -> None:
        """Tell the schedule the dev metric (lower is better)."""
        if metric < self.best * (1 - 1e-4):
            self.best, self.bad = metric, 0
        else:
            self.bad += 1
            if self.kind == "plateau" and self.bad > self.patience:
                self.scale *= self.plateau_factor
                self.bad = 0

    def state_dict(self) -> dict[str, float]:
        return {"scale": self.scale, "best": self.best if math.isfinite(self.best) else None, "bad": self.bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scale, self.bad = float(state["scale"]), int(state["bad"])
        self.best = math.inf if state["best"] is None else float(state["best"])


def teacher_forcing_ratio(spec: float | dict[str, Any] | None, step: int) -> float:
    """The probability of feeding the gold previous output at this step (scheduled sampling).

    spec: None (always 1), a constant, or {"schedule": ...}:
      "linear": from ``start`` (1) to ``end`` (0) over ``steps``;
      "exponential": k^step, k < 1 (at least ``min``, default 0);
      "inverse_sigmoid": k / (k + exp(step / k)), k >= 1  (Bengio et al. 2015).
    """
    if spec is None:
        return 1.0
    if isinstance(spec, (int, float)):
        return float(spec)
    kind = spec.get("schedule")
    if kind == "linear":
        start, end, steps = spec.get("start", 1.0), spec.get("end", 0.0), spec["steps"]
        return start + (end - start) * min(1.0, step / steps)
    if kind == "exponential":
        return max(spec.get("min", 0.0), spec["k"] ** step)
    if kind == "inverse_sigmoid":
        k = spec["k"]
        return k / (k + math.exp(min(step / k, 700.0)))
    raise ValueError(f"teacher_forcing schedule must be 'linear', 'exponential' or 'inverse_sigmoid'. Received: {spec!r}")
