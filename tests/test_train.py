"""Training: the paper's schedule, the run directory, determinism, errors, workspace lookup."""

from __future__ import annotations

import json
import tomllib

import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import DataError, RunError, UsageError
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.training.schedule import CONTINUE, DECREASE, STOP, PaperSchedule
from samplecnn_cli.training.trainer import find_store_dir, rate_warning, train
from tests._store_fixtures import TINY_MODEL, make_store, train_tiny_run


def test_schedule_divides_lr_by_5_after_3_flat_epochs_and_stops_after_4_decreases():
    s = PaperSchedule()
    assert s.step(1, 1.0) == CONTINUE
    assert [s.step(e, 1.0) for e in (2, 3, 4)] == [CONTINUE, CONTINUE, DECREASE]
    assert s.lr == pytest.approx(0.002) and s.best_epoch == 1
    assert s.step(5, 0.5) == CONTINUE and s.best_epoch == 5  # an improvement resets the count
    decisions = [s.step(e, 0.9) for e in range(6, 6 + 9)]
    assert decisions.count(DECREASE) == 3 and s.decreases_done == 4
    assert s.lr == pytest.approx(0.01 / 5 ** 4)  # 0.000016, the paper's last lr
    assert [s.step(e, 0.9) for e in (15, 16, 17)] == [CONTINUE, CONTINUE, STOP]


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return train_tiny_run(tmp_path_factory.mktemp("train"), task="multiclass", epochs=2)


