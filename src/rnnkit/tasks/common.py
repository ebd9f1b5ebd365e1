"""What every task's command line shares: run directories, bounds, device, checkpoints."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import torch


def add_common_arguments(p: argparse.ArgumentParser, minutes: float | None = None, epochs: int | None = None) -> None:
    g = p.add_argument_group("run")
    g.add_argument("--runs", default="runs", help="folder of run directories")
    g.add_argument("--resume", metavar="RUN_DIR", default=None, help="continue the run in RUN_DIR from its last checkpoint")
    g.add_argument("--minutes", type=float, default=minutes, help="stop after this many minutes")
    g.add_argument("--epochs", type=int, default=epochs, help="stop after this many epochs")
    g.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"), help="where to train")
    g.add_argument("--seed", type=int, default=0, help="seed for everything random")
    g.add_argument("--data-dir", default=None, help="data root (else $RNNKIT_DATA, ../shared/data, ~/.cache/rnnkit)")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")


def device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda: no CUDA device is available here; use --device cpu")
    return torch.device(name)


def run_dir(task: str, args: argparse.Namespace) -> Path:
    """The run's directory: --resume's, or a new runs/<task>-<timestamp>."""
    if args.resume:
        path = Path(args.resume)
        if not (path / "config.json").is_file():
            raise FileNotFoundError(f"--resume {path}: not a run directory (no config.json)")
        return path
    path = Path(args.runs) / f"{task}-{time.strftime('%Y%m%d-%H%M%S')}"
    while path.exists():  # two runs started in the same second
        path = path.with_name(path.name + "-1")
    return path


def task_artifact(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task and its arguments, saved in every checkpoint (for evaluate and generate)."""
    return {"task": task, "args": {k: v for k, v in vars(args).items() if k not in ("func", "resume")}}


def resolve_checkpoint(path: str | Path) -> Path:
    """A checkpoint directory from a checkpoint, or a run directory (its best, else its last)."""
    path = Path(path)
    if (path / "model.safetensors").is_file():
        return path
    if (path / "best" / "model.safetensors").is_file():
        return path / "best"
    found = sorted((path / "checkpoints").glob("step-*[0-9]")) if (path / "checkpoints").is_dir() else []
    if found:
        return found[-1]
    raise FileNotFoundError(f"{path}: no checkpoint here (expected model.safetensors, best/ or checkpoints/)")


def read_task(checkpoint: Path) -> dict[str, Any]:
    path = checkpoint / "task.json"
    if not path.is_file():
        raise FileNotFoundError(f"{checkpoint}: no task.json; this checkpoint was not written by `rnnkit train`")
    return json.loads(path.read_text())


def stream_nll(model: torch.nn.Module, ids: torch.Tensor, dev: torch.device | str = "cpu", bptt: int = 100) -> float:
    """Mean negative log-likelihood (nats per token) of ``ids`` read by a language model as one
    stream: batch 1, the state carried from the first token to the last."""
    from rnnkit.data import StreamBatches
    from rnnkit.train.trainer import evaluate

    return evaluate(model, StreamBatches(ids, 1, bptt), dev)["loss"]
