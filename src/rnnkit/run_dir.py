"""The layout of a run directory and of a checkpoint, in one place.

``rnnkit train`` (and :class:`rnnkit.train.Trainer` with a ``run_dir``) writes::

    runs/charlm-20260101-120000/          RunDir
        config.json                       the model's and the training's configuration
        task.json                         the task and its arguments (``rnnkit train``; resume reads them)
        metrics.jsonl                     one JSON record per log line and per evaluation
        checkpoints/step-00000500/        Checkpoint (the last ``keep_last`` are kept)
        best/                             Checkpoint: a copy of the one with the best dev loss
        plots/                            learning curves and the task's pictures
        samples/                          what the task's model produced, to read or hear
        tensorboard/                      event files (rnnkit.train.loggers), when TensorBoard is installed
        results.json                      the task's final numbers, when it has them

    a Checkpoint directory:
        config.json, model.safetensors    the model (``rnnkit.load`` reads it)
        optimizer.pt, tensors.safetensors, trainer.json    what resumes training exactly
        vocab.json, task.json             the task's artifacts (vocabulary, arguments)
        lexicon.txt, lm.arpa              a recognizer's words and word language model, if it has them

The CLI, the Python API and the tasks read and write these paths only through
:class:`RunDir` and :class:`Checkpoint`.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RunDir", "Checkpoint", "read_metrics"]

STEP_PREFIX = "step-"


@dataclass(frozen=True)
class Checkpoint:
    """One checkpoint directory (see the module docstring)."""

    path: Path

    #: file names of the model (written by Model.save) and of the training state
    MODEL_CONFIG = "config.json"
    WEIGHTS = "model.safetensors"
    OPTIMIZER = "optimizer.pt"
    TENSORS = "tensors.safetensors"
    TRAINER = "trainer.json"
    #: artifacts of the tasks
    VOCAB = "vocab.json"
    TASK = "task.json"
    LEXICON = "lexicon.txt"
    LM = "lm.arpa"

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @property
    def vocab(self) -> Path:
        return self.path / self.VOCAB

    @property
    def task(self) -> Path:
        return self.path / self.TASK

    def step(self) -> int | None:
        """The optimiser step the checkpoint was taken at (from trainer.json), if it says."""
        try:
            step = json.loads((self.path / self.TRAINER).read_text()).get("step")
        except (OSError, ValueError, AttributeError):
            return None
        return step if isinstance(step, int) else None

    def exists(self) -> bool:
        """A complete model is here (weights written last)."""
        return (self.path / self.WEIGHTS).is_file()

    def run(self) -> RunDir | None:
        """The run directory this checkpoint belongs to (its best/ or one of its checkpoints/), if any."""
        for candidate in (self.path.parent, self.path.parent.parent):
            run = RunDir(candidate)
            if run.is_run() and self.path in (run.best.path, run.checkpoint_root / self.path.name):
                return run
        return None

    @staticmethod
    def step_name(step: int) -> str:
        return f"{STEP_PREFIX}{step:08d}"

    @classmethod
    def resolve(cls, path: str | Path) -> Checkpoint:
        """A checkpoint from a checkpoint directory, or from a run directory (its best, else its last)."""
        path = Path(path)
        if Checkpoint(path).exists():
            return Checkpoint(path)
        run = RunDir(path)
        if run.best.exists():
            return run.best
        found = run.checkpoints()
        if found:
            return found[-1]
        raise FileNotFoundError(f"{path}: no checkpoint here (expected model.safetensors, best/ or checkpoints/)")


@dataclass(frozen=True)
class RunDir:
    """One run directory (see the module docstring)."""

    path: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", Path(self.path))

    @classmethod
    def new(cls, runs: str | Path, task: str) -> RunDir:
        """A fresh ``runs/<task>-<timestamp>`` (not created yet); never an existing one."""
        path = Path(runs) / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
        while path.exists():  # two runs started in the same second
            path = path.with_name(path.name + "-1")
        return cls(path)

    @property
    def config(self) -> Path:
        return self.path / "config.json"

    @property
    def task(self) -> Path:
        """task.json: the task and the arguments the run was started with (``rnnkit train``)."""
        return self.path / "task.json"

    @property
    def metrics(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def results(self) -> Path:
        return self.path / "results.json"

    @property
    def plots(self) -> Path:
        return self.path / "plots"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoint_root(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best(self) -> Checkpoint:
        return Checkpoint(self.path / "best")

    def is_run(self) -> bool:
        """A run was started here (its config.json exists)."""
        return self.config.is_file()

    def checkpoint(self, step: int) -> Checkpoint:
        return Checkpoint(self.checkpoint_root / Checkpoint.step_name(step))

    def checkpoints(self) -> list[Checkpoint]:
        """Complete checkpoints, oldest first (a ``.tmp`` one being written is not)."""
        root = self.checkpoint_root
        if not root.is_dir():
            return []
        return [Checkpoint(p) for p in sorted(root.iterdir())
                if p.is_dir() and p.name.startswith(STEP_PREFIX) and not p.name.endswith(".tmp")]


def read_metrics(path: Path) -> list[dict[str, Any]]:
    """The records of a metrics.jsonl. A torn last line (a kill in the middle of a write) is
    dropped with a warning; a damaged line elsewhere is an error naming the file and the line."""
    lines = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict) or "step" not in record or "split" not in record:
                raise ValueError("not a JSON object with a step and a split")
        except ValueError as e:
            if number == len(lines):
                warnings.warn(f"{path}: dropped a torn last line ({line[:40]!r})", stacklevel=2)
                break
            raise ValueError(f"{path}, line {number}: not a metrics record ({e})") from None
        records.append(record)
    return records
