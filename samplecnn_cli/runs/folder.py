"""Run directories: what a run writes, and loading a trained model back from one.

A run directory (training or transfer) holds:
    config.toml          the fully resolved configuration (see `write_config`); config["kind"] is
                         "train" (a waveform model) or "transfer" (an MLP over extracted features)
    env.json             package versions, git commit, command line, host, seed
    metrics.jsonl        one JSON object per epoch
    checkpoints/best.pt  best weights by validation loss; checkpoints/last.pt: last epoch + trainer state
    train.log            the log
    status.json          {"state": "running" | "failed" | "interrupted" | "done", "pid", "host", "updated",
                         "reason"}
    summary.json         the same keys for every run kind (SUMMARY_KEYS), plus a kind's own facts
    metrics.json         written by `samplecnn evaluate` (song-level test metrics; metrics-<split>.json
                         for other splits) with predictions-<split>.npz beside it
`RunDir` is the one place that names these files.
Checkpoints hold only tensors and plain Python values, so they load with torch.load(weights_only=True).
A checkpoint carries its run's identity (config.toml's run_id, and a hash of model, labels, task and
rate); `load_run` refuses a checkpoint copied in from another run.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import sys
import time
import tomllib
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from samplecnn_cli import __version__
from samplecnn_cli.core import signals
from samplecnn_cli.core.errors import RunError
from samplecnn_cli.core.locks import pid_alive

CHECKPOINT_FORMAT = "samplecnn-checkpoint"
CHECKPOINT_VERSION = 1


# -- writing ---------------------------------------------------------------------------------------
def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` through a temporary file and a rename: the file is whole or old. A write
    that fails (a full disk, a read-only folder) leaves no temporary file and is one clear error."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with _writing(path, tmp):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(text)
        os.replace(tmp, path)


@contextmanager
def _writing(path: Path, tmp: Path | None = None):
    """Remove `tmp` if the block fails; an OSError of a failed write becomes core.outputs.WriteFailed."""
    from samplecnn_cli.core.outputs import remove_quietly, write_failure

    try:
        yield
    except BaseException as exc:
        if tmp is not None:
            remove_quietly(tmp)
        failure = write_failure(exc, path) if isinstance(exc, (OSError, RuntimeError)) else None
        if failure is not None:
            raise failure from None
        raise


def write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, default=_plain) + "\n")


def write_config(run_dir: Path, config: dict) -> None:
    """config.toml: TOML has no null, so None values are left out."""
    atomic_write_text(RunDir(Path(run_dir)).config, tomli_w.dumps(_drop_none(config)))


def read_config(run_dir: Path) -> dict:
    path = RunDir(Path(run_dir)).config
    if not path.is_file():
        raise RunError(f"{run_dir} is not a run directory (no config.toml)",
                       hint="pass a folder written by `samplecnn train` or `samplecnn transfer`")
    try:
        config = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RunError(f"{path} is unreadable or damaged: {_one_line(reason)}",
                       hint="restore config.toml, or train the run again") from None
    needed = ("kind", "model", "label_names", "task") if config.get("kind") == "train" else ("kind", "model")
    missing = [key for key in needed if key not in config]
    if missing or not isinstance(config["kind"], str):  # empty, cut short, or not a run's
        raise RunError(f"{path} is unreadable or damaged: no {', '.join(repr(k) for k in missing) or 'kind'}",
                       hint="restore config.toml, or train the run again")
    return config


def _one_line(text: str) -> str:
    """The first line of an error message: callers print errors as one line."""
    lines = str(text).strip().splitlines()
    return lines[0] if lines else type(text).__name__


def environment_info(seed: int | None = None) -> dict:
    """Versions, git commit and command line: what env.json records for reproducibility."""
    import h5py
    import numpy
    import sklearn
    import torch

    return {
        "samplecnn": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchaudio": installed_version("torchaudio"),  # optional; read without loading its library
        "numpy": numpy.__version__,
        "h5py": h5py.__version__,
        "scikit-learn": sklearn.__version__,
        "platform": platform.platform(),
        "cpu_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "git_commit": git_commit(),
        "command": sys.argv,
        "seed": seed,
    }


def installed_version(distribution: str) -> str | None:
    """The installed version of a distribution, or None; never imports it."""
    from importlib import metadata

    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def git_commit() -> str | None:
    """The commit of the samplecnn source tree, when it is a git checkout."""
    from samplecnn_cli.core.paths import source_tree

    source = source_tree()
    try:
        out = subprocess.run(["git", "-C", str(source), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
        dirty = subprocess.run(["git", "-C", str(source), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None



# -- status ---------------------------------------------------------------------------------------
RUNNING, FAILED, DONE, INTERRUPTED = "running", "failed", "done", "interrupted"
STATES = (RUNNING, FAILED, DONE, INTERRUPTED)
STATUS_FILE = "status.json"


def mark_status(run_dir: Path, state: str, reason: str | None = None) -> None:
    """Record the run's state: "running" when it starts, then "done", "failed" (with a reason) or
    "interrupted" (Ctrl-C, SIGTERM: resumable). On a full disk the status is rewritten in place, in the
    space its old content held, rather than left saying "running"."""
    if state not in STATES:
        raise ValueError(f"unknown run state {state!r}")
    path = Path(run_dir) / STATUS_FILE
    record = {"state": state, "pid": os.getpid(), "host": socket.gethostname(), "updated": time.time(),
              "reason": reason}
    try:
        write_json(path, record)
    except OSError:  # WriteFailed included
        if not _rewrite_in_place(path, json.dumps(record)):
            raise


def _rewrite_in_place(path: Path, text: str) -> bool:
    """Overwrite an existing small file without a temporary file (no new disk blocks needed)."""
    data = text.encode()
    try:
        if not path.is_file() or path.stat().st_size < len(data) // 2:
            return False
        with open(path, "r+b") as f:
            f.write(data)
            f.truncate()
        return True
    except OSError:
        return False


def run_status(run_dir: Path) -> str:
    """"running", "failed", "interrupted" or "done". A "running" run whose process is gone (killed)
    counts as failed; a run written before status.json existed is done when it has summary.json."""
    run_dir = Path(run_dir)
    try:
        status = json.loads((run_dir / STATUS_FILE).read_text())
        state = status["state"]
    except (OSError, ValueError, KeyError, TypeError):
        return DONE if RunDir(run_dir).summary.is_file() else FAILED
    if state == RUNNING and status.get("host") == socket.gethostname() and not pid_alive(status.get("pid")):
        return FAILED
    return state if state in STATES else FAILED


# -- the run folder's schema ------------------------------------------------------------------------
SUMMARY_KEYS = ("kind", "model", "epochs", "best_epoch", "best_valid_loss", "final_lr", "lr_decreases",
                "stop_reason", "total_seconds", "params", "world_size")


@dataclass(frozen=True)
class RunDir:
    """One run folder: the only place that knows its file names (see the module docstring)."""

    path: Path

    config = property(lambda self: self.path / "config.toml")
    env = property(lambda self: self.path / "env.json")
    metrics = property(lambda self: self.path / "metrics.jsonl")
    summary = property(lambda self: self.path / "summary.json")
    log = property(lambda self: self.path / "train.log")
    status = property(lambda self: self.path / STATUS_FILE)
    checkpoints = property(lambda self: self.path / "checkpoints")
    best = property(lambda self: self.path / "checkpoints" / "best.pt")
    last = property(lambda self: self.path / "checkpoints" / "last.pt")

    def evaluation(self, split: str) -> Path:
        """Song-level metrics of `split` written by `samplecnn evaluate` (metrics.json for test)."""
        return self.path / ("metrics.json" if split == "test" else f"metrics-{split}.json")

    def predictions(self, split: str) -> Path:
        return self.path / f"predictions-{split}.npz"

    def prepare(self, resume: bool = False, start_over_failed: bool = False) -> RunDir:
        """Create the folder, refusing one that holds a run unless resuming.

        A run that failed before its first last.pt left nothing to continue: it is started over. With
        `start_over_failed` (runs cheap enough to redo, e.g. transfer) any failed or killed run is."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path} is a file, not a run folder", hint="choose a new --out folder")
        exists = self.config.exists()
        if exists and not resume and not self.restartable(start_over_failed):
            raise RunError(f"{self.path} already holds a run",
                           hint="pass --resume to continue it, or --out with a new folder")
        if resume and not exists:
            raise RunError(f"nothing to resume in {self.path} (no config.toml)")
        if not exists and self.path.exists() and not self._unused():
            raise RunError(f"{self.path} exists and is not empty", hint="choose a new --out folder")
        if exists and not resume:
            for stale in (self.best, self.last, self.summary, self.metrics, self.evaluation("test")):
                stale.unlink(missing_ok=True)
        try:
            self.checkpoints.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # under a file, a symlink loop...
            raise RunError(f"cannot create the run folder {self.path}: {exc.strerror or exc}",
                           hint="choose a new --out folder") from None
        return self

    def _unused(self) -> bool:
        """True for a folder holding nothing but what a run stopped before its config.toml left (a full
        disk, a kill or SIGTERM while it started): its lock, status, log, an empty checkpoints/."""
        own = {".lock", ".lock.json", STATUS_FILE, self.log.name, self.env.name, self.metrics.name}
        for entry in self.path.iterdir():
            if entry.name in own or (entry.name.startswith(".") and ".tmp" in entry.name):
                continue
            if entry == self.checkpoints and entry.is_dir() and not any(entry.iterdir()):
                continue
            return False
        return True

    def restartable(self, even_with_checkpoint: bool = False) -> bool:
        """True for a failed, killed or interrupted run with no last.pt (or any, `even_with_checkpoint`):
        a rerun into it starts over."""
        return run_status(self.path) in (FAILED, INTERRUPTED) and (even_with_checkpoint or not self.last.exists())

    def write_config(self, config: dict) -> None:
        write_config(self.path, config)

    def read_config(self) -> dict:
        return read_config(self.path)

    def append_metrics(self, row: dict) -> None:
        """One line; a write that fails (a full disk) is cut back, so no half line is left."""
        data = (json.dumps(row, default=_plain) + "\n").encode()
        with _writing(self.metrics), open(self.metrics, "ab") as f:
            size = f.tell()
            try:
                f.write(data)
                f.flush()
            except OSError:
                f.truncate(size)
                raise

    def truncate_metrics(self, epoch: int) -> None:
        """Keep the metric lines of epochs up to `epoch` (a kill can leave lines after the checkpoint, or
        half a line)."""
        if not self.metrics.is_file():
            return
        keep = []
        for line in self.metrics.read_text().splitlines():
            try:
                if json.loads(line)["epoch"] <= epoch:
                    keep.append(line)
            except (ValueError, KeyError, TypeError):
                continue
        atomic_write_text(self.metrics, "".join(line + "\n" for line in keep))

    def write_summary(self, summary: dict) -> None:
        missing = [k for k in SUMMARY_KEYS if k not in summary]
        if missing:
            raise ValueError(f"summary lacks {missing}")
        write_json(self.summary, summary)

    def mark(self, state: str, reason: str | None = None) -> None:
        mark_status(self.path, state, reason)

    def write_evaluation(self, split: str, metrics: dict, predictions: dict) -> Path:
        """metrics(-split).json and predictions-<split>.npz (scores, targets, label_names[, clip_ids])."""
        import numpy as np

        write_json(self.evaluation(split), metrics)
        path = self.predictions(split)
        tmp = path.with_name(f".{path.stem}.tmp{os.getpid()}.npz")
        with _writing(path, tmp):
            np.savez_compressed(tmp, **{k: np.asarray(v) for k, v in predictions.items() if v is not None})
            os.replace(tmp, path)
        return self.evaluation(split)


