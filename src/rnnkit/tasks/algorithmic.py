"""copy and recall: the algorithmic tasks of Graves et al. (2014), where a neural Turing machine
learns what an LSTM cannot: an algorithm that works on inputs longer than any it was trained on.

Both read random bit vectors and answer in their last steps, with no input during the answer
(:mod:`rnnkit.models.bits`); every training batch is drawn afresh, one size per batch. The
test draws 64 problems of each test size from their own generator (``rnnkit evaluate RUN
--split test``: the mean bits wrong per problem and the share answered without an error);
``plots/weightings.png`` shows the machine's read and write weightings on one test problem.
``--model lstm`` trains the baseline: Graves et al.'s, three LSTM layers of 256, to be
trained for the same ``--minutes``.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

import rnnkit
from rnnkit.arguments import positive_float, positive_int
from rnnkit.data import DrawnBatches, SequenceBatches
from rnnkit.files import write_json_atomic
from rnnkit.models.bits import RecurrentBits, RecurrentBitsConfig
from rnnkit.models.ntm import CONTROLLERS, NeuralTuringMachine, NeuralTuringMachineConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, fit_and_score, run_dir, task_trainer
from rnnkit.train import OptimizerConfig, ScheduleConfig

TEST_PROBLEMS = 64  # per test size
VALID_BATCHES = 16


def copy_problems(rng: np.random.Generator, count: int, length: int, bits: int) -> dict[str, torch.Tensor]:
    """``count`` copy problems of ``length`` vectors: L vectors, a delimiter (the extra input
    channel), then the L vectors to be written back. input (count, 2L+1, bits+1), target (count, L, bits)."""
    data = rng.integers(0, 2, (count, length, bits)).astype(np.float32)
    x = np.zeros((count, 2 * length + 1, bits + 1), np.float32)
    x[:, :length, :bits] = data
    x[:, length, bits] = 1.0
    return {"input": torch.from_numpy(x), "target": torch.from_numpy(data)}


def recall_problems(rng: np.random.Generator, count: int, items: int, bits: int) -> dict[str, torch.Tensor]:
    """``count`` associative-recall problems of ``items`` items of 3 vectors each: every item
    follows an item delimiter (extra channel 1); then the query — a copy of one item but the
    last, between two query delimiters (extra channel 2) —; the answer is the item that came
    after it. input (count, 4 items + 8, bits+2), target (count, 3, bits)."""
    data = rng.integers(0, 2, (count, items, 3, bits)).astype(np.float32)
    x = np.zeros((count, 4 * items + 8, bits + 2), np.float32)
    for k in range(items):
        x[:, 4 * k, bits] = 1.0
        x[:, 4 * k + 1:4 * k + 4, :bits] = data[:, k]
    query = rng.integers(0, items - 1, count)
    rows = np.arange(count)
    x[:, 4 * items, bits + 1] = x[:, 4 * items + 4, bits + 1] = 1.0
    x[:, 4 * items + 1:4 * items + 4, :bits] = data[rows, query]
    return {"input": torch.from_numpy(x), "target": torch.from_numpy(data[rows, query + 1])}


@dataclass(frozen=True)
class Problem:
    """An algorithmic task: how its problems are made and its defaults (chosen on held-out
    problems of the training sizes). ``size_option`` names the largest training size
    (``--max-length``); the test sizes go beyond it; ``channels``: the delimiter inputs."""

    name: str
    help: str
    description: str
    make: Callable[[np.random.Generator, int, int, int], dict[str, torch.Tensor]]
    size_option: str
    size_name: str
    min_size: int
    max_size: int
    test_sizes: tuple[int, ...]
    picture_size: int
    bits: int
    channels: int
    controller: str
    lr: float

    @property
    def size_dest(self) -> str:
        return self.size_option.lstrip("-").replace("-", "_")


COPY = Problem(
    "copy", "the copy task: a neural Turing machine copies sequences longer than it was trained on, an LSTM does "
    "not", """copy: L random 8-bit vectors, a delimiter, then write the L vectors back (Graves et al. 2014).

