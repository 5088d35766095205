"""Issue 10: the training recipes (default vs paper), the step/cosine schedules and random segment sampling."""

from __future__ import annotations

import math
import tomllib

import numpy as np
import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.data.loader import SegmentDataset, segment_loader, set_epoch
from samplecnn_cli.data.store import Store
from samplecnn_cli.training.config import RECIPES, TrainConfig, recipe_options
from samplecnn_cli.training.schedule import CONTINUE, STOP, FixedSchedule
from tests._store_fixtures import TINY_MODEL, make_store, train_tiny_run


# -- schedules -------------------------------------------------------------------------------------
def _lrs(schedule: FixedSchedule) -> list[float]:
    out = []
    for epoch in range(1, schedule.epochs + 1):
        out.append(schedule.lr)
        decision = schedule.step(epoch, valid_loss=1.0 / epoch)
        assert decision == (STOP if epoch == schedule.epochs else CONTINUE)
    return out


def test_step_schedule_drops_after_each_listed_epoch():
    lrs = _lrs(FixedSchedule(kind="step", base_lr=0.01, epochs=15, factor=0.2, steps=(10,)))
    assert lrs[:10] == [0.01] * 10
    assert lrs[10:] == pytest.approx([0.002] * 5)


def test_cosine_schedule_warms_up_then_falls_to_its_floor():
    schedule = FixedSchedule(kind="cosine", base_lr=0.01, epochs=10, warmup=1, final=0.01)
    lrs = _lrs(schedule)
    assert lrs[0] == pytest.approx(0.005)  # warm-up: half way
    assert lrs[1] == pytest.approx(0.01)  # the peak right after warm-up
    assert all(a > b for a, b in zip(lrs[1:], lrs[2:], strict=False))  # then strictly down
    assert lrs[-1] == pytest.approx(0.0001)  # the floor on the last epoch
    assert schedule.best_epoch == 10  # best = lowest validation loss, no reloading


def test_fixed_schedule_state_round_trips():
    a = FixedSchedule(kind="step", base_lr=0.1, epochs=6, steps=(2, 4))
    for epoch in (1, 2, 3):
        a.step(epoch, 1.0)
    b = FixedSchedule()
    b.load_state_dict(a.state_dict())
    assert (b.lr, b.steps, b.decreases_done) == (a.lr, (2, 4), 1)
    assert math.isclose(b.lr, 0.1 * 0.2)


# -- recipes ---------------------------------------------------------------------------------------
def test_recipes_fill_what_was_not_given():
    assert recipe_options("paper", {"lr": None})["schedule"] == "plateau"
    chosen = recipe_options("default", {"lr": 0.05, "epochs": None})
    assert chosen["lr"] == 0.05 and chosen["epochs"] == RECIPES["default"]["epochs"]
    with pytest.raises(Exception, match="unknown recipe"):
        recipe_options("fast", {})


def test_old_runs_keep_the_paper_recipe_on_resume():
    """A config.toml written before these options existed reads back as the paper's recipe."""
    old = {"model": "sample-3^3", "epochs": 4, "batch_size": 23, "lr": 0.01, "precision": "fp32"}
    cfg = TrainConfig.from_run(old, TrainConfig(model="sample-3^3"))
    assert (cfg.schedule, cfg.sampling, cfg.optimizer) == ("plateau", "grid", "sgd")


@pytest.mark.parametrize(("args", "text"), [
    (["--schedule", "linear"], "unknown schedule 'linear'"),
    (["--sampling", "jitter"], "unknown sampling 'jitter'"),
    (["--optimizer", "lbfgs"], "unknown optimizer 'lbfgs'"),
    (["--recipe", "fast"], "unknown recipe 'fast'"),
    (["--lr-steps", "ten"], "--lr-steps"),
    (["--recipe", "paper", "--schedule", "cosine"], "needs --epochs"),
])
def test_bad_recipe_options_are_one_line_usage_errors(tmp_path, args, text):
    store = make_store(tmp_path / "store", seconds=0.1)
    result = CliRunner().invoke(app, ["train", TINY_MODEL, "--data", str(store), "--out", str(tmp_path / "run"), *args])
    assert result.exit_code == 2, result.output
    assert text in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_default_and_paper_runs_record_their_recipe(tmp_path):
    default = train_tiny_run(tmp_path / "d", task="multiclass", epochs=2, recipe="default")
    paper = train_tiny_run(tmp_path / "p", task="multiclass", epochs=2, recipe="paper")
    d = tomllib.loads((default / "config.toml").read_text())
    p = tomllib.loads((paper / "config.toml").read_text())
    assert (d["recipe"], d["schedule"], d["sampling"]) == ("default", RECIPES["default"]["schedule"],
                                                           RECIPES["default"]["sampling"])
    assert (p["recipe"], p["schedule"], p["sampling"], p["optimizer"]) == ("paper", "plateau", "grid", "sgd")
    assert "cosine" in d["recipe_description"] or "step" in d["recipe_description"]


