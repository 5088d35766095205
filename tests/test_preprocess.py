import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.data import audio
from samplecnn_cli.data import preprocess as preprocessing
from samplecnn_cli.data.datasets import get_adapter
from samplecnn_cli.data.store import Store
from tests._audio_fixtures import write_audio, write_corrupt

runner = CliRunner()


def _folder(root: Path, n: int = 12, suffixes=(".wav", ".flac", ".mp3"), seconds=0.5, bad=()) -> Path:
    """n clips of 3 classes, splits given; `bad` = extra rows: ("empty"|"corrupt"|"missing", split)."""
    root.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        rel = f"clips/{i:03d}{suffixes[i % len(suffixes)]}"
        write_audio(root / rel, seconds=seconds + 0.1 * (i % 3), sr=16000, freq=200 + 40 * i, channels=1 + i % 2)
        rows.append({"path": rel, "label": f"c{i % 3}", "split": ("train", "train", "valid", "test")[i % 4]})
    for k, (kind, split) in enumerate(bad):
        rel = f"bad/{kind}{k}.mp3" if kind != "corrupt" else f"bad/{kind}{k}.wav"
        if kind == "empty":
            (root / "bad").mkdir(exist_ok=True)
            (root / rel).write_bytes(b"")
        elif kind == "corrupt":
            write_corrupt(root / rel)
        rows.append({"path": rel, "label": "c0", "split": split})
    with open(root / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["path", "label", "split"])
        w.writeheader()
        w.writerows(rows)
    return root


def _cli(*args, env=None):
    return runner.invoke(app, [str(a) for a in args], env=env)


def test_round_trip_samples_labels_rate(tmp_path):
    root = _folder(tmp_path / "raw", n=8)
    m = get_adapter("folder").load(root, {})
    result = preprocessing.run(m, tmp_path / "out", preprocessing.Settings(sample_rate=12000, workers=1))
    assert result.complete and result.written == 8 and not result.failed
    store = Store(tmp_path / "out")
    assert store.sample_rate == 12000 and store.task == "multiclass" and store.label_names == ["c0", "c1", "c2"]
    for split in store:
        assert split.preprocess["sample_rate"] == 12000 and split.clip_samples == 0
        for i in range(len(split)):
            expected = audio.to_int16(audio.decode(root / split.paths[i], 12000))
            assert np.array_equal(split.read(i), expected)
            item = next(it for it in m.items if it.source == split.paths[i])
            assert split.labels[i].nonzero()[0].tolist() == list(item.labels)
            assert split.clip_ids[i] == item.clip_id
    # order inside a split follows the labels file
    assert store.split("train").paths == [it.source for it in m.items if it.split == "train"]


def test_clip_seconds_trims_and_pads(tmp_path):
    root = _folder(tmp_path / "raw", n=6, suffixes=(".wav",), seconds=0.5)
    m = get_adapter("folder").load(root, {})
    preprocessing.run(m, tmp_path / "out", preprocessing.Settings(sample_rate=8000, workers=1, clip_seconds=0.6))
    train = Store(tmp_path / "out").split("train")
    assert set(train.clip_lengths) == {4800} and train.clip_samples == 4800
    short = [i for i, p in enumerate(train.paths) if p.endswith("000.wav")][0]  # 0.5 s: padded with zeros
    assert np.all(train.read(short, 4000) == 0) and np.any(train.read(short, 0, 4000) != 0)


def test_bad_files_are_skipped_and_reported(tmp_path):
    root = _folder(tmp_path / "raw", n=8, bad=[("empty", "train"), ("corrupt", "test"), ("missing", "valid")])
    res = _cli("preprocess", "folder", "--root", root, "--out", tmp_path / "out", "--sr", 8000, "--workers", 2)
    assert res.exit_code == 0, res.output
    assert "3 file(s) skipped" in res.output
    report = json.loads((tmp_path / "out" / "preprocess-report.json").read_text())
    assert report["written"] == 8
    reasons = {f["path"]: f["reason"] for f in report["failed"]}
    assert set(reasons) == {"bad/empty0.mp3", "bad/corrupt1.wav", "bad/missing2.mp3"}
    assert "empty" in reasons["bad/empty0.mp3"] and "not found" in reasons["bad/missing2.mp3"]
    assert sum(len(s) for s in Store(tmp_path / "out")) == 8
    strict = _cli("preprocess", "folder", "--root", root, "--out", tmp_path / "out2", "--sr", 8000, "--strict")
    assert strict.exit_code == 1 and "--strict" in strict.output


def test_nothing_decodable_exits_nonzero(tmp_path):
    root = _folder(tmp_path / "raw", n=0, bad=[("empty", "train"), ("corrupt", "test")])
    res = _cli("preprocess", "folder", "--root", root, "--out", tmp_path / "out", "--sr", 8000)
    assert res.exit_code == 1 and "could be decoded" in res.output
    assert not list((tmp_path / "out").glob("*.h5"))


@pytest.mark.parametrize("args, code, message", [
    (["preprocess", "nosuch", "--root", "."], 2, "unknown dataset"),
    (["preprocess", "folder", "--root", "MISSING"], 1, "not a folder"),
    (["preprocess", "folder", "--sr", "100"], 2, "sample rate"),
    (["preprocess", "mtat", "--root", "."], 1, "annotations_final.csv"),
    (["preprocess", "folder", "--shard", "3/2"], 2, "--shard"),
])
def test_user_errors_one_line_nothing_written(tmp_path, monkeypatch, args, code, message):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SAMPLECNN_WORKSPACE", str(tmp_path))
    (tmp_path / "data").mkdir()
    args = [a.replace("MISSING", str(tmp_path / "missing")) for a in args]
    if "--root" not in args:
        args += ["--root", str(tmp_path / "data")]
    res = _cli(*args)
    assert res.exit_code == code, res.output
    assert message in res.output and "Traceback" not in res.output
    assert not any(p.is_file() for p in (tmp_path / "data").rglob("*"))


