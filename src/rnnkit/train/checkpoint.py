"""Checkpoints: everything that decides the next training step, written atomically.

A checkpoint is a directory ``checkpoints/step-00001234/`` (its layout is
:class:`rnnkit.run_dir.Checkpoint`) holding

    config.json, model.safetensors   the model (so ``rnnkit.load`` works on it directly)
    optimizer.pt                     the optimizer's state: tensors and numbers only,
                                     read back with torch.load(weights_only=True)
    tensors.safetensors              the RNG state and the recurrent state carried between
                                     chunks (truncated BPTT)
    trainer.json                     step, epoch, schedule, early stopping, data position

It is written into ``step-...tmp`` and renamed when complete (after fsync), so a crash at
any moment leaves either the previous checkpoints or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rnnkit import nested
from rnnkit.files import fsync_dir, seal, verify_manifest, write_json_atomic, write_manifest, write_text_atomic
from rnnkit.models.base import Model, check_weights
from rnnkit.run_dir import Checkpoint, RunDir

def save_checkpoint(run: RunDir, step: int, model: Model, optimizer: torch.optim.Optimizer,
                    trainer_state: dict[str, Any], carried: Any, artifacts: dict[str, Any] | None = None) -> Checkpoint:
    """Write checkpoint ``step`` of ``run`` atomically. ``artifacts`` are files that travel with
    the model (the task's arguments, a lexicon, a language model, a subword model): a str is
    written as UTF-8 text, bytes as they are, anything else as JSON."""
    final = run.checkpoint(step)
    directory = final.path.parent
    directory.mkdir(parents=True, exist_ok=True)
    tmp = final.path.with_name(final.path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save(tmp)
    torch.save(optimizer.state_dict(), tmp / Checkpoint.OPTIMIZER)
    tensors, structure = nested.flatten(carried)
    tensors["rng.cpu"] = torch.get_rng_state()
    if torch.cuda.is_available():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    save_file(tensors, str(tmp / Checkpoint.TENSORS))
    write_json_atomic(tmp / Checkpoint.TRAINER, {**trainer_state, "carried_structure": structure})
    for name, obj in (artifacts or {}).items():
        if isinstance(obj, (str, bytes)):
            write_text_atomic(tmp / name, obj)
        else:
            write_json_atomic(tmp / name, obj)
    write_manifest(tmp)
    for f in tmp.iterdir():
        seal(f)
    if final.path.exists():
        shutil.rmtree(final.path)
    os.replace(tmp, final.path)
    fsync_dir(directory)
    return final


def prune_checkpoints(run: RunDir, keep: int) -> None:
    """Remove all but the newest ``keep`` checkpoints of ``run``."""
    for old in run.checkpoints()[:-keep] if keep > 0 else []:
        shutil.rmtree(old.path)


def recover_copy(target: Path) -> None:
    """Finish what a :func:`copy_as` killed between its two renames left: ``target`` missing and
    ``target.old`` present means the old copy is still the valid one."""
    old = target.with_name(target.name + ".old")
    if old.exists() and not target.exists():
        os.replace(old, target)
    elif old.exists():
        shutil.rmtree(old)


def copy_as(checkpoint: Path, target: Path) -> None:
    """Replace ``target`` by a copy of ``checkpoint`` (e.g. the best one), atomically enough:
    the old copy is removed only after the new one is complete, and a kill between the two
    renames is undone by :func:`recover_copy` (called here and when a run resumes)."""
    recover_copy(target)
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    shutil.copytree(checkpoint, tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def load_checkpoint(checkpoint: Checkpoint, model: Model, optimizer: torch.optim.Optimizer,
                    device: torch.device | str) -> tuple[dict[str, Any], Any]:
    """Restore model, optimizer and RNG from checkpoint ``path``; returns (trainer state, carried state).

    Every file is read without unpickling arbitrary objects; a damaged one gives a
    ValueError naming it.
    """
    from safetensors.torch import load_model

    path = checkpoint.path
    verify_manifest(path)
    try:
        missing, unexpected = load_model(model, str(path / Checkpoint.WEIGHTS), strict=False, device=str(device))
        tensors = load_file(str(path / Checkpoint.TENSORS))
    except (SafetensorError, OSError, RuntimeError) as e:
        raise ValueError(f"checkpoint {path} is damaged (safetensors): {e}") from None
    if missing or unexpected:
        raise ValueError(f"checkpoint {path} does not match the model: missing {sorted(missing)}, "
                         f"unexpected {sorted(unexpected)}")
    check_weights(path / Checkpoint.WEIGHTS, model)
    try:
        optimizer.load_state_dict(torch.load(path / Checkpoint.OPTIMIZER, map_location=device, weights_only=True))
        state = json.loads((path / Checkpoint.TRAINER).read_text())
    except Exception as e:  # noqa: BLE001 - any failure here means the checkpoint cannot be trusted
        raise ValueError(f"checkpoint {path} is damaged: {e}") from None
    torch.set_rng_state(tensors["rng.cpu"])
    if torch.cuda.is_available():
        states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
        if states:
            torch.cuda.set_rng_state_all(states)
    carried = nested.unflatten(tensors, state.pop("carried_structure"), device)
    return state, carried
