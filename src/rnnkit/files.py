"""Files written atomically: a crash at any moment leaves the old file or the new one, never a torn one.

Everything rnnkit writes that a later run reads (model configs, checkpoints, metrics) goes
through here: write a temporary file beside the target, fsync it, rename it over the target
(atomic on POSIX), and fsync the directory where the rename must survive a power cut.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

__all__ = ["write_text_atomic", "write_json_atomic", "seal", "fsync_replace", "fsync_dir", "MANIFEST",
           "write_manifest", "verify_manifest", "sha256", "read_utf8", "read_json"]

#: the file in a saved model or checkpoint directory that lists the SHA-256 of every other file
MANIFEST = "manifest.json"

_UMASK = os.umask(0)  # read the process's umask (os.umask can only be read by setting it) ...
os.umask(_UMASK)  # ... and put it back at once


def write_text_atomic(path: Path, text: str | bytes) -> None:
    """Replace ``path`` by ``text`` (a str as UTF-8; bytes as they are) atomically."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    fsync_replace(tmp, path)


def write_json_atomic(path: Path, obj: Any) -> None:
    """Replace ``path`` by ``obj`` as indented JSON, atomically."""
    write_text_atomic(path, json.dumps(obj, indent=2))


def seal(path: Path) -> None:
    """Make the file ``path`` durable, with the permissions of any new file (0644 under the usual
    umask; safetensors creates its files 0600)."""
    os.chmod(path, 0o666 & ~_UMASK)
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def fsync_replace(tmp: Path, final: Path) -> None:
    """Make ``tmp`` durable, then rename it over ``final`` (atomic on POSIX)."""
    seal(tmp)
    os.replace(tmp, final)


def fsync_dir(path: Path) -> None:
    """Make the entries of directory ``path`` (renames, new files) durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def write_manifest(directory: Path) -> None:
    """Write ``directory/manifest.json``: the SHA-256 of every other file in it."""
    files = sorted(p.name for p in directory.iterdir() if p.is_file() and p.name != MANIFEST and
                   not p.name.endswith(".tmp"))
    write_json_atomic(directory / MANIFEST, {"sha256": {name: sha256(directory / name) for name in files}})


def verify_manifest(directory: Path) -> None:
    """Check every file ``directory/manifest.json`` lists against its SHA-256; a ValueError names
    the first that is missing or differs. Directories without a manifest (written by rnnkit
    0.1) are not checked."""
    path = directory / MANIFEST
    if not path.is_file():
        return
    try:
        listed = json.loads(path.read_text())["sha256"]
        if not isinstance(listed, dict):
            raise TypeError
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise ValueError(f"{path} is damaged (expected {{\"sha256\": {{file: digest}}}})") from None
    for name, digest in listed.items():
        file = directory / name
        if not file.is_file():
            raise ValueError(f"{file} is missing (listed in {MANIFEST})")
        if sha256(file) != digest:
            raise ValueError(f"{file} was altered or damaged after it was saved (its SHA-256 differs from "
                             f"the one in {MANIFEST})")


def read_utf8(path: Path, what: str | None = None) -> str:
    """The text of a UTF-8 file; anything else is a ValueError naming ``what`` (default: the path)
    and the byte offset of the first byte that is not UTF-8. One policy for every text rnnkit reads."""
    data = Path(path).read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{what or path}: not UTF-8 text (byte {e.start} is {data[e.start:e.start + 1]!r}); "
                         "convert it, e.g. iconv -f latin1 -t utf-8") from None


def read_json(path: Path, what: str) -> dict[str, Any]:
    """A JSON object from the file ``path`` (``what`` it should hold, for the error); anything
    else is a ValueError naming the file."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"{path} is not valid JSON ({e})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object ({what})")
    return value