def test_rerun_is_up_to_date_and_workers_do_not_change_the_store(tmp_path):
    root = _folder(tmp_path / "raw", n=12)
    m = get_adapter("folder").load(root, {})
    preprocessing.run(m, tmp_path / "a", preprocessing.Settings(sample_rate=8000, workers=1))
    again = preprocessing.run(m, tmp_path / "a", preprocessing.Settings(sample_rate=8000, workers=1))
    assert again.up_to_date and again.decoded_files == 0
    preprocessing.run(m, tmp_path / "b", preprocessing.Settings(sample_rate=8000, workers=2, chunk_size=2))
    for split in ("train", "valid", "test"):
        with h5py.File(tmp_path / "a" / f"{split}.h5") as fa, h5py.File(tmp_path / "b" / f"{split}.h5") as fb:
            for key in ("audio", "offsets", "labels", "clip_ids"):
                assert np.array_equal(fa[key][:], fb[key][:])


def test_shards_merge_into_one_dataset(tmp_path):
    root = _folder(tmp_path / "raw", n=12)
    m = get_adapter("folder").load(root, {})
    out = tmp_path / "sharded"
    first = preprocessing.run(m, out, preprocessing.Settings(sample_rate=8000, workers=1, shard=(1, 3), chunk_size=2))
    assert not first.complete and not (out / "train.h5").exists()
    preprocessing.run(m, out, preprocessing.Settings(sample_rate=8000, workers=1, shard=(3, 3), chunk_size=2))
    last = preprocessing.run(m, out, preprocessing.Settings(sample_rate=8000, workers=1, shard=(2, 3), chunk_size=2))
    assert last.complete and last.written == 12 and not (out / ".parts").exists()
    whole = tmp_path / "whole"
    preprocessing.run(m, whole, preprocessing.Settings(sample_rate=8000, workers=1, chunk_size=2))
    for split in ("train", "valid", "test"):
        a, b = Store(out).split(split), Store(whole).split(split)
        assert a.clip_ids == b.clip_ids and np.array_equal(a.offsets, b.offsets)


def test_resume_after_sigkill_does_not_redecode(tmp_path):
    n = 60
    root = _folder(tmp_path / "raw", n=n, suffixes=(".flac",), seconds=2.0)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "samplecnn_cli", "preprocess", "folder", "--root", str(root), "--out", str(out),
           "--sr", "22050", "--workers", "1", "--chunk-size", "1"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob(".parts/*/chunk-*.h5"))) < 3:
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # mid-run: while a part file may be half written
    proc.wait()
    done = len(list(out.glob(".parts/*/chunk-*.h5")))
    assert 3 <= done < n, "the kill should land mid-run"
    assert not (out / "train.h5").exists()
    res = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert summary["reused_chunks"] == done and summary["decoded_files"] == n - done
    store = Store(out)
    ids = [cid for split in store for cid in split.clip_ids]
    assert len(ids) == len(set(ids)) == n and not (out / ".parts").exists()


def test_workspace_default_is_toy_and_info_cli(tmp_path, monkeypatch):
    monkeypatch.setenv("SAMPLECNN_WORKSPACE", str(tmp_path))
    (tmp_path / "samplecnn.toml").write_text('[datasets.toy]\nclips = 9\nseconds = 1.0\n')
    res = _cli("preprocess", "--sr", 8000)
    assert res.exit_code == 0, res.output
    store_dir = tmp_path / "data" / "toy" / "8000"
    info = _cli("datasets", "info", store_dir, "--json")
    data = json.loads(info.stdout)
    assert data["sample_rate"] == 8000 and data["task"] == "multilabel"
    assert sum(s["clips"] for s in data["splits"].values()) == 9
    human = _cli("datasets", "info", store_dir)
    assert human.exit_code == 0 and "train" in human.output
    assert _cli("datasets", "info", tmp_path / "nope").exit_code == 1


def test_configured_dataset_with_adapter_key(tmp_path, monkeypatch):
    root = _folder(tmp_path / "raw", n=6)
    monkeypatch.setenv("SAMPLECNN_WORKSPACE", str(tmp_path))
    (tmp_path / "samplecnn.toml").write_text(f'[datasets.mine]\nadapter = "folder"\nroot = "{root}"\n')
    res = _cli("preprocess", "--sr", 4000, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["out"] == str(tmp_path / "data" / "mine" / "4000")
    assert Store(tmp_path / "data" / "mine" / "4000").dataset == "mine"


def test_make_toy_and_list_cli(tmp_path):
    res = _cli("datasets", "make-toy", tmp_path / "toy", "--clips", 6, "--seconds", 1, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["clips"] == 6 and (tmp_path / "toy" / "labels.csv").is_file()
    assert sf.info(str(next((tmp_path / "toy" / "audio").glob("*.mp3")))).format == "MP3"
    listing = _cli("datasets", "list", "--json")
    assert {"mtat", "toy"} <= {row["name"] for row in json.loads(listing.stdout)}
