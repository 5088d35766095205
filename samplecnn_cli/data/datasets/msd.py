"""`msd`: Million Song Dataset previews with Last.fm top-50 tags, the paper's split lists.

Split folder (--split-dir, else ROOT/MSD_split, else ROOT), as distributed with the paper's code:
    filtered_list_train.cP   train ids: the first 201,680 are train, the rest valid (optional:
                             without it only the test split is made)
    filtered_list_test.cP    28,435 test ids
    50tagList.txt            the 50 tags: label columns follow this order and spelling
    msd_id_to_tag_vector.cP  {track id: 50-vector} (or --labels FILE)
Audio: ROOT is the 7digital folder; a track id finds its file through MSD_id_to_7D_id.pkl +
7D_id_to_path.pkl (split folder), or through --paths-csv FILE with columns track_id,path (relative
to ROOT or absolute). Listed tracks without labels or audio path are reported as failed.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.datasets.base import (
    DatasetAdapter,
    Item,
    Manifest,
    load_pickle,
    read_csv_rows,
    read_lines,
    require_dir,
    require_file,
    split_dir_option,
)

TRAIN_COUNT = 201_680


def track_paths(root: Path, split_dir: Path | None, options: dict) -> dict[str, str]:
    """{track id: audio path relative to root (or absolute)} from --paths-csv or the 7digital pickles."""
    if options.get("paths_csv"):
        path = require_file(Path(options["paths_csv"]).expanduser(), "paths CSV")
        rows = read_csv_rows(path)
        if not rows or not {"track_id", "path"} <= set(rows[0]):
            raise DataError(f"{path} needs columns track_id,path")
        return {r["track_id"].strip(): r["path"].strip() for r in rows}
    folders = [f for f in (split_dir, root) if f is not None]
    for folder in folders:
        to7d, topath = folder / "MSD_id_to_7D_id.pkl", folder / "7D_id_to_path.pkl"
        if to7d.is_file() and topath.is_file():
            ids, paths = load_pickle(to7d), load_pickle(topath)
            return {tid: paths[d] for tid, d in ids.items() if d in paths}
    raise DataError("no way to find the audio of track ids",
                    hint="pass --paths-csv FILE (columns track_id,path) or put MSD_id_to_7D_id.pkl and "
                         "7D_id_to_path.pkl in the split folder")


def split_lists(split_dir: Path, train_name: str, test_name: str, train_count: int) -> tuple[dict, list[str]]:
    """{split: [track ids]} from the paper's lists; train list head is train, its tail valid."""
    test = load_pickle(require_file(split_dir / test_name, f"test list {test_name}"))
    lists = {"train": [], "valid": [], "test": list(test)}
    notes = []
    if (split_dir / train_name).is_file():
        train = list(load_pickle(split_dir / train_name))
        lists["train"], lists["valid"] = train[:train_count], train[train_count:]
    else:
        notes.append(f"no {train_name} in {split_dir}: only the test split is made")
    return lists, notes


def items_for(lists: dict, root: Path, paths: dict[str, str], labels_of) -> tuple[list[Item], list]:
    items, unresolved = [], []
    for split, ids in lists.items():
        for tid in ids:
            rel = paths.get(tid)
            if rel is None:
                unresolved.append((tid, "no audio path for this track id"))
                continue
            labels = labels_of(tid)
            if labels is None:
                unresolved.append((rel, f"no labels for track {tid}"))
                continue
            path = Path(rel) if Path(rel).is_absolute() else root / rel
            items.append(Item(path, rel, tid, split, labels))
    return items, unresolved


class MSD(DatasetAdapter):
    name = "msd"
    description = "Million Song Dataset (7digital previews), Last.fm top-50 tags, the paper's split lists"
    task = "multilabel"
    options = ("split_dir", "labels", "paths_csv", "train_count")

    def load(self, root: Path, options: dict) -> Manifest:
        root = require_dir(root, self.name)
        split_dir = split_dir_option(options, root, "MSD_split") or root
        tags = read_lines(require_file(split_dir / "50tagList.txt", "50tagList.txt in the split folder",
                                       hint="pass --split-dir MSD_split"))
        labels_file = Path(options.get("labels") or split_dir / "msd_id_to_tag_vector.cP")
        require_file(labels_file, "MSD labels file msd_id_to_tag_vector.cP", hint="pass --labels FILE")
        vectors = load_pickle(labels_file)
        lists, notes = split_lists(split_dir, "filtered_list_train.cP", "filtered_list_test.cP",
                                   int(options.get("train_count") or TRAIN_COUNT))
        paths = track_paths(root, split_dir, options)

        def labels_of(tid):
            vec = vectors.get(tid)
            if vec is None:
                return None
            vec = np.asarray(vec).reshape(-1)
            if vec.shape[0] != len(tags):
                return None
            return tuple(int(j) for j in np.flatnonzero(vec > 0))

        items, unresolved = items_for(lists, root, paths, labels_of)
        return Manifest(self.name, root, tags, self.task, items, self.default_clip_seconds, unresolved, notes)
