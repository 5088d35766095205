"""Pipeline: two trained tiny models -> extract -> transfer -> metrics; evaluate and compare-features on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import DataError, RunError, UsageError
from samplecnn_cli.features.compare import feature_choices, paper_value
from samplecnn_cli.features.extract import extract_features
from samplecnn_cli.features.transfer import TransferOptions, predict_transfer_split, train_transfer
from samplecnn_cli.runs import folder as runs
from tests._store_fixtures import make_store
from tests.test_features_extract import fake_run


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models on a busy 2-core machine
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory) -> dict:
    """Train sample-2^5 and sample-3^3 for one epoch with the real trainer, then extract both (multi-scale)."""
    from samplecnn_cli.training.trainer import train

    root = tmp_path_factory.mktemp("pipeline")
    store = make_store(root / "store", task="multiclass", clips=(9, 3, 3), seconds=0.25)
    before = torch.get_num_threads()
    with pytest.MonkeyPatch.context():
        torch.set_num_threads(1)  # one thread is far faster for these tiny models (train leaves threads alone)
        run_dirs = [train(model=name, data=store, out=root / key, epochs=1, batch_size=32, precision="fp32",
                          device="cpu", workers=0)
                    for name, key in (("sample-2^5", "small"), ("sample-3^3", "large"))]
        torch.set_num_threads(before)
    features = root / "features.h5"
    result = CliRunner().invoke(app, ["extract", *map(str, run_dirs), "--data", str(store), "--out", str(features),
                                      "-b", "64"])
    assert result.exit_code == 0, result.output
    return {"root": root, "store": store, "runs": run_dirs, "features": features}


def test_pipeline_extract_transfer_metrics_and_evaluate(pipeline):
    out = pipeline["root"] / "transfer"
    runner = CliRunner()
    result = runner.invoke(app, ["transfer", str(pipeline["features"]), "--out", str(out), "--hidden", "64",
                                 "--epochs", "40", "--patience", "40", "--lr", "1e-3", "-b", "4", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["columns"] == 2 * 3 * 2 * 512  # 2 runs x 3 layers x (max, avg) x 512 channels
    assert summary["train_clips"] == 9 and summary["valid_clips"] == 3
    config = runs.read_config(out)
    assert config["kind"] == "transfer" and config["task"] == "multiclass"
    assert len(config["features"]["blocks"]) == 12
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["split"] == "test" and metrics["clips"] == 3 and 0.0 <= metrics["accuracy"] <= 1.0
    lines = (out / "metrics.jsonl").read_text().splitlines()
    assert 1 <= len(lines) <= 40 and all("valid_loss" in json.loads(line) for line in lines)
    # `samplecnn evaluate` works on a transfer run (through predict_transfer_split)
    result = runner.invoke(app, ["evaluate", str(out), "--split", "train", "--json"])
    assert result.exit_code == 0, result.output
    train_metrics = json.loads(result.stdout)
    # the MLP really learns the tone classes from the features (training clips)
    assert train_metrics["accuracy"] >= 0.8
    loaded = runs.load_run(out)
    scores, targets = predict_transfer_split(loaded, "test")
    assert scores.shape == targets.shape == (3, 3) and targets.dtype == bool
    np.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)  # softmax for single-label


def test_transfer_selection_by_run_and_layer(pipeline):
    out = pipeline["root"] / "only-small-layer-1"
    summary = train_transfer([pipeline["features"]], out, TransferOptions(hidden=16, epochs=2), runs=("sample-2^5",), layers=(-1,), poolings=("avg",))
    assert summary["columns"] == 512
    blocks = runs.read_config(out)["features"]["blocks"]
    assert [(b["run"], b["layer"], b["pooling"]) for b in blocks] == [("small", -1, "avg")]
    with pytest.raises(UsageError, match="no run nope"):
        train_transfer([pipeline["features"]], pipeline["root"] / "x", TransferOptions(hidden=8, epochs=1), runs=("nope",))


def test_compare_features_writes_the_table(pipeline):
    out = pipeline["root"] / "compare"
    result = CliRunner().invoke(app, ["compare-features", str(pipeline["features"]), "--out", str(out),
                                      "--hidden", "16", "--epochs", "2", "--json"])
    assert result.exit_code == 0, result.output
    table = json.loads((out / "table.json").read_text())
    names = [row["features"] for row in table["rows"]]
    assert names == ["sample-2^5 only (small), last 3 layers", "sample-3^3 only (large), last 3 layers",
                     "layer -3", "layer -2", "layer -1", "last 3 layers (2 runs)"]
    assert [row["columns"] for row in table["rows"]] == [3072, 3072, 2048, 2048, 2048, 6144]
    assert all(0.0 <= row["accuracy"] <= 1.0 for row in table["rows"])
    markdown = (out / "table.md").read_text()
    assert "| layer -2 |" in markdown and "accuracy" in markdown
    assert table["paper_column"] is None  # a synthetic dataset has no paper column


def test_paper_numbers_where_they_apply():
    one = feature_choices({"r": "sample-3^9"})
    assert [r["name"] for r in one] == ["layer -3", "layer -2", "layer -1", "last 3 layers"]
    assert [paper_value(r, "gtzan", True)[0] for r in one] == [0.778, 0.811, 0.821, 0.805]
    # on MTAT, the single 3^9 model's last-3-layer row is Table 4's 0.9046
    assert paper_value(one[3], "mtat", True) == (0.9046, "Table 4")
    several = feature_choices({"a": "sample-3^8", "b": "sample-3^9"})
    assert paper_value(several[-1], "mtat", False) == (0.9061, "Table 4")
    assert paper_value(several[2], "mtat", False) == (None, None)  # layer rows of several runs: no paper number


def test_multilabel_transfer_reports_auc(tmp_path):
    store = make_store(tmp_path / "store", task="multilabel", clips=(8, 4, 4), seconds=0.25)
    run = fake_run(tmp_path / "run", "sample-2^5", task="multilabel", label_names=["tone0", "tone1", "tone2"])
    features = tmp_path / "f.h5"
    extract_features([run], store, features, layers=(-1,), batch_size=64)
    summary = train_transfer([features], tmp_path / "t", TransferOptions(hidden=16, epochs=3))
    assert set(summary["test"]) >= {"roc_auc", "pr_auc"}
    scores, _ = predict_transfer_split(runs.load_run(tmp_path / "t"), "test")
    assert ((scores >= 0) & (scores <= 1)).all() and not np.allclose(scores.sum(axis=1), 1.0)


def test_transfer_needs_a_valid_split_and_refuses_overwrite(tmp_path):
    store = make_store(tmp_path / "store", task="multiclass", clips=(4, 2, 2), seconds=0.1)
    run = fake_run(tmp_path / "run", "sample-2^5", label_names=["tone0", "tone1", "tone2"])
    only_train = tmp_path / "train-only.h5"
    extract_features([run], store, only_train, layers=(-1,), splits=("train", "test"))
    with pytest.raises(DataError, match="no 'valid' split"):
        train_transfer([only_train], tmp_path / "t", TransferOptions(hidden=8, epochs=1))
    full = tmp_path / "full.h5"
    extract_features([run], store, full, layers=(-1,))
    train_transfer([full], tmp_path / "t2", TransferOptions(hidden=8, epochs=1))
    result = CliRunner().invoke(app, ["transfer", str(full), "--out", str(tmp_path / "t2"), "--hidden", "8"])
    assert result.exit_code == 1 and "already holds a run" in result.output


def test_checkpoint_rebuilds_the_standardising_mlp(tmp_path):
    from samplecnn_cli.models.transfer import TransferMLP

    model = TransferMLP(5, 2, hidden=8, task="multiclass")
    model.set_feature_stats(torch.arange(5.0), torch.tensor([1.0, 2.0, 0.0, 4.0, 5.0]))
    runs.save_checkpoint(tmp_path / "c.pt", model_name="transfer-mlp", model_kwargs={
        "in_features": 5, "num_outputs": 2, "hidden": 8, "task": "multiclass"}, state_dict=model.state_dict(),
        label_names=["x", "y"], task="multiclass", sample_rate=8000, kind="transfer")
    rebuilt = runs.build_model(runs.load_checkpoint(tmp_path / "c.pt")).eval()
    assert rebuilt.feature_std[2] == 1.0  # a constant column is not divided by zero
    x = torch.randn(3, 5)
    torch.testing.assert_close(rebuilt(x), model.eval()(x))


def test_several_feature_files_combine_column_wise(pipeline):
    root = pipeline["root"]
    files = []
    for run_dir in pipeline["runs"]:
        files.append(root / f"{run_dir.name}.h5")
        extract_features([run_dir], pipeline["store"], files[-1], layers=(-1,), poolings=("max",), batch_size=64)
    summary = train_transfer(files, root / "two-files", TransferOptions(hidden=16, epochs=2))
    assert summary["columns"] == 1024
    blocks = runs.read_config(root / "two-files")["features"]["blocks"]
    assert [(Path(b["file"]).name, b["run"]) for b in blocks] == [("small.h5", "small"), ("large.h5", "large")]
    scores, targets = predict_transfer_split(runs.load_run(root / "two-files"), "valid")
    assert scores.shape == targets.shape == (3, 3)


def test_transfer_resume_continues_exactly_where_it_stopped(tmp_path):
    """`transfer --resume`: a run stopped after 2 epochs and resumed to 4 equals one trained 4 epochs
    straight (same shuffles, same weights), through the run lifecycle train uses."""
    store = make_store(tmp_path / "store", task="multiclass", clips=(12, 4, 4), seconds=0.25)
    run = fake_run(tmp_path / "run", "sample-2^5", label_names=["tone0", "tone1", "tone2"])
    features = tmp_path / "f.h5"
    extract_features([run], store, features, layers=(-1,), batch_size=64)
    options = dict(hidden=16, patience=50, batch_size=4)
    straight = train_transfer([features], tmp_path / "straight", TransferOptions(epochs=4, **options))
    train_transfer([features], tmp_path / "resumed", TransferOptions(epochs=2, **options))
    lines = (tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    resumed = train_transfer([features], tmp_path / "resumed", TransferOptions(epochs=4, **options), resume=True)
    assert resumed["epochs"] == straight["epochs"] == 4
    a, b = (torch.load(tmp_path / d / "checkpoints" / "last.pt", weights_only=True)["state_dict"]
            for d in ("straight", "resumed"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert runs.run_status(tmp_path / "resumed") == runs.DONE
    assert len((tmp_path / "resumed" / "metrics.jsonl").read_text().splitlines()) == 4
    with pytest.raises(UsageError, match="other feature columns"):
        train_transfer([features], tmp_path / "resumed", TransferOptions(epochs=5, **options), resume=True,
                       poolings=("max",))
    with pytest.raises(RunError, match="already holds a run"):
        train_transfer([features], tmp_path / "resumed", TransferOptions(epochs=4, **options))
