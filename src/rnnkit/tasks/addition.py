"""addition: binary addition, where a recurrent net beats a fixed-width MLP.

Two numbers a, b are read one bit at a time, least significant first: x_t = (a_t, b_t),
and the net emits the sum's bit s_t at the same step (time-synchronous; the carry is the
memory). Trained on numbers of at most N bits (default 8), tested on numbers of exactly
N+1, 2N and 4N bits: the recurrent net applies the same rule at every position, so it
adds numbers of any length. The MLP baseline sees all 2W input bits at once (W = 4N, the
widest test) and must learn each output bit from its own weights; trained on at most N
bits it has never seen the higher bits move, and fails on longer numbers.

A validation set of held-out pairs (at most N bits) gives the per-bit accuracy curve during
training; ``rnnkit evaluate RUN`` re-runs the generalisation test (split "test") on fresh
pairs drawn from the run's seed.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

import rnnkit
from rnnkit.arguments import positive_float, positive_int
from rnnkit.data import SequenceBatches
from rnnkit.models import Tagger, TaggerConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, run_dir, task_trainer
from rnnkit.train import OptimizerConfig

NAME = "addition"
HELP = "binary addition: an RNN generalises to longer numbers, an MLP does not"


MAX_BITS = 15  # the widest test numbers (4N bits) and their sum must fit in an int64


def bits(text: str) -> int:
    value = positive_int(text)
    if value > MAX_BITS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BITS} (the test adds numbers of 4N bits). "
                                         f"Received: {text}")
    return value


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bits", type=bits, default=8, help="N: the training numbers have at most N bits")
    p.add_argument("--cell", default="rnn", choices=("rnn", "gru", "lstm"), help="recurrent cell")
    p.add_argument("--hidden", type=positive_int, default=16, help="hidden units")
    p.add_argument("--train-size", type=positive_int, default=4000, help="training pairs")
    p.add_argument("--valid-size", type=positive_int, default=500, help="held-out pairs for the accuracy curve")
    p.add_argument("--test-size", type=positive_int, default=1000, help="test pairs per width")
    p.add_argument("--batch-size", type=positive_int, default=64, help="pairs per batch")
    p.add_argument("--lr", type=positive_float, default=1e-2, help="Adam's learning rate")
    p.add_argument("--mlp-steps", type=positive_int, default=8000, help="training steps of the MLP baseline")
    add_common_arguments(p, epochs=30)


def numbers(count: int, bits: int, g: torch.Generator, exact: bool) -> torch.Tensor:
    """(count, 2) random numbers: exactly ``bits`` bits (the top bit set), or, if not exact,
    a random width of 1 to ``bits`` bits each."""
    raw = torch.randint(0, 2**bits, (count, 2), generator=g)
    if exact:
        top = 1 << (bits - 1)
        return top | (raw & (top - 1))
    width = torch.randint(1, bits + 1, (count, 2), generator=g)
    return raw & ((1 << width) - 1)


def encode(pairs: torch.Tensor, length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs (n, length, 2), sum bits (n, length)), least significant bit first."""
    positions = torch.arange(length)
    x = ((pairs[:, :, None] >> positions) & 1).transpose(1, 2).float()
    y = ((pairs.sum(1, keepdim=True) >> positions) & 1)
    return x, y


