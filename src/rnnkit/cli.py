"""The ``rnnkit`` command line."""

from __future__ import annotations

import argparse
import sys

import rnnkit


def _info(args: argparse.Namespace) -> int:
    """Print versions and which path each plain configuration takes on each device."""
    import torch

    print(f"rnnkit {rnnkit.__version__}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} CPU threads, CUDA {'available' if torch.cuda.is_available() else 'not available'}")
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    configs = {
        "LSTM": rnnkit.LSTM(1, 1),
        "LSTM layer_norm": rnnkit.LSTM(1, 1, layer_norm=True),
        "LSTM peephole": rnnkit.LSTM(1, 1, peephole=True),
        "GRU": rnnkit.GRU(1, 1),
        "RNN tanh": rnnkit.RNN(1, 1),
        "RNN sigmoid": rnnkit.RNN(1, 1, activation="sigmoid"),
        "LSTM skip_delay=2": rnnkit.LSTM(1, 1, skip_delay=2),
    }
    print(f"{'configuration':<20}" + "".join(f"{d:>10}" for d in devices))
    for name, m in configs.items():
        print(f"{name:<20}" + "".join(f"{m.layer_path(0, d):>10}" for d in devices))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rnnkit", description="Recurrent neural networks on sequences.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--version", action="version", version=f"rnnkit {rnnkit.__version__}")
    verbs = parser.add_subparsers(dest="verb", metavar="VERB")
    info = verbs.add_parser("info", help="versions, devices and which kernel each layer type uses",
                            formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    info.set_defaults(func=_info)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
