"""`samplecnn bench`: throughput JSON from the training step and the prediction path."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from samplecnn_cli.main import app


@pytest.mark.parametrize("mode", ["train", "infer"])
def test_bench_json(mode):
    result = CliRunner().invoke(app, ["bench", mode, "sample-3^3", "--batch-size", "4", "--steps", "1",
                                      "--precision", "fp32", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["mode"] == mode and data["segments_per_second"] > 0 and data["batch_size"] == 4


def test_bench_fp16_on_cpu_exits_2():
    result = CliRunner().invoke(app, ["bench", "train", "sample-3^3", "--precision", "fp16", "--device", "cpu"])
    assert result.exit_code == 2
