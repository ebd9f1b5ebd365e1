"""What a task gives the command line: the contract between ``rnnkit train/evaluate`` and a recipe.

A task module builds one :class:`Task` and registers it; the CLI reads :data:`TASKS` and
names no task itself. A task is

    add_arguments(parser)                 its options (the run options come from tasks.common)
    train(args) -> RunDir                 the whole recipe: data, model, Trainer, final numbers
    splits                                the splits evaluate accepts (the first is the default)
    evaluate(checkpoint, split, args)     a checkpoint's numbers on a split (a dict); ``args``
                                          are the run's, with the evaluate command's --device
                                          and --data-dir
    after_train(run, args)                optional: what to show once training is done
                                          (samples, pictures), on the main process only
    evaluate_file(checkpoint, path, args) optional: a checkpoint's numbers on a file the user
                                          gives (``rnnkit evaluate RUN --conllu FILE``)
    dependent_defaults(args) -> dict      optional: the defaults that depend on another option
                                          (a model's sizes), for the options left unset (None);
                                          the command line settles them before train and
                                          --print-config (rnnkit.cli._train_arguments)
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rnnkit.run_dir import Checkpoint, RunDir

__all__ = ["Task", "TASKS", "register"]


@dataclass(frozen=True)
class Task:
    """One ready task (see the module docstring). ``description`` is the ``--help`` text."""

    name: str
    help: str
    description: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    train: Callable[[argparse.Namespace], RunDir]
    evaluate: Callable[[Checkpoint, str, argparse.Namespace], dict[str, Any]] | None = None
    splits: tuple[str, ...] = ("valid",)
    after_train: Callable[[RunDir, argparse.Namespace], None] | None = None
    evaluate_file: Callable[[Checkpoint, Path, argparse.Namespace], dict[str, Any]] | None = None
    dependent_defaults: Callable[[argparse.Namespace], dict[str, Any]] | None = None
    #: its evaluate also reads ``args.ensemble`` (checkpoints of other runs of the task, whose
    #: outputs it combines with the run's: sentiment averages class probabilities, digits pools
    #: n-best lists ranked by the runs' mean CTC log-probability): ``rnnkit evaluate RUN --with RUN2 ...``
    ensembles: bool = False
    #: its evaluate also reads ``args.normalise`` ("utterance" or "speaker": features normalised
    #: over each speaker's utterances): ``rnnkit evaluate RUN --normalise speaker``
    normalises: bool = False


#: every registered task, by name, in registration order
TASKS: dict[str, Task] = {}


def register(task: Task) -> Task:
    """Add ``task`` to :data:`TASKS` (a name may be registered once)."""
    if task.name in TASKS:
        raise ValueError(f"a task named {task.name!r} is already registered")
    TASKS[task.name] = task
    return task
