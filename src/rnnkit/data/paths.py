"""Where datasets live: one resolution order for every command and script.

1. an explicit ``data_dir`` (the ``--data-dir`` option),
2. the environment variable ``RNNKIT_DATA``,
3. ``../shared/data`` beside the repository (a development checkout),
4. ``~/.cache/rnnkit``.

Which copy under these roots counts (the first complete, verified one) is decided by
:func:`rnnkit.data.registry.locate`. Datasets are never downloaded implicitly.
"""

from __future__ import annotations

import os
from pathlib import Path

REPOSITORY = Path(__file__).resolve().parents[3]  # src/rnnkit/data/paths.py -> the checkout


def data_roots(data_dir: str | Path | None = None) -> list[Path]:
    """The candidate data roots, in the order they are searched."""
    roots = []
    if data_dir is not None:
        roots.append(Path(data_dir).expanduser())
    if os.environ.get("RNNKIT_DATA"):
        roots.append(Path(os.environ["RNNKIT_DATA"]).expanduser())
    roots.append(REPOSITORY.parent / "shared" / "data")
    roots.append(Path.home() / ".cache" / "rnnkit")
    return roots
