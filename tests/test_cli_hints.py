"""Hints print commands that work as printed (issue 14)."""

from __future__ import annotations

import re
import shlex

from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from tests._audio_fixtures import write_audio

runner = CliRunner()


def test_missing_store_hint_is_a_working_preprocess_command(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "raw"
    for label, freq in (("low", 200.0), ("high", 2000.0)):
        for i in range(10):
            write_audio(root / label / f"{label}{i}.wav", seconds=0.2, sr=8000, freq=freq + i)
    result = runner.invoke(app, ["train", "sample-3^3", "--dataset", "folder", "--epochs", "1"])
    assert result.exit_code == 1
    hint = result.stderr.splitlines()[-1]
    assert hint.startswith("Hint: run `samplecnn preprocess folder --root DIR")
    assert "[datasets.folder] root" in hint  # the TOML table is printed, not eaten as markup
    command = re.search(r"`samplecnn ([^`]+)`", hint).group(1).replace("DIR", str(root))
    done = runner.invoke(app, shlex.split(command))
    assert done.exit_code == 0, done.output
    from samplecnn_cli.runs.workspace import Workspace

    assert Workspace.find().find_store("folder", 22050).is_dir()


def test_msd_hint_names_root_and_paths_csv(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "sample-3^9", "--dataset", "msd"])
    assert result.exit_code == 1
    assert "`samplecnn preprocess msd --root DIR --paths-csv TRACKS.csv --sr 22050`" in result.stderr
