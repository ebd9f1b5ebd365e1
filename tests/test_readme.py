"""The README's examples run as written: every ```python block is executed, and every
`rnnkit ...` command it shows parses with the real command line."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from rnnkit.cli import VERBS, build_parser
from rnnkit.configuration import apply_settings, parse_overrides

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCKS = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
#: `rnnkit ...` in backticks, a whole command (not a synopsis with | or [options])
COMMANDS = sorted({c for c in re.findall(r"`(rnnkit [^`]+)`", README.read_text()) if not re.search(r"[|\[\]…]", c)})


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_readme_python_block_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    exec(compile(BLOCKS[index], f"README.md python block {index + 1}", "exec"), {"__name__": "__readme__"})


def test_the_readme_has_examples_and_commands():
    assert len(BLOCKS) >= 4 and len(COMMANDS) >= 8


#: placeholders in the README's commands, and a value each stands for
PLACEHOLDERS = {"RUN": "runs/x", "NAME": "ptb", "FILE": "f.txt", "TASK": "charlm"}
#: commands the README shows to demonstrate an error
REFUSED = {"rnnkit train charlm --temperature 0"}


@pytest.mark.parametrize("command", COMMANDS)
def test_readme_command_parses(command):
    argv = [PLACEHOLDERS.get(a, a) for a in shlex.split(command)[1:]]
    if len(argv) == 1 and argv[0] in VERBS:
        return  # the name of a verb in prose, not a command
    if command in REFUSED:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args(argv)
        assert done.value.code == 2
        return
    if "--help" in argv or "--version" in argv:
        with pytest.raises(SystemExit) as done:
            build_parser().parse_args(argv)
        assert done.value.code == 0
        return
    parser = build_parser()
    if argv[0] == "train":  # key=value overrides are checked against the task's options
        args, overrides = parser.parse_known_args(argv)
        apply_settings(parser.task_parsers[args.task], parse_overrides(overrides))
    else:
        args = parser.parse_args(argv)
    assert getattr(args, "func", None) is not None, command
