"""The wheel: one importable package, with the model catalogue and the recipes inside it as data."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                           "-w", str(out), str(REPO)], capture_output=True, text=True, timeout=300)
    if proc.returncode != 0 and "No module named 'hatchling'" in proc.stderr:
        pytest.skip("hatchling is not installed (pip install -e '.[dev]' brings it)")
    assert proc.returncode == 0, proc.stderr
    return next(out.glob("samplecnn-*.whl"))


def test_wheel_ships_registry_and_recipes(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "samplecnn_cli/_data/registry/models.toml" in names
    assert any(n.startswith("samplecnn_cli/_data/recipes/") and n.endswith(".toml") for n in names)
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"samplecnn_cli"}
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "samplecnn = samplecnn_cli.cli.app:run" in zipfile.ZipFile(wheel).read(entry_points).decode()
