"""Issue 11 item 6 (preprocess): the merge lock is a filelock lock; merges never share a temp file."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.data import preprocess as preprocessing
from samplecnn_cli.data.store import SplitWriter, StoreSplit, check_split

cli = CliRunner()

HOLD = textwrap.dedent("""
    import sys, time
    from filelock import FileLock
    lock = FileLock(sys.argv[1]); lock.acquire()
    print("held", flush=True)
    time.sleep(60)
""")


def test_live_holder_keeps_the_merge_lock_and_a_killed_one_does_not(tmp_path):
    root, out = tmp_path / "toy", tmp_path / "store"
    assert cli.invoke(app, ["datasets", "make-toy", str(root), "--clips", "6", "--seconds", "0.5",
                            "--sr", "8000"]).exit_code == 0
    # Find where this run's merge lock will be: a first, sharded run writes the parts and stops.
    first = cli.invoke(app, ["preprocess", "toy", "--root", str(root), "--out", str(out), "--sr", "8000",
                             "--workers", "1", "--chunk-size", "2", "--shard", "1/2", "--json"])
    assert first.exit_code == 0 and not json.loads(first.stdout)["complete"]
    parts = next((out / preprocessing.PARTS_DIR).iterdir())
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(parts / "merge.lock")], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        blocked = cli.invoke(app, ["preprocess", "toy", "--root", str(root), "--out", str(out), "--sr", "8000",
                                   "--workers", "1", "--chunk-size", "2", "--json"])
        assert blocked.exit_code == 0, blocked.output
        assert not json.loads(blocked.stdout)["complete"]
        assert not (out / "train.h5").exists()
    finally:
        holder.kill()
        holder.wait()
    merged = cli.invoke(app, ["preprocess", "toy", "--root", str(root), "--out", str(out), "--sr", "8000",
                              "--workers", "1", "--chunk-size", "2", "--json"])
    assert merged.exit_code == 0, merged.output
    assert json.loads(merged.stdout)["complete"] and check_split(out / "train.h5") is None


def test_two_writers_of_one_path_do_not_share_a_temp_file(tmp_path):
    kwargs = {"sample_rate": 8000, "label_names": ["a"], "task": "multilabel", "dataset": "t", "split": "train"}
    first, second = SplitWriter(tmp_path / "train.h5", **kwargs), SplitWriter(tmp_path / "train.h5", **kwargs)
    assert first.tmp_path != second.tmp_path
    first.append("x", "x.wav", np.ones(100, np.int16), np.array([True]))
    second.append("y", "y.wav", np.full(50, 7, np.int16), np.array([False]))
    second.append("z", "z.wav", np.full(30, 9, np.int16), np.array([True]))
    first.close()
    second.close()
    split = StoreSplit(tmp_path / "train.h5")
    assert split.clip_ids == ["y", "z"] and split.read(1).tolist() == [9] * 30
    assert [p.name for p in tmp_path.iterdir()] == ["train.h5"]
