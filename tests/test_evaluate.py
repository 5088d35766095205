"""Song-level prediction and the paper's metrics."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from sklearn.metrics import average_precision_score, roc_auc_score

from samplecnn_cli.core.metrics import compute_metrics
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.data.store import Store
from samplecnn_cli.inference.evaluate import evaluate_run, predict_split
from samplecnn_cli.inference.predictor import Predictor
from samplecnn_cli.models.registry import create_model
from tests._store_fixtures import make_store, train_tiny_run


def test_multilabel_metrics_are_macro_averages_and_skip_one_class_labels():
    rng = np.random.default_rng(0)
    targets = rng.random((40, 4)) < 0.4
    targets[:, 3] = False  # no positive: no AUC
    scores = rng.random((40, 4))
    m = compute_metrics(scores, targets, "multilabel", ["a", "b", "c", "d"])
    assert m["skipped_labels"] == ["d"] and set(m["per_label"]) == {"a", "b", "c"}
    assert m["roc_auc"] == pytest.approx(np.mean([roc_auc_score(targets[:, k], scores[:, k]) for k in range(3)]))
    assert m["pr_auc"] == pytest.approx(np.mean([average_precision_score(targets[:, k], scores[:, k])
                                                 for k in range(3)]))


def test_multiclass_metrics_accuracy_f1_confusion():
    targets = np.eye(3, dtype=bool)[[0, 0, 1, 2, 2]]
    scores = np.eye(3)[[0, 1, 1, 2, 0]] * 0.9 + 0.05
    m = compute_metrics(scores, targets, "multiclass", ["x", "y", "z"])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 1, 0], [1, 0, 1]]
    assert m["macro_f1"] == pytest.approx(np.mean([0.5, 2 / 3, 2 / 3]))


@pytest.mark.parametrize("task", ["multilabel", "multiclass"])
def test_song_level_output_is_the_mean_over_all_segments(tmp_path, task):
    split = Store(make_store(tmp_path, task=task, clips=(2, 2, 5), seconds=0.05)).split("test")
    torch.manual_seed(0)
    model = create_model("sample-3^3", num_outputs=3, sample_rate=8000).eval()
    predictor = Predictor.for_model(model, Runtime.cpu(), task=task, batch_size=7)
    scores, targets = predict_split(predictor, split)  # batches cross clip boundaries
    assert targets.dtype == bool and np.array_equal(targets, split.labels)
    for i in range(len(split)):
        audio = split.read_float(i)
        segs = torch.from_numpy(audio[: len(audio) // 81 * 81].reshape(-1, 81))
        with torch.no_grad():
            logits = model(segs)
        expected = (torch.sigmoid(logits) if task == "multilabel" else torch.softmax(logits, 1)).mean(0)
        np.testing.assert_allclose(scores[i], expected.numpy(), rtol=1e-4, atol=1e-6)


def test_evaluate_run_writes_metrics_and_predictions(tmp_path):
    run = train_tiny_run(tmp_path, task="multiclass", epochs=1)
    metrics = evaluate_run(run, "test")
    assert json.loads((run / "metrics.json").read_text())["accuracy"] == metrics["accuracy"]
    saved = np.load(run / "predictions-test.npz")
    assert saved["scores"].shape == (4, 3) and saved["targets"].dtype == bool
    np.testing.assert_allclose(saved["scores"].sum(axis=1), 1.0, rtol=1e-5)  # softmax means
    valid = evaluate_run(run, "valid")
    assert (run / "metrics-valid.json").is_file() and valid["split"] == "valid"


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("tiny"), task="multiclass", epochs=1)


def test_evaluate_reports_progress_up_to_every_clip(tiny_run):
    run = tiny_run
    calls = []
    evaluate_run(run, "test", batch_size=1, progress=lambda done, total: calls.append((done, total)))
    assert calls and calls[-1] == (4, 4)  # 4 test clips
    assert [done for done, _ in calls] == sorted(done for done, _ in calls)


def test_evaluate_command_shows_a_bar_on_a_terminal_and_stays_quiet_when_piped(tiny_run, monkeypatch):
    import io

    from rich.console import Console
    from typer.testing import CliRunner

    from samplecnn_cli.cli import console as cli
    from samplecnn_cli.cli.app import app

    run = tiny_run
    piped = CliRunner().invoke(app, ["evaluate", str(run), "--device", "cpu"])
    assert piped.exit_code == 0, piped.output
    assert "evaluate test" not in piped.output and "accuracy" in piped.stdout

    terminal = io.StringIO()  # the same command with stderr on a terminal
    monkeypatch.setattr(cli, "err_console", Console(file=terminal, force_terminal=True, width=80))
    shown = CliRunner().invoke(app, ["evaluate", str(run), "--device", "cpu", "--batch-size", "1"])
    assert shown.exit_code == 0, shown.output
    assert "evaluate test" in terminal.getvalue() and "4/4" in terminal.getvalue()


def test_evaluate_zero_batch_size_is_a_one_line_usage_error(tmp_path):
    from typer.testing import CliRunner

    from samplecnn_cli.cli.app import app

    result = CliRunner().invoke(app, ["evaluate", str(tmp_path), "-b", "0"])
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("Error: Invalid value for '--batch-size'") and lines[1].startswith("Hint:")
    assert len(lines) == 2 and "╭" not in result.stderr


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory):
    """A run trained under bf16 autocast (emulated where the CPU has no bf16 units)."""
    return train_tiny_run(tmp_path_factory.mktemp("bf16"), task="multiclass", epochs=2, precision="bf16")


def test_evaluate_runs_a_run_as_it_trained_and_reproduces_its_validation(bf16_run, monkeypatch):
    from samplecnn_cli.inference import evaluate as evaluation

    monkeypatch.setattr(evaluation, "native_bf16", lambda device: True)
    metrics = evaluate_run(bf16_run, "valid")
    assert metrics["inference"] == {"precision": "bf16", "as_trained": True, "forward": "eager"}
    summary = json.loads((bf16_run / "summary.json").read_text())
    rows = [json.loads(line) for line in (bf16_run / "metrics.jsonl").read_text().splitlines() if line.strip()]
    chosen = next(r for r in rows if r["epoch"] == summary["best_epoch"])
    assert metrics["accuracy"] == pytest.approx(chosen["valid_accuracy"], abs=1e-9)  # what validation saw

    as_trained = np.load(bf16_run / "predictions-valid.npz")["scores"]
    folded = evaluate_run(bf16_run, "valid", Runtime.cpu("fp32"))
    assert folded["inference"]["precision"] == "fp32" and not folded["inference"]["as_trained"]
    assert folded["inference"]["forward"].startswith("batch norm folded")
    assert not np.allclose(np.load(bf16_run / "predictions-valid.npz")["scores"], as_trained, rtol=0, atol=1e-6)


def test_evaluate_falls_back_to_fp32_where_the_runs_precision_is_not_native(bf16_run, monkeypatch):
    from typer.testing import CliRunner

    from samplecnn_cli.cli.app import app
    from samplecnn_cli.inference import evaluate as evaluation

    monkeypatch.setattr(evaluation, "native_bf16", lambda device: False)
    result = CliRunner().invoke(app, ["evaluate", str(bf16_run), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "clips, fp32, batch norm folded (" in result.stdout and "trained in bf16" in result.stdout
    saved = json.loads((bf16_run / "metrics.json").read_text())
    assert saved["inference"]["precision"] == "fp32" and not saved["inference"]["as_trained"]
    assert "not run natively" in saved["inference"]["note"]


def test_an_fp32_run_is_evaluated_folded_as_it_trained(tiny_run):
    metrics = evaluate_run(tiny_run, "test")
    assert metrics["inference"]["precision"] == "fp32" and metrics["inference"]["as_trained"]
    assert metrics["inference"]["forward"].startswith("batch norm folded")
    assert evaluate_run(tiny_run, "test", Runtime.cpu("fp32"))["accuracy"] == metrics["accuracy"]