Trained on lengths 1 to --max-length (20); tested at 20, 40, 80 and 120. The machine that
learnt to write its input into consecutive memory rows and read them back in order copies
sequences longer than any it has seen; a recurrent net that stores the sequence in its state
does not. The machine's controller is feed-forward by default: it cannot hold the sequence
in its own state, so it must use the memory.
""", copy_problems, "--max-length", "length", 1, 20, (20, 40, 80, 120), 40, 8, 1, "feedforward", 3e-4)

RECALL = Problem(
    "recall", "associative recall: after a list of items and a query item, give the item that followed it",
    """recall: associative recall (Graves et al. 2014).

A list of 2 to --max-items (6) items of three 6-bit vectors, each after an item delimiter;
then a query, one of the items, between query delimiters; the net must give the item that
followed the query in the list. Tested with 6, 9, 12 and 15 items: the machine writes each
item where it can find it by content and reads the next row; the LSTM must hold every item in
its state.
""", recall_problems, "--max-items", "items", 2, 6, (6, 9, 12, 15), 12, 6, 2, "lstm", 1e-3)


def add_arguments(problem: Problem, p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("ntm", "lstm"), default="ntm", help="the machine, or the LSTM baseline")
    p.add_argument("--bits", type=positive_int, default=problem.bits, help="bits per vector")
    p.add_argument(problem.size_option, type=positive_int, default=problem.max_size,
                   help=f"the most {problem.size_name} in training (at least {problem.min_size})")
    p.add_argument("--controller", choices=CONTROLLERS, default=problem.controller, help="the machine's controller")
    p.add_argument("--controller-size", type=positive_int, default=100, help="controller units")
    p.add_argument("--memory-size", type=positive_int, default=128, help="N, memory rows")
    p.add_argument("--memory-width", type=positive_int, default=20, help="M, numbers per memory row")
    p.add_argument("--lstm-hidden", type=positive_int, default=256, help="the baseline's LSTM units per layer")
    p.add_argument("--lstm-layers", type=positive_int, default=3, help="the baseline's LSTM layers")
    p.add_argument("--batch-size", type=positive_int, default=16, help="problems per batch")
    p.add_argument("--lr", type=positive_float, default=problem.lr,
                   help="Adam's learning rate, halved when the held-out loss has not improved for two passes")
    p.add_argument("--clip-norm", type=positive_float, default=10.0, help="gradient norm clipping")
    add_common_arguments(p, minutes=10.0)


def largest(problem: Problem, args: argparse.Namespace) -> int:
    """The largest training size (``--max-length``, ``--max-items``), checked."""
    size = getattr(args, problem.size_dest)
    if size < problem.min_size:
        raise ValueError(f"{problem.size_option} must be at least {problem.min_size}. Received: {size}")
    return size


def machine_config(problem: Problem, args: argparse.Namespace) -> NeuralTuringMachineConfig:
    return NeuralTuringMachineConfig(input_size=args.bits + problem.channels, output_size=args.bits,
                                     controller=args.controller, controller_size=args.controller_size,
                                     memory_size=args.memory_size, memory_width=args.memory_width)


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(problem: Problem, args: argparse.Namespace) -> NeuralTuringMachine | RecurrentBits:
    if args.model == "ntm":
        return NeuralTuringMachine(machine_config(problem, args))
    return RecurrentBits(RecurrentBitsConfig(args.bits + problem.channels, args.bits,
                                             {"cell": "lstm", "hidden_size": args.lstm_hidden,
                                              "num_layers": args.lstm_layers}))


def draw(problem: Problem, args: argparse.Namespace, rng: np.random.Generator, count: int) -> dict[str, torch.Tensor]:
    """``count`` problems of one training size drawn from ``rng``."""
    size = int(rng.integers(problem.min_size, largest(problem, args) + 1))
    return problem.make(rng, count, size, args.bits)


def valid_batches(problem: Problem, args: argparse.Namespace) -> list[dict[str, torch.Tensor]]:
    """Held-out problems of the training sizes, from their own generator."""
    rng = np.random.default_rng((args.seed, 1))
    return [draw(problem, args, rng, 32) for _ in range(VALID_BATCHES)]


def test_problems(problem: Problem, args: argparse.Namespace, size: int) -> dict[str, torch.Tensor]:
    return problem.make(np.random.default_rng((args.seed, 2, size)), TEST_PROBLEMS, size, args.bits)


def train(problem: Problem, args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    model = build_model(problem, args)
    top = largest(problem, args)
    run = run_dir(problem.name, args)
    print(f"{problem.name}: {args.model} of {parameters(model):,} parameters, {problem.size_name} "
          f"{problem.min_size}-{top}; run directory {run.path}", file=sys.stderr)
    batches = DrawnBatches(lambda rng: draw(problem, args, rng, args.batch_size), 500, seed=args.seed)
    trainer = task_trainer(problem.name, model, batches,
                           SequenceBatches.prebuilt(valid_batches(problem, args), shuffle=False), run, args,
                           optimizer=OptimizerConfig("adam", lr=args.lr), clip_norm=args.clip_norm,
                           schedule=ScheduleConfig("plateau", patience=1), log_every=50)
    done = fit_and_score(trainer, run, lambda best: evaluate(problem, best, "valid", args))
    if done is None:
        return run
    result, scores = done
    test = evaluate(problem, Checkpoint.resolve(run.path), "test", args)  # drawn afresh: the sizes are the question
    write_json_atomic(run.results, {**json.loads(run.results.read_text()), "test": test})
    print(f"{problem.name}: {result['step']} steps in {result['seconds'] / 60:.1f} min; bits wrong per problem: "
          f"{scores['bits_wrong']:.2f} on held-out {problem.size_name} {problem.min_size}-{top}, "
          + ", ".join(f"{test[f'bits_wrong_{n}']:.2f} at {n}" for n in problem.test_sizes), file=sys.stderr)
    return run


def after_train(problem: Problem, run: RunDir, args: argparse.Namespace) -> None:
    """The machine's first read and first write weightings on one test problem (plots/weightings.png)."""
    from rnnkit.plots import memory_weightings

    model = rnnkit.load(Checkpoint.resolve(run.path).path).eval()
    if not isinstance(model, NeuralTuringMachine):
        return
    one = {k: v[:1] for k, v in test_problems(problem, args, problem.picture_size).items()}
    with torch.no_grad():
        logits, weights = model(one["input"], record=True)
    answer = torch.sigmoid(logits[0, -one["target"].shape[1]:])
    reads = model.config.read_heads
    out = memory_weightings(one["input"][0].numpy(), answer.numpy(), weights[0, :, reads].numpy(),
                            weights[0, :, 0].numpy(), run.plots / "weightings.png",
                            title=f"{problem.name}, {problem.picture_size} {problem.size_name} (trained on "
                                  f"{problem.min_size}-{largest(problem, args)})")
    print(f"read and write weightings: {out}", file=sys.stderr)


def evaluate(problem: Problem, checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """"test": the mean bits wrong per problem (and the share answered without an error) at each
    test size; "valid": on the held-out problems of the training sizes."""
    dev = device(args.device)
    model = rnnkit.load(checkpoint.path, map_location=dev).eval()

    def wrong(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.bits_wrong({k: v.to(dev) for k, v in batch.items()}).cpu().float()

    if split == "valid":
        counts = torch.cat([wrong(b) for b in valid_batches(problem, args)])
        return {"problems": len(counts), "bits_wrong": float(counts.mean())}
    out: dict[str, Any] = {"parameters": parameters(model)}
    for size in problem.test_sizes:
        counts = wrong(test_problems(problem, args, size))
        out[f"bits_wrong_{size}"] = float(counts.mean())
        out[f"perfect_{size}"] = float((counts == 0).float().mean())
    return out


REGISTERED = [register(Task(problem.name, problem.help, problem.description, functools.partial(add_arguments, problem),
                       functools.partial(train, problem), functools.partial(evaluate, problem), ("test", "valid"),
                       functools.partial(after_train, problem)))
         for problem in (COPY, RECALL)]
