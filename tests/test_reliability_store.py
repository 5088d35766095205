"""Issue 11 item 4: a damaged store is never "up to date"; readers name the damage in one line."""

from __future__ import annotations

import json
import os

import h5py
import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.store import Store, check_split

cli = CliRunner()


@pytest.fixture(scope="module")
def toy_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy") / "toy"
    result = cli.invoke(app, ["datasets", "make-toy", str(root), "--clips", "12", "--seconds", "2", "--sr", "8000"])
    assert result.exit_code == 0, result.output
    return root


def preprocess(root, out):
    return cli.invoke(app, ["preprocess", "toy", "--root", str(root), "--out", str(out), "--sr", "8000",
                            "--workers", "1", "--json"])


def store_content(out):
    content = {}
    for split in ("train", "valid", "test"):
        with h5py.File(out / f"{split}.h5", "r") as f:
            content[split] = {name: f[name][:].tolist() for name in ("audio", "offsets", "labels")}
    return content


def damage_truncate(path):
    os.truncate(path, min(100_000, path.stat().st_size // 2))


def damage_zero_tail(path):
    size = path.stat().st_size
    with open(path, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\0" * (size - size // 2))


def damage_garbage(path):
    path.write_bytes(b"not hdf5 at all" * 100)


def damage_offsets(path):
    with h5py.File(path, "r+") as f:
        f["offsets"][-1] = f["offsets"][-1] + 5


def damage_delete(path):
    path.unlink()


@pytest.mark.parametrize("damage", [damage_truncate, damage_zero_tail, damage_garbage, damage_offsets,
                                    damage_delete])
def test_damaged_store_is_rebuilt_not_up_to_date(toy_root, tmp_path, damage):
    out = tmp_path / "store"
    assert preprocess(toy_root, out).exit_code == 0
    whole = store_content(out)
    damage(out / "train.h5")
    if damage is not damage_delete:
        with pytest.raises(DataError, match="is damaged"):
            Store(out)
    again = preprocess(toy_root, out)
    assert again.exit_code == 0, again.output
    summary = json.loads(again.stdout)
    assert not summary["up_to_date"] and summary["warnings"]
    assert store_content(out) == whole
    assert check_split(out / "train.h5") is None
    third = preprocess(toy_root, out)
    assert json.loads(third.stdout)["up_to_date"]


def test_damaged_store_under_train_is_one_line(toy_root, tmp_path):
    out = tmp_path / "store"
    assert preprocess(toy_root, out).exit_code == 0
    damage_truncate(out / "valid.h5")
    result = cli.invoke(app, ["datasets", "info", str(out)])
    assert result.exit_code == 1
    assert "valid.h5 is damaged" in result.output and "Traceback" not in result.output