def collate(items: list[tuple[torch.Tensor, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {"input": torch.stack([x for x, _ in items]), "target": torch.stack([y for _, y in items])}


class BitMLP(nn.Module):
    """The fixed-width baseline: all 2W input bits -> W+1 sum bits, one sigmoid each."""

    def __init__(self, width: int, hidden: int = 128) -> None:
        super().__init__()
        self.width = width
        self.net = nn.Sequential(nn.Linear(2 * width, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, width + 1))

    def forward(self, pairs: torch.Tensor) -> torch.Tensor:
        x, _ = encode(pairs, self.width)
        return self.net(x.reshape(len(pairs), -1))  # logits of the W+1 sum bits


def train_mlp(bits: int, width: int, steps: int, lr: float, seed: int) -> BitMLP:
    """The baseline, trained on fresh random pairs of at most ``bits`` bits at every step
    (unlimited data from the training distribution: more than the recurrent net gets)."""
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed + 1)
    mlp = BitMLP(width, hidden=256)
    opt = torch.optim.Adam(mlp.parameters(), lr=lr)
    for _ in range(steps):
        pairs = numbers(256, bits, g, exact=False)
        _, y = encode(pairs, width + 1)
        loss = nn.functional.binary_cross_entropy_with_logits(mlp(pairs), y.float())
        opt.zero_grad()
        loss.backward()
        opt.step()
    return mlp


@torch.no_grad()
def exact(predicted: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of sums with every bit right."""
    return float((predicted == target).all(1).float().mean())


def test_pairs(args: argparse.Namespace) -> dict[int, torch.Tensor]:
    """Per test width (N, N+1, 2N, 4N bits), ``test_size`` pairs of exactly that width, drawn
    from their own generator (the same for train and for evaluate)."""
    g = torch.Generator().manual_seed(args.seed + 2)
    N = args.bits
    return {b: numbers(args.test_size, b, g, exact=True) for b in (N, N + 1, 2 * N, 4 * N)}


@torch.no_grad()
def rnn_exact(rnn: Tagger, pairs: torch.Tensor, width: int, dev: torch.device) -> float:
    x, y = encode(pairs, width + 1)
    return exact(rnn.eval().predict(x.to(dev)).cpu(), y)


def train(args: argparse.Namespace) -> RunDir:
    N = args.bits
    g = torch.Generator().manual_seed(args.seed)
    train_pairs = numbers(args.train_size, N, g, exact=False)
    valid_pairs = numbers(args.valid_size, N, g, exact=False)
    torch.manual_seed(args.seed)
    causal = {"cell": args.cell, "hidden_size": args.hidden, "bidirectional": False}  # s_t needs only bits <= t
    rnn = Tagger(TaggerConfig(num_tags=2, input_size=2, rnn=causal))
    run, dev = run_dir(NAME, args), device(args.device)
    items = {name: list(zip(*encode(pairs, N + 1))) for name, pairs in (("train", train_pairs), ("valid", valid_pairs))}
    result = task_trainer(NAME, rnn, SequenceBatches(items["train"], args.batch_size, collate, seed=args.seed),
                          SequenceBatches(items["valid"], 256, collate, shuffle=False), run, args,
                          optimizer=OptimizerConfig(lr=args.lr), log_every=20).fit()
    if result["already_finished"]:
        return run
    mlp = train_mlp(N, 4 * N, args.mlp_steps, 1e-3, args.seed)
    rows = []
    for width, test in test_pairs(args).items():
        _, my = encode(test, 4 * N + 1)
        rows.append({"bits": width, "rnn_exact": rnn_exact(rnn, test, width, dev),
                     "mlp_exact": exact((mlp(test) > 0).long(), my)})
    run.results.write_text(json.dumps({"train_bits": N, "cell": args.cell, "results": rows}, indent=2))
    print(f"addition: trained on numbers of at most {N} bits; exact sums on {args.test_size} test pairs", file=sys.stderr)
    print(f"  {'bits':>5}{'RNN':>9}{'MLP':>9}", file=sys.stderr)
    for r in rows:
        print(f"  {r['bits']:>5}{r['rnn_exact']:>9.1%}{r['mlp_exact']:>9.1%}", file=sys.stderr)
    return run


def evaluate(checkpoint: Checkpoint, split: str, args: argparse.Namespace) -> dict[str, float]:
    """"test": the checkpoint's exact sums at N, N+1, 2N and 4N bits; "valid": on the held-out pairs."""
    dev = device(args.device)
    rnn = rnnkit.load(checkpoint.path, map_location=dev)
    if split == "valid":
        g = torch.Generator().manual_seed(args.seed)
        numbers(args.train_size, args.bits, g, exact=False)  # the training pairs come first from this generator
        return {"pairs": args.valid_size,
                "exact": rnn_exact(rnn, numbers(args.valid_size, args.bits, g, exact=False), args.bits, dev)}
    return {f"exact_{width}_bits": rnn_exact(rnn, pairs, width, dev) for width, pairs in test_pairs(args).items()}


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train, evaluate, ("test", "valid")))
