"""The training loop for any rnnkit model: it only calls ``model.loss(batch, state, teacher_forcing)``.

    config = TrainConfig(optimizer=OptimizerConfig("sgd", lr=1.0), stopping=StoppingConfig(epochs=13),
                         clip_norm=5)
    trainer = Trainer(model, train_batches, config, valid=valid_batches, run_dir="runs/ptb")
    trainer.fit()                       # run_dir/metrics.jsonl, checkpoints/, best/ (rnnkit.run_dir)

The loop (:meth:`Trainer.fit`) reads top to bottom: per batch a forward and backward pass
(:meth:`Trainer._accumulate`); every ``accumulate`` batches one optimisation step
(:meth:`Trainer._optimisation_step`: average, clip, step, then log / evaluate / checkpoint
when due); at the end of each epoch :meth:`Trainer._end_of_epoch`; at the end
:meth:`Trainer._finish`. Partial accumulations are applied in one place
(:meth:`Trainer._apply_pending`), so checkpoints always fall on step boundaries.

Truncated BPTT comes from the batches: with :class:`rnnkit.data.StreamBatches` the state a
chunk ends in is detached and carried into the next chunk. A run interrupted at any moment
and started again with ``resume=True`` continues from its last checkpoint and, on the CPU,
ends with the same weights bit for bit as a run that was never interrupted. Ctrl-C (SIGINT)
stops at the end of the current optimisation step, saves a checkpoint there and raises
:class:`TrainingInterrupted`; a second Ctrl-C abandons the step at once.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import signal
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor

from rnnkit.checks import is_int, is_number, require
from rnnkit.data.batching import Batch, BatchSource
from rnnkit.files import write_json_atomic, write_text_atomic
from rnnkit.metrics import perplexity
from rnnkit.models.base import Loss, Model
from rnnkit.nested import detach
from rnnkit.progress import bar as progress_bar
from rnnkit.precision import PRECISIONS, autocast, check_precision, grad_scaler
from rnnkit.run_dir import Checkpoint, RunDir, read_metrics
from rnnkit.train.loggers import LOGGERS, RunLogger, numbers, open_logger
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.schedules import LRSchedule, ScheduleConfig, teacher_forcing_ratio

OPTIMIZERS = ("adam", "adamw", "sgd")


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped :meth:`Trainer.fit` at a step boundary; a checkpoint of that step was saved
    (when the trainer has a run directory), so ``resume=True`` continues from it."""

    def __init__(self, run_dir: Path | None, step: int) -> None:
        super().__init__(f"interrupted at step {step}" + (f"; checkpoint saved in {run_dir}" if run_dir else ""))
        self.run_dir, self.step = run_dir, step


@dataclass
class OptimizerConfig:
    """The optimiser: "adam", "adamw" or "sgd" (with ``momentum``), its learning rate and weight decay."""

    name: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require(self.name in OPTIMIZERS, "optimizer.name", f"one of {OPTIMIZERS}", self.name)
        require(is_number(self.lr) and self.lr > 0, "optimizer.lr", "a finite number > 0", self.lr)
        require(is_number(self.momentum) and 0 <= self.momentum < 1, "optimizer.momentum", "in [0, 1)",
                self.momentum)
        require(is_number(self.weight_decay) and self.weight_decay >= 0, "optimizer.weight_decay",
                "a finite number >= 0", self.weight_decay)


@dataclass
class StoppingConfig:
    """When training stops: whichever bound comes first (at least one is needed) — ``epochs``,
    optimiser steps (``max_steps``), wall-clock ``minutes`` — or ``early_stopping``
    evaluations in a row without a better dev loss. Each bound counts the whole run, over
    every session of a resumed run; ``minutes`` includes the dev passes, and training stops
    early enough to leave time for the final one."""

    epochs: int | None = None
    max_steps: int | None = None
    minutes: float | None = None
    early_stopping: int | None = None

    def __post_init__(self) -> None:
        for name in ("epochs", "max_steps", "early_stopping"):
            value = getattr(self, name)
            require(value is None or (is_int(value) and value >= 1), f"stopping.{name}", "an integer >= 1 or None",
                    value)
        require(self.minutes is None or (is_number(self.minutes) and self.minutes > 0), "stopping.minutes",
                "a finite number > 0 or None", self.minutes)


