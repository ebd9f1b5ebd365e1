"""copy: the copy task of Graves et al. (2014), where a neural Turing machine learns what an LSTM cannot.

A sequence of L random 8-bit vectors is read, then a delimiter (a ninth input channel), then
the net must write the L vectors back, in order, with no input during the answer (L steps).
Training lengths are 1 to ``--max-length`` (20), one length per batch, drawn afresh for every
batch. The test copies sequences of 20, 40, 80 and 120 vectors: the machine that learnt to
write its input into consecutive memory rows and read them back (the weightings move by
one row per step; ``plots/weightings.png`` shows them) copies sequences longer than any it
has seen; a recurrent net that stores the sequence in its state does not.

The machine's controller is feed-forward by default (``--controller lstm`` for an LSTM one):
it cannot keep the sequence in its own state, so it must use the memory. ``--model lstm``
trains the baseline: Graves et al.'s, three LSTM layers of 256 (about 100 times the
machine's parameters), to be trained for the same ``--minutes``.

    rnnkit evaluate RUN --split test     bits wrong per sequence at each test length
"""

from __future__ import annotations

import argparse
import json
import sys
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

NAME = "copy"
HELP = "the copy task: a neural Turing machine copies sequences longer than it was trained on, an LSTM does not"
TEST_LENGTHS = (20, 40, 80, 120)
TEST_SEQUENCES = 64  # per test length
VALID_BATCHES = 16


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=("ntm", "lstm"), default="ntm", help="the machine, or the LSTM baseline")
    p.add_argument("--bits", type=positive_int, default=8, help="bits per vector")
    p.add_argument("--max-length", type=positive_int, default=20, help="the longest training sequence")
    p.add_argument("--controller", choices=CONTROLLERS, default="feedforward", help="the machine's controller")
    p.add_argument("--controller-size", type=positive_int, default=100, help="controller units")
    p.add_argument("--memory-size", type=positive_int, default=128,
                   help="N, memory rows (at least the longest test sequence, 120, to copy it)")
    p.add_argument("--memory-width", type=positive_int, default=20, help="M, numbers per memory row")
    p.add_argument("--lstm-hidden", type=positive_int, default=256, help="the baseline's LSTM units per layer")
    p.add_argument("--lstm-layers", type=positive_int, default=3, help="the baseline's LSTM layers")
    p.add_argument("--batch-size", type=positive_int, default=16, help="sequences per batch")
    p.add_argument("--lr", type=positive_float, default=3e-4,
                   help="Adam's learning rate, halved when the held-out loss has not improved for two passes")
    p.add_argument("--clip-norm", type=positive_float, default=10.0, help="gradient norm clipping")
    add_common_arguments(p, minutes=10.0)


def sequences(rng: np.random.Generator, count: int, length: int, bits: int) -> dict[str, torch.Tensor]:
    """``count`` copy problems of ``length`` vectors: input (count, 2L+1, bits+1), target (count, L, bits)."""
    data = rng.integers(0, 2, (count, length, bits)).astype(np.float32)
    x = np.zeros((count, 2 * length + 1, bits + 1), np.float32)
    x[:, :length, :bits] = data
    x[:, length, bits] = 1.0  # the delimiter
    return {"input": torch.from_numpy(x), "target": torch.from_numpy(data)}


def machine_config(args: argparse.Namespace) -> NeuralTuringMachineConfig:
    return NeuralTuringMachineConfig(input_size=args.bits + 1, output_size=args.bits, controller=args.controller,
                                     controller_size=args.controller_size, memory_size=args.memory_size,
                                     memory_width=args.memory_width)


