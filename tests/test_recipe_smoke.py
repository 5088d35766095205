"""CI smoke run: every bundled recipe, end to end at toy scale (--smoke), then a rerun that skips it all.

Select with `pytest tests/test_recipe_smoke.py` (or `-m slow`); the demo recipe is covered by
tests/test_demo.py through `samplecnn demo`.
"""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.recipe import bundled_recipes

runner = CliRunner()
RECIPES = [r.name for r in bundled_recipes() if r.name != "demo"]


def test_every_paper_experiment_has_a_recipe():
    assert set(RECIPES) >= {"table2-configurations", "table4-multiscale", "table5-downsampling", "table6-transfer",
                            "figures"}


@pytest.mark.slow
@pytest.mark.parametrize("name", RECIPES)
def test_recipe_smoke(tmp_path, name):
    work = tmp_path / name
    result = runner.invoke(app, ["recipe", "run", name, "--smoke", "--workdir", str(work)])
    assert result.exit_code == 0, result.output[-3000:]
    summary = json.loads((work / "recipe-summary.json").read_text())
    assert summary["failed"] == 0 and summary["skipped"] == 0 and summary["ran"] == len(summary["steps"])
    report = work / "report" / "report.html"
    assert report.is_file() and "<table" in report.read_text()

    again = runner.invoke(app, ["recipe", "run", name, "--smoke", "--workdir", str(work), "--json"])
    assert again.exit_code == 0, again.output[-3000:]
    rerun = json.loads(again.output)
    assert rerun["ran"] == 0 and rerun["skipped"] == summary["ran"]
