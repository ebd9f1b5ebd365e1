"""NumPy reference implementations: explicit forward, hand-derived backward; no torch.

Readable first, fast never: the oracle for the torch code and the mathematics on paper.
"""

from rnnkit.reference import bptt, cells

__all__ = ["bptt", "cells"]
