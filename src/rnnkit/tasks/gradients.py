"""analyze gradients: how dL/dh_t shrinks or grows with the distance from the loss, per cell.

The stability picture of the course. Task: read T random symbols and, at the last step, name
the first one (the loss sits at the end; the evidence at the start). For each cell, the
mean ||dL/dh_t|| over a batch, plotted against the distance T - 1 - t, at initialisation and
after training: sigmoid and tanh Elman units shrink it geometrically (vanishing
gradients), relu units can blow it up, and the gated cells (GRU, LSTM) keep it alive.
"""

from __future__ import annotations

import argparse
import json
import sys

import torch
import torch.nn.functional as F
from torch import nn

from rnnkit.arguments import positive_int
from rnnkit.cells import Cell, ElmanCell, GRUCell, LSTMCell
from rnnkit.plots import gradient_norms
from rnnkit.recurrent import Recurrent
from rnnkit.run_dir import RunDir

NAME = "gradients"
HELP = "gradient norm against distance from the loss, for Elman (sigmoid, tanh, relu), GRU and LSTM"
SYMBOLS = 4

CELLS = {
    "Elman sigmoid": lambda H: ElmanCell(SYMBOLS, H, activation="sigmoid"),
    "Elman tanh": lambda H: ElmanCell(SYMBOLS, H, activation="tanh"),
    "Elman relu": lambda H: ElmanCell(SYMBOLS, H, activation="relu"),
    "GRU": lambda H: GRUCell(SYMBOLS, H),
    "LSTM": lambda H: LSTMCell(SYMBOLS, H),
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--length", type=positive_int, default=20, help="T: steps between the evidence and the loss")
    p.add_argument("--hidden", type=positive_int, default=32, help="hidden units of every cell")
    p.add_argument("--steps", type=positive_int, default=1000, help="training steps per cell")
    p.add_argument("--batch-size", type=positive_int, default=64, help="sequences per step")
    p.add_argument("--runs", default="runs", help="folder of run directories")
    p.add_argument("--seed", type=int, default=0, help="seed for everything random")


class Remember(nn.Module):
    """A recurrent layer and a classifier on its last output. ``forward`` trains through the
    layer's fast path; ``unrolled`` runs the same cell step by step so every h_t can keep
    its gradient."""

    def __init__(self, cell: Cell) -> None:
        super().__init__()
        self.cell = cell
        self.rnn = Recurrent(cell)
        self.out = nn.Linear(cell.hidden_size, SYMBOLS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.rnn(x)[0][:, -1])

    def unrolled(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        state = self.cell.initial_state(x.shape[0])
        hs = []
        for t in range(x.shape[1]):
            h, state = self.cell(x[:, t], state)
            if h.requires_grad:
                h.retain_grad()
            hs.append(h)
        return self.out(hs[-1]), hs


def batch(n: int, T: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    symbols = torch.randint(0, SYMBOLS, (n, T), generator=g)
    return F.one_hot(symbols, SYMBOLS).float(), symbols[:, 0]


def norms(model: Remember, x: torch.Tensor, y: torch.Tensor) -> list[float]:
    """mean_b ||dL/dh_t||, indexed by the distance from the loss (0 = the last step)."""
    model.zero_grad()
    logits, hs = model.unrolled(x)
    F.cross_entropy(logits, y).backward()
    return [float(h.grad.norm(dim=1).mean()) for h in reversed(hs)]


def train(args: argparse.Namespace) -> RunDir:
    g = torch.Generator().manual_seed(args.seed)
    probe = batch(256, args.length, g)
    results, accuracy = {}, {}
    for name, make in CELLS.items():
        torch.manual_seed(args.seed)
        model = Remember(make(args.hidden))
        start = norms(model, *probe)
        opt = torch.optim.Adam(model.parameters(), lr=1e-2)
        for _ in range(args.steps):
            x, y = batch(args.batch_size, args.length, g)
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
        end = norms(model, *probe)
        with torch.no_grad():
            accuracy[name] = float((model(probe[0]).argmax(-1) == probe[1]).float().mean())
        results[name] = {"at initialisation": start, "after training": end}
        print(f"  {name:<14} ||dL/dh|| at distance {args.length - 1}: {start[-1]:.2e} at init, {end[-1]:.2e} trained; "
              f"accuracy {accuracy[name]:.0%}", file=sys.stderr)
    run = RunDir.new(args.runs, NAME)
    run.path.mkdir(parents=True, exist_ok=True)
    run.results.write_text(json.dumps({"length": args.length, "norms": results, "accuracy": accuracy}, indent=2))
    png = gradient_norms(results, run.plots / "gradients.png",
                         f"remember the first of {args.length} symbols: mean ||dL/dh_t|| (log scale)",
                         notes={name: f"{acc:.0%} right" for name, acc in accuracy.items()})
    print(f"gradients: {png}", file=sys.stderr)
    return run
