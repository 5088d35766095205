"""Inconsistent inputs (issue 20, case 6): a checkpoint copied in from another run is refused (it
carries its run's identity), a store that changes under `train` is one error line, and a CSV header
naming a column twice is an error, never a silent pick of the last one.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np
import pytest
import tomli_w

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.loader import SegmentDataset, segment_loader
from samplecnn_cli.data.store import Store
from samplecnn_cli.runs import folder as runs
from tests._reliability import TINY_MODEL, assert_clean_failure, build_pipeline, invoke, python_env
from tests._store_fixtures import make_store

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("inference_sandbox")]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return build_pipeline(tmp_path_factory.mktemp("consistency") / "pipeline")


def other_run(pipe, folder: Path, *, labels: list[str] | None = None) -> Path:
    """A copy of the pipeline's run that is another run: a new run_id (and other labels, if given)."""
    shutil.copytree(pipe["run"], folder)
    config = tomllib.loads((folder / "config.toml").read_text())
    config["run_id"] = "another-run"
    if labels:
        config["label_names"] = labels
    (folder / "config.toml").write_text(tomli_w.dumps(config))
    return folder


# -- a checkpoint from another run ----------------------------------------------------------------------
@pytest.mark.parametrize("command", ["evaluate", "tag", "export"])
def test_a_checkpoint_from_another_run_is_refused(pipe, tmp_path, command):
    run = other_run(pipe, tmp_path / "b", labels=["x", "y", "z", "w"])  # the issue: other labels
    argv = {"evaluate": ["evaluate", run, "--device", "cpu"], "tag": ["tag", run, pipe["wav"]],
            "export": ["export", run, "--out", tmp_path / "m.pt", "--format", "torchscript"]}[command]
    result = invoke(argv, tmp_path)
    assert_clean_failure(result, argv, {}, {})
    assert "belongs to another run" in result.stderr and "labels" in result.stderr
    assert not (tmp_path / "m.pt").exists()


def test_same_model_and_labels_but_another_run_is_refused_too(pipe, tmp_path):
    run = other_run(pipe, tmp_path / "b")
    with pytest.raises(runs.RunError, match="written by run .* not"):
        runs.load_run(run)
    assert runs.load_run(pipe["run"]).label_names == ["tone0", "tone1", "tone2"]  # its own loads


def test_resume_from_a_foreign_last_checkpoint_is_refused(pipe, tmp_path):
    run = other_run(pipe, tmp_path / "b")
    argv = ["train", TINY_MODEL, "-d", pipe["store"], "-o", run, "--resume", "--epochs", "2", "--device", "cpu",
            "--precision", "fp32", "--workers", "0"]
    result = invoke(argv, tmp_path)
    assert result.exit_code == 1 and "belongs to another run" in result.stderr, result.output
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


def test_checkpoints_carry_their_runs_identity(pipe):
    config = runs.read_config(pipe["run"])
    checkpoint = runs.load_checkpoint(pipe["checkpoint"])
    assert checkpoint["identity"]["run_id"] == config["run_id"]
    assert checkpoint["identity"]["hash"] == runs.identity_hash(checkpoint)


# -- a store that changes under train ---------------------------------------------------------------------
def test_a_store_cut_while_it_is_read_is_one_error(tmp_path):
    store = make_store(tmp_path / "s", task="multiclass", clips=(4, 2, 2), seconds=2.0)
    split = Store(store).split("train")
    dataset = SegmentDataset(split, 81)
    dataset.read_batch([0, len(dataset) - 1])  # whole
    os.truncate(split.path, split.path.stat().st_size // 3)
    with pytest.raises(DataError, match="changed while it was being read"):
        dataset.read_batch([len(dataset) - 1])
    with pytest.raises(DataError, match="changed while it was being read"):
        split.read(3)


def test_a_store_replaced_between_epochs_is_one_error(tmp_path):
    store = make_store(tmp_path / "s", task="multiclass", clips=(4, 2, 2), seconds=0.5)
    split = Store(store).split("train")
    loader = segment_loader(SegmentDataset(split, 81), batch_size=4, shuffle=True)
    assert sum(len(batch[0]) for batch in loader) == len(loader.dataset)
    copy = split.path.with_name("copy.h5")
    shutil.copy(split.path, copy)
    os.replace(copy, split.path)  # what a second `preprocess` does
    with pytest.raises(DataError, match="changed while it was being read"):
        next(iter(loader))


def test_train_stops_in_one_line_when_its_store_is_cut(tmp_path):
    store = make_store(tmp_path / "s", task="multiclass", clips=(8, 2, 2), seconds=0.3)
    run = tmp_path / "run"
    argv = [sys.executable, "-m", "samplecnn_cli", "train", TINY_MODEL, "-d", store, "-o", run, "--epochs", "50",
            "--device", "cpu", "--precision", "fp32", "--workers", "0"]
    proc = subprocess.Popen([str(a) for a in argv], env=python_env(), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    os.truncate(store / "train.h5", (store / "train.h5").stat().st_size // 2)
    _, err = proc.communicate(timeout=300)
    lines = [line for line in err.splitlines() if line.strip()]
    errors = [i for i, line in enumerate(lines) if line.startswith("Error: ")]
    assert proc.returncode == 1 and "Traceback" not in err, err[-3000:]
    assert errors and "changed while it was being read" in lines[errors[0]] and len(lines) - errors[0] <= 2, err
    assert json.loads((run / "status.json").read_text())["state"] == "failed"


# -- CSV headers naming a column twice ----------------------------------------------------------------------
@pytest.mark.parametrize("header", ["path,label,label", "path,path,label", "path,tags,split,Tags"])
def test_a_csv_header_naming_a_column_twice_is_an_error(pipe, tmp_path, header):
    root = tmp_path / "data"
    shutil.copytree(pipe["toy"] / "audio", root / "audio")
    rows = [f"audio/{p.name},{'a' if i % 2 else 'b'},train" for i, p in enumerate(sorted((root / "audio").iterdir()))]
    (root / "labels.csv").write_text(header + "\n" + "\n".join(r if header.count(",") == 2 else r + ",x"
                                                                for r in rows) + "\n")
    argv = ["preprocess", "folder", "--root", root, "--out", tmp_path / "store", "--sr", "8000", "--json"]
    result = invoke(argv, tmp_path)
    assert_clean_failure(result, argv, {}, {})
    assert "twice" in result.stderr and not (tmp_path / "store" / "train.h5").exists()


def test_an_mtat_header_naming_a_tag_twice_is_an_error(tmp_path):
    from samplecnn_cli.data.datasets.mtat import read_annotations

    path = tmp_path / "annotations_final.csv"
    path.write_text("clip_id\tguitar\tpiano\tguitar\tmp3_path\n1\t1\t0\t0\ta/x.mp3\n")
    with pytest.raises(DataError, match="'guitar' twice"):
        read_annotations(path)
    path.write_text("clip_id\tguitar\tpiano\tmp3_path\n1\t1\t0\ta/x.mp3\n")
    assert read_annotations(path)[0] == ["guitar", "piano"] and np.asarray(read_annotations(path)[3]).shape == (1, 2)
