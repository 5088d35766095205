"""`tagtraum`: MSD tracks with tagtraum CD2C genre labels (15 genres), single-label.

Labels: msd_tagtraum_cd2c.cls in the root (or --labels FILE): `#` comment lines, then
`TRACK_ID<TAB>genre` (a second genre column, as in CD2, is ignored). Label names: the genres of the
file, sorted. Split folder (--split-dir, else ROOT/TAGTRAUM_split, else ROOT): test_list.cP and
train_list.cP (its first 141,372 ids are train, the rest valid; optional). Audio as for `msd`
(--paths-csv or the 7digital pickles).
"""

from __future__ import annotations

from pathlib import Path

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.datasets.base import (
    DatasetAdapter,
    Manifest,
    require_dir,
    require_file,
    split_dir_option,
)
from samplecnn_cli.data.datasets.msd import items_for, split_lists, track_paths

TRAIN_COUNT = 141_372


def read_cls(path: Path) -> dict[str, str]:
    genres = {}
    for line in Path(path).read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.rstrip("\n").split("\t")
        if len(fields) >= 2 and fields[1].strip():
            genres[fields[0].strip()] = fields[1].strip()
    if not genres:
        raise DataError(f"{path} holds no `TRACK_ID<TAB>genre` lines")
    return genres


class Tagtraum(DatasetAdapter):
    name = "tagtraum"
    description = "tagtraum CD2C genres of MSD tracks (15 genres), the paper's split lists"
    task = "multiclass"
    options = ("split_dir", "labels", "paths_csv", "train_count")

    def load(self, root: Path, options: dict) -> Manifest:
        root = require_dir(root, self.name)
        labels_file = Path(options.get("labels") or root / "msd_tagtraum_cd2c.cls")
        genre_of = read_cls(require_file(labels_file, "tagtraum labels file msd_tagtraum_cd2c.cls",
                                         hint="put it in the root or pass --labels FILE"))
        names = sorted(set(genre_of.values()))
        index = {g: i for i, g in enumerate(names)}
        split_dir = split_dir_option(options, root, "TAGTRAUM_split") or root
        lists, notes = split_lists(split_dir, "train_list.cP", "test_list.cP",
                                   int(options.get("train_count") or TRAIN_COUNT))
        paths = track_paths(root, split_dir, options)
        items, unresolved = items_for(lists, root, paths,
                                      lambda tid: (index[genre_of[tid]],) if tid in genre_of else None)
        return Manifest(self.name, root, names, self.task, items, self.default_clip_seconds, unresolved, notes)
