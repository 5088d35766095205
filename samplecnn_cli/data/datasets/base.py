"""What an adapter returns (Manifest of Items) and the helpers adapters share."""

from __future__ import annotations

import csv
import pickle
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import DataError

PAPER_CLIP_SECONDS = 29.1  # every song of the paper's four datasets is trimmed (or padded) to this
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True)
class Item:
    """One clip to decode: its file, the id and source path stored with it, its split and labels."""

    path: Path  # absolute path of the audio file
    source: str  # what the store records in `paths` (relative to the dataset root)
    clip_id: str
    split: str
    labels: tuple[int, ...]  # indices into Manifest.label_names of the positive labels


@dataclass
class Manifest:
    dataset: str
    root: Path
    label_names: list[str]
    task: str  # "multilabel" | "multiclass"
    items: list[Item]
    clip_seconds: float | None = PAPER_CLIP_SECONDS  # None keeps whole clips
    # listed clips that could not even be located (e.g. a track id with no audio path): (path, reason)
    unresolved: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # things the user should know (printed once)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in SPLITS}
        for item in self.items:
            out[item.split] += 1
        return out


def confine(manifest: Manifest) -> Manifest:
    """Keep only clips whose audio file really lies inside the dataset root; list the others as failed.

    Paths are resolved first (symlinks, `..`), so `../../etc/passwd`, `/etc/hostname` and a symlink in
    the root that points outside are all refused, and never opened. One file listed twice (under two
    names that resolve to it) would leak a clip between splits: that is an error naming both rows.
    """
    from samplecnn_cli.core.paths import real

    root = real(manifest.root)
    kept, first_row = [], {}
    unresolved = list(manifest.unresolved)
    for item in manifest.items:
        path = real(item.path)
        if root not in path.parents:
            unresolved.append((item.source, f"outside the dataset root {root}: not read"))
            continue
        if path in first_row:
            other = first_row[path]
            raise DataError(f"{path} is listed twice: as {other.source!r} ({other.split}) and as "
                            f"{item.source!r} ({item.split})",
                            hint="list each audio file once in the labels (a clip in two splits leaks "
                                 "test data into training)")
        first_row[path] = item
        kept.append(item)
    manifest.items, manifest.unresolved = kept, unresolved
    return manifest


class DatasetAdapter:
    """Subclass, set the class attributes, implement load(). Registered by name (see registry)."""

    name = ""
    description = ""
    task = "multilabel"
    default_clip_seconds: float | None = PAPER_CLIP_SECONDS
    # option keys this adapter reads (from samplecnn.toml [datasets.NAME] or CLI flags)
    options: tuple[str, ...] = ()

    def load(self, root: Path, options: dict) -> Manifest:
        raise NotImplementedError


# -- helpers --------------------------------------------------------------------------------------
def require_dir(root: Path, what: str) -> Path:
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{what} root {root} is not a folder", hint="pass --root DIR pointing at the raw dataset")
    return root.resolve()


def require_file(path: Path, what: str, hint: str | None = None) -> Path:
    if not Path(path).is_file():
        raise DataError(f"missing {what}: {path}", hint=hint)
    return Path(path)


def load_pickle(path: Path):
    """Python-2 pickles (the split lists of the paper's code) load with latin1."""
    try:
        with open(path, "rb") as f:
            return pickle.load(f, encoding="latin1")
    except (pickle.UnpicklingError, EOFError, ValueError, ImportError) as exc:
        raise DataError(f"{path} is not a readable pickle: {exc}") from None


def read_lines(path: Path) -> list[str]:
    return [line.strip() for line in Path(path).read_text().splitlines() if line.strip()]


def read_csv_rows(path: Path) -> list[dict[str, str]]:
    """The rows of a comma- or tab-separated file with a header, as dicts (DataError for a header that
    names a column twice: which one holds the labels would be a guess)."""
    with open(path, newline="", encoding="utf-8-sig") as f:
        sample = f.read(4096)
        f.seek(0)
        delimiter = "\t" if sample.count("\t") > sample.count(",") else ","
        reader = csv.DictReader(f, delimiter=delimiter)
        check_header(path, reader.fieldnames or [])
        return list(reader)


def check_header(path: Path, columns: list[str]) -> None:
    """DataError when a column name appears twice (spaces and case aside) in a CSV header."""
    seen: dict[str, str] = {}
    for column in columns:
        key = column.strip().lower()
        if key and key in seen:
            raise DataError(f"{path}: the header names the column '{column.strip()}' twice",
                            hint="keep one column of each name")
        seen[key] = column


def normalize_tag(tag: str) -> str:
    """`femaleVoice`, `female voice`, `female_voice` -> `femalevoice`: tag lists spell tags differently."""
    return "".join(ch for ch in tag.lower() if ch.isalnum())


def split_dir_option(options: dict, root: Path, *candidates: str) -> Path | None:
    """The split-list folder: options['split_dir'] if given, else the first candidate under root."""
    if options.get("split_dir"):
        folder = Path(options["split_dir"]).expanduser()
        if not folder.is_dir():
            raise DataError(f"split folder {folder} does not exist", hint="check --split-dir")
        for name in candidates:  # the parent of all split folders (music_dataset_split/) works too
            if (folder / name).is_dir():
                return folder / name
        return folder
    for name in candidates:
        folder = root / name
        if folder.is_dir():
            return folder
    return None


def stratified_split(keys: list[str], seed: int, fractions: dict[str, float]) -> list[str]:
    """Assign each index a split so every key (class or tag set) is spread by `fractions`.

    Deterministic for a seed. With fractions {"train": .8, "valid": .1, "test": .1} each class gets
    round(n * fraction) clips per split (at least one in train).
    """
    rng = np.random.default_rng(seed)
    groups: dict[str, list[int]] = defaultdict(list)
    for i, key in enumerate(keys):
        groups[key].append(i)
    out = [""] * len(keys)
    names = list(fractions)
    for key in sorted(groups):
        idx = np.array(groups[key])
        rng.shuffle(idx)
        n = len(idx)
        start = 0
        for j, name in enumerate(names):
            if j == len(names) - 1:
                take = n - start
            else:
                take = int(round(n * fractions[name]))
                take = min(take, n - start)
            for i in idx[start:start + take]:
                out[i] = name
            start += take
        if n and names[0] not in {out[i] for i in idx}:  # tiny class: keep one example for training
            out[idx[0]] = names[0]
    return out
