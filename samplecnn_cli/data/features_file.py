"""The feature file written by `samplecnn extract`, and choosing columns from it.

Layout (one HDF5 file, format "samplecnn-features", format_version 1):
    /<split>/features   float32 (num_clips, num_columns)  one row per clip, chunked by rows
    /<split>/labels     bool    (num_clips, num_labels)   the target store's labels
    /<split>/clip_ids   str     (num_clips,)
    /blocks             str (scalar JSON)  the column index table: a list of blocks, each
                        {run, run_dir, model, input_samples, sample_rate, layer, pooling, channels,
                         start, stop}: columns [start, stop) hold `pooling` ("max" | "avg") of hidden
                        layer `layer` (-3, -2, -1) of run `run` over the whole clip
    attrs               format, format_version, label_names (JSON), task, sample_rate, data (store
                        folder), dataset, splits (JSON), precision, samplecnn_version
One matrix plus a block table keeps writing a row one contiguous write, and any subset of
(run, layer, pooling) is a list of column ranges.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import h5py
import numpy as np

from samplecnn_cli.core.errors import DataError, UsageError

FORMAT = "samplecnn-features"
FORMAT_VERSION = 1
LAYERS = (-3, -2, -1)
POOLINGS = ("max", "avg")


@dataclass(frozen=True)
class Block:
    run: str  # a short key: the run directory's name (made unique within the file)
    run_dir: str
    model: str
    input_samples: int
    sample_rate: int
    layer: int
    pooling: str
    channels: int
    start: int
    stop: int

    def describe(self) -> str:
        return f"{self.run} ({self.model}) layer {self.layer} {self.pooling}"


def blocks_to_json(blocks: list[Block]) -> str:
    return json.dumps([asdict(b) for b in blocks])


def parse_layers(text: str | None) -> tuple[int, ...] | None:
    """"-1,-2,-3" -> (-3, -2, -1); None or "" -> None (all). Only the last three hidden layers exist."""
    if not text:
        return None
    try:
        values = sorted({int(part) for part in text.split(",") if part.strip()})
    except ValueError:
        raise UsageError(f"--layers takes comma-separated integers, not {text!r}", hint="e.g. --layers -1,-2,-3") from None
    bad = [v for v in values if v not in LAYERS]
    if bad or not values:
        raise UsageError(f"layer(s) {bad or text} do not exist: the features hold layers -3, -2 and -1",
                         hint="e.g. --layers -1 or --layers -3,-2,-1")
    return tuple(values)


def parse_names(text: str | None, allowed: tuple[str, ...] | None = None, option: str = "") -> tuple[str, ...] | None:
    if not text:
        return None
    values = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    if allowed is not None:
        bad = [v for v in values if v not in allowed]
        if bad:
            raise UsageError(f"{option} {', '.join(bad)} is not one of {', '.join(allowed)}")
    return values or None


class FeatureFile:
    """Read a feature file: its block table, labels and selected columns of any split."""

    def __init__(self, path: Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise DataError(f"no feature file {self.path}", hint="write one with `samplecnn extract`")
        try:
            with h5py.File(self.path, "r") as f:
                attrs = dict(f.attrs)
                if attrs.get("format") != FORMAT:
                    raise DataError(f"{self.path} is not a samplecnn feature file",
                                    hint="write one with `samplecnn extract`")
                self.blocks = [Block(**b) for b in json.loads(_text(f["blocks"][()]))]
                self.splits = [s for s in json.loads(attrs["splits"]) if s in f]
                self.sizes = {s: int(f[s]["features"].shape[0]) for s in self.splits}
        except OSError as exc:
            raise DataError(f"cannot read feature file {self.path}: {exc}") from None
        self.attrs = attrs
        self.label_names: list[str] = json.loads(attrs["label_names"])
        self.task: str = str(attrs["task"])
        self.sample_rate = int(attrs["sample_rate"])
        self.dataset = str(attrs.get("dataset", ""))

    @property
    def runs(self) -> list[str]:
        return list(dict.fromkeys(b.run for b in self.blocks))

    def run_models(self) -> dict[str, str]:
        return {b.run: b.model for b in self.blocks}

    def select(self, runs: tuple[str, ...] | None = None, layers: tuple[int, ...] | None = None,
               poolings: tuple[str, ...] | None = None, strict: bool = True) -> list[Block]:
        """Blocks matching every given filter (None = any). A run matches by key or model name."""
        if runs and strict:
            known = set(self.runs) | {b.model for b in self.blocks}
            bad = [r for r in runs if r not in known]
            if bad:
                raise UsageError(f"no run {', '.join(bad)} in {self.path.name}",
                                 hint="runs there: " + ", ".join(f"{k} ({m})" for k, m in self.run_models().items()))
        chosen = [b for b in self.blocks
                  if (not runs or b.run in runs or b.model in runs)
                  and (not layers or b.layer in layers)
                  and (not poolings or b.pooling in poolings)]
        if not chosen and strict:
            raise UsageError(f"no feature columns in {self.path.name} match that selection",
                             hint="layers there: " + ", ".join(str(v) for v in sorted({b.layer for b in self.blocks})))
        return chosen

    def _require(self, split: str) -> None:
        if split not in self.splits:
            raise DataError(f"{self.path.name} has no '{split}' split (it has: {', '.join(self.splits)})")

    def read(self, split: str, blocks: list[Block], rows: slice = slice(None)) -> np.ndarray:
        """Float32 (rows, columns of `blocks`) of one split; read block by block (contiguous columns)."""
        self._require(split)
        with h5py.File(self.path, "r") as f:
            data = f[split]["features"]
            parts = [data[rows, b.start:b.stop] for b in blocks]
        return np.concatenate(parts, axis=1).astype(np.float32, copy=False)

    def labels(self, split: str) -> np.ndarray:
        self._require(split)
        with h5py.File(self.path, "r") as f:
            return f[split]["labels"][:].astype(bool)

    def clip_ids(self, split: str) -> list[str]:
        self._require(split)
        with h5py.File(self.path, "r") as f:
            return [_text(s) for s in f[split]["clip_ids"][:]]


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


# -- choosing columns: what a transfer run reads ------------------------------------------------------
@dataclass
class Selection:
    """The chosen columns: per feature file, its blocks in column order."""

    files: list[FeatureFile]
    blocks: list[list[Block]]
    label_names: list[str]
    task: str
    filters: dict = field(default_factory=dict)  # the --runs, --layers, --pooling asked for

    @property
    def width(self) -> int:
        return sum(b.channels for blocks in self.blocks for b in blocks)

    def read(self, split: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """Features (N, width), bool targets (N, L) and clip ids of one split, checked across files."""
        first = self.files[0]
        clip_ids = first.clip_ids(split)
        parts = []
        for ff, blocks in zip(self.files, self.blocks, strict=True):
            if not blocks:
                continue
            if ff is not first and ff.clip_ids(split) != clip_ids:
                raise DataError(f"{ff.path.name} and {first.path.name} hold different clips in '{split}'",
                                hint="extract all feature files from the same store")
            parts.append(ff.read(split, blocks))
        return np.concatenate(parts, axis=1), first.labels(split), clip_ids

    def describe(self) -> list[dict]:
        return [{"file": str(ff.path.resolve()), "run": b.run, "model": b.model, "layer": b.layer,
                 "pooling": b.pooling, "channels": b.channels}
                for ff, blocks in zip(self.files, self.blocks, strict=True) for b in blocks]


def select_features(paths: list[Path], runs: tuple[str, ...] | None = None, layers: tuple[int, ...] | None = None,
                    poolings: tuple[str, ...] | None = None) -> Selection:
    """Open feature files and pick the columns matching the filters (a run may live in any file)."""
    if not paths:
        raise UsageError("give at least one feature file (written by `samplecnn extract`)")
    files = [FeatureFile(Path(p)) for p in paths]
    first = files[0]
    for ff in files[1:]:
        if (ff.label_names, ff.task) != (first.label_names, first.task):
            raise DataError(f"{ff.path.name} and {first.path.name} were extracted from stores with different labels",
                            hint="combine feature files of the same target dataset only")
    if runs:
        known = {r for ff in files for r in ff.runs} | {b.model for ff in files for b in ff.blocks}
        bad = [r for r in runs if r not in known]
        if bad:
            have = ", ".join(f"{k} ({m})" for ff in files for k, m in ff.run_models().items())
            raise UsageError(f"no run {', '.join(bad)} in the feature files", hint=f"runs there: {have}")
    blocks = [ff.select(runs, layers, poolings, strict=False) for ff in files]
    if not any(blocks):
        raise UsageError("no feature columns match that selection",
                         hint="check --runs, --layers and --pooling against `samplecnn extract`'s output")
    filters = {"runs": list(runs or []), "layers": list(layers or []), "poolings": list(poolings or [])}
    return Selection(files=files, blocks=blocks, label_names=first.label_names, task=first.task, filters=filters)


def selection_from_config(config: dict) -> Selection:
    """Rebuild a transfer run's exact column selection from its config.toml."""
    entries = config["features"]["blocks"]
    paths = list(dict.fromkeys(e["file"] for e in entries))
    files = {p: FeatureFile(Path(p)) for p in paths}
    blocks: list[list[Block]] = []
    for p in paths:
        ff, chosen = files[p], []
        for e in (e for e in entries if e["file"] == p):
            match = [b for b in ff.blocks if (b.run, b.layer, b.pooling) == (e["run"], e["layer"], e["pooling"])]
            if not match:
                raise DataError(f"{p} no longer holds {e['run']} layer {e['layer']} {e['pooling']}",
                                hint="re-extract the features this transfer run was trained on")
            chosen.append(match[0])
        blocks.append(chosen)
    ff0 = files[paths[0]]
    return Selection(files=list(files.values()), blocks=blocks, label_names=ff0.label_names, task=ff0.task)


# -- training ---------------------------------------------------------------------------------------
