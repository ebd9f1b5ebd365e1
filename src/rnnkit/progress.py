"""Progress bars: one policy for training, evaluation and downloads.

Bars come from ``tqdm.auto``, so a Jupyter notebook gets widgets and a terminal gets text.
``enabled=None`` (the default everywhere) shows them on a terminal and in a notebook, and
hides them when stderr is a file or a pipe (logs stay clean); ``True``/``False`` force it.
"""

from __future__ import annotations

import sys
from typing import Any

from tqdm.auto import tqdm

__all__ = ["bar", "shown"]


def _in_notebook() -> bool:
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    ipython = shell.get_ipython()  # type: ignore[attr-defined]
    return ipython is not None and type(ipython).__name__ == "ZMQInteractiveShell"


def shown(enabled: bool | None = None) -> bool:
    """Whether a bar is shown: ``enabled``, or (None) on a terminal or in a notebook."""
    if enabled is not None:
        return enabled
    return _in_notebook() or (hasattr(sys.stderr, "isatty") and sys.stderr.isatty())


def bar(total: float | None = None, enabled: bool | None = None, **options: Any) -> tqdm:
    """A ``tqdm.auto`` bar (``options`` as tqdm's: desc, unit, initial, leave...), or a disabled one."""
    return tqdm(total=total, disable=not shown(enabled), dynamic_ncols=True, **options)
