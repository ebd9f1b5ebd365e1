"""What every task's command line shares: run directories, bounds, device, resume, checkpoints, text."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.arguments import device_name, positive_float, positive_int
from rnnkit.files import read_json, read_utf8, write_json_atomic
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.precision import PRECISIONS
from rnnkit.train.loggers import LOGGERS

#: options a resumed run may take from the new command line; every other one comes from the run
RESUMABLE = frozenset({"resume", "allow_changes", "config", "print_config", "logger", "runs", "minutes", "epochs",
                       "max_steps", "device", "data_dir", "no_progress", "samples", "length", "temperature", "top_k",
                       "top_p", "greedy", "func", "verb", "task"})
#: options added after rnnkit 0.1, with the value that continues an older run as it was started
#: (no step bound, every dev batch); other new options take their defaults
ADDED_AFTER_0_1 = {"max_steps": None, "eval_batches": None}
#: options renamed since, by task: {old name: new name}, so that older runs still read
RENAMED = {"wordlm": {"config": "preset"}}


def add_common_arguments(p: argparse.ArgumentParser, minutes: float | None = None, epochs: int | None = None,
                         max_steps: int | None = None) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--runs", default="runs", help="folder of run directories")
    g.add_argument("--resume", metavar="RUN_DIR", default=None,
                   help="continue the run in RUN_DIR from its last checkpoint, with its saved settings")
    g.add_argument("--allow-changes", action="store_true",
                   help="with --resume: take the new values of the options given (e.g. a lower --lr), on purpose; "
                        "the run's task.json records them")
    g.add_argument("--max-steps", type=positive_int, default=max_steps, help="stop after this many optimiser steps")
    g.add_argument("--epochs", type=positive_int, default=epochs, help="stop after this many epochs")
    g.add_argument("--minutes", type=positive_float, default=minutes,
                   help="stop after this many minutes of training and evaluation (over all sessions of the run)")
    g.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda, cuda:N or mps")
    g.add_argument("--precision", choices=PRECISIONS, default="32",
                   help="bf16: autocast to bfloat16 (CPU or CUDA); 16-mixed: float16 with loss scaling (CUDA); "
                        "the recurrence and CTC stay in float32 (rnnkit.precision)")
    g.add_argument("--seed", type=int, default=0, help="seed for everything random")
    g.add_argument("--data-dir", default=None, help="data root (else $RNNKIT_DATA, ../shared/data, ~/.cache/rnnkit)")
    g.add_argument("--no-progress", action="store_true", help="no progress bars")
    g.add_argument("--logger", choices=LOGGERS, default="auto",
                   help="where the metrics, pictures and samples also go: auto is TensorBoard event files in "
                        "RUN/tensorboard/ when tensorboard is installed (rnnkit.train.loggers)")
    g.add_argument("--config", metavar="FILE", default=None,
                   help="settings from a JSON or YAML file, or a run directory (its task.json); key=value "
                        "arguments and --options written out override them (rnnkit.configuration)")
    g.add_argument("--print-config", action="store_true",
                   help="print the settings this command would train with, as JSON, and train nothing")


def settle_defaults(args: argparse.Namespace, defaults: dict[str, Any]) -> argparse.Namespace:
    """Options left unset (None) take ``defaults``' values — the defaults that depend on another
    option (a task's model or subset) — so that the run records the values it used."""
    for key, value in defaults.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    return args


def device(name: str) -> torch.device:
    """The torch device of a --device value (checked by :func:`rnnkit.arguments.device_name`);
    under torchrun each process's own (:func:`rnnkit.train.distributed.local_device`)."""
    from rnnkit.train.distributed import local_device

    if name == "auto" and not torch.cuda.is_available():
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    return local_device(device_name(name))


def progress(args: argparse.Namespace) -> bool | None:
    """--no-progress, else bars on a terminal or in a notebook."""
    return False if getattr(args, "no_progress", False) else None


def task_artifact(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task and its arguments, saved with the run and in every checkpoint (for evaluate, generate, resume)."""
    return {"task": task, "args": {k: v for k, v in vars(args).items() if k not in ("func", "resume")}}


def run_dir(task: str, args: argparse.Namespace) -> RunDir:
    """The run's directory: --resume's, or a new runs/<task>-<timestamp> holding task.json."""
    from rnnkit.train.distributed import is_main_process

    if args.resume:
        run = RunDir(Path(args.resume))
        if not run.is_run():
            raise FileNotFoundError(f"--resume {run.path}: not a run directory (no config.json)")
        return run
    run = RunDir.new(args.runs, task)
    if is_main_process():
        try:
            run.path.mkdir(parents=True)
        except OSError as e:
            raise ValueError(f"--runs {args.runs}: cannot create the run directory {run.path} ({e.strerror})") from None
        write_json_atomic(run.task, task_artifact(task, args))
    return run


def task_trainer(name: str, model: torch.nn.Module, train: Any, valid: Any, run: RunDir, args: argparse.Namespace,
                 artifacts: dict[str, Any] | None = None, stopping: Any = None, **settings: Any) -> Any:
    """The Trainer of a task's run: ``settings`` (optimizer, schedule, clip_norm, log_every, ...)
    plus what every task takes from its command line — the bounds (--epochs, --max-steps,
    --minutes, unless ``stopping`` is given), --seed, --device, --resume, progress bars — and
    task.json among the checkpoint artifacts."""
    from rnnkit.train import StoppingConfig, TrainConfig, Trainer

    stopping = stopping or StoppingConfig(epochs=args.epochs, max_steps=args.max_steps, minutes=args.minutes)
    config = TrainConfig(stopping=stopping, seed=args.seed, precision=args.precision, **settings)
    return Trainer(model, train, config, valid=valid, run_dir=run,
                   resume=bool(args.resume), device=device(args.device), progress=progress(args), logger=args.logger,
                   artifacts={Checkpoint.TASK: task_artifact(name, args), **(artifacts or {})})


def fit_and_score(trainer: Any, run: RunDir, score: Callable[[Checkpoint], dict[str, Any]]
                  ) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """Train; then, on the main process and unless the run had already reached its bound, score
    the best checkpoint on dev (``score``) and write results.json: {"step", "train_minutes",
    "valid"}. Returns (the trainer's result, the scores), or None when there is nothing to report."""
    from rnnkit.train.distributed import is_main_process

    result = trainer.fit()
    if not is_main_process() or result["already_finished"]:
        return None
    scores = score(Checkpoint.resolve(run.path))
    write_json_atomic(run.results, {"step": result["step"], "train_minutes": result["seconds"] / 60, "valid": scores})
    return result, scores


def read_task(path: Path) -> dict[str, Any]:
    """A task.json: {"task": name, "args": {...}}, checked (:func:`checked_task`)."""
    return checked_task(read_json(path, "the task and its arguments"), path)


def checked_task(task: dict[str, Any], path: Path) -> dict[str, Any]:
    """The contents of the task.json at ``path``, checked, with options renamed since (:data:`RENAMED`)
    under their new names."""
    if not isinstance(task.get("task"), str) or not isinstance(task.get("args"), dict):
        raise ValueError(f"{path}: expected {{\"task\": NAME, \"args\": {{...}}}}")
    for old, new in RENAMED.get(task["task"], {}).items():
        if old in task["args"] and new not in task["args"]:
            task["args"][new] = task["args"].pop(old)
    return task


def run_task(run: RunDir) -> dict[str, Any]:
    """The task.json of a run: the run's own, else (runs of rnnkit 0.1) its last checkpoint's."""
    if run.task.is_file():
        return read_task(run.task)
    found = [c for c in run.checkpoints() if c.task.is_file()]
    if not found:
        raise FileNotFoundError(f"{run.path}: no task.json; this run was not made by `rnnkit train`")
    return read_task(found[-1].task)


def resume_arguments(task: str, args: argparse.Namespace, given: set[str]) -> argparse.Namespace:
    """The arguments a resumed run continues with: the ones it was started with, plus the options
    of :data:`RESUMABLE` given on this command line. Any other option given with a different
    value is an error naming both values."""
    run = RunDir(Path(args.resume))
    if not run.is_run():
        raise FileNotFoundError(f"--resume {run.path}: not a run directory (no config.json)")
    saved = run_task(run)
    if saved["task"] != task:
        raise ValueError(f"--resume {run.path}: that is a {saved['task']} run, not {task}")
    conflicts = [(name, saved["args"][name], getattr(args, name)) for name in sorted(given - RESUMABLE)
                 if name in saved["args"] and saved["args"][name] != getattr(args, name)]
    listed = "; ".join(f"--{n.replace('_', '-')} {new} (the run has {old})" for n, old, new in conflicts)
    if conflicts and not args.allow_changes:
        raise ValueError(f"--resume {run.path} continues with the run's own settings, but this command changes "
                         f"them: {listed}. Drop these options, add --allow-changes to change them on purpose, "
                         "or start a new run")
    keep = given & RESUMABLE if not args.allow_changes else given
    merged = {**vars(args), **{k: v for k, v in ADDED_AFTER_0_1.items() if k not in saved["args"]},
              **saved["args"], **{k: getattr(args, k) for k in keep}}
    merged["resume"] = args.resume
    merged["allow_changes"] = False
    resumed = argparse.Namespace(**merged)
    if conflicts:
        import warnings

        warnings.warn(f"{run.path}: continuing with changed settings: {listed}", stacklevel=2)
        write_json_atomic(run.task, task_artifact(task, resumed))
    return resumed


def checkpoint_task(checkpoint: Checkpoint) -> dict[str, Any] | None:
    """The task.json a checkpoint written by ``rnnkit train`` carries (None for a Trainer-made one)."""
    return read_task(checkpoint.task) if checkpoint.task.is_file() else None


def stream_sample(checkpoint: str | Path | Checkpoint, prompt: str, length: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int = 0, greedy: bool = False,
                  dev: torch.device | str = "cpu") -> str:
    """Print the prompt, then each piece of text a language-model checkpoint (or run) generates, as
    soon as it exists; returns the whole text."""
    ckpt = Checkpoint.resolve(checkpoint.path if isinstance(checkpoint, Checkpoint) else checkpoint)
    model = rnnkit.load(ckpt.path, map_location=dev).eval()
    if not hasattr(model, "generate_text"):
        raise ValueError(f"{ckpt.path} holds a {type(model).__name__}, which does not generate text")
    if model.vocab is None:
        raise FileNotFoundError(f"{ckpt.path}: no vocab.json; save the model with model.vocab set")
    sys.stdout.write(prompt)
    sys.stdout.flush()

    def emit(piece: str) -> None:
        sys.stdout.write(piece)
        sys.stdout.flush()

    return model.generate_text(prompt, length, on_text=emit, greedy=greedy, temperature=temperature, top_k=top_k,
                               top_p=top_p, generator=torch.Generator().manual_seed(seed))


def stream_nll(model: torch.nn.Module, ids: torch.Tensor, dev: torch.device | str = "cpu", bptt: int = 100,
               streams: int = 1, show_progress: bool | None = None) -> float:
    """Mean negative log-likelihood (nats per token) of ``ids`` read by a language model as
    ``streams`` parallel streams (1: the state carried from the first token to the last)."""
    from rnnkit.data import StreamBatches
    from rnnkit.train.trainer import evaluate

    return evaluate(model.to(dev), StreamBatches(ids, streams, bptt), dev, progress=show_progress)["loss"]


def read_text(path: Path, option: str) -> str:
    """A UTF-8 text file named by a command-line option (see :func:`rnnkit.files.read_utf8`)."""
    if not path.is_file():
        raise FileNotFoundError(f"{option} {path}: no such file")
    return read_utf8(path, f"{option} {path}")


def evaluate_text(checkpoint: Checkpoint, path: Path, dev: torch.device, show_progress: bool | None) -> dict[str, Any]:
    """A language model's loss on a text file read as one stream, with its saved vocabulary."""
    import math

    model = rnnkit.load(checkpoint.path, map_location=dev)
    if model.vocab is None or not hasattr(model, "generate_text"):
        raise ValueError(f"{checkpoint.path}: --text needs a language model with a vocabulary (vocab.json)")
    units = model.vocab.tokenize(read_text(path, "--text"))
    if len(units) < 2:
        raise ValueError(f"--text {path}: needs at least two tokens. Received: {len(units)}")
    nll = stream_nll(model, model.vocab.encode(units), dev, show_progress=show_progress)
    return {"tokens": len(units), "unknown_tokens": sum(u not in model.vocab.index for u in units), "loss": nll,
            "ppl": math.exp(nll)}
