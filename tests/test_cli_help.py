"""Every command's --help at 80 columns, and one error style for every kind of error."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app

runner = CliRunner()
WIDTH = {"COLUMNS": "80"}  # not TERMINAL_WIDTH: typer reads that once, at import, for the whole session


def _command_paths(command=None, prefix=()):
    command = command or typer.main.get_command(app)
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


COMMANDS = list(_command_paths())


def test_the_walk_reaches_subcommands():
    assert ("models", "list") in COMMANDS and ("recipe", "run") in COMMANDS and ("evaluate",) in COMMANDS


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "samplecnn")
def test_help_fits_80_columns_without_cut_cells(path):
    result = runner.invoke(app, [*path, "--help"], env=WIDTH)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert "Usage:" in result.stdout
    assert max(len(line.rstrip()) for line in lines) <= 80
    assert "…" not in result.stdout, "\n".join(line for line in lines if "…" in line)


@pytest.mark.parametrize("args, message", [
    (["visualize-filters", "--steps", "0"], "Error: Invalid value for '--steps'"),
    (["train", "sample-3^3", "--no-such-option"], "Error: No such option: --no-such-option"),
    (["models", "info"], "Error: Missing argument"),
    (["no-such-command"], "Error: No such command 'no-such-command'"),
])
def test_usage_errors_are_one_error_line_and_a_hint(args, message):
    result = runner.invoke(app, args, env=WIDTH)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith(message) and lines[1].startswith("Hint: run 'samplecnn")
    assert "╭" not in result.stderr and "Usage:" not in result.stderr and result.stdout == ""


def test_library_errors_use_the_same_style(tmp_path):
    result = runner.invoke(app, ["evaluate", str(tmp_path / "missing")], env=WIDTH)
    assert result.exit_code == 1
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and lines[1].startswith("Hint: ")


def _squash(text: str) -> str:
    return " ".join(text.replace("│", " ").split())


@pytest.mark.parametrize("path", [p for p in COMMANDS if p], ids=" ".join)
def test_option_help_is_shown_whole(path):
    """Rich markup must not eat bracketed text such as `[datasets]` in an option's help."""
    command = typer.main.get_command(app)
    for name in path:
        command = command.commands[name]
    shown = _squash(runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"}).stdout)
    for param in command.params:
        if getattr(param, "help", None) and not getattr(param, "hidden", False):
            assert _squash(param.help.replace("\\[", "[")) in shown, param.help
