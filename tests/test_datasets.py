import csv
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from samplecnn_cli.core.errors import DataError, UsageError
from samplecnn_cli.data.datasets import get_adapter, list_adapters
from samplecnn_cli.data.datasets.base import stratified_split
from samplecnn_cli.data.datasets.toy import TAGS, make_toy


def _write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def test_registry_lists_builtins_and_rejects_unknown():
    names = {row["name"] for row in list_adapters()}
    assert {"mtat", "msd", "gtzan", "tagtraum", "folder", "toy"} <= names
    with pytest.raises(UsageError, match="unknown dataset 'nope'"):
        get_adapter("nope")


def test_folder_single_label_with_train_test_only_carves_valid(tmp_path):
    rows = [{"path": f"a/{i}.wav", "label": str(i % 3), "extra": "x", "split": "test" if i < 6 else "train"}
            for i in range(60)]
    _write_csv(tmp_path / "labels.csv", rows)
    m = get_adapter("folder").load(tmp_path, {"seed": 1})
    assert m.task == "multiclass" and m.label_names == ["0", "1", "2"]
    counts = m.counts()
    assert counts["test"] == 6 and counts["valid"] > 0 and counts["train"] + counts["valid"] == 54
    valid_classes = Counter(m.label_names[it.labels[0]] for it in m.items if it.split == "valid")
    assert set(valid_classes) == {"0", "1", "2"}  # stratified: every class in valid
    again = get_adapter("folder").load(tmp_path, {"seed": 1})
    assert [it.split for it in again.items] == [it.split for it in m.items]


def test_folder_multilabel_tags_and_generated_split(tmp_path):
    rows = [{"path": f"{i}.flac", "tags": "rock;loud" if i % 2 else "calm"} for i in range(40)]
    _write_csv(tmp_path / "labels.csv", rows)
    m = get_adapter("folder").load(tmp_path, {})
    assert m.task == "multilabel" and m.label_names == ["calm", "loud", "rock"]
    assert m.items[1].labels == (1, 2) and m.items[0].labels == (0,)
    assert set(m.counts().values()) != {0} and all(v > 0 for v in m.counts().values())
    assert m.clip_seconds is None  # folder keeps whole clips


def test_folder_tree_and_errors(tmp_path):
    for genre in ("jazz", "pop"):
        (tmp_path / genre).mkdir()
        for i in range(10):
            sf.write(tmp_path / genre / f"{i}.wav", np.zeros(100, np.float32), 8000)
    m = get_adapter("folder").load(tmp_path, {})
    assert m.label_names == ["jazz", "pop"] and len(m.items) == 20
    with pytest.raises(DataError, match="not a folder"):
        get_adapter("folder").load(tmp_path / "missing", {})
    (tmp_path / "labels.csv").write_text("file,label\nx.wav,1\n")
    with pytest.raises(DataError, match="path"):
        get_adapter("folder").load(tmp_path, {})
    (tmp_path / "labels.csv").write_text("path,label,split\nx.wav,1,holdout\n")
    with pytest.raises(DataError, match="holdout"):
        get_adapter("folder").load(tmp_path, {})


def test_stratified_split_fractions():
    keys = ["a"] * 50 + ["b"] * 30
    out = stratified_split(keys, 0, {"train": 0.8, "valid": 0.1, "test": 0.1})
    assert Counter(s for s, k in zip(out, keys, strict=True) if k == "a") == {"train": 40, "valid": 5, "test": 5}
    assert Counter(s for s, k in zip(out, keys, strict=True) if k == "b") == {"train": 24, "valid": 3, "test": 3}


def test_make_toy_is_deterministic_mixed_format_multilabel(tmp_path):
    a = make_toy(tmp_path / "a", clips=9, seconds=1.0, seed=3, sample_rate=8000)
    make_toy(tmp_path / "b", clips=9, seconds=1.0, seed=3, sample_rate=8000)
    rows = list(csv.DictReader(open(tmp_path / "a" / "labels.csv")))
    assert len(rows) == 9 and {r["path"].rsplit(".", 1)[1] for r in rows} == {"wav", "flac", "mp3"}
    assert {r["split"] for r in rows} == {"train", "valid", "test"}
    assert (tmp_path / "a" / "labels.csv").read_text() == (tmp_path / "b" / "labels.csv").read_text()
    for r in rows:
        tags = r["tags"].split(";")
        assert set(tags) <= set(TAGS)
        assert len({"low", "high"} & set(tags)) == 1 and len({"slow", "fast"} & set(tags)) == 1
        x, sr = sf.read(tmp_path / "a" / r["path"])
        y, _ = sf.read(tmp_path / "b" / r["path"])
        assert sr == 8000 and np.array_equal(x, y) and np.abs(x).max() > 0.1
    assert a["clips"] == 9
    with pytest.raises(DataError, match="not empty"):
        make_toy(tmp_path / "a", clips=9)


def test_toy_tags_are_audible_in_every_half_second(tmp_path):
    """Fast clips have several onsets in every 0.5 s window, slow ones at most two."""
    make_toy(tmp_path / "t", clips=12, seconds=2.0, seed=0, sample_rate=8000)
    for r in csv.DictReader(open(tmp_path / "t" / "labels.csv")):
        if not r["path"].endswith(".wav") or "drums" in r["tags"]:
            continue
        x, sr = sf.read(tmp_path / "t" / r["path"])
        for start in range(0, len(x) - sr // 2, sr // 2):
            window = x[start:start + sr // 2]
            assert np.sqrt(np.mean(window ** 2)) > 0.01  # never silent
        frames = np.abs(x[: len(x) // 80 * 80]).reshape(-1, 80).max(axis=1)  # 10 ms frames
        rises = int(np.sum(frames[1:] > 2.0 * frames[:-1] + 0.02))
        onsets_per_s = rises / 2.0
        assert onsets_per_s >= 4 if "fast" in r["tags"] else onsets_per_s <= 4, (r, onsets_per_s)


def test_toy_adapter_generates_when_absent(tmp_path):
    root = tmp_path / "raw" / "toy"
    m = get_adapter("toy").load(root, {"clips": 9, "seconds": 1.0})
    assert (root / "labels.csv").is_file() and len(m.items) == 9
    assert m.task == "multilabel" and set(m.label_names) <= set(TAGS)
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "x.txt").write_text("mine")
    with pytest.raises(DataError, match="not a toy dataset"):
        get_adapter("toy").load(tmp_path / "other", {})
