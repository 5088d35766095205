"""Output for machines and pipes: into a pipe or a file, tables are neither wrapped nor cut and paths stay
whole (cli/console.py OutputConsole); echoed recipe commands are one line each and paste back; `--help`
shows no `<bool>` beside flags."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import shlex
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from tests._docs import REPO
from tests.test_features_extract import fake_run

runner = CliRunner()
NO_COLUMNS = {"COLUMNS": None}  # as in a pipe: no width asked for
LONG = "a folder whose name is longer than a terminal line, to check that nothing splits it"


@pytest.fixture(scope="module")
def tagged(tmp_path_factory):
    root = tmp_path_factory.mktemp("pipes")
    run = fake_run(root / "run", "sample-3^4", label_names=["first label", "second label", "third label"])
    folder = root / LONG
    folder.mkdir()
    rng = np.random.default_rng(0)
    sf.write(folder / "song number one.wav", (0.2 * rng.standard_normal(2000)).astype(np.float32), 8000)
    return run, folder / "song number one.wav"


def _tag_command(run, song) -> list[str]:
    return [sys.executable, "-m", "samplecnn_cli", "tag", str(run), str(song), "-j", "0", "--precision", "fp32",
            "-b", "4"]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k != "COLUMNS"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["SAMPLECNN_INFERENCE_CACHE"] = "off"
    return env


def test_tag_into_a_pipe_from_a_terminal_keeps_the_path_whole(tagged):
    """`samplecnn tag ... | cat` typed in an 80-column terminal: stdin and stderr are the terminal."""
    run, song = tagged
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    try:
        done = subprocess.run(_tag_command(run, song), stdin=follower, stdout=subprocess.PIPE, stderr=follower,
                              env=_env(), timeout=300)
    finally:
        os.close(follower)
        os.close(leader)
    assert done.returncode == 0
    lines = done.stdout.decode().splitlines()
    assert sum(str(song) in line for line in lines) == 1, "\n".join(lines)
    assert "…" not in done.stdout.decode() and any("first label" in line for line in lines)


def test_tag_into_a_file_keeps_the_path_whole(tagged, tmp_path):
    run, song = tagged
    with open(tmp_path / "out.txt", "wb") as out:
        done = subprocess.run(_tag_command(run, song), stdout=out, stderr=subprocess.PIPE, env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr.decode()
    text = (tmp_path / "out.txt").read_text()
    assert sum(str(song) in line for line in text.splitlines()) == 1, text


def test_confusion_matrix_labels_are_not_cut(tmp_path):
    """`evaluate > file` printed `b…` for labels once 12 of them no longer fitted 80 columns."""
    from samplecnn_cli.data.store import SplitWriter

    labels = [f"instrument number {i:02d}" for i in range(12)]
    run = fake_run(tmp_path / "run", "sample-3^3", label_names=labels)
    rng = np.random.default_rng(1)
    for split in ("train", "valid", "test"):
        with SplitWriter(tmp_path / "store" / f"{split}.h5", sample_rate=8000, label_names=labels,
                         task="multiclass", dataset="wide", split=split) as writer:
            for i in range(12):
                audio = (rng.standard_normal(400) * 3000).astype(np.int16)
                writer.append(f"{split}-{i}", f"{i}.wav", audio, np.eye(12, dtype=bool)[i])
    result = runner.invoke(app, ["evaluate", str(run), "--data", str(tmp_path / "store")], env=NO_COLUMNS)
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    header = next(line for line in result.stdout.splitlines() if "instrument number 00" in line)
    assert all(name in header for name in labels)  # one header line holds every label whole


def test_recipe_echo_lines_are_one_line_and_paste_back(tmp_path):
    work = tmp_path / ("work folder " + "x" * 90)
    recipe = tmp_path / "r.toml"
    recipe.write_text('title = "echo"\n[[steps]]\nname = "info"\n'
                      'command = ["models", "info", "sample-3^3", "--num-outputs", "7"]\n'
                      'outputs = []\n')
    result = runner.invoke(app, ["recipe", "run", str(recipe), "--workdir", str(work)], env=NO_COLUMNS)
    assert result.exit_code == 0, result.output
    echoed = [line.strip() for line in result.stdout.splitlines() if line.strip().startswith("$ samplecnn ")]
    assert len(echoed) == 1
    assert shlex.split(echoed[0][2:]) == ["samplecnn", "models", "info", "sample-3^3", "--num-outputs", "7"]
    finished = next(line for line in result.stdout.splitlines() if line.startswith("Recipe r finished"))
    assert finished.endswith(f"Outputs in {work}")  # the folder whole, on the same line


def _command_paths(command=None, prefix=()):
    command = command or typer.main.get_command(app)
    yield prefix
    for name, sub in getattr(command, "commands", {}).items():
        yield from _command_paths(sub, (*prefix, name))


def test_help_shows_no_type_beside_flags():
    for path in _command_paths():
        result = runner.invoke(app, [*path, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, result.output
        assert "<bool>" not in result.stdout, " ".join(path)
    help_text = runner.invoke(app, ["tag", "--help"], env={"COLUMNS": "200"}).stdout
    assert "<int>" in help_text and "<path>" in help_text  # options that take values keep their type


def test_tag_json_is_plain_json_in_a_pipe(tagged):
    run, song = tagged
    result = runner.invoke(app, ["tag", str(run), str(song), "-j", "0", "--json", "--precision", "fp32"],
                           env={**NO_COLUMNS, "SAMPLECNN_INFERENCE_CACHE": "off"})
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)[0]["path"] == str(song)


def test_every_command_that_prints_a_table_has_json():
    """A command module that builds a Rich table (or prints table.md) offers --json on all its commands."""
    import inspect

    for path in _command_paths():
        command = typer.main.get_command(app)
        for name in path:
            command = command.commands[name]
        if hasattr(command, "commands") or command.callback is None:
            continue
        source = inspect.getsource(inspect.getmodule(command.callback))
        if "Table(" in source or "table.md" in source:
            assert any("--json" in p.opts for p in command.params), " ".join(path)
