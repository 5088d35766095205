"""`folder`: any folder of audio with a labels.csv, or a folder-per-class tree.

labels.csv (comma or tab separated) in the root, columns:
    path    audio file, relative to the root (or absolute)
    label   one class per clip (single-label, multiclass)   -- or --
    tags    ';'-separated tags (multi-label)
    split   optional: train / valid / test. Absent: a seeded stratified 80/10/10 split. No `valid`
            rows: a seeded stratified 10% of train becomes valid.
    clip_id optional; default: the path without its suffix
Other columns are ignored. Without labels.csv, every sub-folder of the root is a class and the
audio files under it (any depth) its clips. Label names are sorted (numbers numerically).
Clips are kept whole unless --clip-seconds is given.
"""

from __future__ import annotations

from pathlib import Path

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.datasets.base import (
    SPLITS,
    DatasetAdapter,
    Item,
    Manifest,
    read_csv_rows,
    require_dir,
    stratified_split,
)

AUDIO_SUFFIXES = {".wav", ".flac", ".mp3", ".ogg", ".oga", ".au", ".snd", ".aif", ".aiff", ".w64", ".caf"}
VALID_FRACTION = 0.1  # carved from train when the labels give no valid split


def _label_sort_key(name: str):
    return (0, int(name), name) if name.isdigit() else (1, 0, name)


class Folder(DatasetAdapter):
    name = "folder"
    description = "any folder: labels.csv (path,label|tags[,split]) or one sub-folder per class"
    task = "multiclass"
    default_clip_seconds = None
    options = ("labels", "seed")

    def load(self, root: Path, options: dict) -> Manifest:
        root = require_dir(root, self.name)
        labels_file = Path(options["labels"]).expanduser() if options.get("labels") else root / "labels.csv"
        if options.get("labels") and not labels_file.is_file():
            raise DataError(f"missing labels file {labels_file}", hint="check the labels option / path")
        seed = int(options.get("seed", 0) or 0)
        if labels_file.is_file():
            rows = self._rows_from_csv(labels_file)
        else:
            rows = self._rows_from_tree(root)
        return self._manifest(root, rows, seed)

    # each row: (path string, list of label names, split or "", clip_id or "")
    def _rows_from_csv(self, path: Path) -> list[tuple[str, list[str], str, str]]:
        try:
            rows = read_csv_rows(path)
        except (OSError, UnicodeDecodeError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from None
        if not rows:
            raise DataError(f"{path} has no rows")
        columns = {c for c in rows[0] if isinstance(c, str)}  # DictReader keys extra fields None
        if "path" not in columns or not ({"label", "tags"} & columns):
            raise DataError(f"{path} needs a `path` column and a `label` or `tags` column (has: {', '.join(sorted(columns))})")
        multilabel = "tags" in columns and "label" not in columns
        self.task = "multilabel" if multilabel else "multiclass"
        out = []
        for row in rows:
            if multilabel:
                labels = [t.strip() for t in (row.get("tags") or "").split(";") if t.strip()]
            else:
                labels = [(row.get("label") or "").strip()]
                if not labels[0]:
                    raise DataError(f"{path}: row for {row.get('path')} has an empty label")
            out.append(((row.get("path") or "").strip(), labels, (row.get("split") or "").strip().lower(),
                        (row.get("clip_id") or "").strip()))
        return out

    def _rows_from_tree(self, root: Path) -> list[tuple[str, list[str], str, str]]:
        classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
        out = []
        for folder in classes:
            for file in sorted(folder.rglob("*")):
                if file.suffix.lower() in AUDIO_SUFFIXES and file.is_file():
                    out.append((str(file.relative_to(root)), [folder.name], "", ""))
        if not out:
            raise DataError(f"no labels.csv in {root} and no class sub-folders with audio files",
                            hint="add labels.csv with columns path,label (or path,tags) or one folder per class")
        self.task = "multiclass"
        return out

    def _manifest(self, root: Path, rows, seed: int) -> Manifest:
        label_names = sorted({name for _, labels, _, _ in rows for name in labels}, key=_label_sort_key)
        if not label_names:
            raise DataError("the labels name no label or tag at all", hint="fill the label (or tags) column")
        index = {name: i for i, name in enumerate(label_names)}
        splits = [split for _, _, split, _ in rows]
        bad = sorted({s for s in splits if s and s not in SPLITS})
        if bad:
            raise DataError(f"unknown split value(s) {', '.join(bad)} in the labels (use train, valid, test)")
        keys = [";".join(sorted(labels)) or "-" for _, labels, _, _ in rows]
        notes = []
        if not any(splits):
            splits = stratified_split(keys, seed, {"train": 0.8, "valid": 0.1, "test": 0.1})
            notes.append(f"no split column: made a stratified 80/10/10 split (seed {seed})")
        elif any(not s for s in splits):
            raise DataError("the split column is empty for some rows: fill it for all rows or for none")
        elif "valid" not in splits:
            train = [i for i, s in enumerate(splits) if s == "train"]
            carved = stratified_split([keys[i] for i in train], seed,
                                      {"train": 1 - VALID_FRACTION, "valid": VALID_FRACTION})
            for i, s in zip(train, carved, strict=True):
                splits[i] = s
            notes.append(f"no valid rows: moved a stratified {VALID_FRACTION:.0%} of train to valid (seed {seed})")
        items = []
        seen: set[str] = set()
        for (source, labels, _, clip_id), split in zip(rows, splits, strict=True):
            if Path(source).name in ("", ".", ".."):
                raise DataError(f"a row of the labels has no audio file in its path: {source!r}",
                                hint="every row needs a path such as audio/0001.wav")
            path = Path(source).expanduser()
            path = path if path.is_absolute() else root / path
            clip_id = clip_id or str(Path(source).with_suffix("")).replace("\\", "/")
            if clip_id in seen:
                raise DataError(f"clip {clip_id} is listed twice in the labels")
            seen.add(clip_id)
            items.append(Item(path=path, source=source, clip_id=clip_id, split=split,
                              labels=tuple(sorted(index[n] for n in labels))))
        return Manifest(dataset=self.name, root=root, label_names=label_names, task=self.task, items=items,
                        clip_seconds=self.default_clip_seconds, notes=notes)
