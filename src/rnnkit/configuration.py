"""A training run's settings from a file and ``key=value`` overrides, checked as the command line is.

    rnnkit train TASK --config FILE [key=value ...] [--option value ...]

Precedence, lowest first: the task's defaults, the file, the ``key=value`` overrides, the
``--options`` written out (giving one setting both as ``key=value`` and as ``--option`` with
different values is an error). The file is JSON or YAML (``.yaml``/``.yml``): a mapping of
option names (``hidden_size`` or ``hidden-size``) to values, or a run's own ``task.json``
(``{"task": ..., "args": {...}}``), or a run directory or its config.json (read as its
task.json), so a run's settings fed back start the same run again. Every value goes through the option's own type and choices,
so a file's mistake gets the command line's message, naming the file and the key.
``rnnkit train TASK --print-config`` prints the settings a run would start with, as JSON (which
is also YAML), and trains nothing.
"""

from __future__ import annotations

import argparse
import difflib
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["read_config", "parse_overrides", "apply_settings", "printable"]

#: keys of a run's task.json that are not settings of a new run (they say where and how it ran)
NOT_SETTINGS = frozenset({"task", "verb", "func", "resume", "allow_changes", "config", "print_config"})
_OVERRIDE = re.compile(r"^([A-Za-z_][A-Za-z0-9_.-]*)=(.*)$", re.S)


def read_config(path: str | Path, task: str) -> dict[str, Any]:
    """The settings in ``path`` (see the module docstring) for the task named ``task``."""
    from rnnkit.tasks.common import checked_task

    path = Path(path)
    if path.is_dir():
        path = path / "task.json"
    if not path.is_file():
        raise FileNotFoundError(f"--config {path}: no such file")
    if path.suffix in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError:
            raise ImportError(f"--config {path}: reading YAML needs PyYAML (pip install pyyaml), or give "
                              "the settings as JSON") from None
        try:
            values = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError) as e:
            raise ValueError(f"--config {path} is not valid YAML ({' '.join(str(e).split())})") from None
    else:
        try:
            values = json.loads(path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as e:
            raise ValueError(f"--config {path} is not valid JSON ({e}); YAML files end in .yaml or .yml") from None
    if not isinstance(values, dict):
        raise ValueError(f"--config {path}: expected a mapping of option names to values. "
                         f"Received: {type(values).__name__}")
    if {"model", "train"} <= set(values) and (path.parent / "task.json").is_file():
        return read_config(path.parent, task)  # a run's config.json (the Trainer's): its task.json has the options
    if isinstance(values.get("args"), dict) and isinstance(values.get("task"), str):
        saved = checked_task(values, path)
        if saved["task"] != task:
            raise ValueError(f"--config {path}: those are the settings of a {saved['task']} run, not {task}")
        values = saved["args"]
    return {k: v for k, v in values.items() if k not in NOT_SETTINGS}


def parse_overrides(tokens: Sequence[str]) -> dict[str, str]:
    """``key=value`` tokens as a mapping; any other token is an error naming it."""
    out: dict[str, str] = {}
    for token in tokens:
        match = _OVERRIDE.match(token)
        if match is None:
            raise ValueError(f"unrecognised argument {token!r}: not an option of this task (see its --help), "
                             "and overrides are written key=value")
        out[match.group(1)] = match.group(2)
    return out


def _actions(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {a.dest: a for a in parser._actions  # argparse offers no public list of a parser's options
            if a.option_strings and a.dest not in NOT_SETTINGS and a.dest != "help"}


def _boolean(text: Any, where: str) -> bool:
    if isinstance(text, bool):
        return text
    if isinstance(text, str) and text.lower() in ("true", "yes", "1", "false", "no", "0"):
        return text.lower() in ("true", "yes", "1")
    raise ValueError(f"{where}: expected true or false. Received: {text!r}")


def _convert(action: argparse.Action, value: Any, where: str) -> Any:
    """``value`` as the command line would have made it for ``action`` (a string from key=value,
    or a JSON/YAML value), or a ValueError that says ``where`` it came from."""
    if isinstance(action, (argparse._StoreTrueAction, argparse._StoreFalseAction, argparse.BooleanOptionalAction)):
        return _boolean(value, where)
    if value is None:
        return None
    many = action.nargs in ("+", "*") or isinstance(action.nargs, int)
    if many:
        items = value.split() if isinstance(value, str) else value
        if not isinstance(items, list):
            raise ValueError(f"{where}: expected a list. Received: {value!r}")
        return [_convert_one(action, item, where) for item in items]
    return _convert_one(action, value, where)


def _convert_one(action: argparse.Action, value: Any, where: str) -> Any:
    if isinstance(value, (dict, list)) or (isinstance(value, bool) and action.type is not None):
        raise ValueError(f"{where}: expected one value. Received: {value!r}")
    text = value if isinstance(value, str) else json.dumps(value)
    try:
        converted = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as e:
        raise ValueError(f"{where}: {e}") from None
    if action.choices is not None and converted not in action.choices:
        raise ValueError(f"{where}: expected one of {', '.join(map(str, action.choices))}. Received: {value!r}")
    return converted


def apply_settings(parser: argparse.ArgumentParser, values: dict[str, Any], source: str | None = None
                   ) -> dict[str, Any]:
    """Check ``values`` against ``parser``'s options and make them its defaults (so options
    written out still win); returns them converted. Keys may use - or _; an unknown key is an
    error naming ``source`` (None: key=value overrides) and the closest option."""
    actions = _actions(parser)
    converted = {}
    for key, value in values.items():
        dest = key.replace("-", "_")
        if dest not in actions:
            close = difflib.get_close_matches(dest, list(actions), n=1)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise ValueError(f"{source or f'{key}={value}'}: {key} is not an option of this task{hint}")
        converted[dest] = _convert(actions[dest], value, f"{source}: {key}" if source else f"{key}={value}")
    parser.set_defaults(**converted)
    return converted


def printable(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """The settings of ``args`` that ``parser`` has options for, as JSON (also valid YAML)."""
    return json.dumps({dest: getattr(args, dest) for dest in _actions(parser) if hasattr(args, dest)}, indent=2)
