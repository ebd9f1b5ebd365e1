"""Files written atomically: a crash at any moment leaves the old file or the new one, never a torn one.

Everything rnnkit writes that a later run reads (model configs, checkpoints, metrics) goes
through here: write a temporary file beside the target, fsync it, rename it over the target
(atomic on POSIX), and fsync the directory where the rename must survive a power cut.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_text_atomic", "write_json_atomic", "fsync_replace", "fsync_dir"]


def write_text_atomic(path: Path, text: str) -> None:
    """Replace ``path`` by ``text`` atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    fsync_replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` by ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2))


def fsync_replace(tmp: Path, final: Path) -> None:
    """Make ``tmp`` durable, then rename it over ``final`` (atomic on POSIX)."""
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