#: which nested config each key of the flat form (rnnkit 0.1.0's config.json) belongs to
_FLAT_KEYS = {
    "optimizer": ("optimizer", "name"), "lr": ("optimizer", "lr"), "momentum": ("optimizer", "momentum"),
    "weight_decay": ("optimizer", "weight_decay"), "schedule": ("schedule", "kind"),
    **{k: ("schedule", k) for k in ("decay_start", "decay_factor", "warmup_steps", "patience", "plateau_factor",
                                    "min_lr")},
    **{k: ("stopping", k) for k in ("epochs", "max_steps", "minutes", "early_stopping")},
}


#: what TrainConfig.monitor may name
MONITORS = ("loss", "accuracy")


@dataclass
class TrainConfig:
    """How to train: the optimiser, the learning-rate schedule (:class:`ScheduleConfig`), when to
    stop, and:

    clip_norm / clip_value: gradient clipping by global norm and/or by value (the pre-clip norm
    is logged). accumulate: one optimiser step every N batches. eval_every /
    checkpoint_every: in optimiser steps (default: at the end of each epoch). eval_batches:
    at most this many dev batches per evaluation during training, always the same first ones
    (None: the whole dev set). keep_last: checkpoints kept. teacher_forcing: a ratio or a
    curriculum (see :func:`teacher_forcing_ratio`). log_every: optimiser steps between
    training records. seed: everything random on the CPU. monitor: what "better" means for
    best/, early stopping and the plateau schedule: a lower dev "loss", or a higher dev
    "accuracy" (models that count correct predictions). precision: "32", "bf16" or
    "16-mixed" for the forward passes of training and of the dev passes (:mod:`rnnkit.precision`).

    Round-trips through JSON: ``TrainConfig.from_dict(config.to_dict()) == config``.
    """

    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    clip_norm: float | None = None
    clip_value: float | None = None
    accumulate: int = 1
    eval_every: int | None = None
    checkpoint_every: int | None = None
    eval_batches: int | None = None
    keep_last: int = 2
    teacher_forcing: float | dict | None = None
    log_every: int = 50
    seed: int = 0
    monitor: str = "loss"
    precision: str = "32"

    def __post_init__(self) -> None:
        require(self.monitor in MONITORS, "monitor", f"one of {MONITORS}", self.monitor)
        require(self.precision in PRECISIONS, "precision", f"one of {PRECISIONS}", self.precision)
        for name in ("clip_norm", "clip_value"):
            value = getattr(self, name)
            require(value is None or (is_number(value) and value > 0), name, "a finite number > 0 or None", value)
        for name in ("eval_every", "checkpoint_every", "eval_batches"):
            value = getattr(self, name)
            require(value is None or (is_int(value) and value >= 1), name, "an integer >= 1 or None", value)
        for name in ("accumulate", "log_every"):
            value = getattr(self, name)
            require(is_int(value) and value >= 1, name, "an integer >= 1", value)
        require(is_int(self.keep_last) and self.keep_last >= 1, "keep_last", "an integer >= 1", self.keep_last)
        require(is_int(self.seed), "seed", "an integer", self.seed)
        tf = self.teacher_forcing
        require(tf is None or isinstance(tf, dict) or (is_number(tf) and 0 <= tf <= 1), "teacher_forcing",
                "a ratio in [0, 1], a curriculum dict or None", tf)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """From :meth:`to_dict`'s nested form, or from the flat form of rnnkit 0.1.0 run directories."""
        data = dict(data)
        nested: dict[str, dict[str, Any]] = {"optimizer": {}, "schedule": {}, "stopping": {}}
        for key, (group, name) in _FLAT_KEYS.items():
            if key in data and not isinstance(data[key], dict):
                nested[group][name] = data.pop(key)
        for group, kind in (("optimizer", OptimizerConfig), ("schedule", ScheduleConfig),
                            ("stopping", StoppingConfig)):
            nested[group].update(data.pop(group, {}) or {})
            data[group] = _build(kind, nested[group], group)
        return _build(cls, data, "train config")


