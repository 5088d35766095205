"""Issue 22: which weights become best.pt (--select best|last|swa) and training on train + valid."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.data.loader import JoinedSegments, SegmentDataset, segment_loader, set_epoch
from samplecnn_cli.data.store import Store
from samplecnn_cli.models.registry import create_model
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.training.config import RECIPES, TrainConfig, describe
from samplecnn_cli.training.schedule import FixedSchedule
from samplecnn_cli.training.state import TrainState
from samplecnn_cli.training.trainer import _training_segments, recompute_batch_norm
from tests._store_fixtures import TINY_MODEL, make_store, train_tiny_run


def _weights(run, name):
    return runs.load_checkpoint(run / "checkpoints" / f"{name}.pt")


@pytest.mark.parametrize(("args", "text"), [
    (["--select", "median"], "unknown --select 'median'"),
    (["--recipe", "paper", "--select", "swa"], "--select swa needs"),
    (["--epochs", "3", "--select", "swa", "--swa-epochs", "4"], "--select swa needs"),
    (["--train-splits", "valid"], "--train-splits must be"),
    (["--train-splits", "train,test"], "--train-splits must be"),
])
def test_bad_select_and_split_options_are_usage_errors(tmp_path, args, text):
    store = make_store(tmp_path / "store", seconds=0.1)
    result = CliRunner().invoke(app, ["train", TINY_MODEL, "--data", str(store), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    assert text in result.output and not (tmp_path / "run").exists()


def test_old_runs_and_the_paper_recipe_keep_best_by_validation_on_train_alone():
    old = {"model": "sample-3^3", "epochs": 4, "batch_size": 23, "lr": 0.01, "precision": "fp32"}
    cfg = TrainConfig.from_run(old, TrainConfig(model="sample-3^3"))
    assert (cfg.select, cfg.train_splits) == ("best", ["train"])
    assert (RECIPES["paper"]["select"], RECIPES["paper"]["train_splits"]) == ("best", ["train"])
    paper = describe(TrainConfig(model="m", **RECIPES["paper"]))
    assert "valid" not in paper.replace("validation", "") and "last" not in paper


def test_select_last_makes_the_final_epoch_best_pt(tmp_path):
    run = train_tiny_run(tmp_path, epochs=3, recipe="default", select="last")
    best, last = _weights(run, "best"), _weights(run, "last")
    assert best["select"] == "last" and best["epoch"] == 3
    for key, value in last["state_dict"].items():
        assert torch.equal(best["state_dict"][key], value), key


def test_add_to_average_is_the_mean_of_the_folded_weights_and_survives_last_pt():
    net = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))

    def new_state():
        return TrainState(model=net, new_optimizer=lambda m, lr: torch.optim.SGD(m.parameters(), lr=lr),
                          schedule=FixedSchedule(base_lr=0.1, epochs=3), precision=Runtime.cpu().step_precision())
    state = new_state()
    for epoch, value in enumerate((1.0, 2.0, 6.0), start=1):
        with torch.no_grad():
            net[0].weight.fill_(value)
        net[1].num_batches_tracked.fill_(epoch * 10)
        state.epoch = epoch
        state.add_to_average()
    assert torch.allclose(state.average["0.weight"], torch.full((2, 2), 3.0))
    assert int(state.average["1.num_batches_tracked"]) == 30 and state.averaged_epochs == [1, 2, 3]
    again = new_state()
    again.load_state_dict({**state.state_dict(), "state_dict": net.state_dict()})
    assert again.averaged_epochs == [1, 2, 3] and torch.equal(again.average["0.weight"], state.average["0.weight"])


def test_select_swa_averages_the_last_epochs_with_batch_norm_recomputed(tmp_path):
    run = train_tiny_run(tmp_path, epochs=3, recipe="default", select="swa", swa_epochs=2, train_splits=["train"])
    best, last = _weights(run, "best"), _weights(run, "last")
    assert best["select"] == "swa" and best["averaged_epochs"] == [2, 3]
    assert last["averaged_epochs"] == [2, 3]
    averaged = last["average_state_dict"]
    bn = [k for k in averaged if k.endswith("running_var")]
    conv = [k for k in averaged if k.endswith("weight") and averaged[k].dim() == 3]
    for k in conv:  # the weights are the average, not the last epoch's
        assert torch.equal(best["state_dict"][k], averaged[k])
        assert not torch.equal(best["state_dict"][k], last["state_dict"][k])
    # the running statistics are those of the averaged weights over the training segments
    net = create_model(TINY_MODEL, **last["model"]["kwargs"])
    net.load_state_dict(averaged)
    split = Store(tmp_path / "store").split("train")
    data = SegmentDataset(split, net.input_samples, sampling=RECIPES["default"]["sampling"], seed=0)
    loader = segment_loader(data, batch_size=23, shuffle=True, seed=0)
    set_epoch(loader, 3)
    recompute_batch_norm(net, loader, Runtime.cpu("fp32").step_precision())
    for k in bn:
        assert torch.allclose(best["state_dict"][k], net.state_dict()[k], atol=1e-6), k
        assert not torch.allclose(best["state_dict"][k], averaged[k])


def test_train_splits_train_valid_trains_on_every_labelled_clip(tmp_path):
    store = Store(make_store(tmp_path / "store", task="multiclass", seconds=0.05, clips=(6, 3, 2)))
    cfg = TrainConfig(model=TINY_MODEL, train_splits=["train", "valid"], sampling="grid")
    train_set = _training_segments(store, 81, cfg)
    alone = _training_segments(store, 81, TrainConfig(model=TINY_MODEL))
    valid_set = SegmentDataset(store.split("valid"), 81)
    assert isinstance(train_set, JoinedSegments) and len(train_set) == len(alone) + len(valid_set)
    valid = store.split("valid")
    x, y, clips = train_set.read_batch([len(alone) + 1, 0])  # a valid segment, then a train one
    clip, start = valid_set.index[1]
    assert np.allclose(x[0].numpy(), valid.read(int(clip), int(start), int(start) + 81) / np.float32(32768.0))
    assert torch.equal(y[0], torch.from_numpy(valid.labels[clip].astype(np.float32)))
    assert int(clips[0]) == 6 + int(clip) and int(clips[1]) == 0  # clip numbers run on across the parts
    result = CliRunner().invoke(app, ["train", TINY_MODEL, "--data", str(store.directory), "--out",
                                      str(tmp_path / "run"), "--epochs", "2", "--precision", "fp32",
                                      "--train-splits", "train,valid", "--select", "last"])
    assert result.exit_code == 0, result.output
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert config["train_splits"] == ["train", "valid"] and "valid (validation not held out)" in \
        config["recipe_description"]
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == 2 and f'"segments": {len(train_set)}' in rows[0]