def parameters(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def build_model(args: argparse.Namespace) -> NeuralTuringMachine | RecurrentBits:
    if args.model == "ntm":
        return NeuralTuringMachine(machine_config(args))
    return RecurrentBits(RecurrentBitsConfig(args.bits + 1, args.bits, {"cell": "lstm", "hidden_size": args.lstm_hidden,
                                                                       "num_layers": args.lstm_layers}))


def valid_batches(args: argparse.Namespace) -> list[dict[str, torch.Tensor]]:
    """Held-out problems of the training lengths, from their own generator."""
    rng = np.random.default_rng((args.seed, 1))
    return [sequences(rng, 32, int(rng.integers(1, args.max_length + 1)), args.bits) for _ in range(VALID_BATCHES)]


def test_problems(args: argparse.Namespace, length: int) -> dict[str, torch.Tensor]:
    return sequences(np.random.default_rng((args.seed, 2, length)), TEST_SEQUENCES, length, args.bits)


def train(args: argparse.Namespace) -> RunDir:
    torch.manual_seed(args.seed)
    model = build_model(args)

    def draw(rng: np.random.Generator) -> dict[str, torch.Tensor]:
        return sequences(rng, args.batch_size, int(rng.integers(1, args.max_length + 1)), args.bits)

    run = run_dir(NAME, args)
    print(f"copy: {args.model} of {parameters(model):,} parameters, lengths 1-{args.max_length}; run directory "
          f"{run.path}", file=sys.stderr)
    trainer = task_trainer(NAME, model, DrawnBatches(draw, 500, seed=args.seed),
                           SequenceBatches.prebuilt(valid_batches(args), shuffle=False), run, args,
                           optimizer=OptimizerConfig("adam", lr=args.lr), clip_norm=args.clip_norm,
                           schedule=ScheduleConfig("plateau", patience=1), log_every=50)
    done = fit_and_score(trainer, run, lambda best: evaluate(best, "valid", args))
    if done is None:
        return run
    result, scores = done
    test = evaluate(Checkpoint.resolve(run.path), "test", args)  # drawn afresh: the lengths are the question
    write_json_atomic(run.results, {**json.loads(run.results.read_text()), "test": test})
    print(f"copy: {result['step']} steps in {result['seconds'] / 60:.1f} min; bits wrong per sequence (of "
          f"{args.bits} x length): {scores['bits_wrong']:.2f} on held-out lengths 1-{args.max_length}, "
          + ", ".join(f"{test[f'bits_wrong_{n}']:.2f} at {n}" for n in TEST_LENGTHS), file=sys.stderr)
    return run


def after_train(run: RunDir, args: argparse.Namespace) -> None:
    """The machine's read and write weightings on one test sequence of length 40 (plots/weightings.png)."""
    from rnnkit.plots import memory_weightings

    model = rnnkit.load(Checkpoint.resolve(run.path).path).eval()
    if not isinstance(model, NeuralTuringMachine):
        return
    problem = {k: v[:1] for k, v in test_problems(args, 40).items()}
    with torch.no_grad():
        logits, weights = model(problem["input"], record=True)
    answer = torch.sigmoid(logits[0, -problem["target"].shape[1]:])
    out = memory_weightings(problem["input"][0].numpy(), answer.numpy(), weights[0, :, 1].numpy(),
                            weights[0, :, 0].numpy(), run.plots / "weightings.png",
                            title=f"copy of 40 vectors (trained on 1-{args.max_length})")
    print(f"read and write weightings: {out}", file=sys.stderr)


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, Any]:
    """"test": the mean bits wrong per sequence (and the share of sequences copied without
    error) at lengths 20, 40, 80 and 120; "valid": on the held-out problems of training lengths."""
    dev = device(args.device)
    model = rnnkit.load(checkpoint.path, map_location=dev).eval()

    def wrong(batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return model.bits_wrong({k: v.to(dev) for k, v in batch.items()}).cpu().float()

    if split == "valid":
        counts = torch.cat([wrong(b) for b in valid_batches(args)])
        return {"sequences": len(counts), "bits_wrong": float(counts.mean())}
    out: dict[str, Any] = {"parameters": parameters(model)}
    for length in TEST_LENGTHS:
        counts = wrong(test_problems(args, length))
        out[f"bits_wrong_{length}"] = float(counts.mean())
        out[f"perfect_{length}"] = float((counts == 0).float().mean())
    return out


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("test", "valid"), after_train))