def _build(kind: type, values: dict[str, Any], what: str) -> Any:
    names = {f.name for f in dataclasses.fields(kind)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ValueError(f"{what} has unknown fields {unknown}; expected a subset of {sorted(names)}")
    return kind(**values)


def _to_device(batch: Batch, device: torch.device | str) -> Batch:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


def _check_loss(model: Model, out: Any) -> Loss:
    if not isinstance(out, Loss):
        raise ValueError(f"{type(model).__name__}.loss must return an rnnkit.models.Loss. "
                         f"Received: {type(out).__name__}")
    return out


@torch.no_grad()
def evaluate(model: Model, batches: BatchSource | Iterable[Batch], device: torch.device | str = "cpu",
             rank: int = 0, world: int = 1, max_batches: int | None = None,
             progress: bool | None = False, precision: str = "32") -> dict[str, float]:
    """Mean loss over one pass of ``batches`` (weighted by each batch's count), perplexity
    for language models, accuracy when the model reports correct predictions. A stateful
    :class:`BatchSource` (token streams) carries the state from chunk to chunk; any other
    iterable of batches is read as independent sequences. ``max_batches`` reads only the
    first ones (a fixed slice). With ``world`` > 1 processes each takes its shard of every
    batch and the sums are combined. ``progress``: a bar (None: on a terminal or in a notebook).
    ``precision``: the forward passes' (:mod:`rnnkit.precision`)."""
    was_training = model.training
    model.eval()
    source = batches if isinstance(batches, BatchSource) else None
    total = count = correct = 0.0
    counts_correct = False  # the model reports correct predictions (0 of them is still an accuracy)
    carried = None
    size = len(batches) if hasattr(batches, "__len__") else None
    if max_batches is not None:
        size = max_batches if size is None else min(size, max_batches)
    with progress_bar(size, progress and rank == 0, desc="evaluate", unit="batch", leave=False) as bar:
        for i, batch in enumerate(batches):
            if max_batches is not None and i >= max_batches:
                break
            state_in = source.state_in(batch, carried) if source is not None else None
            with autocast(precision, torch.device(device)):
                out = _check_loss(model, model.loss(_to_device(distributed.shard(batch, rank, world), device),
                                                    state_in))
            carried = out.state
            total += float(out.value) * out.count
            count += out.count
            counts_correct |= "correct" in out.stats
            correct += out.stats.get("correct", 0.0)
            bar.update(1)
    if world > 1:
        total, count, correct = distributed.all_sum([total, count, correct], device)
    model.train(was_training)
    metrics = {"loss": total / max(count, 1)}
    if model.reports_perplexity:
        metrics["ppl"] = perplexity(metrics["loss"])
    if counts_correct:
        metrics["accuracy"] = correct / max(count, 1)
    return metrics


class _Window:
    """Training loss, correct predictions and throughput since the last log record (its sums are
    saved in checkpoints, so the first record after a resume equals the uninterrupted run's)."""

    def __init__(self, loss_sum: float = 0.0, count: float = 0.0, correct: float | None = None) -> None:
        self.start = time.time()
        self.loss_sum, self.count, self.correct = loss_sum, count, correct

    def add(self, loss: float, count: int, correct: float | None) -> None:
        self.loss_sum += loss * count
        self.count += count
        if correct is not None:
            self.correct = (self.correct or 0.0) + correct

    @property
    def mean(self) -> float:
        return self.loss_sum / max(self.count, 1)

    def state(self) -> list[float | None]:
        return [self.loss_sum, self.count, self.correct]

    def close(self) -> dict[str, float]:
        """The window's mean loss, accuracy (when the model counts correct predictions) and units
        per second; a new window starts."""
        now = time.time()
        result = {"loss": self.mean, "units_per_s": self.count / max(now - self.start, 1e-9)}
        if self.correct is not None:
            result["accuracy"] = self.correct / max(self.count, 1)
        self.start, self.loss_sum, self.count, self.correct = now, 0.0, 0.0, None
        return result


@contextlib.contextmanager
def _stop_on_sigint(flag: dict[str, bool]) -> Iterator[None]:
    """While inside, the first Ctrl-C sets ``flag["stop"]`` (the loop stops at the end of the step);
    the second raises KeyboardInterrupt at once. Only the main thread can own signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        if flag["stop"]:
            raise KeyboardInterrupt
        flag["stop"] = True
        print("\nrnnkit: stopping after this step to save a checkpoint (Ctrl-C again to abandon it)",
              file=sys.stderr)

    previous = signal.signal(signal.SIGINT, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class Trainer:
    """Fits a model on resumable batches; see the module docstring.

    Args:
        model: an :class:`rnnkit.models.Model`.
        train, valid: :class:`rnnkit.data.BatchSource` (``StreamBatches``, ``SequenceBatches``).
        config: a :class:`TrainConfig`.
        run_dir: where config.json, metrics.jsonl, checkpoints/ and best/ go (None: nowhere);
            the layout is :class:`rnnkit.run_dir.RunDir`.
        resume: continue from the last checkpoint in run_dir, if any.
        device: "cpu", "cuda", or a torch.device.
        evaluate: optional extra evaluation, model -> dict of numbers, after each dev pass.
        progress: tqdm bars for training (its total is the step bound) and each dev pass; None
            shows them on a terminal or in a notebook, on rank 0 only.
        artifacts: files written into every checkpoint next to the model, by name: a str as
            UTF-8 text (a lexicon, an ARPA language model), bytes as they are (a subword
            model), anything else as JSON (the task's arguments), so that a checkpoint alone
            can be used.
        logger: where every metrics record also goes (:mod:`rnnkit.train.loggers`): "auto"
            (TensorBoard event files in run_dir/tensorboard/ when tensorboard is installed),
            "tensorboard", "wandb", "none", or a RunLogger of your own.
    """

    def __init__(self, model: Model, train: BatchSource, config: TrainConfig | None = None,
                 valid: BatchSource | None = None, run_dir: str | Path | RunDir | None = None, resume: bool = False,
                 device: str | torch.device = "cpu", evaluate: Callable[[Model], dict[str, float]] | None = None,
                 progress: bool | None = None, artifacts: dict[str, Any] | None = None,
                 logger: str | RunLogger | None = "auto") -> None:
        self.config = c = config or TrainConfig()
        stop = c.stopping
        if stop.epochs is None and stop.max_steps is None and stop.minutes is None:
            raise ValueError("give at least one bound: epochs, max_steps or minutes")
        if not isinstance(model, Model):
            raise ValueError(f"model must be an rnnkit.models.Model. Received: {type(model).__name__}")
        for name, source in (("train", train), ("valid", valid)):
            if source is not None and not isinstance(source, BatchSource):
                raise ValueError(f"{name} must be an rnnkit.data.BatchSource (StreamBatches, SequenceBatches). "
                                 f"Received: {type(source).__name__}")
        self.device = torch.device(device)
        check_precision(c.precision, self.device)
        self.scaler = grad_scaler(c.precision, self.device)
        self.rank, self.world = distributed.init(self.device)
        torch.manual_seed(c.seed)
        self.model = model.to(self.device)
        distributed.broadcast_parameters(self.model)
        self.train, self.valid = train, valid
        self.run = None if run_dir is None else run_dir if isinstance(run_dir, RunDir) else RunDir(Path(run_dir))
        self.resume, self.extra_evaluate, self.progress = resume, evaluate, progress
        self.artifacts = artifacts or {}
        if not (logger is None or isinstance(logger, RunLogger) or logger in LOGGERS):
            raise ValueError(f"logger must be one of {LOGGERS}, None or a RunLogger. Received: {logger!r}")
        self.logger_kind, self.logger = logger, RunLogger()
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = _optimizer(c.optimizer, self.params)
        self.schedule = LRSchedule(c.schedule, c.optimizer.lr, stop.max_steps)
        self.step, self.best, self.bad_evals, self.stopped_early = 0, math.inf, 0, False
        self.earlier_seconds, self.session_start = 0.0, time.time()  # training time before this session; its start
        self.eval_seconds = 0.0  # how long the last dev pass took: the time bound keeps this much for the final one
        self.carried: Any = None
        self.history: list[dict[str, Any]] = []
        self.last_eval_step = self.checkpointed_step = -1
        self._pending = 0  # batches whose gradients wait for the next optimiser step
        self._teacher_forcing = 1.0
        self._window = _Window()
        self._sigint = {"stop": False}
        self._bar: Any = None

    @property
    def _show_progress(self) -> bool | None:
        return self.progress if self.rank == 0 else False

    @property
    def run_dir(self) -> Path | None:
        return None if self.run is None else self.run.path

    # -- the loop ---------------------------------------------------------------------------

    def fit(self) -> dict[str, Any]:
        """Train until a bound is reached; returns the step, epoch, best dev loss, whether it stopped
        early, the training wall time in seconds (over every session of a resumed run), the history,
        and ``already_finished``: a resumed run that had already reached its bound is left as it is.
        Ctrl-C: see the module docstring."""
        self._open_run()
        if self._done():
            if self.rank == 0:
                print(f"rnnkit: the run in {self.run_dir} had already finished at step {self.step}; nothing to do "
                      "(give a larger bound to train further)", file=sys.stderr)
            return {**self._result(), "already_finished": True}
        if self.writer:
            self.logger = open_logger(self.logger_kind, self.run, purge_step=self.step + 1 if self.step else None)
        try:
            self._train()
        finally:
            self.logger.close()
        if self._sigint["stop"]:
            raise TrainingInterrupted(self.run_dir, self.step)
        return self._result()

    def _train(self) -> None:
        """The loop: batches, optimisation steps, dev passes, checkpoints, until a bound or Ctrl-C."""
        self.model.train()
        self.session_start = time.time()
        self._window.start = time.time()
        self._sigint["stop"] = False
        total, unit = self._bar_total()
        with progress_bar(total, self._show_progress, desc="train", unit=unit,
                          initial=self.step if unit == "step" else min(round(self.earlier_seconds), total)) as bar, \
                _stop_on_sigint(self._sigint):
            self._bar = bar
            while not self._done():
                for batch in self.train:
                    self._accumulate(batch)
                    if self._pending == self.config.accumulate:
                        self._optimisation_step()
                        if self._done():
                            break
                else:
                    self._end_of_epoch()
            self._finish()

    def _result(self) -> dict[str, Any]:
        best = self.best if self.config.monitor == "loss" else 1.0 - self.best
        return {"step": self.step, "epoch": self.train.epoch, f"best_valid_{self.config.monitor}": best,
                "stopped_early": self.stopped_early, "seconds": self.seconds, "history": self.history,
                "already_finished": False}

    def _bar_total(self) -> tuple[float, str]:
        """The progress bar's bound: optimiser steps when the run has a step or epoch bound, else seconds."""
        stop = self.config.stopping
        per_epoch = math.ceil(len(self.train) / self.config.accumulate)
        steps = [b for b in (stop.max_steps, stop.epochs and stop.epochs * per_epoch) if b]
        return (min(steps), "step") if steps else (round(stop.minutes * 60), "s")

    def _accumulate(self, batch: Batch) -> None:
        """Forward and backward on one batch; its gradients wait for the optimisation step."""
        self._teacher_forcing = teacher_forcing_ratio(self.config.teacher_forcing, self.step)
        state_in = self.train.state_in(batch, self.carried)
        with autocast(self.config.precision, self.device):
            out = _check_loss(self.model, self.model.loss(self._to_device(batch), state_in, self._teacher_forcing))
        self.scaler.scale(out.value / self.config.accumulate).backward()
        self.carried = detach(out.state) if self.train.stateful else None
        self._window.add(float(out.value.detach()), out.count, out.stats.get("correct"))
        self._pending += 1

    def _optimisation_step(self) -> None:
        """One optimiser step, then whatever falls due at this step: a log record, an
        evaluation (with its checkpoint) or a checkpoint."""
        norm = self._apply_gradients()
        c = self.config
        self._advance_bar()
        if self.step % c.log_every == 0:
            self._log_training(norm)
        if c.eval_every and self.step % c.eval_every == 0:
            self._evaluate_and_track()
        elif c.checkpoint_every and self.step % c.checkpoint_every == 0:
            self._checkpoint()

    def _end_of_epoch(self) -> None:
        """Apply a partial accumulation; evaluate and checkpoint unless they go by steps."""
        self._apply_pending()
        if not self.config.eval_every:
            self._evaluate_and_track()
        if not self.config.checkpoint_every and self._unsaved():
            self._checkpoint()

    def _finish(self) -> None:
        """A bound stopped us, perhaps mid-epoch: evaluate what was not evaluated, save what was not
        saved. After Ctrl-C: only save."""
        self._apply_pending()
        if self.valid is not None and self.last_eval_step != self.step and not self._sigint["stop"]:
            self._evaluate_and_track()
        elif self._unsaved():
            self._checkpoint()

    def _done(self) -> bool:
        stop = self.config.stopping
        time_up = float(stop.minutes is not None and self.seconds + self.eval_seconds >= stop.minutes * 60)
        interrupted = float(self._sigint["stop"])
        if self.world > 1:  # the clocks and the signals differ: all processes stop at the same step
            time_up, interrupted = distributed.all_sum([time_up, interrupted], self.device)
        self._sigint["stop"] = interrupted > 0
        return (time_up > 0 or interrupted > 0 or self.stopped_early or (stop.max_steps is not None and self.step >= stop.max_steps)
                or (stop.epochs is not None and self.train.epoch >= stop.epochs))

    # -- optimisation -----------------------------------------------------------------------

    def _apply_pending(self) -> None:
        """Take the step for a partial accumulation, so checkpoints fall on step boundaries."""
        if self._pending:
            self._apply_gradients()
            self._advance_bar()

    def _apply_gradients(self) -> float:
        """Average across processes, clip, step; returns the gradient norm before clipping."""
        distributed.average_gradients(self.params, self.world)
        self.scaler.unscale_(self.optimizer)  # 16-mixed: the true gradients, before the norm and clipping
        c = self.config
        if c.clip_norm is not None and c.clip_value is None:
            norm = float(torch.nn.utils.clip_grad_norm_(self.params, c.clip_norm))  # returns the norm before clipping
        else:
            norm = float(torch.nn.utils.get_total_norm([p.grad for p in self.params if p.grad is not None]))
            if c.clip_value is not None:
                torch.nn.utils.clip_grad_value_(self.params, c.clip_value)
            if c.clip_norm is not None:
                torch.nn.utils.clip_grad_norm_(self.params, c.clip_norm)
        lr = self.schedule.lr(self.step, self.train.epoch)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.scaler.step(self.optimizer)  # 16-mixed: skipped when the gradients overflowed
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self._pending = 0
        return norm

    def _advance_bar(self) -> None:
        bar = self._bar
        if bar is None or bar.disable:
            return
        if bar.unit == "step":
            bar.update(self.step - bar.n)
        else:
            bar.update(min(round(self.seconds), bar.total) - bar.n)
        bar.set_postfix(loss=f"{self._window.mean:.3f}", lr=f"{self.optimizer.param_groups[0]['lr']:.3g}",
                        refresh=False)

    # -- evaluation -------------------------------------------------------------------------

    def evaluate(self, batches: BatchSource, max_batches: int | None = None) -> dict[str, float]:
        """:func:`evaluate` of this trainer's model, each process taking its shard of every batch."""
        return evaluate(self.model, batches, self.device, self.rank, self.world, max_batches,
                        progress=self._show_progress, precision=self.config.precision)

    def _evaluate_and_track(self) -> None:
        """A dev pass: track the best dev value (the loss, or the error 1 - accuracy, as
        ``monitor`` says), early stopping and the schedule; checkpoint; copy the checkpoint to
        best/ when it improved."""
        if self.valid is None:
            return
        self.last_eval_step = self.step
        started = time.time()
        metrics = self.evaluate(self.valid, self.config.eval_batches)
        if self.extra_evaluate is not None:
            metrics.update(self.extra_evaluate(self.model))
        self.eval_seconds = time.time() - started
        if self.config.monitor == "accuracy" and "accuracy" not in metrics:
            raise ValueError(f"monitor='accuracy', but {type(self.model).__name__} reports no accuracy on the dev "
                             "batches; monitor the loss instead")
        value = metrics["loss"] if self.config.monitor == "loss" else 1.0 - metrics["accuracy"]  # lower is better
        improved = value < self.best
        self.schedule.evaluated(value)
        if improved:
            self.best, self.bad_evals = value, 0
        else:
            self.bad_evals += 1
        early = self.config.stopping.early_stopping
        if early is not None and self.bad_evals >= early:
            self.stopped_early = True
        self._log({"split": "valid", "step": self.step, "epoch": self.train.epoch, **metrics,
                   "eval_seconds": self.eval_seconds})
        saved = self._checkpoint()
        if improved and saved is not None:
            ckpt.copy_as(saved.path, self.run.best.path)

    # -- records and checkpoints ------------------------------------------------------------

    @property
    def writer(self) -> bool:
        return self.rank == 0 and self.run is not None

    @property
    def seconds(self) -> float:
        """Wall time spent training up to now, over every session of a resumed run."""
        return self.earlier_seconds + time.time() - self.session_start

    def _to_device(self, batch: Batch) -> Batch:
        return _to_device(distributed.shard(batch, self.rank, self.world), self.device)

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.writer:
            with open(self.run.metrics, "a") as f:
                f.write(json.dumps(record) + "\n")
            self.logger.scalars(record["split"], record["step"], numbers(record))

    def _log_training(self, norm: float) -> None:
        record = {"split": "train", "step": self.step, "epoch": self.train.epoch, **self._window.close(),
                  "lr": self.optimizer.param_groups[0]["lr"], "grad_norm": norm,
                  "teacher_forcing": self._teacher_forcing}
        self._log(record)

    def _unsaved(self) -> bool:
        """Optimiser steps were taken since the last checkpoint."""
        return self.step != self.checkpointed_step

    def _checkpoint(self) -> Checkpoint | None:
        self.checkpointed_step = self.step
        if not self.writer:
            return None
        state = {"step": self.step, "data": self.train.state_dict(), "schedule": self.schedule.state_dict(),
                 "best": self.best if math.isfinite(self.best) else None, "bad_evals": self.bad_evals,
                 "stopped_early": self.stopped_early, "seconds": self.seconds, "eval_seconds": self.eval_seconds,
                 "last_eval_step": self.last_eval_step, "window": self._window.state(),
                 "scaler": self.scaler.state_dict()}
        saved = ckpt.save_checkpoint(self.run, self.step, self.model, self.optimizer, state, self.carried,
                                     self.artifacts)
        ckpt.prune_checkpoints(self.run, self.config.keep_last)
        return saved

    def _open_run(self) -> None:
        """Create the run directory and its config.json; with ``resume``, restore the last checkpoint."""
        if self.writer:
            self.run.path.mkdir(parents=True, exist_ok=True)
            if not self.run.config.exists():
                write_json_atomic(self.run.config, {
                    "model": {"class": type(self.model).__name__, "config": self.model.config_dict()},
                    "train": self.config.to_dict(), "world_size": self.world})
        self.checkpointed_step = self.step
        if self.resume:
            self._restore()

    def _restore(self) -> None:
        if self.writer:
            ckpt.recover_copy(self.run.best.path)
        found = self.run.checkpoints() if self.run is not None else []
        if not found:
            return
        for i, candidate in enumerate(reversed(found)):
            try:
                state, self.carried = ckpt.load_checkpoint(candidate, self.model, self.optimizer, self.device)
                break
            except ValueError as e:
                if i == len(found) - 1:
                    raise
                warnings.warn(f"{e}; resuming from the checkpoint before it, {found[-2 - i].path.name}",
                              stacklevel=2)
        self.step = self.checkpointed_step = state["step"]
        self.train.load_state_dict(state["data"])
        self.schedule.load_state_dict(state["schedule"])
        self.best = math.inf if state["best"] is None else state["best"]
        self.bad_evals, self.stopped_early = state["bad_evals"], state["stopped_early"]
        # older checkpoints (rnnkit 0.1.0) lack these
        self.earlier_seconds = state.get("seconds", 0.0)
        self.eval_seconds = state.get("eval_seconds", 0.0)
        self.last_eval_step = state.get("last_eval_step", -1)
        self._window = _Window(*state.get("window", (0.0, 0.0)))
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.writer:
            self._forget_metrics_after(self.step)

    def _forget_metrics_after(self, step: int) -> None:
        """Drop the records a killed run wrote after its last checkpoint: the resumed run writes them
        again. A torn last line (a kill in the middle of a write) is dropped with a warning."""
        path = self.run.metrics
        if not path.is_file():
            return
        records = read_metrics(path)
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in records if r["step"] <= step))


def _optimizer(config: OptimizerConfig, params: list[Tensor]) -> torch.optim.Optimizer:
    if config.name == "sgd":
        return torch.optim.SGD(params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay)
    cls = torch.optim.Adam if config.name == "adam" else torch.optim.AdamW
    return cls(params, lr=config.lr, weight_decay=config.weight_decay)
