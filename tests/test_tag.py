"""`samplecnn tag`: files and folders, resampling, unreadable files reported, JSON."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from tests._store_fixtures import train_tiny_run


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("tag"), task="multiclass", epochs=1)


def test_tag_files_and_folders_json_with_a_bad_file(run, tmp_path):
    t = np.arange(16000) / 16000
    sf.write(tmp_path / "a.wav", 0.3 * np.sin(2 * np.pi * 1000 * t), 16000)  # resampled to 8 kHz
    (tmp_path / "sub").mkdir()
    sf.write(tmp_path / "sub" / "b.flac", 0.3 * np.sin(2 * np.pi * 2000 * t[:4000]), 8000)
    (tmp_path / "sub" / "broken.wav").write_bytes(b"RIFF not really audio")
    (tmp_path / "sub" / "notes.txt").write_text("skipped: not audio")
    result = CliRunner().invoke(app, ["tag", str(run), str(tmp_path / "a.wav"), str(tmp_path / "sub"),
                                      "--top-k", "2", "--json", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    items = {r["path"].rsplit("/", 1)[-1]: r for r in json.loads(result.stdout)}
    assert set(items) == {"a.wav", "b.flac", "broken.wav"}
    assert "error" in items["broken.wav"]
    a = items["a.wav"]
    assert a["seconds"] == pytest.approx(1.0, abs=0.01) and a["segments"] == 8000 // 81
    assert len(a["top"]) == 2 and a["top"][0]["score"] >= a["top"][1]["score"]
    assert sum(a["scores"].values()) == pytest.approx(1.0, rel=1e-4)
    assert a["top"][0]["label"] == max(a["scores"], key=a["scores"].get)


def test_tag_table_and_all_unreadable_exit_1(run, tmp_path):
    sf.write(tmp_path / "a.wav", np.zeros(8000), 8000)
    result = CliRunner().invoke(app, ["tag", str(run), str(tmp_path / "a.wav"), "--device", "cpu"])
    assert result.exit_code == 0 and "a.wav" in result.output and "tone" in result.output
    result = CliRunner().invoke(app, ["tag", str(run), str(tmp_path / "missing.wav")])
    assert result.exit_code == 1 and "missing.wav" in result.output
