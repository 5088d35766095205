"""`samplecnn demo`: the whole pipeline at smoke scale ends with the report's path; a rerun skips it all."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app

runner = CliRunner()


@pytest.mark.slow
def test_demo_smoke_prints_report_and_rerun_skips(tmp_path):
    out = tmp_path / "demo"
    result = runner.invoke(app, ["demo", "--smoke", "--out", str(out)])
    assert result.exit_code == 0, result.output[-3000:]
    report = out / "report" / "report.html"
    assert report.is_file()
    last = result.output.strip().splitlines()[-1]
    assert last.startswith("Report: ") and last.endswith("report.html")
    runs = out / "runs"
    for run in ("sample", "frame-mel", "transfer"):
        metrics = json.loads((runs / run / "metrics.json").read_text())
        assert "roc_auc" in metrics  # the toy dataset is multi-label
    assert (runs / "sample" / "filters").is_dir()
    assert (out / "features").is_dir()

    again = runner.invoke(app, ["demo", "--smoke", "--out", str(out)])
    assert again.exit_code == 0, again.output[-3000:]
    assert "10 skipped" in again.output and "0 step(s) ran" in again.output
