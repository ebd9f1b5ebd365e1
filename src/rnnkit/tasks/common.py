"""What every task's command line shares: run directories, bounds, device, checkpoints."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import torch

import rnnkit
from rnnkit.run_dir import Checkpoint, RunDir


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


def run_dir(task: str, args: argparse.Namespace) -> RunDir:
    """The run's directory: --resume's, or a new runs/<task>-<timestamp>."""
    if args.resume:
        run = RunDir(Path(args.resume))
        if not run.is_run():
            raise FileNotFoundError(f"--resume {run.path}: not a run directory (no config.json)")
        return run
    return RunDir.new(args.runs, task)


def task_artifact(task: str, args: argparse.Namespace) -> dict[str, Any]:
    """The task and its arguments, saved in every checkpoint (for evaluate and generate)."""
    return {"task": task, "args": {k: v for k, v in vars(args).items() if k not in ("func", "resume")}}


def read_task(checkpoint: Checkpoint) -> dict[str, Any]:
    """The task.json a checkpoint written by ``rnnkit train`` carries."""
    if not checkpoint.task.is_file():
        raise FileNotFoundError(f"{checkpoint.path}: no task.json; this checkpoint was not written by `rnnkit train`")
    return json.loads(checkpoint.task.read_text())


def stream_sample(checkpoint: str | Path | Checkpoint, prompt: str, length: int, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None, seed: int = 0, greedy: bool = False) -> None:
    """Print the prompt, then each token a language-model checkpoint (or run) generates, as soon as it exists."""
    from rnnkit.data import Vocabulary

    ckpt = Checkpoint.resolve(checkpoint.path if isinstance(checkpoint, Checkpoint) else checkpoint)
    if not ckpt.vocab.is_file():
        raise FileNotFoundError(f"{ckpt.path}: no vocab.json; generate needs a language-model checkpoint from rnnkit train")
    vocab = Vocabulary.load(ckpt.vocab)
    model = rnnkit.load(ckpt.path).eval()
    if not hasattr(model, "generate"):
        raise ValueError(f"{ckpt.path} holds a {type(model).__name__}, which does not generate text")
    units = vocab.split(prompt) or [vocab.eos or vocab.tokens[-1]]
    ids = vocab.encode(units)[None]
    sys.stdout.write(prompt)
    sys.stdout.flush()

    def emit(tokens: torch.Tensor, keep: torch.Tensor) -> None:
        if bool(keep[0]):
            sys.stdout.write(vocab.join([int(tokens[0])]))
            sys.stdout.flush()

    model.generate(ids, length, greedy=greedy, temperature=temperature, top_k=top_k, top_p=top_p,
                   generator=torch.Generator().manual_seed(seed), on_token=emit)


def stream_nll(model: torch.nn.Module, ids: torch.Tensor, dev: torch.device | str = "cpu", bptt: int = 100) -> float:
    """Mean negative log-likelihood (nats per token) of ``ids`` read by a language model as one
    stream: batch 1, the state carried from the first token to the last."""
    from rnnkit.data import StreamBatches
    from rnnkit.train.trainer import evaluate

    return evaluate(model, StreamBatches(ids, 1, bptt), dev)["loss"]
