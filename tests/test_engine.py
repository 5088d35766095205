"""The training engine: fit() and its hooks, the run folder's schema, resume from the run's own config,
and the run-folder rules of issue 11 (bad options create nothing, a failed run can be rerun, a damaged
best.pt does not stop --resume)."""

from __future__ import annotations

import ast
import json
import tomllib
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.training.config import TrainConfig
from samplecnn_cli.training.loop import Hook, fit
from samplecnn_cli.training.schedule import DECREASE, PaperSchedule
from samplecnn_cli.training.state import TrainState
from tests._store_fixtures import TINY_MODEL, make_store, train_tiny_run

ROOT = Path(__file__).resolve().parents[1]


class _ScriptedRunner:
    """Validation losses from a script; training moves the weights by +1 each epoch."""

    unit = "clips"

    def __init__(self, losses):
        self.losses = list(losses)

    def train_epoch(self, state):
        with torch.no_grad():
            state.model.weight += 1.0
        return 1.0, 10

    def validate(self, state):
        return {"loss": self.losses[state.epoch - 1], "metric": "valid_accuracy", "value": 0.5}


class _Recorder(Hook):
    def __init__(self):
        self.rows, self.ended = [], False

    def epoch(self, state, result):
        self.rows.append((result.row(), state.model.weight.item()))

    def end(self, state):
        self.ended = True


def _state(patience=2, decreases=1) -> TrainState:
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    return TrainState(model=model, new_optimizer=lambda m, lr: torch.optim.SGD(m.parameters(), lr=lr),
                      schedule=PaperSchedule(lr=1.0, factor=0.5, patience=patience, decreases=decreases),
                      precision=Runtime.cpu("fp32").step_precision())


def test_fit_reloads_the_best_weights_on_a_decrease_and_stops_on_the_schedule():
    state, recorder = _state(), _Recorder()
    fit(state, _ScriptedRunner([3.0, 1.0, 2.0, 2.0, 2.0, 2.0]), [recorder])
    decisions = [row["decision"] for row, _ in recorder.rows]
    assert decisions == ["continue", "continue", "continue", DECREASE, "continue", "stop"]
    weights = [w for _, w in recorder.rows]
    assert weights[3] == 2.0  # epoch 4 trained to 4.0, then the epoch-2 weights came back
    assert [row["lr"] for row, _ in recorder.rows] == [1.0, 1.0, 1.0, 1.0, 0.5, 0.5]
    assert state.optimizer.param_groups[0]["lr"] == 0.5 and recorder.ended
    assert state.stop_reason.startswith("validation loss did not improve for 2 epochs")
    assert recorder.rows[1][0]["best"] and recorder.rows[0][0]["clips_per_second"] > 0


def test_train_state_round_trips_through_its_state_dict():
    state = _state()
    fit(state, _ScriptedRunner([3.0, 1.0, 2.0]), [], max_epochs=3)
    payload = {"state_dict": state.model.state_dict(), **state.state_dict()}
    other = _state()
    other.load_state_dict(payload)
    assert (other.epoch, other.stop_reason, other.schedule.best_epoch) == (3, "epoch cap (3)", 2)
    assert other.best["weight"].item() == 2.0 and other.model.weight.item() == 3.0


def test_resume_takes_momentum_patience_and_lr_factor_from_the_run():
    saved = {"model": "sample-3^3", "momentum": 0.5, "patience": 7, "lr_factor": 0.1, "batch_size": 9,
             "precision": "fp32", "precision_requested": "auto", "device": "cuda", "workers": 4, "epochs": 3}
    given = TrainConfig(model="sample-3^3", device="cpu", workers=0, epochs=None)
    cfg = TrainConfig.from_run(saved, given)
    assert (cfg.momentum, cfg.patience, cfg.lr_factor, cfg.batch_size) == (0.5, 7, 0.1, 9)
    assert (cfg.precision, cfg.device, cfg.workers, cfg.epochs) == ("auto", "cpu", 0, 3)
    assert TrainConfig.from_run(saved, TrainConfig(model="x", epochs=5)).epochs == 5


@pytest.mark.parametrize("option", [["--workers", "-1"], ["--epochs", "0"], ["--batch-size", "0"], ["--lr", "0"],
                                    ["--precision", "fp8"], ["--device", "tpu"], ["--precision", "fp16"]])
def test_bad_train_options_are_refused_before_any_folder_exists(tmp_path, option):
    store = make_store(tmp_path / "s", seconds=0.1)
    out = tmp_path / "never"
    result = CliRunner().invoke(app, ["train", TINY_MODEL, "--data", str(store), "--out", str(out), "--device",
                                      "cpu", *option])
    assert result.exit_code == 2, result.output
    assert not out.exists()