def test_cli_default_trains_on_train_and_valid_and_keeps_the_last_epoch(tmp_path):
    """Issue 22: on small data the 10% carve cost more than selecting by it gave; the paper recipe keeps both."""
    import torch

    from samplecnn_cli.runs import folder as runs

    store = make_store(tmp_path / "store", task="multiclass", seconds=0.1)
    result = CliRunner().invoke(app, ["train", TINY_MODEL, "--data", str(store), "--out", str(tmp_path / "run"),
                                      "--epochs", "3", "--precision", "fp32"])
    assert result.exit_code == 0, result.output
    assert "from train + valid: validation figures are not held out" in " ".join(result.output.split())
    config = tomllib.loads((tmp_path / "run" / "config.toml").read_text())
    assert (config["recipe"], config["select"], config["train_splits"]) == ("default", "last", ["train", "valid"])
    best = runs.load_checkpoint(tmp_path / "run" / "checkpoints" / "best.pt")["state_dict"]
    last = runs.load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["state_dict"]
    assert all(torch.equal(best[k], last[k]) for k in best)
    paper = recipe_options("paper", {})
    assert (paper["select"], paper["train_splits"]) == ("best", ["train"])


# -- random segment sampling -----------------------------------------------------------------------
def _epoch_starts(data: SegmentDataset, epoch: int) -> np.ndarray:
    data.set_epoch(epoch)
    return np.array([data._random_start(i, int(data.index[i][0])) for i in range(len(data))])


def test_random_sampling_is_fresh_each_epoch_reproducible_and_inside_the_clip(tmp_path):
    store = Store(make_store(tmp_path / "s", seconds=0.05, clips=(6, 2, 2)))  # 400-sample clips
    split = store.split("train")
    data = SegmentDataset(split, 81, sampling="random", seed=3)
    first, again, second = _epoch_starts(data, 1), _epoch_starts(data, 1), _epoch_starts(data, 2)
    assert np.array_equal(first, again) and not np.array_equal(first, second)
    lengths = np.asarray(split.clip_lengths)[data.index[:, 0]]
    assert (first >= 0).all() and (first + 81 <= lengths).all()
    assert len(set(first.tolist())) > 5  # offsets spread over the clip, not the fixed grid
    grid = SegmentDataset(split, 81)
    assert len(grid) == len(data)  # as many segments per clip as the grid


def test_random_sampling_reads_the_segment_it_drew_and_keeps_short_clips_at_the_start(tmp_path):
    store = Store(make_store(tmp_path / "s", seconds=0.05, clips=(2, 1, 1)))
    split = store.split("train")
    data = SegmentDataset(split, 81, sampling="random", seed=0)
    loader = segment_loader(data, batch_size=4, shuffle=True, seed=0)
    set_epoch(loader, 5)
    i = 3
    clip, _ = data.index[i]
    start = data._random_start(i, int(clip))
    x, _, _ = data.read_batch([i])
    expected = split.read(int(clip), start, start + 81) / np.float32(32768.0)
    assert np.allclose(x[0].numpy(), expected)
    short = SegmentDataset(split, 729, sampling="random", seed=0)  # 729 > 400: one zero-padded segment
    short.set_epoch(7)
    y, _, _ = short.read_batch([0])
    assert np.allclose(y[0, :400].numpy(), split.read(0) / np.float32(32768.0))
    assert not y[0, 400:].any()
