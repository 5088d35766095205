"""A training process killed with SIGKILL continues with --resume from last.pt and finishes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests._store_fixtures import TINY_MODEL, make_store

ROOT = Path(__file__).resolve().parents[1]
EPOCHS = 4


def _train_cmd(store: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "samplecnn_cli", "train", TINY_MODEL, "--data", str(store), "--out", str(out),
            "--epochs", str(EPOCHS), "--precision", "fp32", "--device", "cpu", "--seed", "1", *extra]


def _epochs(run: Path) -> list[dict]:
    path = run / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.is_file() else []


def test_sigkill_then_resume_finishes_like_an_uninterrupted_run(tmp_path):
    store = make_store(tmp_path / "store", task="multiclass", seconds=0.1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    killed = tmp_path / "killed"
    proc = subprocess.Popen(_train_cmd(store, killed), cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    last = killed / "checkpoints" / "last.pt"
    while not (last.is_file() and _epochs(killed)) and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = len(_epochs(killed))
    if (killed / "summary.json").exists() or done_before >= EPOCHS:
        pytest.skip("the run finished before it could be killed (machine much faster than expected)")
    assert done_before >= 1 and (killed / "checkpoints" / "last.pt").is_file()

    # without --resume the folder is refused
    refused = subprocess.run(_train_cmd(store, killed), cwd=ROOT, env=env, capture_output=True, text=True)
    assert refused.returncode == 1 and "--resume" in refused.stderr
    resumed = subprocess.run(_train_cmd(store, killed, "--resume"), cwd=ROOT, env=env, capture_output=True,
                             text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert "Resuming" in resumed.stdout + resumed.stderr
    rows = _epochs(killed)
    assert [r["epoch"] for r in rows] == list(range(1, EPOCHS + 1))
    assert json.loads((killed / "summary.json").read_text())["epochs"] == EPOCHS

    # the same seed without interruption: the same losses (shuffle by (seed, epoch), RNG state in last.pt)
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(store, straight), cwd=ROOT, env=env, check=True, capture_output=True)
    for a, b in zip(rows, _epochs(straight), strict=True):
        assert a["train_loss"] == pytest.approx(b["train_loss"], rel=1e-4, abs=1e-6)
        assert a["valid_loss"] == pytest.approx(b["valid_loss"], rel=1e-4, abs=1e-6)
