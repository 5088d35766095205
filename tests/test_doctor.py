"""`samplecnn doctor`: one table (or JSON) of what a long job needs; exit 1 with one Error line per broken piece."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from samplecnn_cli.bench import doctor
from samplecnn_cli.cli.app import app


@pytest.fixture(scope="module")
def healthy():
    result = CliRunner().invoke(app, ["doctor", "--json"])
    return result


def test_doctor_json_on_this_machine(healthy):
    assert healthy.exit_code == 0, healthy.output
    report = json.loads(healthy.stdout)
    by_name = {check["name"]: check for check in report["checks"]}
    assert report["ok"] is True
    assert by_name["torch"]["status"] == "ok" and "loads" in by_name["torch"]["detail"]
    for name in ("cpu", "cpu kernels", "precision auto", "cuda", "ffmpeg", "inference cache", "workspace"):
        assert name in by_name
    assert by_name["precision auto"]["detail"].startswith("training ")


def test_broken_package_is_one_error_line_and_exit_1(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "PACKAGES", {
        "h5py": ("raise ImportError('libhdf5.so: undefined symbol: H5Fopen')", True),
        "torchaudio": ("raise OSError('Could not load this library')", False),
        "torch": ("import torch", True),
    })
    monkeypatch.setattr(doctor, "_version", lambda name: "9.9")
    monkeypatch.setenv("SAMPLECNN_INFERENCE_CACHE", str(tmp_path / "cache.json"))
    monkeypatch.setenv("COLUMNS", "80")  # an 80-column terminal (into a pipe, tables take their full width)
    result = CliRunner().invoke(app, ["doctor"], terminal_width=80)
    assert result.exit_code == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: h5py: 9.9 does not load with torch 9.9: ImportError: libhdf5.so: undefined symbol: "
                      "H5Fopen"]
    assert "torchaudio" in result.stdout and "warn" in result.stdout  # optional: a warning, not an error
    assert max(len(line) for line in result.stdout.splitlines()) <= 80


def test_unwritable_cache_is_an_error(monkeypatch):
    monkeypatch.setattr(doctor, "package_checks", lambda: [])
    monkeypatch.setattr(doctor, "cpu_checks", lambda: [])
    monkeypatch.setenv("SAMPLECNN_INFERENCE_CACHE", "/proc/samplecnn-no-such/cache.json")
    result = CliRunner().invoke(app, ["doctor", "--json"])
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    cache = next(c for c in report["checks"] if c["name"] == "inference cache")
    assert report["ok"] is False and cache["status"] == "error" and "not writable" in cache["detail"]


def test_missing_dataset_root_is_a_warning(monkeypatch, tmp_path):
    (tmp_path / "samplecnn.toml").write_text('[datasets.mtat]\nroot = "nowhere"\n')
    check = doctor.workspace_check(tmp_path)
    assert check.status == "warn" and "mtat" in check.detail
