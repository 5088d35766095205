"""`samplecnn demo`: the whole pipeline at smoke scale ends with the report's path; a rerun skips it all."""

from __future__ import annotations

import json
import shlex

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
    assert result.output.count("Run: ") == 2  # one line per trained model (sample, frame-mel), not two
    # each step's command echoed on one line that pastes back as the step's own arguments
    from samplecnn_cli.recipe import load_recipe, resolve_recipe

    steps = resolve_recipe(load_recipe("demo"), workdir=out, smoke=True).steps
    echoed = [line.strip()[2:] for line in result.output.splitlines() if line.strip().startswith("$ samplecnn ")]
    assert [shlex.split(line) for line in echoed] == [["samplecnn", *step.argv] for step in steps]
    runs = out / "runs"
    for run in ("sample", "frame-mel", "transfer"):
        metrics = json.loads((runs / run / "metrics.json").read_text())
        assert "roc_auc" in metrics  # the toy dataset is multi-label
    assert (runs / "sample" / "filters").is_dir()
    assert (out / "features").is_dir()

    again = runner.invoke(app, ["demo", "--smoke", "--out", str(out)])
    assert again.exit_code == 0, again.output[-3000:]
    assert "10 skipped" in again.output and "0 step(s) ran" in again.output
