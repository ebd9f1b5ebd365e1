"""rnnkit: recurrent neural networks on sequences, from the textbook equations to fast software.

The names below are imported on first use (PEP 562), so ``import rnnkit`` and the command
line's ``--help`` do not pay for importing torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, Any

from rnnkit.version import __version__

#: public name -> the module that defines it
_LAZY = {
    **{name: "rnnkit.cells" for name in ("Cell", "ElmanCell", "LeakyCell", "GRUCell", "LSTMCell", "TemporalSkip")},
    **{name: "rnnkit.recurrent" for name in ("Recurrent", "RNN", "GRU", "LSTM", "LeakyRNN", "detach")},
    "load": "rnnkit.models",
}

__all__ = [*_LAZY, "__version__"]

if TYPE_CHECKING:
    from rnnkit.cells import Cell, ElmanCell, GRUCell, LeakyCell, LSTMCell, TemporalSkip  # noqa: F401
    from rnnkit.models import load  # noqa: F401
    from rnnkit.recurrent import GRU, LSTM, RNN, LeakyRNN, Recurrent, detach  # noqa: F401


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif importlib.util.find_spec(f"rnnkit.{name}") is not None:  # a submodule: rnnkit.models, rnnkit.decode...
        value = importlib.import_module(f"rnnkit.{name}")
    else:
        raise AttributeError(f"module 'rnnkit' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
