"""The root CLI and `samplecnn models` through Typer's CliRunner: output and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from typer.testing import CliRunner

from samplecnn_cli import __version__
from samplecnn_cli.cli.app import app

runner = CliRunner()


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"samplecnn {__version__}"


def test_help_lists_command_groups():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "models" in result.stdout


def test_models_list_json():
    result = runner.invoke(app, ["models", "list", "sample-3-*", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    names = {row["name"] for row in rows}
    assert "sample-3-3-3-3-2-2-4-4-2-2" in names and "frame-mel-729" not in names
    eight_k = next(row for row in rows if row["name"] == "sample-3-3-3-3-2-2-4-4-2-2")
    assert eight_k["aliases"] == ["sample-8k"] and eight_k["sample_rate"] == 8000
    assert eight_k["paper"]["mtat_auc"] == 0.9031


def test_models_list_table_shows_paper_auc():
    result = runner.invoke(app, ["models", "list", "frame-raw-*"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "frame-raw-243x81" in result.stdout and "0.8906" in result.stdout


def test_models_info_json_shape():
    result = runner.invoke(app, ["models", "info", "sample-3pow9", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.stdout)
    assert info["name"] == "sample-3^9" and info["family"] == "sample"
    assert info["input_samples"] == 59049 and isinstance(info["input_samples"], int)
    assert info["params"] == 2_460_466
    assert [layer["params"] for layer in info["layers"]][:2] == [512, 49_280]


def test_models_info_table():
    result = runner.invoke(app, ["models", "info", "sample-8k"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "20,736" in result.stdout and "2,060,850" in result.stdout


def test_unknown_model_is_one_line_usage_error():
    result = runner.invoke(app, ["models", "info", "sample-3^19"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "too large" in result.output
    assert "sample-3^9" in result.output  # the suggestion


def test_impossible_frame_config_exit_2():
    result = runner.invoke(app, ["models", "info", "frame-mel-81x243"])
    assert result.exit_code == 2
    assert "shorter than hop" in result.output


def test_python_dash_m_and_errors_on_stderr():
    proc = subprocess.run([sys.executable, "-m", "samplecnn_cli", "models", "info", "nope-1"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "Error" in proc.stderr and proc.stdout == ""


def test_help_does_not_import_torch():
    code = "import sys; from samplecnn_cli.cli.app import app; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.stdout.strip() == "False", proc.stderr


def _table_words(text: str) -> set[str]:
    return set(text.replace("│", " ").split())


def test_models_list_is_readable_at_80_columns():
    from samplecnn_cli.models.registry import list_models, model_info

    result = runner.invoke(app, ["models", "list"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    words = _table_words(result.stdout)
    for name in list_models():
        info = model_info(name)
        assert name in words  # whole, on one line
        if info["paper"] and info["paper"]["mtat_auc"]:
            assert f"{info['paper']['mtat_auc']:.4f}" in words
    assert {"sample-8k", "sample-22k"} <= words  # the rate aliases


def test_models_info_num_outputs_has_no_o_short_form():
    result = runner.invoke(app, ["models", "info", "sample-3^3", "--num-outputs", "7"], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "dense 7 (logits)" in result.stdout
    clash = runner.invoke(app, ["models", "info", "sample-3^3", "-o", "7"])
    assert clash.exit_code == 2 and "No such option: -o" in clash.stderr
