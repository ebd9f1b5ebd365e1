"""Forward+backward time of rnnkit's recurrent layers against their peers, in one run.

Peers: torch.nn.LSTM / GRU / RNN (torch's own kernels) and, for the variants torch does not
have (layer norm, peepholes), the naive Python loop a user would write with autograd
through the same cell. Every repeat times each variant once, in turn, so drift of the
machine hits all of them alike; the table shows the median and the ratio to the peer.

    python benchmarks/recurrent.py            # full: three shapes, 7 repeats
    python benchmarks/recurrent.py --quick    # two shapes, 3 repeats (what `make run` shows)
    python benchmarks/recurrent.py --batches  # compiled vs Python time loops, by batch size

Writes JSON to benchmarks/results/recurrent-<device>.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

import rnnkit
from rnnkit.cells import Cell

SHAPES = [(32, 100, 128, 256), (1, 500, 64, 128), (64, 50, 512, 1024)]  # (B, T, I, H)
QUICK_SHAPES = SHAPES[:2]


class NaiveLoop(nn.Module):
    """What a user writes without rnnkit: autograd through the cell, step by step."""

    def __init__(self, cell: Cell) -> None:
        super().__init__()
        self.cell = cell

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        state = self.cell.initial_state(x.shape[0])
        outs = []
        for t in range(x.shape[1]):
            h, state = self.cell(x[:, t], state)
            outs.append(h)
        return torch.stack(outs, 1)


class TorchCellLoop(NaiveLoop):
    """The same with torch.nn.LSTMCell / GRUCell."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x.new_zeros(x.shape[0], self.cell.hidden_size)
        c = h.clone()
        outs = []
        for t in range(x.shape[1]):
            if isinstance(self.cell, nn.LSTMCell):
                h, c = self.cell(x[:, t], (h, c))
            else:
                h = self.cell(x[:, t], h)
            outs.append(h)
        return torch.stack(outs, 1)


def variants(I: int, H: int) -> dict[str, tuple[nn.Module, str | None]]:
    """name -> (module, name of the peer it is compared with)."""
    return {
        "torch.nn.LSTM": (nn.LSTM(I, H, batch_first=True), None),
        "rnnkit.LSTM": (rnnkit.LSTM(I, H), "torch.nn.LSTM"),
        "loop torch.nn.LSTMCell": (TorchCellLoop(nn.LSTMCell(I, H)), "torch.nn.LSTM"),
        "torch.nn.GRU": (nn.GRU(I, H, batch_first=True), None),
        "rnnkit.GRU": (rnnkit.GRU(I, H), "torch.nn.GRU"),
        "  GRU, compiled loop": (rnnkit.GRU(I, H, implementation="compiled"), "torch.nn.GRU"),
        "  GRU, Python loop": (rnnkit.GRU(I, H, implementation="fused"), "torch.nn.GRU"),
        "loop torch.nn.GRUCell": (TorchCellLoop(nn.GRUCell(I, H)), "torch.nn.GRU"),
        "torch.nn.RNN": (nn.RNN(I, H, batch_first=True), None),
        "rnnkit.RNN": (rnnkit.RNN(I, H), "torch.nn.RNN"),
        "  RNN, compiled loop": (rnnkit.RNN(I, H, implementation="compiled"), "torch.nn.RNN"),
        "  RNN, Python loop": (rnnkit.RNN(I, H, implementation="fused"), "torch.nn.RNN"),
        "rnnkit leaky RNN": (rnnkit.Recurrent(rnnkit.LeakyCell(I, H, alpha=0.5)), "torch.nn.LSTM"),
        "  leaky, compiled loop": (rnnkit.Recurrent(rnnkit.LeakyCell(I, H, alpha=0.5), implementation="compiled"),
                                   "torch.nn.LSTM"),
        "  leaky, Python loop": (rnnkit.Recurrent(rnnkit.LeakyCell(I, H, alpha=0.5), implementation="fused"),
                                 "torch.nn.LSTM"),
        "rnnkit.LSTM layer_norm": (rnnkit.LSTM(I, H, layer_norm=True), "torch.nn.LSTM"),
        "  layer_norm, compiled loop": (rnnkit.LSTM(I, H, layer_norm=True, implementation="compiled"), "torch.nn.LSTM"),
        "  layer_norm, Python loop": (rnnkit.LSTM(I, H, layer_norm=True, implementation="fused"), "torch.nn.LSTM"),
        "loop LSTMCell layer_norm": (NaiveLoop(rnnkit.LSTMCell(I, H, layer_norm=True)), None),
        "rnnkit.LSTM peephole": (rnnkit.LSTM(I, H, peephole=True), "torch.nn.LSTM"),
        "  peephole, compiled loop": (rnnkit.LSTM(I, H, peephole=True, implementation="compiled"), "torch.nn.LSTM"),
        "  peephole, Python loop": (rnnkit.LSTM(I, H, peephole=True, implementation="fused"), "torch.nn.LSTM"),
        "loop LSTMCell peephole": (NaiveLoop(rnnkit.LSTMCell(I, H, peephole=True)), None),
    }


