"""`mtat`: MagnaTagATune. Root holds annotations_final.csv and the mp3 folders 0..f.

annotations_final.csv is tab-separated with quoted fields: clip_id, 188 tag columns (0/1), mp3_path.
Labels and split:
  * with the paper's split (--split-dir pointing at MTAT_split, or ROOT/MTAT_split): the clips of
    train/valid/test_list_pub.cP (`.npy` names mapped to the `.mp3` paths) and the 50 tags of
    top50_tags.txt, in that file's order and spelling (camelCase, e.g. `femaleVoice`), which is the
    column order of the y_*_pub.npy label matrices that came with it. Each tag is matched to its
    annotation column ignoring case, spaces and underscores.
  * without it: the 50 most frequent tags (descending count, ties in column order, spelled as in the
    csv), clips with none of them dropped, and the usual folder split: 0-b train, c valid, d-f test.
Clips are trimmed/padded to 29.1 s.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.datasets.base import (
    DatasetAdapter,
    Item,
    Manifest,
    check_header,
    load_pickle,
    normalize_tag,
    read_lines,
    require_dir,
    require_file,
    split_dir_option,
)

SPLIT_FILES = {"train": "train_list_pub.cP", "valid": "valid_list_pub.cP", "test": "test_list_pub.cP"}
FOLDER_SPLIT = {**dict.fromkeys("0123456789ab", "train"), "c": "valid", **dict.fromkeys("def", "test")}
TOP_N = 50


def read_annotations(path: Path) -> tuple[list[str], list[str], list[str], np.ndarray]:
    """(tag names, clip ids, mp3 paths, bool matrix clips x tags) of annotations_final.csv."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.reader(f, delimiter="\t", quotechar='"')
        try:
            header = next(reader)
        except StopIteration:
            raise DataError(f"{path} is empty") from None
        if len(header) < 3 or header[0] != "clip_id" or header[-1] != "mp3_path":
            raise DataError(f"{path} does not look like MTAT's annotations_final.csv "
                            "(tab-separated: clip_id, tag columns, mp3_path)")
        check_header(path, header)
        ids, paths, rows = [], [], []
        for row in reader:
            if len(row) != len(header):
                continue
            ids.append(row[0])
            paths.append(row[-1])
            rows.append([v == "1" for v in row[1:-1]])
    return header[1:-1], ids, paths, np.array(rows, dtype=bool).reshape(len(rows), len(header) - 2)


class MTAT(DatasetAdapter):
    name = "mtat"
    description = "MagnaTagATune: annotations_final.csv + mp3s, top-50 tags, paper split via --split-dir"
    task = "multilabel"
    options = ("split_dir", "labels")

    def load(self, root: Path, options: dict) -> Manifest:
        root = require_dir(root, self.name)
        labels_path = Path(options.get("labels") or root / "annotations_final.csv")
        require_file(labels_path, "MTAT labels file annotations_final.csv",
                     hint="put it in the root or pass --labels FILE")
        tags, ids, mp3s, matrix = read_annotations(labels_path)
        split_dir = split_dir_option(options, root, "MTAT_split")
        if split_dir is not None and (split_dir / SPLIT_FILES["train"]).is_file():
            return self._paper_split(root, split_dir, tags, ids, mp3s, matrix)
        return self._folder_split(root, tags, ids, mp3s, matrix)

    def _paper_split(self, root, split_dir, tags, ids, mp3s, matrix) -> Manifest:
        top50 = read_lines(require_file(split_dir / "top50_tags.txt", "top50_tags.txt in the split folder"))
        by_norm = {normalize_tag(t): i for i, t in enumerate(tags)}
        missing = [t for t in top50 if normalize_tag(t) not in by_norm]
        if missing:
            raise DataError(f"tags of top50_tags.txt not in the annotations: {', '.join(missing)}")
        columns = [by_norm[normalize_tag(t)] for t in top50]
        row_of = {p: i for i, p in enumerate(mp3s)}
        items, unresolved = [], []
        for split, filename in SPLIT_FILES.items():
            path = split_dir / filename
            if not path.is_file():
                raise DataError(f"missing MTAT split list {path}")
            for entry in load_pickle(path):
                mp3 = str(Path(entry).with_suffix(".mp3"))
                row = row_of.get(mp3)
                if row is None:
                    unresolved.append((mp3, "not in annotations_final.csv"))
                    continue
                labels = tuple(int(j) for j in np.flatnonzero(matrix[row, columns]))
                items.append(Item(root / mp3, mp3, ids[row], split, labels))
        return Manifest(self.name, root, top50, self.task, items, self.default_clip_seconds, unresolved,
                        notes=[f"paper split from {split_dir}; tag order of top50_tags.txt"])

    def _folder_split(self, root, tags, ids, mp3s, matrix) -> Manifest:
        counts = matrix.sum(axis=0)
        order = sorted(range(len(tags)), key=lambda j: (-counts[j], j))[:TOP_N]
        names = [tags[j] for j in order]
        sub = matrix[:, order]
        items, dropped = [], 0
        for i, mp3 in enumerate(mp3s):
            split = FOLDER_SPLIT.get(mp3[:1])
            if split is None:
                continue
            labels = tuple(int(j) for j in np.flatnonzero(sub[i]))
            if not labels:
                dropped += 1
                continue
            items.append(Item(root / mp3, mp3, ids[i], split, labels))
        return Manifest(self.name, root, names, self.task, items, self.default_clip_seconds,
                        notes=[f"no split lists: folder split 0-b/c/d-f, top-{TOP_N} tags by frequency, "
                               f"{dropped} clips without any of them left out"])
