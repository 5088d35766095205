"""The workspace: where raw datasets live, where stores and runs go.

A workspace is a folder. It is, in order:
  1. the folder named by the environment variable SAMPLECNN_WORKSPACE, or
  2. the nearest folder, from the current one upwards, holding a `samplecnn.toml`, or
  3. the current folder.

`samplecnn.toml` looks like:

    [datasets.mtat]
    root = "/data/magnatagatune"        # raw audio + metadata (relative paths are from the workspace)
    split_dir = "/data/MTAT_split"      # any further keys are options for the dataset adapter

    [datasets.gtzan]
    root = "/data/gtzan"

Layout inside the workspace:
    data/<dataset>/<sample_rate>/{train,valid,test}.h5   preprocessed stores
    runs/<run name>/                                     training, transfer runs
"""

from __future__ import annotations

import re
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from samplecnn_cli.core.context import WORKSPACE_ENV
from samplecnn_cli.core.errors import DataError, RunError, UsageError

ENV_VAR = WORKSPACE_ENV  # read once, into the context
CONFIG_NAME = "samplecnn.toml"


@dataclass
class Workspace:
    root: Path
    config: dict = field(default_factory=dict)

    @classmethod
    def find(cls, start: Path | None = None, *, root: Path | None = None) -> Workspace:
        """The workspace named by the context (`root`: SAMPLECNN_WORKSPACE, or a recipe's work folder),
        else the nearest folder up from `start` (default: here) holding samplecnn.toml, else here."""
        if root is not None:
            root = Path(root).expanduser()
            if root.exists() and not root.is_dir():
                raise UsageError(f"the workspace {root} ({ENV_VAR}) is not a folder")
            return cls.load(root)
        here = (start or Path.cwd()).resolve()
        for folder in (here, *here.parents):
            if (folder / CONFIG_NAME).is_file():
                return cls.load(folder)
        return cls(root=here)

    @classmethod
    def load(cls, root: Path) -> Workspace:
        path = root / CONFIG_NAME
        config: dict = {}
        if path.is_file():
            try:
                config = tomllib.loads(path.read_text())
            except tomllib.TOMLDecodeError as exc:
                raise UsageError(f"{path} is not valid TOML: {exc}") from None
        return cls(root=root.resolve() if root.exists() else root, config=config)

    # -- datasets -------------------------------------------------------------------------------
    @property
    def datasets(self) -> dict[str, dict]:
        """Configured datasets: name -> options (with `root` made absolute)."""
        out = {}
        for name, options in (self.config.get("datasets") or {}).items():
            options = dict(options)
            if "root" in options:
                options["root"] = str(self.resolve(options["root"]))
            out[name] = options
        return out

    def resolve(self, path: str | Path) -> Path:
        path = Path(path).expanduser()
        return path if path.is_absolute() else self.root / path

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    def store_dir(self, dataset: str, sample_rate: int) -> Path:
        return self.data_dir / dataset / str(int(sample_rate))

    def stores(self, dataset: str) -> dict[int, Path]:
        """Preprocessed stores of `dataset` in this workspace, by sample rate."""
        folder = self.data_dir / dataset
        found = {}
        if folder.is_dir():
            for child in folder.iterdir():
                if child.name.isdigit() and any(child.glob("*.h5")):
                    found[int(child.name)] = child
        return dict(sorted(found.items()))

    def find_store(self, dataset: str, sample_rate: int | None = None) -> Path:
        """The store of `dataset`: the one at `sample_rate` when given, else the only one."""
        stores = self.stores(dataset)
        if not stores:
            raise DataError(f"no preprocessed '{dataset}' store in {self.data_dir}",
                            hint=self._preprocess_hint(dataset, sample_rate))
        if sample_rate is not None and sample_rate in stores:
            return stores[sample_rate]
        if sample_rate is None and len(stores) == 1:
            return next(iter(stores.values()))
        rates = ", ".join(f"{rate} Hz" for rate in stores)
        wanted = f" at {sample_rate} Hz" if sample_rate else ""
        raise DataError(
            f"no '{dataset}' store{wanted}; stored rates: {rates}",
            hint="pass --data DIR to pick one, or preprocess at the rate you need with --sr",
        )

    def _preprocess_hint(self, dataset: str, sample_rate: int | None) -> str:
        """A preprocess command that works as printed: the raw folder is --root unless samplecnn.toml
        names it; msd/tagtraum also need --paths-csv (track_id,path) unless their split folder maps ids."""
        from samplecnn_cli.core.errors import SampleCNNError
        from samplecnn_cli.data.datasets.adapters import get_adapter

        rate = f" --sr {sample_rate}" if sample_rate else ""
        if dataset in self.datasets or dataset == "toy":
            return f"run `samplecnn preprocess {dataset}{rate}` first, or pass --data DIR"
        try:
            needs_csv = "paths_csv" in get_adapter(dataset).options
        except SampleCNNError:
            needs_csv = False
        csv = " --paths-csv TRACKS.csv" if needs_csv else ""
        what = "DIR holds the raw audio" + (", TRACKS.csv maps track_id,path" if needs_csv else "")
        return (f"run `samplecnn preprocess {dataset} --root DIR{csv}{rate}` first ({what}; or set "
                f"[datasets.{dataset}] root = \"DIR\" in {CONFIG_NAME}), or pass --data DIR")

    # -- runs -----------------------------------------------------------------------------------
    def new_run_dir(self, *parts: str) -> Path:
        """A fresh, readable, unique run folder name: runs/<YYYYmmdd-HHMMSS>-<parts>[-N]."""
        stem = "-".join([time.strftime("%Y%m%d-%H%M%S"), *(safe_name(p) for p in parts if p)])
        candidate = self.runs_dir / stem
        n = 2
        while candidate.exists():
            candidate = self.runs_dir / f"{stem}-{n}"
            n += 1
        return candidate

    def latest_run(self, kind: str | None = None) -> Path:
        """The most recent finished run (status "done") of `kind` ("train", "transfer" or any).

        Failed, killed or still-running runs are passed over: "latest" means the latest run that
        can answer the command."""
        from samplecnn_cli.runs.folder import DONE, run_status

        runs = [p.parent for p in self.runs_dir.glob("*/config.toml")] if self.runs_dir.is_dir() else []
        usable = [r for r in runs if run_status(r) == DONE and (kind is None or _run_kind(r) == kind)]
        if not usable:
            what = f"finished {kind} runs" if kind else "finished runs"
            raise RunError(
                f"no {what} in {self.runs_dir}",
                hint="train one with `samplecnn train MODEL --dataset NAME`, or pass RUN_DIR",
            )
        return max(usable, key=lambda p: (p / "config.toml").stat().st_mtime)


def _run_kind(run_dir: Path) -> str | None:
    from samplecnn_cli.runs.folder import read_config

    try:
        return read_config(run_dir).get("kind", "train")
    except Exception:  # an unreadable config cannot answer any command
        return None


def safe_name(text: str) -> str:
    """A file-name-safe form of a model or dataset name: `sample-3^9` -> `sample-3pow9`."""
    text = text.replace("^", "pow")
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"
