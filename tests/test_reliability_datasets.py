"""Issue 11 item 2: audio listed outside the dataset root is reported as failed and never opened."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.data import audio
from samplecnn_cli.data.store import Store
from tests._audio_fixtures import write_audio

cli = CliRunner()


def _labels(root, rows):
    with open(root / "labels.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        writer.writeheader()
        writer.writerows(rows)


@pytest.fixture
def escaping_root(tmp_path):
    """A root with 6 good clips plus every way of naming a file outside it (all readable audio)."""
    outside = tmp_path / "outside"
    secret = write_audio(outside / "secret.wav", seconds=0.5, sr=8000)
    write_audio(outside / "dir" / "also.wav", seconds=0.5, sr=8000)
    root = tmp_path / "data" / "root"
    rows = []
    for i in range(6):
        write_audio(root / f"ok{i}.wav", seconds=0.5, sr=8000, freq=300 + 50 * i)
        rows.append({"path": f"ok{i}.wav", "label": f"c{i % 2}", "split": ("train", "valid", "test")[i % 3]})
    (root / "link.wav").symlink_to(secret)
    (root / "linked_dir").symlink_to(outside / "dir")
    escapes = ["../../../../../../../etc/passwd", "/etc/hostname", "../../outside/secret.wav", str(secret),
               "link.wav", "linked_dir/also.wav"]
    for k, path in enumerate(escapes):
        rows.append({"path": path, "label": "c0", "split": ("train", "valid", "test")[k % 3]})
    _labels(root, rows)
    return root, escapes


def test_paths_outside_the_root_are_failed_and_never_opened(escaping_root, tmp_path, monkeypatch):
    root, escapes = escaping_root
    opened = []
    real_decode = audio.decode
    monkeypatch.setattr(audio, "decode", lambda path, *a, **k: opened.append(str(path)) or real_decode(path, *a, **k))
    out = tmp_path / "store"
    result = cli.invoke(app, ["preprocess", "folder", "--root", str(root), "--out", str(out), "--sr", "8000",
                              "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    assert len(opened) == 6 and all("/root/ok" in p for p in opened)
    store = Store(out)
    stored = sorted(p for split in store for p in split.paths)
    assert stored == [f"ok{i}.wav" for i in range(6)]
    report = json.loads((out / "preprocess-report.json").read_text())
    failed = {entry["path"]: entry["reason"] for entry in report["failed"]}
    assert sorted(failed) == sorted(escapes)
    assert all("outside the dataset root" in reason for reason in failed.values())


def test_strict_run_with_escapes_fails(escaping_root, tmp_path):
    root, _ = escaping_root
    result = cli.invoke(app, ["preprocess", "folder", "--root", str(root), "--out", str(tmp_path / "s"),
                              "--sr", "8000", "--workers", "1", "--strict"])
    assert result.exit_code == 1
    assert "6 file(s) failed" in result.output


def test_same_file_listed_twice_names_both_rows(tmp_path):
    root = tmp_path / "root"
    for i in range(4):
        write_audio(root / f"a{i}.wav", seconds=0.5, sr=8000)
    rows = [{"path": f"a{i}.wav", "label": "x", "split": "train"} for i in range(4)]
    rows.append({"path": "sub/../a1.wav", "label": "x", "split": "test"})
    (root / "sub").mkdir()
    _labels(root, rows)
    result = cli.invoke(app, ["preprocess", "folder", "--root", str(root), "--out", str(tmp_path / "s"),
                              "--sr", "8000", "--workers", "1"])
    assert result.exit_code == 1
    assert "listed twice" in result.output and "'a1.wav' (train)" in result.output
    assert "'sub/../a1.wav' (test)" in result.output
    assert not (tmp_path / "s").exists()


def test_labels_without_any_label_fail_in_one_line(tmp_path):
    root = tmp_path / "root"
    write_audio(root / "a.wav", seconds=0.5, sr=8000)
    (root / "labels.csv").write_text("path,tags,split\na.wav,,train\n")
    result = cli.invoke(app, ["preprocess", "folder", "--root", str(root), "--out", str(tmp_path / "s"),
                              "--sr", "8000", "--workers", "1"])
    assert result.exit_code == 1 and "no label or tag at all" in result.output
    assert not (tmp_path / "s").exists()
