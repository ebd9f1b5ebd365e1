"""rnnkit: recurrent neural networks on sequences, from the textbook equations to fast software."""

from rnnkit.cells import Cell, ElmanCell, GRUCell, LeakyCell, LSTMCell, TemporalSkip
from rnnkit.recurrent import GRU, LSTM, RNN, Recurrent, detach
from rnnkit.models import load

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "ElmanCell",
    "LeakyCell",
    "GRUCell",
    "LSTMCell",
    "TemporalSkip",
    "Recurrent",
    "RNN",
    "GRU",
    "LSTM",
    "detach",
    "load",
    "__version__",
]
