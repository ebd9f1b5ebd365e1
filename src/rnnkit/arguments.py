"""Command-line argument types and checks shared by every verb and task.

Each type checks its value when the command line is parsed, before any data is read or any
model built, so a mistake costs nothing and the error names the flag:
``rnnkit train charlm: error: argument --temperature: must be > 0 (for the most probable
token use --greedy). Received: 0``. Nothing here imports torch (``rnnkit --help`` stays fast).
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence

__all__ = ["positive_int", "positive_float", "nonnegative_int", "fraction", "temperature", "top_p", "device_name",
           "given_options", "add_sampling_arguments"]


def _number(kind: Callable[[str], float], text: str) -> float:
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}. "
                                         f"Received: {text!r}") from None


def positive_int(text: str) -> int:
    value = int(_number(int, text))
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1. Received: {text}")
    return value


def nonnegative_int(text: str) -> int:
    value = int(_number(int, text))
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0. Received: {text}")
    return value


def positive_float(text: str) -> float:
    value = _number(float, text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0. Received: {text}")
    return value


def fraction(text: str) -> float:
    """A probability-like number in [0, 1) (dropout)."""
    value = _number(float, text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"must be in [0, 1). Received: {text}")
    return value


def temperature(text: str) -> float:
    value = _number(float, text)
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number > 0 (for the most probable token use --greedy). "
                                         f"Received: {text}")
    return value


def top_p(text: str) -> float:
    value = _number(float, text)
    if not 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"must be in (0, 1]. Received: {text}")
    return value


_DEVICE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def device_name(text: str) -> str:
    """auto, cpu, cuda, cuda:N or mps, and present on this machine (checked now, before any data is read)."""
    if not _DEVICE.match(text):
        raise argparse.ArgumentTypeError(f"expected auto, cpu, cuda, cuda:N or mps. Received: {text!r}")
    if text in ("auto", "cpu"):
        return text
    import torch

    if text == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise argparse.ArgumentTypeError("no MPS device is available here; use --device cpu")
        return text
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError("no CUDA device is available here; use --device cpu (or auto)")
    index = int(text.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"there are {torch.cuda.device_count()} CUDA devices here. Received: {text}")
    return text


def given_options(parser: argparse.ArgumentParser, argv: Sequence[str]) -> set[str]:
    """The destinations of the options ``argv`` sets explicitly (not by default), at any depth of
    sub-commands: parsed again with every default suppressed."""
    actions = []

    def collect(p: argparse.ArgumentParser) -> None:
        for action in p._actions:  # argparse offers no public walk over its actions
            actions.append((action, action.default))
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    collect(sub)
            action.default = argparse.SUPPRESS

    collect(parser)
    try:
        namespace, _ = parser.parse_known_args(list(argv))
    finally:
        for action, default in actions:
            action.default = default
    return set(vars(namespace))


def add_sampling_arguments(p: argparse.ArgumentParser, length: int = 300, temperature_default: float = 1.0) -> None:
    """How to sample text: shared by ``rnnkit generate`` and the samples a task prints after training."""
    g = p.add_argument_group("sampling")
    g.add_argument("--length", "--sample-length", dest="length", type=positive_int, default=length,
                   help="tokens to generate")
    g.add_argument("--temperature", type=temperature, default=temperature_default,
                   help="divide the log-probabilities by this (< 1: safer, > 1: wilder)")
    g.add_argument("--top-k", type=positive_int, default=None, help="sample among the k most probable tokens only")
    g.add_argument("--top-p", type=top_p, default=None,
                   help="sample among the most probable tokens whose probabilities sum to p (nucleus)")
    g.add_argument("--greedy", action="store_true", help="always take the most probable token")


def add_beam_arguments(p: argparse.ArgumentParser, beam: int = 5) -> None:
    """How to search for an output sequence: shared by ``rnnkit translate`` and the translate
    task's beam-search scores."""
    p.add_argument("--beam", type=positive_int, default=beam, help="beam width (1: greedy)")
    p.add_argument("--length-normalization", type=float, default=1.0,
                   help="beam search ranks log P(y) / |y|^alpha: this alpha")
