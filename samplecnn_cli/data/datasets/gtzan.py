"""`gtzan`: GTZAN genres, `genres/<genre>/<genre>.000NN.{au,wav}` (the root may be `genres` itself).

Split: the fault-filtered lists train_filtered.txt / valid_filtered.txt / test_filtered.txt
(443/197/290; --split-dir GTZAN_split, else ROOT/GTZAN_split). Entries name `.wav` files; the real
release has `.au`, so either suffix is accepted. Without the lists: a seeded stratified 50/20/30
split of every file found. Labels: the 10 genre folder names, sorted. Clips trimmed/padded to 29.1 s.
"""

from __future__ import annotations

from pathlib import Path

from samplecnn_cli.core.errors import DataError
from samplecnn_cli.data.datasets.base import (
    DatasetAdapter,
    Item,
    Manifest,
    read_lines,
    require_dir,
    split_dir_option,
    stratified_split,
)

SPLIT_FILES = {"train": "train_filtered.txt", "valid": "valid_filtered.txt", "test": "test_filtered.txt"}
SUFFIXES = (".wav", ".au")


class GTZAN(DatasetAdapter):
    name = "gtzan"
    description = "GTZAN genres (10), fault-filtered split 443/197/290 via --split-dir"
    task = "multiclass"
    options = ("split_dir", "seed")

    def load(self, root: Path, options: dict) -> Manifest:
        root = require_dir(root, self.name)
        base = root / "genres" if (root / "genres").is_dir() else root
        split_dir = split_dir_option(options, root, "GTZAN_split")
        if split_dir is not None and all((split_dir / f).is_file() for f in SPLIT_FILES.values()):
            entries = [(line, split) for split, f in SPLIT_FILES.items() for line in read_lines(split_dir / f)]
            notes = [f"fault-filtered split from {split_dir}"]
        else:
            files = sorted(p for p in base.glob("*/*") if p.suffix.lower() in SUFFIXES)
            if not files:
                raise DataError(f"no GTZAN audio (<genre>/<genre>.000NN.au|wav) under {base}",
                                hint="point --root at the folder holding genres/")
            rels = [str(p.relative_to(base)) for p in files]
            seed = int(options.get("seed") or 0)
            splits = stratified_split([r.split("/")[0] for r in rels], seed, {"train": 0.5, "valid": 0.2, "test": 0.3})
            entries = list(zip(rels, splits, strict=True))
            notes = [f"no split lists: stratified 50/20/30 split (seed {seed})"]
        names = sorted({line.split("/")[0] for line, _ in entries})
        index = {g: i for i, g in enumerate(names)}
        items = []
        for line, split in entries:
            rel = Path(line)
            for suffix in (rel.suffix, *SUFFIXES):  # the listed name first, then .wav/.au
                if (base / rel.with_suffix(suffix)).is_file():
                    rel = rel.with_suffix(suffix)
                    break
            source = str((base / rel).relative_to(root))
            items.append(Item(base / rel, source, rel.stem, split, (index[line.split("/")[0]],)))
        return Manifest(self.name, root, names, self.task, items, self.default_clip_seconds, notes=notes)
