"""Tables a newcomer reads first, at a fixed 80-column terminal: nothing cut to `…`, no word split."""

from __future__ import annotations

from typer.testing import CliRunner

from samplecnn_cli.cli.app import app

runner = CliRunner()


def test_recipe_list_is_readable_at_80_columns():
    from samplecnn_cli.recipe import bundled_recipes

    result = runner.invoke(app, ["recipe", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    shown = set(result.stdout.split())
    for recipe in bundled_recipes():
        summary = recipe.summary()
        assert summary["name"] in shown
        # every word of the title and cost is on one line: wrapping happened at spaces only
        for word in f"{summary['title']} {summary['cost']}".split():
            assert word in shown, word
