"""rnnkit: recurrent neural networks on sequences, from the textbook equations to fast software."""

from rnnkit.cells import Cell, ElmanCell, GRUCell, LeakyCell, LSTMCell, TemporalSkip
from rnnkit.models import load
from rnnkit.recurrent import GRU, LSTM, RNN, LeakyRNN, Recurrent, detach
from rnnkit.version import __version__

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
    "LeakyRNN",
    "detach",
    "load",
    "__version__",
]