# -- checkpoints -----------------------------------------------------------------------------------
def save_checkpoint(path: Path, *, model_name: str, model_kwargs: dict, state_dict: dict,
                    label_names: list[str], task: str, sample_rate: int | None,
                    kind: str = "train", extra: dict | None = None) -> None:
    """Save weights plus what is needed to rebuild the model, atomically."""
    import torch

    path = Path(path)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "kind": kind,
        "model": {"name": model_name, "kwargs": _drop_none(model_kwargs)},
        "state_dict": state_dict,
        "label_names": list(label_names),
        "task": task,
        "sample_rate": sample_rate,
        "samplecnn_version": __version__,
        **(extra or {}),
    }
    payload["identity"] = {"run_id": _run_id_of(path), "hash": identity_hash(payload)}
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    # Ctrl-C / SIGTERM are taken once the file is in place: raised inside torch's writer, they would
    # leave its archive inconsistent and end as its RuntimeError, not as an interrupt
    with _writing(path, tmp), signals.deferred():
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:  # a Python file: a failed write surfaces as its OSError (errno)
            torch.save(payload, f)
        os.replace(tmp, path)


def identity_hash(checkpoint: dict) -> str:
    """What a checkpoint is a model of: its model, arguments, labels, task and rate, hashed."""
    import hashlib

    described = [checkpoint["model"]["name"], checkpoint["model"]["kwargs"], checkpoint["label_names"],
                 checkpoint["task"], checkpoint.get("sample_rate")]
    return hashlib.sha1(json.dumps(described, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _run_id_of(path: Path) -> str | None:
    """The run_id in config.toml of the run folder whose checkpoints/ holds `path`, if any."""
    config = path.parent.parent / "config.toml"
    if path.parent.name != "checkpoints" or not config.is_file():
        return None
    try:
        return tomllib.loads(config.read_text(encoding="utf-8")).get("run_id")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None


def check_identity(config: dict, checkpoint: dict, path: Path, run_dir: Path) -> None:
    """RunError when `checkpoint` (read from `path`) was written by another run than the one whose
    config.toml is `config`: another run id, or another model, labels, task or rate."""
    theirs = (checkpoint.get("identity") or {}).get("run_id")
    ours = config.get("run_id")
    fields = {"model": (config.get("model"), checkpoint["model"]["name"]),
              "labels": (config.get("label_names"), checkpoint.get("label_names")),
              "task": (config.get("task"), checkpoint.get("task")),
              "sample rate": (config.get("sample_rate"), checkpoint.get("sample_rate"))}
    differ = [name for name, (a, b) in fields.items() if a is not None and b is not None and a != b]
    if not differ and not (theirs and ours and theirs != ours):
        return
    what = f"its {', '.join(differ)} differ from" if differ else f"it was written by run {theirs}, not"
    raise RunError(f"{path} belongs to another run: {what} {run_dir}'s config.toml "
                   f"({describe_model(checkpoint)})",
                   hint="put the checkpoint back in its own run folder, or restore this run's own")


def describe_model(checkpoint: dict) -> str:
    rate = checkpoint.get("sample_rate")
    return (f"the checkpoint holds {checkpoint['model']['name']} with {len(checkpoint.get('label_names', []))} "
            f"labels" + (f" at {rate:,} Hz" if rate else ""))


def load_checkpoint(path: Path, map_location: str = "cpu") -> dict:
    import torch

    path = Path(path)
    if not path.is_file():
        raise RunError(f"no checkpoint at {path}")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception:  # PyTorch's own text is long and suggests weights_only=False: never show it
        if _is_damaged_zip(path):
            raise RunError(f"checkpoint {path} is truncated or damaged",
                           hint="delete it and train again (or --resume from checkpoints/last.pt)") from None
        raise RunError(f"{path} is not a samplecnn checkpoint") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise RunError(f"{path} is not a samplecnn checkpoint")
    return payload


def _is_damaged_zip(path: Path) -> bool:
    """True when `path` starts like a torch.save zip archive but is not a whole, readable one."""
    import zipfile

    try:
        with open(path, "rb") as f:
            magic = f.read(4)
        if not magic:
            return True  # cut off before the first byte
        if magic != b"PK\x03\x04":
            return False  # not written by torch.save at all
        with zipfile.ZipFile(path) as archive:
            return archive.testzip() is not None
    except (OSError, zipfile.BadZipFile, EOFError, ValueError):
        return True


def build_model(checkpoint: dict):
    """Rebuild the model a checkpoint describes and load its weights."""
    name, kwargs = checkpoint["model"]["name"], dict(checkpoint["model"]["kwargs"])
    if checkpoint.get("kind") == "transfer":
        from samplecnn_cli.models.transfer import TransferMLP

        model = TransferMLP(**kwargs)
    else:
        from samplecnn_cli.models.registry import create_model

        model = create_model(name, **kwargs)
    model.load_state_dict(checkpoint["state_dict"])
    return model


@dataclass
class LoadedRun:
    run_dir: Path
    config: dict
    model: Any  # torch.nn.Module in eval mode
    model_name: str
    kind: str  # "train" | "transfer"
    label_names: list[str]
    task: str
    sample_rate: int | None
    checkpoint: dict


def load_run(run_dir: Path, which: str = "best", map_location: str = "cpu") -> LoadedRun:
    """Load a run's config and its `which` ("best" or "last") checkpoint, model in eval mode."""
    run_dir = Path(run_dir)
    config = read_config(run_dir)
    path = RunDir(run_dir).checkpoints / f"{which}.pt"
    if not path.is_file() and which == "best":
        path = RunDir(run_dir).last
    checkpoint = load_checkpoint(path, map_location)
    check_identity(config, checkpoint, path, run_dir)
    model = build_model(checkpoint).eval()
    return LoadedRun(
        run_dir=run_dir, config=config, model=model, model_name=checkpoint["model"]["name"],
        kind=checkpoint.get("kind", "train"), label_names=list(checkpoint["label_names"]),
        task=checkpoint["task"], sample_rate=checkpoint.get("sample_rate"), checkpoint=checkpoint,
    )


def record_evaluation(loaded: LoadedRun, split: str, scores, targets, *, which: str = "best", clip_ids=None,
                      source=None, inference: dict | None = None) -> dict:
    """Song-level metrics of `scores` against `targets`, written into the run (metrics.json for test,
    predictions-<split>.npz for ROC curves): what `samplecnn evaluate` and `samplecnn transfer` write."""
    import numpy as np

    from samplecnn_cli.core.metrics import compute_metrics

    metrics = compute_metrics(scores, targets, loaded.task, loaded.label_names)
    metrics.update(split=split, run=str(loaded.run_dir), model=loaded.model_name, checkpoint=which,
                   data=str(source) if source else None, inference=inference)
    predictions = {"scores": np.asarray(scores, np.float32), "targets": np.asarray(targets, bool),
                   "label_names": np.asarray(loaded.label_names, dtype=str),
                   "clip_ids": None if clip_ids is None else np.asarray(clip_ids, dtype=str)}
    RunDir(loaded.run_dir).write_evaluation(split, metrics, predictions)
    return metrics


def _drop_none(value):
    if isinstance(value, dict):
        return {k: _drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_drop_none(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def _plain(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
