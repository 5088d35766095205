"""`compare-features` reports progress per row (a bar on a terminal, nothing when piped)."""

from __future__ import annotations

import json

import h5py
import numpy as np
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.data.features_file import FORMAT, FORMAT_VERSION, Block, blocks_to_json
from samplecnn_cli.features.compare import compare_features
from samplecnn_cli.features.transfer import TransferOptions

LABELS = ["a", "b"]


def _feature_file(path, channels: int = 4):
    """A small feature file in `samplecnn extract`'s layout: one run, layers -3..-1, max and avg pooling."""
    blocks, start = [], 0
    for layer in (-3, -2, -1):
        for pooling in ("max", "avg"):
            blocks.append(Block(run="r", run_dir="runs/r", model="sample-3^3", input_samples=81, sample_rate=8000,
                                layer=layer, pooling=pooling, channels=channels, start=start, stop=start + channels))
            start += channels
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        for split, n in (("train", 24), ("valid", 8), ("test", 8)):
            labels = np.eye(2, dtype=bool)[np.arange(n) % 2]
            features = rng.normal(size=(n, start)).astype(np.float32) + labels[:, :1] * 2.0
            h5.create_dataset(f"{split}/features", data=features)
            h5.create_dataset(f"{split}/labels", data=labels)
            h5.create_dataset(f"{split}/clip_ids", data=np.asarray([f"{split}{i}" for i in range(n)], dtype="S"))
        h5.create_dataset("blocks", data=blocks_to_json(blocks))
        h5.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, label_names=json.dumps(LABELS),
                        task="multiclass", sample_rate=8000, data="stores/x", dataset="synthetic",
                        splits=json.dumps(["train", "valid", "test"]), precision="fp32", samplecnn_version="0")
    return path


def test_progress_is_called_per_row(tmp_path):
    calls = []
    table = compare_features([_feature_file(tmp_path / "f.h5")], tmp_path / "out", options=TransferOptions(hidden=8, epochs=1),
                             progress=lambda done, total, name: calls.append((done, total, name)))
    assert [row["features"] for row in table["rows"]] == ["layer -3", "layer -2", "layer -1", "last 3 layers"]
    assert calls == [(0, 4, "layer -3"), (1, 4, "layer -2"), (2, 4, "layer -1"), (3, 4, "last 3 layers"),
                     (4, 4, "done")]


def test_piped_output_has_no_bar_and_bad_numbers_are_usage_errors(tmp_path):
    features = _feature_file(tmp_path / "f.h5")
    result = CliRunner().invoke(app, ["compare-features", str(features), "--out", str(tmp_path / "o"),
                                      "--hidden", "8", "--epochs", "1"])
    assert result.exit_code == 0, result.output
    assert "compare-features:" not in result.output and "| layer -2 |" in result.stdout
    bad = CliRunner().invoke(app, ["compare-features", str(features), "--out", str(tmp_path / "o2"), "-b", "0"])
    assert bad.exit_code == 2 and bad.stderr.startswith("Error: Invalid value for '--batch-size'")