# variant -> the naive loop of the same variant (the second peer of the variants torch lacks)
SAME_VARIANT_LOOP = {
    "rnnkit.LSTM layer_norm": "loop LSTMCell layer_norm",
    "rnnkit.LSTM peephole": "loop LSTMCell peephole",
}


def fwd_bwd(module: nn.Module, x: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        out = module(x)
        out = out[0] if isinstance(out, tuple) else out
        out.sum().backward()
        module.zero_grad(set_to_none=True)
        if x.device.type == "cuda":
            torch.cuda.synchronize()

    return step


def measure(shape: tuple[int, int, int, int], repeats: int, device: torch.device,
            only: list[str] | None = None) -> dict[str, float]:
    B, T, I, H = shape
    torch.manual_seed(0)
    x = torch.randn(B, T, I, device=device)
    mods = {name: m.to(device) for name, (m, _) in variants(I, H).items() if only is None or name in only}
    steps = {name: fwd_bwd(m, x) for name, m in mods.items()}
    for step in steps.values():  # warm-up
        step()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(ts) * 1e3 for name, ts in times.items()}


TARGETS = """targets (CPU, issue 16): every built-in cell (Elman, leaky, GRU, LSTM with peepholes and/or
layer norm) <= 1.2x torch.nn.LSTM at (32,100,128,256) and <= 1.5x at (1,500,64,128); rnnkit.GRU and
rnnkit.RNN faster than torch.nn.GRU / RNN"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="two shapes, 3 repeats")
    ap.add_argument("--repeats", type=int, default=None, help="repeats per variant (default 7, quick 3)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, default=None, help="where to write the results")
    ap.add_argument("--batches", action="store_true",
                    help="only the two time loops (compiled, Python) of the layer-norm and peephole LSTMs, the GRU, "
                         "the Elman RNN and the leaky RNN, at T=100, I=128, H=256 and batch sizes 1-128 (the measurement "
                         "behind each cell's _compiled_loop_batch)")
    args = ap.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (3 if args.quick else 7)
    shapes = QUICK_SHAPES if args.quick else SHAPES
    peers = {name: peer for name, (_, peer) in variants(1, 1).items()}
    only = None
    if args.batches:
        shapes = [(B, 100, 128, 256) for B in (1, 2, 4, 8, 12, 16, 32, 64, 128)]
        only = ["torch.nn.LSTM", "  layer_norm, compiled loop", "  layer_norm, Python loop", "  peephole, compiled loop",
                "  peephole, Python loop", "torch.nn.GRU",
                "  GRU, compiled loop", "  GRU, Python loop", "torch.nn.RNN",
                "  RNN, compiled loop", "  RNN, Python loop", "  leaky, compiled loop", "  leaky, Python loop"]

    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads, median of {repeats}, forward+backward, float32")
    results = []
    for shape in shapes:
        ms = measure(shape, repeats, device, only)
        print(f"\n(B, T, I, H) = {shape}")
        print(f"  {'variant':<26}{'ms':>9}  {'vs peer':<20}{'vs own loop':>14}")
        for name, t in ms.items():
            peer = peers[name]
            ratio = t / ms[peer] if peer else None
            loop = SAME_VARIANT_LOOP.get(name)
            speedup = ms[loop] / t if loop else None
            vs_peer = f"{ratio:.2f}x {peer}" if peer else ""
            vs_loop = f"{speedup:.1f}x faster" if speedup else ""
            print(f"  {name:<26}{t:>9.1f}  {vs_peer:<20}{vs_loop:>14}")
            results.append({"B": shape[0], "T": shape[1], "I": shape[2], "H": shape[3], "variant": name,
                            "ms": t, "peer": peer, "ratio_to_peer": ratio,
                            "own_loop": loop, "speedup_vs_own_loop": speedup})
    print("\n" + TARGETS)
    kind = "-batches" if args.batches else "-quick" if args.quick else ""
    out = args.json or Path(__file__).parent / "results" / f"recurrent-{device.type}{kind}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "torch": torch.__version__, "rnnkit": rnnkit.__version__, "device": str(device),
        "cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "repeats": repeats, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
