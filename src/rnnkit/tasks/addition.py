"""addition: the lecture's binary addition, where a recurrent net beats a fixed-width MLP.

Two numbers a, b are read one bit at a time, least significant first: x_t = (a_t, b_t),
and the net emits the sum's bit s_t at the same step (time-synchronous; the carry is the
memory). Trained on numbers of at most N bits (default 8), tested on numbers of exactly
N+1, 2N and 4N bits: the recurrent net applies the same rule at every position, so it
adds numbers of any length. The MLP baseline sees all 2W input bits at once (W = 4N, the
widest test) and must learn each output bit from its own weights; trained on at most N
bits it has never seen the higher bits move, and fails on longer numbers.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
from torch import nn

from rnnkit.data import SequenceBatches
from rnnkit.models import Tagger, TaggerConfig
from rnnkit.run_dir import Checkpoint, RunDir
from rnnkit.tasks.base import Task, register
from rnnkit.tasks.common import add_common_arguments, device, run_dir, task_artifact
from rnnkit.train import OptimizerConfig, StoppingConfig, TrainConfig, Trainer

NAME = "addition"
HELP = "binary addition: an RNN generalises to longer numbers, an MLP does not"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--bits", type=int, default=8, help="N: the training numbers have at most N bits")
    p.add_argument("--cell", default="rnn", choices=("rnn", "gru", "lstm"))
    p.add_argument("--hidden", type=int, default=16)
    p.add_argument("--train-size", type=int, default=4000)
    p.add_argument("--test-size", type=int, default=1000)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--mlp-steps", type=int, default=8000, help="training steps of the MLP baseline")
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


def train(args: argparse.Namespace) -> RunDir:
    N = args.bits
    g = torch.Generator().manual_seed(args.seed)
    train_pairs = numbers(args.train_size, N, g, exact=False)
    x, y = encode(train_pairs, N + 1)
    torch.manual_seed(args.seed)
    causal = {"cell": args.cell, "hidden_size": args.hidden, "bidirectional": False}  # s_t needs only bits <= t
    rnn = Tagger(TaggerConfig(num_tags=2, input_size=2, rnn=causal))
    run, dev = run_dir(NAME, args), device(args.device)
    Trainer(rnn, SequenceBatches(list(zip(x, y)), args.batch_size, collate, seed=args.seed),
            TrainConfig(optimizer=OptimizerConfig(lr=args.lr), stopping=StoppingConfig(epochs=args.epochs, minutes=args.minutes),
                        log_every=20, seed=args.seed),
            run_dir=run, resume=bool(args.resume), device=dev, progress=not args.no_progress,
            artifacts={Checkpoint.TASK: task_artifact(NAME, args)}).fit()
    mlp = train_mlp(N, 4 * N, args.mlp_steps, 1e-3, args.seed)
    rows = []
    for bits in (N, N + 1, 2 * N, 4 * N):
        test = numbers(args.test_size, bits, g, exact=True)
        tx, ty = encode(test, bits + 1)
        rnn_acc = exact(rnn.eval().predict(tx.to(dev)).cpu(), ty)
        _, my = encode(test, 4 * N + 1)
        mlp_acc = exact((mlp(test) > 0).long(), my)
        rows.append({"bits": bits, "rnn_exact": rnn_acc, "mlp_exact": mlp_acc})
    run.results.write_text(json.dumps({"train_bits": N, "cell": args.cell, "results": rows}, indent=2))
    print(f"addition: trained on numbers of at most {N} bits; exact sums on {args.test_size} test pairs", file=sys.stderr)
    print(f"  {'bits':>5}{'RNN':>9}{'MLP':>9}", file=sys.stderr)
    for r in rows:
        print(f"  {r['bits']:>5}{r['rnn_exact']:>9.1%}{r['mlp_exact']:>9.1%}", file=sys.stderr)
    return run


TASK = register(Task(NAME, HELP, __doc__, add_arguments, train))