def test_run_directory_holds_config_metrics_checkpoints_and_summary(tiny_run):
    config = tomllib.loads((tiny_run / "config.toml").read_text())
    assert config["kind"] == "train" and config["model"] == "sample-3^3"
    assert config["task"] == "multiclass" and config["sample_rate"] == 8000
    assert config["label_names"] == ["tone0", "tone1", "tone2"]
    assert (config["batch_size"], config["lr"], config["momentum"], config["seed"]) == (23, 0.01, 0.9, 0)
    rows = [json.loads(line) for line in (tiny_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rows] == [1, 2]
    for key in ("train_loss", "valid_loss", "lr", "seconds", "segments_per_second", "valid_accuracy"):
        assert all(isinstance(r[key], float) for r in rows), key
    env = json.loads((tiny_run / "env.json").read_text())
    assert env["seed"] == 0 and env["torch"] == torch.__version__
    summary = json.loads((tiny_run / "summary.json").read_text())
    assert summary["epochs"] == 2 and summary["stop_reason"].startswith("epoch cap")
    assert summary["best_valid_loss"] == min(r["valid_loss"] for r in rows)
    loaded = runs.load_run(tiny_run)  # weights_only=True inside
    assert loaded.model.num_outputs == 3 and loaded.sample_rate == 8000
    last = runs.load_checkpoint(tiny_run / "checkpoints" / "last.pt")
    assert last["epoch"] == 2 and "optimizer" in last
    assert "epoch 2:" in (tiny_run / "train.log").read_text()


def test_existing_run_dir_is_refused_without_resume(tiny_run):
    with pytest.raises(RunError, match="already holds a run"):
        train(model=TINY_MODEL, data=tiny_run.parent / "store", out=tiny_run, epochs=1, precision="fp32")


def test_same_seed_same_weights_other_seed_other_weights(tmp_path):
    a = train_tiny_run(tmp_path / "a", epochs=1, seed=3)
    b = train_tiny_run(tmp_path / "b", epochs=1, seed=3)
    c = train_tiny_run(tmp_path / "c", epochs=1, seed=4)
    sa, sb, sc = (runs.load_checkpoint(r / "checkpoints" / "last.pt")["state_dict"] for r in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_multilabel_bf16_training_reports_song_level_auc(tmp_path):
    run = train_tiny_run(tmp_path, task="multilabel", epochs=1, precision="bf16")
    row = json.loads((run / "metrics.jsonl").read_text().splitlines()[0])
    assert 0.0 <= row["valid_roc_auc"] <= 1.0
    assert tomllib.loads((run / "config.toml").read_text())["precision"] == "bf16"


def test_fp16_on_cpu_is_a_usage_error(tmp_path):
    store = make_store(tmp_path / "s", seconds=0.1)
    result = CliRunner().invoke(app, ["train", TINY_MODEL, "--data", str(store), "--out", str(tmp_path / "r"),
                                      "--precision", "fp16", "--device", "cpu"])
    assert result.exit_code == 2
    assert "fp16 needs a CUDA GPU" in result.output


def test_rate_warning_names_the_table3_config():
    text = rate_warning("sample-3^9", 8000)
    assert "8,000 Hz" in text and "sample-3-3-3-3-2-2-4-4-2-2" in text
    assert rate_warning("sample-3^9", 22050) is None
    assert rate_warning("sample-3^6", 8000) is None  # not a paper configuration: no native rate to warn about


def test_dataset_lookup_picks_the_native_rate_or_lists_the_rates(tmp_path):
    for rate in (8000, 22050):
        (tmp_path / "data" / "gtzan" / str(rate)).mkdir(parents=True)
        (tmp_path / "data" / "gtzan" / str(rate) / "train.h5").touch()
    assert find_store_dir("sample-3^9", None, "gtzan", tmp_path).name == "22050"
    assert find_store_dir("sample-8k", None, "gtzan", tmp_path).name == "8000"
    with pytest.raises(DataError, match="8000 Hz, 22050 Hz"):
        find_store_dir("sample-2k", None, "gtzan", tmp_path)
    (tmp_path / "data" / "mtat" / "16000").mkdir(parents=True)
    (tmp_path / "data" / "mtat" / "16000" / "train.h5").touch()
    assert find_store_dir("sample-3^9", None, "mtat", tmp_path).name == "16000"  # the only one, whatever its rate
    with pytest.raises(UsageError):
        find_store_dir("sample-3^9", None, None, tmp_path)


def test_cli_train_then_evaluate_json(tmp_path):
    store = make_store(tmp_path / "s", task="multilabel", seconds=0.1)
    runner = CliRunner()
    result = runner.invoke(app, ["train", TINY_MODEL, "--data", str(store), "--out", str(tmp_path / "r"),
                                 "--epochs", "1", "--precision", "fp32", "--batch-size", "16"])
    assert result.exit_code == 0, result.output
    assert "epoch 1:" in result.output and "Done: 1 epochs" in result.output
    assert result.output.count("Run: ") == 1 and result.stdout.strip().endswith(f"Run: {tmp_path / 'r'}")
    result = runner.invoke(app, ["evaluate", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert 0.0 <= metrics["roc_auc"] <= 1.0 and 0.0 <= metrics["pr_auc"] <= 1.0
    assert (tmp_path / "r" / "metrics.json").is_file()


def test_frame_mel_gets_training_spectrogram_stats_in_its_checkpoint(tmp_path):
    store = make_store(tmp_path / "s", clips=(3, 2, 2), seconds=59049 / 8000)  # one 59,049-sample segment each
    run = train(model="frame-mel-729", data=store, out=tmp_path / "r", epochs=1, precision="fp32", device="cpu",
                batch_size=3)
    config = tomllib.loads((run / "config.toml").read_text())
    assert config["input_stats"]["segments"] == 5  # the default recipe trains on train + valid: 3 + 2 clips
    state = runs.load_checkpoint(run / "checkpoints" / "last.pt")["state_dict"]
    assert state["front.input_mean"].item() == pytest.approx(config["input_stats"]["mean"], rel=1e-5)
    assert state["front.input_std"].item() == pytest.approx(config["input_stats"]["std"], rel=1e-5)
    assert state["front.input_mean"].item() != 0.0 and state["front.input_std"].item() != 1.0
