"""Run logging beside metrics.jsonl: TensorBoard event files, or Weights & Biases.

metrics.jsonl stays the run's own record (``rnnkit plot`` and resume read it); a logger mirrors
it for the tools people already watch runs with, plus what a task leaves for a person to look
at (:data:`OUTPUTS`)::

    scalars   train/loss, train/lr, train/grad_norm, ..., valid/loss, valid/accuracy, ...
    images    plots/*.png (learning curves, alignment pictures, attention maps, weightings)
    text      samples/*.txt (generated text, translations), results.json
    audio     samples/*.wav (the speech task's utterance, next to its transcript)

``--logger auto`` (the default) writes TensorBoard event files to RUN/tensorboard/ when the
``tensorboard`` package is installed (``pip install 'rnnkit[tensorboard]'``) and nothing
otherwise; ``tensorboard`` asks for it (an error names the extra when it is missing), ``wandb``
logs to Weights & Biases (its own settings: ``WANDB_PROJECT``, ``WANDB_MODE=offline``, ...),
``none`` writes nothing. Only the main process logs. A resumed run first hides what the
killed session logged after its last checkpoint (TensorBoard's ``purge_step``), so the
curves, like metrics.jsonl, have each step once.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from rnnkit.run_dir import RunDir, read_metrics

__all__ = ["LOGGERS", "RunLogger", "TensorBoardLogger", "WandbLogger", "open_logger", "log_outputs"]

LOGGERS = ("auto", "tensorboard", "wandb", "none")
#: where a task leaves what a person looks at, and what each becomes in a logger
OUTPUTS = {"plots/*.png": "image", "samples/*.txt": "text", "samples/*.wav": "audio", "results.json": "text"}


class RunLogger:
    """Where a run's numbers and outputs go besides its own files; every method is a no-op here."""

    def scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        """``values`` at ``step`` of ``split`` ("train", "valid")."""

    def text(self, tag: str, text: str, step: int) -> None:
        """A piece of text (shown as Markdown)."""

    def image(self, tag: str, path: Path, step: int) -> None:
        """A PNG file."""

    def audio(self, tag: str, path: Path, step: int) -> None:
        """A WAV file."""

    def close(self) -> None:
        """Flush everything to disk."""


class TensorBoardLogger(RunLogger):
    """Event files in ``folder`` (torch.utils.tensorboard); ``purge_step``: hide the events a
    killed session wrote at or after this step."""

    def __init__(self, folder: Path, purge_step: int | None = None) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(folder), purge_step=purge_step)

    def scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        for name, value in values.items():
            self.writer.add_scalar(f"{split}/{name}", value, step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.writer.add_text(tag, text, step)

    def image(self, tag: str, path: Path, step: int) -> None:
        import matplotlib.image

        pixels = matplotlib.image.imread(path)  # H x W x (3|4), floats in [0, 1]
        self.writer.add_image(tag, pixels[..., :3], step, dataformats="HWC")

    def audio(self, tag: str, path: Path, step: int) -> None:
        from rnnkit.audio import read_audio

        wave, rate = read_audio(path)
        self.writer.add_audio(tag, np.clip(wave, -1, 1)[None], step, sample_rate=rate)

    def close(self) -> None:
        self.writer.close()


class WandbLogger(RunLogger):
    """One Weights & Biases run per rnnkit run (its id is the run directory's name, so a
    resumed run continues it); settings from wandb's own environment variables."""

    def __init__(self, run: RunDir, config: dict[str, Any] | None = None) -> None:
        import wandb

        self.wandb = wandb
        self.run = wandb.init(id=run.path.name, name=run.path.name, dir=str(run.path), resume="allow",
                              config=config or {})

    def scalars(self, split: str, step: int, values: dict[str, float]) -> None:
        self.run.log({f"{split}/{name}": value for name, value in values.items()}, step=step)

    def text(self, tag: str, text: str, step: int) -> None:
        self.run.log({tag: self.wandb.Html(f"<pre>{text}</pre>")}, step=step)

    def image(self, tag: str, path: Path, step: int) -> None:
        self.run.log({tag: self.wandb.Image(str(path))}, step=step)

    def audio(self, tag: str, path: Path, step: int) -> None:
        self.run.log({tag: self.wandb.Audio(str(path))}, step=step)

    def close(self) -> None:
        self.run.finish()


def _installed(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def open_logger(kind: str | RunLogger | None, run: RunDir, purge_step: int | None = None) -> RunLogger:
    """The logger ``kind`` (one of :data:`LOGGERS`, or a RunLogger of your own, or None: none)
    for ``run``; "tensorboard" or "wandb" without their package is an error naming the extra."""
    if isinstance(kind, RunLogger):
        return kind
    if kind is None or kind == "none" or (kind == "auto" and not _installed("tensorboard")):
        return RunLogger()
    if kind in ("auto", "tensorboard"):
        if not _installed("tensorboard"):
            raise ImportError("--logger tensorboard needs the tensorboard package: pip install 'rnnkit[tensorboard]'")
        return TensorBoardLogger(run.path / "tensorboard", purge_step)
    if kind == "wandb":
        if not _installed("wandb"):
            raise ImportError("--logger wandb needs the wandb package: pip install wandb")
        config = json.loads(run.task.read_text()) if run.task.is_file() else None
        return WandbLogger(run, config)
    raise ValueError(f"logger must be one of {LOGGERS} or a RunLogger. Received: {kind!r}")


def numbers(record: dict[str, Any]) -> dict[str, float]:
    """The finite numbers of a metrics record, without its step and epoch counters."""
    return {k: float(v) for k, v in record.items()
            if k not in ("step", "epoch") and isinstance(v, (int, float)) and not isinstance(v, bool)
            and math.isfinite(v)}


def log_outputs(kind: str | RunLogger | None, run: RunDir) -> int:
    """Mirror what the task left in ``run`` (:data:`OUTPUTS`) into the logger ``kind`` (see
    :func:`open_logger`), at the run's last step; returns how many files were logged."""
    step = max((r["step"] for r in read_metrics(run.metrics)), default=0) if run.metrics.is_file() else 0
    logger = open_logger(kind, run)
    try:
        return _log_files(logger, run, step)
    finally:
        logger.close()


def _log_files(logger: RunLogger, run: RunDir, step: int) -> int:
    count = 0
    for pattern, kind in OUTPUTS.items():
        for path in sorted(run.path.glob(pattern)):
            tag = str(path.relative_to(run.path).with_suffix(""))
            if kind == "image":
                logger.image(tag, path, step)
            elif kind == "audio":
                logger.audio(tag, path, step)
            else:
                text = path.read_text(encoding="utf-8", errors="replace")
                logger.text(tag, f"```\n{text}\n```", step)  # Markdown: kept as it is written
            count += 1
    return count
