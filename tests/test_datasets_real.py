"""Each paper dataset adapter on the real split/metadata files (../shared/data/splits), with
generated audio written at a few of the listed paths. Skipped when ../shared/data is absent."""

import csv
import json
import shutil

import numpy as np

from samplecnn_cli.data import preprocess as preprocessing
from samplecnn_cli.data.datasets import get_adapter
from samplecnn_cli.data.datasets.base import normalize_tag
from samplecnn_cli.data.store import Store
from tests._audio_fixtures import load_py2_pickle, need_shared, write_audio, write_pickle


def _run(manifest, out, sr=8000):
    return preprocessing.run(manifest, out, preprocessing.Settings(sample_rate=sr, workers=1))


def _mtat_annotations(path, mp3_paths, tag_columns, rng):
    """A tab-separated, quoted annotations_final.csv in MTAT's real format for the given clips."""
    with open(path, "w", newline="") as f:
        writer = csv.writer(f, delimiter="\t", quotechar='"', quoting=csv.QUOTE_ALL)
        writer.writerow(["clip_id", *tag_columns, "mp3_path"])
        for i, mp3 in enumerate(mp3_paths):
            writer.writerow([str(i * 7 + 2), *(str(int(rng.random() < 0.3)) for _ in tag_columns), mp3])


def test_mtat_paper_split_real_pickles(tmp_path):
    split_src = need_shared("splits", "music_dataset_split", "MTAT_split")
    musicnn = need_shared("splits", "mtat_msd_index_musicnn", "data", "index", "mtt", "output_labels_mtt.txt")
    # the real annotation column spelling ("female voice") from another project's list, plus others
    spelled = json.loads(musicnn.read_text().split("=", 1)[1].strip().replace("'", '"'))
    tag_columns = [*spelled[::-1], "bongos", "irish"]
    split_dir = tmp_path / "MTAT_split"
    split_dir.mkdir()
    shutil.copy(split_src / "top50_tags.txt", split_dir)
    chosen = {}
    for split, name in (("train", "train_list_pub.cP"), ("valid", "valid_list_pub.cP"), ("test", "test_list_pub.cP")):
        entries = load_py2_pickle(split_src / name)
        assert entries[0].endswith(".npy")
        chosen[split] = entries[:3]
        write_pickle(split_dir / name, entries[:3])
    mp3s = [e.replace(".npy", ".mp3") for entries in chosen.values() for e in entries]
    root = tmp_path / "mtat"
    root.mkdir()
    _mtat_annotations(root / "annotations_final.csv", [*mp3s, "0/not-listed-clip.mp3"], tag_columns,
                      np.random.default_rng(0))
    for k, mp3 in enumerate(mp3s[:-1]):  # the last listed clip has no audio: reported, not fatal
        write_audio(root / mp3, seconds=2.0, sr=16000, freq=200 + 50 * k)

    m = get_adapter("mtat").load(root, {"split_dir": str(split_dir)})
    top50 = (split_src / "top50_tags.txt").read_text().split()
    assert m.label_names == top50 and "femaleVoice" in m.label_names
    assert m.counts() == {"train": 3, "valid": 3, "test": 3}
    assert m.clip_seconds == 29.1
    # labels follow top50 order though the csv columns are in another order and spelling
    with open(root / "annotations_final.csv") as f:
        row = next(r for r in csv.DictReader(f, delimiter="\t") if r["mp3_path"] == mp3s[0])
    expected = tuple(j for j, t in enumerate(top50)
                     if row[next(c for c in tag_columns if normalize_tag(c) == normalize_tag(t))] == "1")
    assert m.items[0].labels == expected

    result = _run(m, tmp_path / "out", sr=8000)
    assert result.written == 8 and [f["path"] for f in result.failed] == [mp3s[-1]]
    store = Store(tmp_path / "out")
    train = store.split("train")
    assert train.clip_samples == int(round(29.1 * 8000)) and set(train.clip_lengths) == {232800}
    assert train.labels[0].nonzero()[0].tolist() == list(expected)


def test_mtat_folder_split_without_lists(tmp_path):
    root = tmp_path / "mtat"
    root.mkdir()
    tags = [f"tag{i}" for i in range(60)]
    mp3s = ["0/a-0-29.mp3", "c/b-0-29.mp3", "f/c-0-29.mp3", "1/empty-tags.mp3"]
    with open(root / "annotations_final.csv", "w", newline="") as f:
        w = csv.writer(f, delimiter="\t", quoting=csv.QUOTE_ALL)
        w.writerow(["clip_id", *tags, "mp3_path"])
        for i, mp3 in enumerate(mp3s):
            w.writerow([str(i), *("1" if (j == i and i < 3) or j == 59 and i < 3 else "0" for j in range(60)), mp3])
    m = get_adapter("mtat").load(root, {})
    assert m.label_names[0] == "tag59" and len(m.label_names) == 50
    assert [it.split for it in m.items] == ["train", "valid", "test"]  # the clip without top-50 tags is left out


