"""The training loop for any rnnkit model: it only calls ``model.loss(batch, state, teacher_forcing)``.

    trainer = Trainer(model, train_batches, TrainConfig(optimizer="sgd", lr=1.0, clip_norm=5),
                      valid=valid_batches, run_dir="runs/ptb")
    trainer.fit()                       # run_dir/metrics.jsonl, checkpoints/, best/

Truncated BPTT comes from the batches: with :class:`rnnkit.data.StreamBatches` the state a
chunk ends in is detached and carried into the next chunk. A run interrupted at any moment
and started again with ``resume=True`` continues from its last checkpoint and, on the CPU,
ends with the same weights bit for bit as a run that was never interrupted.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor
from tqdm import tqdm

from rnnkit.files import write_json_atomic, write_text_atomic
from rnnkit.models.base import Model
from rnnkit.nested import detach
from rnnkit.train import checkpoint as ckpt
from rnnkit.train import distributed
from rnnkit.train.schedules import LRSchedule, teacher_forcing_ratio

OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass
class TrainConfig:
    """How to train. Optimizer: "adam", "adamw" or "sgd" (with ``momentum``). Schedule: see
    :class:`LRSchedule`. Clipping: by global norm and/or by value (the pre-clip norm is
    logged). ``accumulate``: optimizer steps every N batches. Bounds: ``epochs``,
    ``max_steps``, ``minutes`` (whichever comes first). ``eval_every`` / ``checkpoint_every``:
    in optimizer steps (default: at the end of each epoch). ``early_stopping``: evaluations
    without improvement of the dev loss before stopping. ``teacher_forcing``: a ratio or a
    curriculum (see :func:`teacher_forcing_ratio`). ``seed``: everything random on the CPU."""

    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    decay_start: int = 0
    decay_factor: float = 0.5
    warmup_steps: int = 0
    patience: int = 1
    plateau_factor: float = 0.5
    min_lr: float = 0.0
    clip_norm: float | None = None
    clip_value: float | None = None
    accumulate: int = 1
    epochs: int | None = None
    max_steps: int | None = None
    minutes: float | None = None
    eval_every: int | None = None
    checkpoint_every: int | None = None
    keep_last: int = 2
    early_stopping: int | None = None
    teacher_forcing: float | dict | None = None
    log_every: int = 50
    seed: int = 0


def _to_device(batch: dict[str, Any], device: torch.device | str) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, Tensor) else v for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: Model, batches: Any, device: torch.device | str = "cpu", rank: int = 0,
             world: int = 1) -> dict[str, float]:
    """Mean loss over one pass of ``batches`` (weighted by each batch's count), perplexity
    for language models, accuracy when the model reports correct predictions. Stateful
    batches (token streams) carry the state from chunk to chunk. With ``world`` > 1 processes
    each takes its shard of every batch and the sums are combined."""
    was_training = model.training
    model.eval()
    stateful = getattr(batches, "stateful", False)
    total = count = correct = 0.0
    carried = None
    for batch in batches:
        if stateful and batch.get("new_stream"):
            carried = None
        out = model.loss(_to_device(distributed.shard(batch, rank, world), device), carried if stateful else None)
        carried = out.state
        total += float(out.value) * out.count
        count += out.count
        correct += out.stats.get("correct", 0.0)
    if world > 1:
        total, count, correct = distributed.all_sum([total, count, correct], device)
    model.train(was_training)
    metrics = {"loss": total / max(count, 1)}
    if getattr(model, "reports_perplexity", False):
        metrics["ppl"] = math.exp(min(metrics["loss"], 700))
    if correct:
        metrics["accuracy"] = correct / count
    return metrics


class Trainer:
    """Fits a model on resumable batches; see the module docstring.

    Args:
        model: an :class:`rnnkit.models.Model`.
        train, valid: resumable batch iterables (``StreamBatches``, ``SequenceBatches``).
        config: a :class:`TrainConfig`.
        run_dir: where config.json, metrics.jsonl, checkpoints/ and best/ go (None: nowhere).
        resume: continue from the last checkpoint in run_dir, if any.
        device: "cpu", "cuda", or a torch.device.
        evaluate: optional extra evaluation, model -> dict of numbers, after each dev pass.
        progress: show a tqdm bar (only on a terminal, only on rank 0).
        artifacts: JSON files written into every checkpoint next to the model (a vocabulary,
            the task's arguments), so that a checkpoint alone can be used.
    """

    def __init__(self, model: Model, train: Any, config: TrainConfig | None = None, valid: Any = None,
                 run_dir: str | Path | None = None, resume: bool = False, device: str | torch.device = "cpu",
                 evaluate: Callable[[Model], dict[str, float]] | None = None, progress: bool = True,
                 artifacts: dict[str, Any] | None = None) -> None:
        self.config = c = config or TrainConfig()
        if c.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {OPTIMIZERS}. Received: {c.optimizer!r}")
        if c.accumulate < 1:
            raise ValueError(f"accumulate must be >= 1. Received: {c.accumulate}")
        if c.epochs is None and c.max_steps is None and c.minutes is None:
            raise ValueError("give at least one bound: epochs, max_steps or minutes")
        self.rank, self.world = distributed.init()
        self.device = torch.device(device)
        torch.manual_seed(c.seed)
        self.model = model.to(self.device)
        distributed.broadcast_parameters(self.model)
        self.train, self.valid = train, valid
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.resume, self.extra_evaluate, self.progress = resume, evaluate, progress
        self.artifacts = artifacts or {}
        self.last_eval_step = -1
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.params = params
        if c.optimizer == "sgd":
            self.optimizer = torch.optim.SGD(params, lr=c.lr, momentum=c.momentum, weight_decay=c.weight_decay)
        else:
            cls = torch.optim.Adam if c.optimizer == "adam" else torch.optim.AdamW
            self.optimizer = cls(params, lr=c.lr, weight_decay=c.weight_decay)
        self.schedule = LRSchedule(c.schedule, c.lr, c.decay_start, c.decay_factor, c.warmup_steps, c.max_steps,
                                   c.patience, c.plateau_factor, c.min_lr)
        self.step, self.best, self.bad_evals, self.stopped_early = 0, math.inf, 0, False
        self.earlier_seconds, self.session_start = 0.0, time.time()  # training time before this session; its start
        self.carried: Any = None
        self.history: list[dict[str, Any]] = []

    # -- bookkeeping ----------------------------------------------------------------------

    @property
    def writer(self) -> bool:
        return self.rank == 0 and self.run_dir is not None

    def _log(self, record: dict[str, Any]) -> None:
        self.history.append(record)
        if self.writer:
            with open(self.run_dir / "metrics.jsonl", "a") as f:
                f.write(json.dumps(record) + "\n")

    def _checkpoint(self) -> Path | None:
        if not self.writer:
            return None
        state = {"step": self.step, "data": self.train.state_dict(), "schedule": self.schedule.state_dict(),
                 "best": self.best if math.isfinite(self.best) else None, "bad_evals": self.bad_evals,
                 "stopped_early": self.stopped_early, "seconds": self.seconds}
        path = ckpt.save_checkpoint(self.run_dir / "checkpoints", self.step, self.model, self.optimizer, state,
                                    self.carried, self.artifacts)
        ckpt.prune_checkpoints(self.run_dir / "checkpoints", self.config.keep_last)
        return path

    def _restore(self) -> None:
        found = ckpt.list_checkpoints(self.run_dir / "checkpoints") if self.run_dir is not None else []
        if not found:
            return
        state, self.carried = ckpt.load_checkpoint(found[-1], self.model, self.optimizer, self.device)
        self.step = state["step"]
        self.train.load_state_dict(state["data"])
        self.schedule.load_state_dict(state["schedule"])
        self.best = math.inf if state["best"] is None else state["best"]
        self.bad_evals, self.stopped_early = state["bad_evals"], state["stopped_early"]
        self.earlier_seconds = state.get("seconds", 0.0)  # older checkpoints lack it
        if self.writer:
            self._forget_metrics_after(self.step)

    def _forget_metrics_after(self, step: int) -> None:
        """Drop the records a killed run wrote after its last checkpoint: the resumed run writes them again."""
        path = self.run_dir / "metrics.jsonl"
        if not path.is_file():
            return
        kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
        write_text_atomic(path, "".join(line + "\n" for line in kept))

    @property
    def seconds(self) -> float:
        """Wall time spent training up to now, over every session of a resumed run."""
        return self.earlier_seconds + time.time() - self.session_start

    def _to_device(self, batch: dict[str, Any]) -> dict[str, Any]:
        return _to_device(distributed.shard(batch, self.rank, self.world), self.device)

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, batches: Any) -> dict[str, float]:
        """:func:`evaluate` of this trainer's model, each process taking its shard of every batch."""
        return evaluate(self.model, batches, self.device, self.rank, self.world)

    def _evaluate_and_track(self) -> None:
        if self.valid is None:
            return
        self.last_eval_step = self.step
        metrics = self.evaluate(self.valid)
        if self.extra_evaluate is not None:
            metrics.update(self.extra_evaluate(self.model))
        improved = metrics["loss"] < self.best
        self.schedule.evaluated(metrics["loss"])
        if improved:
            self.best, self.bad_evals = metrics["loss"], 0
        else:
            self.bad_evals += 1
        if self.config.early_stopping is not None and self.bad_evals >= self.config.early_stopping:
            self.stopped_early = True
        self._log({"split": "valid", "step": self.step, "epoch": self.train.epoch, **metrics})
        path = self._checkpoint()
        if improved and path is not None:
            ckpt.copy_as(path, self.run_dir / "best")

    # -- training -------------------------------------------------------------------------

    def _done(self, started: float) -> bool:
        c = self.config
        time_up = c.minutes is not None and time.time() - started >= c.minutes * 60
        if c.minutes is not None and self.world > 1:  # the clocks differ: all processes stop at the same step
            time_up = distributed.all_sum([float(time_up)], self.device)[0] > 0
        return (time_up or self.stopped_early or (c.max_steps is not None and self.step >= c.max_steps)
                or (c.epochs is not None and self.train.epoch >= c.epochs))

    def _optimizer_step(self) -> float:
        """Average across processes, clip, step; returns the gradient norm before clipping."""
        distributed.average_gradients(self.params, self.world)
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
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        return norm

    def fit(self) -> dict[str, Any]:
        """Train until a bound is reached; returns the step, epoch, best dev loss, whether it stopped
        early, the training wall time in seconds (over every session of a resumed run) and the history."""
        c = self.config
        if self.writer:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            if not (self.run_dir / "config.json").exists():
                write_json_atomic(self.run_dir / "config.json", {
                    "model": {"class": type(self.model).__name__, "config": self.model.config_dict()},
                    "train": dataclasses.asdict(c), "world_size": self.world})
        if self.resume:
            self._restore()
        self.model.train()
        started = last_log = self.session_start = time.time()
        units = loss_sum = loss_count = 0.0
        micro, norm, steps_since_checkpoint = 0, 0.0, 0
        bar = tqdm(total=len(self.train), initial=self.train.state_dict()["position"], unit="batch", leave=False,
                   disable=not (self.progress and self.rank == 0 and sys.stderr.isatty()))
        while not self._done(started):
            stateful = getattr(self.train, "stateful", False)
            for batch in self.train:
                if stateful and batch.get("new_stream"):
                    self.carried = None
                tf = teacher_forcing_ratio(c.teacher_forcing, self.step)
                out = self.model.loss(self._to_device(batch), self.carried if stateful else None, tf)
                (out.value / c.accumulate).backward()
                self.carried = detach(out.state) if stateful else None
                loss_sum += float(out.value.detach()) * out.count
                loss_count += out.count
                units += out.count
                bar.update(1)
                micro += 1
                if micro < c.accumulate:
                    continue
                micro = 0
                norm = self._optimizer_step()
                steps_since_checkpoint += 1
                if self.step % c.log_every == 0:
                    now = time.time()
                    record = {"split": "train", "step": self.step, "epoch": self.train.epoch,
                              "loss": loss_sum / max(loss_count, 1), "lr": self.optimizer.param_groups[0]["lr"],
                              "grad_norm": norm, "units_per_s": units / max(now - last_log, 1e-9),
                              "teacher_forcing": tf}
                    self._log(record)
                    bar.set_postfix(loss=f"{record['loss']:.3f}", lr=f"{record['lr']:.3g}",
                                    per_s=f"{record['units_per_s']:.0f}")
                    last_log, units, loss_sum, loss_count = now, 0.0, 0.0, 0.0
                if c.eval_every and self.step % c.eval_every == 0:
                    self._evaluate_and_track()
                    steps_since_checkpoint = 0
                elif c.checkpoint_every and self.step % c.checkpoint_every == 0:
                    self._checkpoint()
                    steps_since_checkpoint = 0
                if self._done(started):
                    break
            else:  # the epoch ended
                bar.reset(total=len(self.train))
                if micro:  # a partial accumulation: take the step, so checkpoints fall on step boundaries
                    norm = self._optimizer_step()
                    micro = 0
                if not c.eval_every:
                    self._evaluate_and_track()
                    steps_since_checkpoint = 0 if self.valid is not None else steps_since_checkpoint
                if not c.checkpoint_every and steps_since_checkpoint:
                    self._checkpoint()
                    steps_since_checkpoint = 0
        bar.close()
        if micro:
            norm = self._optimizer_step()
            steps_since_checkpoint += 1
        if self.valid is not None and self.last_eval_step != self.step:  # a bound stopped us mid-epoch
            self._evaluate_and_track()
        elif steps_since_checkpoint:
            self._checkpoint()
        return {"step": self.step, "epoch": self.train.epoch, "best_valid_loss": self.best,
                "stopped_early": self.stopped_early, "seconds": self.seconds, "history": self.history}