def test_summary_keys_are_the_same_for_train_and_transfer(tmp_path):
    from samplecnn_cli.features.extract import extract_features
    from samplecnn_cli.features.transfer import TransferOptions, train_transfer

    run = train_tiny_run(tmp_path / "t", epochs=1)
    store = tmp_path / "t" / "store"
    features = tmp_path / "f.h5"
    extract_features([run], store, features, batch_size=64)
    result = CliRunner().invoke(app, ["transfer", str(features), "--out", str(tmp_path / "x"), "--hidden", "8",
                                      "--epochs", "2", "--device", "cpu", "--precision", "bf16", "--json"])
    assert result.exit_code == 0, result.output
    train_summary = json.loads((run / "summary.json").read_text())
    transfer_summary = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert set(runs.SUMMARY_KEYS) <= set(train_summary) and set(runs.SUMMARY_KEYS) <= set(transfer_summary)
    assert (train_summary["kind"], transfer_summary["kind"]) == ("train", "transfer")
    assert tomllib.loads((tmp_path / "x" / "config.toml").read_text())["training"]["precision"] == "bf16"
    assert runs.run_status(tmp_path / "x") == runs.DONE
    with pytest.raises(UsageError, match="fp16"):
        train_transfer([features], tmp_path / "y", TransferOptions(precision="fp16", device="cpu"))
    assert not (tmp_path / "y").exists()


def test_a_failed_run_without_last_pt_does_not_block_a_rerun(tmp_path):
    store = make_store(tmp_path / "s", seconds=0.1)
    out = tmp_path / "r"
    runs.RunDir(out).checkpoints.mkdir(parents=True)
    runs.write_config(out, {"kind": "train", "model": TINY_MODEL})
    runs.atomic_write_text(out / "metrics.jsonl", '{"epoch": 1}\n')
    runs.mark_status(out, runs.FAILED, reason="killed")
    from samplecnn_cli.training.trainer import train

    train(TINY_MODEL, data=store, out=out, epochs=1, precision="fp32", device="cpu")
    assert runs.run_status(out) == runs.DONE
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1
    with pytest.raises(runs.RunError, match="already holds a run"):  # a finished run is still protected
        train(TINY_MODEL, data=store, out=out, epochs=1, precision="fp32", device="cpu")


def test_resume_works_when_best_pt_is_damaged_and_repairs_it(tmp_path):
    from samplecnn_cli.training.trainer import train

    run = train_tiny_run(tmp_path, epochs=1)
    best = run / "checkpoints" / "best.pt"
    best.write_bytes(best.read_bytes()[:100])  # truncated
    train(TINY_MODEL, data=tmp_path / "store", out=run, epochs=1, precision="fp32", device="cpu", resume=True)
    assert runs.run_status(run) == runs.DONE
    assert json.loads((run / "summary.json").read_text())["epochs"] == 1
    assert runs.load_checkpoint(best)["state_dict"]  # whole again, from last.pt's copy of the best weights
    assert runs.load_checkpoint(run / "checkpoints" / "last.pt")["optimizer"]["param_groups"][0]["momentum"] == 0.9


def test_fit_goes_on_past_an_epoch_cap_that_a_resume_raises():
    state = _state()
    fit(state, _ScriptedRunner([3.0, 2.0, 1.0, 0.5, 0.4]), [], max_epochs=2)
    assert (state.epoch, state.stop_reason) == (2, "epoch cap (2)")
    fit(state, _ScriptedRunner([3.0, 2.0, 1.0, 0.5, 0.4]), [], max_epochs=2)
    assert state.epoch == 2  # the same cap: nothing more to do
    fit(state, _ScriptedRunner([3.0, 2.0, 1.0, 0.5, 0.4]), [], max_epochs=4)
    assert (state.epoch, state.stop_reason, state.schedule.best_epoch) == (4, "epoch cap (4)", 4)


def test_engine_functions_are_short_with_few_parameters():
    """The house rule of issue 13 for training/: functions <= 40 lines and <= 5 parameters. Exempt:
    train() (the keyword API mirroring the CLI's options)."""
    offenders = []
    for path in sorted((ROOT / "samplecnn_cli" / "training").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and node.name != "train":
                args = node.args
                params = [a for a in args.posonlyargs + args.args + args.kwonlyargs if a.arg not in ("self", "cls")]
                if node.end_lineno - node.lineno + 1 > 40 or len(params) > 5:
                    offenders.append(f"{path.name}:{node.name}")
    assert offenders == []