def test_msd_real_test_list_and_tag_list(tmp_path):
    src = need_shared("splits", "music_dataset_split", "MSD_split")
    test_ids = load_py2_pickle(src / "filtered_list_test.cP")
    assert len(test_ids) == 28435
    split_dir = tmp_path / "MSD_split"
    split_dir.mkdir()
    shutil.copy(src / "50tagList.txt", split_dir)
    shutil.copy(src / "filtered_list_test.cP", split_dir)  # the real 28,435-id test list
    train_ids = [f"TRFAKE{i:012d}" for i in range(6)]
    write_pickle(split_dir / "filtered_list_train.cP", train_ids)
    rng = np.random.default_rng(1)
    labelled = [*train_ids, *test_ids[:3]]
    write_pickle(split_dir / "msd_id_to_tag_vector.cP",
                 {t: (rng.random((50, 1)) < 0.2).astype(int) for t in labelled})
    root = tmp_path / "7digital"
    rows = []
    for k, tid in enumerate(labelled):
        rel = f"{k % 10}/{k}/{1000 + k}.clip.mp3"
        write_audio(root / rel, seconds=1.0, sr=22050, channels=2)
        rows.append({"track_id": tid, "path": rel})
    with open(tmp_path / "paths.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["track_id", "path"])
        w.writeheader()
        w.writerows(rows)
    m = get_adapter("msd").load(root, {"split_dir": str(split_dir), "paths_csv": str(tmp_path / "paths.csv"),
                                       "train_count": 4})
    assert m.label_names == (src / "50tagList.txt").read_text().splitlines() and len(m.label_names) == 50
    assert m.counts() == {"train": 4, "valid": 2, "test": 3}
    assert len(m.unresolved) == 28435 - 3  # test ids without audio are reported, not fatal
    store_result = preprocessing.run(m, tmp_path / "out", preprocessing.Settings(sample_rate=4000, workers=1, clip_seconds=0.5))
    assert store_result.written == 9 and len(store_result.failed) == 28432
    report = json.loads((tmp_path / "out" / "preprocess-report.json").read_text())
    assert report["written"] == 9 and len(report["failed"]) == 28432


def test_gtzan_real_filtered_split(tmp_path):
    src = need_shared("splits", "music_dataset_split", "GTZAN_split")
    lines = {s: (src / f"{s}_filtered.txt").read_text().split() for s in ("train", "valid", "test")}
    assert [len(v) for v in lines.values()] == [443, 197, 290]
    root = tmp_path / "gtzan"
    (root / "genres").mkdir(parents=True)
    written = [lines["train"][0], lines["valid"][0], lines["test"][-1]]
    for k, line in enumerate(written):  # the real release is .au although the lists say .wav
        write_audio((root / "genres" / line).with_suffix(".au"), seconds=1.0, sr=22050, freq=300 + 100 * k)
    m = get_adapter("gtzan").load(root, {"split_dir": str(src)})
    assert m.counts() == {"train": 443, "valid": 197, "test": 290}
    assert len(m.label_names) == 10 and m.label_names[0] == "blues" and m.task == "multiclass"
    result = _run(m, tmp_path / "out")
    assert result.written == 3 and len(result.failed) == 927
    assert all(f["reason"] == "file not found" for f in result.failed)
    test = Store(tmp_path / "out").split("test")
    assert test.paths == ["genres/" + lines["test"][-1].replace(".wav", ".au")]
    assert test.labels[0].argmax() == m.label_names.index(lines["test"][-1].split("/")[0])


def test_tagtraum_real_test_list(tmp_path):
    src = need_shared("splits", "music_dataset_split", "TAGTRAUM_split")
    test_ids = load_py2_pickle(src / "test_list.cP")
    assert len(test_ids) == 37817
    root = tmp_path / "tagtraum"
    root.mkdir()
    genres = ["Blues", "Country", "Electronic", "Folk", "International", "Jazz", "Latin", "New Age",
              "Pop_Rock", "Rap", "Reggae", "RnB", "Vocal", "Punk", "Metal"]
    with open(root / "msd_tagtraum_cd2c.cls", "w") as f:
        f.write("# MSD tagtraum CD2C\n# TRACK_ID\tGENRE\n")
        for k, tid in enumerate(test_ids[:200]):
            f.write(f"{tid}\t{genres[k % 15]}\n")
    with open(tmp_path / "paths.csv", "w") as f:
        f.write("track_id,path\n")
        for k, tid in enumerate(test_ids[:2]):
            write_audio(root / "audio" / f"{tid}.mp3", seconds=1.0, sr=22050, freq=250 + 80 * k)
            f.write(f"{tid},audio/{tid}.mp3\n")
    m = get_adapter("tagtraum").load(root, {"split_dir": str(src), "paths_csv": str(tmp_path / "paths.csv")})
    assert m.label_names == sorted(genres) and m.task == "multiclass"
    assert m.counts()["test"] == 2 and m.counts()["train"] == 0
    assert m.items[1].labels == (sorted(genres).index("Country"),)
    assert any("train_list.cP" in note for note in m.notes)


def test_fsdd_subset_from_the_cli(tmp_path):
    fsdd = need_shared("fsdd")
    rows = list(csv.DictReader(open(fsdd / "labels.csv")))
    assert {r["split"] for r in rows} == {"train", "test"}
    subset = [r for r in rows if int(r["index"]) < 8 and r["speaker"] in ("george", "jackson")]
    with open(tmp_path / "labels.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(subset)
    from typer.testing import CliRunner

    from samplecnn_cli.cli.app import app

    out = tmp_path / "store"
    res = CliRunner().invoke(app, ["preprocess", "folder", "--root", str(fsdd), "--labels",
                                   str(tmp_path / "labels.csv"), "--out", str(out), "--sr", "8000", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.stdout)
    assert summary["written"] == len(subset) == 160 and summary["failed"] == 0
    store = Store(out)
    assert store.split("test").num_clips == 100  # index 0-4 are the official test part
    assert store.split("valid").num_clips > 0 and store.label_names == [str(d) for d in range(10)]
    first = store.split("test")
    import soundfile as sf

    x, sr = sf.read(fsdd / first.paths[0], dtype="int16")
    assert sr == 8000 and np.array_equal(first.read(0), x)  # 8 kHz in, 8 kHz out: bit exact
