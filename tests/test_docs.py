"""Every command has help and is shown in the README (the user's manual)."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from da2k.cli import main

README = (Path(__file__).parent.parent / "README.md").read_text()


def _commands(group: click.Group, prefix: tuple[str, ...] = ()):
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield path, command
        if isinstance(command, click.Group):
            yield from _commands(command, path)


COMMANDS = list(_commands(main))


@pytest.mark.parametrize("path, command", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_command_has_help_and_is_documented(path, command):
    assert (command.help or "").strip(), f"da2k {' '.join(path)} has no help text"
    result = CliRunner().invoke(main, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert f"da2k {' '.join(path)}" in README, f"README never shows `da2k {' '.join(path)}`"


def test_readme_starts_with_the_two_set_up_commands_and_ci_runs_the_test_one():
    setup = README[: README.index("## Models")]
    test_command = next(line for line in setup.splitlines() if "pytest" in line)
    assert "pip install torch==2.13.0" in test_command
    assert test_command.strip() in (Path(__file__).parent.parent / ".ci" / "run").read_text()
