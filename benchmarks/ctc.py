"""CTC forward+backward against torch.nn.functional.ctc_loss, in one run; plus forced_align.

Log-probabilities (float32, log_softmax of random logits), random targets with every
length at its maximum: the lattice is B * T * (2S + 1) cells. Each repeat times every
variant once, in turn; the table shows medians, the ratio to torch, and the largest
relative difference between the two losses.

    python benchmarks/ctc.py            # three shapes, 5 repeats
    python benchmarks/ctc.py --quick    # the first shape, 3 repeats

Writes JSON to benchmarks/results/ctc-<device>.json (or --json PATH).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import rnnkit
from rnnkit.ctc import ctc_loss, forced_align

SHAPES = [(16, 400, 32, 80), (64, 1000, 64, 200), (4, 2000, 1000, 300)]  # (B, T, C, S)


def measure(shape: tuple[int, int, int, int], repeats: int, device: torch.device) -> dict:
    B, T, C, S = shape
    g = torch.Generator().manual_seed(0)
    lp = torch.randn(B, T, C, generator=g).log_softmax(-1).to(device)
    targets = torch.randint(1, C, (B, S), generator=g).to(device)
    in_len = torch.full((B,), T, device=device)
    tgt_len = torch.full((B,), S, device=device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    def ours() -> float:
        x = lp.clone().requires_grad_()
        loss = ctc_loss(x, targets, in_len, tgt_len)
        loss.backward()
        sync()
        return loss.item()

    def theirs() -> float:
        x = lp.clone().requires_grad_()
        loss = F.ctc_loss(x.transpose(0, 1), targets, in_len, tgt_len)
        loss.backward()
        sync()
        return loss.item()

    def align() -> None:
        forced_align(lp, targets, in_len, tgt_len)

    steps = {"rnnkit ctc_loss": ours, "torch ctc_loss": theirs, "rnnkit forced_align": align}
    values = {name: fn() for name, fn in steps.items()}  # warm-up (and compilation)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, fn in steps.items():
            t0 = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - t0) * 1e3)
    ms = {name: statistics.median(ts) for name, ts in times.items()}
    rel = abs(values["rnnkit ctc_loss"] - values["torch ctc_loss"]) / abs(values["torch ctc_loss"])
    cells = B * T * (2 * S + 1)
    return {"B": B, "T": T, "C": C, "S": S, "ms": ms, "speedup_vs_torch": ms["torch ctc_loss"] / ms["rnnkit ctc_loss"],
            "ns_per_cell": {k: v * 1e6 / cells for k, v in ms.items()}, "loss_relative_difference": rel}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="the first shape, 3 repeats")
    ap.add_argument("--repeats", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    device = torch.device(args.device)
    repeats = args.repeats or (3 if args.quick else 5)
    shapes = SHAPES[:1] if args.quick else SHAPES
    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, device {device}, "
          f"{torch.get_num_threads()} threads, median of {repeats}, float32")
    print(f"{'(B, T, C, S)':<22}{'torch fwd+bwd':>15}{'rnnkit fwd+bwd':>16}{'speedup':>9}"
          f"{'ns/cell':>9}{'loss rel diff':>15}{'forced_align':>14}")
    results = []
    for shape in shapes:
        r = measure(shape, repeats, device)
        results.append(r)
        ms = r["ms"]
        print(f"{str(shape):<22}{ms['torch ctc_loss']:>12.1f} ms{ms['rnnkit ctc_loss']:>13.1f} ms"
              f"{r['speedup_vs_torch']:>8.1f}x{r['ns_per_cell']['rnnkit ctc_loss']:>9.1f}"
              f"{r['loss_relative_difference']:>15.1e}{ms['rnnkit forced_align']:>11.1f} ms")
    print("target (CPU): >= 3x faster than torch's ctc_loss at the first two shapes, equal values")
    out = args.json or Path(__file__).parent / "results" / f"ctc-{device.type}{'-quick' if args.quick else ''}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"torch": torch.__version__, "rnnkit": rnnkit.__version__, "device": str(device),
                               "threads": torch.get_num_threads(), "repeats": repeats, "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
