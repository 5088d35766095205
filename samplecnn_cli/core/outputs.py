"""Where a command may write: the one output guard, and failed writes as one-line errors.

`guard_file(path, own=..., force=..., inputs=...)`, called before a command writes its `--out` file:
    a folder, or one of the command's own inputs          refused, even with --force
    absent                                                fine, unless a run folder, a store or a
                                                          dataset folder keeps that name for itself
    a file of the kind this command writes (`own`)        fine: the command replaces or resumes it
    empty                                                 fine: nothing to lose
    anything else: a checkpoint, a store, audio, a file   refused unless `force` (then the command
    of another kind, a file inside a run, store or        replaces it atomically: temporary file, rename)
    dataset folder
A refusal is one line naming what is there. What a file is comes from its first bytes (`sniff`): the
HDF5 `format` attribute samplecnn writes, a checkpoint's zip archive, audio magic numbers, a tag file's
header; containers from the files that mark them (a run's config.toml, a store's report, labels.csv).

`write_failure(exc, path)`: a full disk, a read-only folder, a quota or a permission error as the error
a user reads: which file could not be written, why, and how much space is free.
"""

from __future__ import annotations

import errno
import json
import re
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from samplecnn_cli.core.errors import SampleCNNError, UsageError
from samplecnn_cli.core.paths import real

WHAT = {
    "hdf5:samplecnn-store": "a training store file",
    "hdf5:samplecnn-features": "a feature file (samplecnn extract)",
    "hdf5:samplecnn-embeddings": "an embedding file (samplecnn embed)",
    "hdf5": "an HDF5 file samplecnn did not write",
    "checkpoint": "a PyTorch checkpoint",
    "torchscript:samplecnn": "a TorchScript model (samplecnn export)",
    "onnx:samplecnn": "an ONNX model (samplecnn export)",
    "onnx": "an ONNX model samplecnn did not export",
    "audio": "an audio file",
    "tags": "a tag file (samplecnn tag)",
    "report": "a report samplecnn wrote",
    "figure": "a figure samplecnn drew",
    "other": "a file samplecnn did not write",
}
AUDIO_MAGIC = (b"RIFF", b"RF64", b"fLaC", b"OggS", b"ID3", b"FORM", b".snd", b"caff", b"\xff\xfb", b"\xff\xf3",
               b"\xff\xf2")
AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".au", ".snd", ".aif", ".aiff", ".aifc",
                  ".w64", ".caf", ".m4a"}
TAG_HEADER = "path,window,start,seconds,windows,short,error,tags"
# names a folder keeps for itself: writing one, even where it is absent, breaks the folder
RUN_FILES = {"config.toml", "env.json", "metrics.jsonl", "summary.json", "status.json", "train.log"}
STORE_FILES = {"train.h5", "valid.h5", "test.h5", "preprocess-report.json"}


class OutputRefused(SampleCNNError):
    """`--out` names something samplecnn will not replace: exit 1."""


@dataclass(frozen=True)
class Target:
    """A checked output: `replacing` is True when --force lets the command replace a file it did not
    write (it must then start afresh and rename over it only when complete; --force over a file of
    its own kind starts afresh too)."""

    path: Path
    exists: bool
    replacing: bool = False


def guard_file(path: str | Path, *, own: Iterable[str], force: bool = False, inputs: Iterable = (),
               option: str = "--out") -> Target:
    """Check that the command may write `path` (see the module docstring); raise OutputRefused if not."""
    path = Path(path)
    target = real(path)
    if path.is_dir():
        raise UsageError(f"{option} {path} is a folder", hint="name the file to write")
    if any(real(p) == target for p in inputs):
        raise OutputRefused(f"{option} {path} is one of this command's inputs: not replaced",
                            hint="write to a new file")
    folder = container(target)
    if not path.exists():
        if folder is not None and folder.keeps(target) and not force:
            raise OutputRefused(f"{option} {path} is a name {folder.describe()} keeps for itself: not written",
                                hint="choose another --out (or pass --force to write it anyway)")
        return Target(path, exists=False)
    kind = sniff(path)
    if kind in set(own) or kind == "empty":
        return Target(path, exists=True)
    if not force:
        where = f" in {folder.describe()}" if folder is not None else ""
        raise OutputRefused(f"{option} {path} is {WHAT.get(kind, WHAT['other'])}{where}: not replaced",
                            hint="choose another --out (or pass --force to replace it)")
    return Target(path, exists=True, replacing=True)


# -- what a file is --------------------------------------------------------------------------------
def sniff(path: str | Path) -> str:
    """A key of WHAT (or "empty", "unreadable") for the file at `path`, from its first bytes."""
    path = Path(path)
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return "unreadable"
    if not head:
        return "empty"
    if head.startswith(b"\x89HDF\r\n\x1a\n"):
        return _hdf5_kind(path)
    if head.startswith(b"PK\x03\x04"):
        return _zip_kind(path)
    if path.suffix.lower() == ".onnx":
        return "onnx:samplecnn" if b"samplecnn-export" in path.read_bytes() else "onnx"
    if head.startswith(b"\x89PNG") or path.suffix.lower() == ".svg":
        return "figure" if b"Matplotlib" in head or b"matplotlib" in head else "other"
    if head.startswith(AUDIO_MAGIC) or path.suffix.lower() in AUDIO_SUFFIXES:
        return "audio"
    if _is_tag_file(head):
        return "tags"
    return "report" if _is_report(path, head) else "other"


def _hdf5_kind(path: Path) -> str:
    import h5py

    try:
        with h5py.File(path, "r") as f:
            fmt = f.attrs.get("format")
    except (OSError, KeyError, ValueError):
        return "hdf5"
    fmt = fmt.decode() if isinstance(fmt, bytes) else fmt
    return f"hdf5:{fmt}" if f"hdf5:{fmt}" in WHAT else "hdf5"


def _zip_kind(path: Path) -> str:
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return "other"
    if any(name.endswith("extra/samplecnn.json") for name in names):
        return "torchscript:samplecnn"
    return "checkpoint" if any(name.endswith("data.pkl") for name in names) else "other"


def _is_tag_file(head: bytes) -> bool:
    first = head.decode("utf-8", errors="replace").splitlines()[0] if head.strip() else ""
    if first.startswith(TAG_HEADER):
        return True
    try:
        record = json.loads(first)
    except ValueError:
        return False
    return isinstance(record, dict) and "path" in record and ("top" in record or "error" in record)


def _is_report(path: Path, head: bytes) -> bool:
    """A report, table or figure description samplecnn wrote: HTML and Markdown say "by samplecnn", the
    JSON files carry the keys samplecnn gives them."""
    suffix = path.suffix.lower()
    if suffix in (".html", ".md"):
        return b"by samplecnn " in path.read_bytes()
    if suffix != ".json":
        return False
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    keys = set(data) if isinstance(data, dict) else set()
    return "samplecnn" in keys or {"rows", "metrics", "features"} <= keys or {"figure", "points"} <= keys \
        or {"out_dir", "layers"} <= keys


def guard_files(paths: Iterable, *, own: Iterable[str] = ("report", "figure"), force: bool = False,
                option: str = "--out") -> None:
    """`guard_file` for each of the files a command writes into its --out folder."""
    for path in paths:
        guard_file(path, own=own, force=force, option=option)


# -- folders that own their files --------------------------------------------------------------------
@dataclass(frozen=True)
class Container:
    kind: str  # "run folder" | "store" | "dataset folder"
    path: Path

    def describe(self) -> str:
        return f"the {self.kind} {self.path}"

    def keeps(self, target: Path) -> bool:
        """True when `target` is a name this folder keeps for itself."""
        inside = target.relative_to(self.path)
        if self.kind == "run folder":
            return inside.parts[0] == "checkpoints" or str(inside) in RUN_FILES or inside.name.startswith("metrics")
        if self.kind == "store":
            return str(inside) in STORE_FILES or inside.parts[0] == ".parts"
        return str(inside) == "labels.csv"


def container(target: Path) -> Container | None:
    """The nearest run folder, store or dataset folder holding `target` (resolved), or None."""
    for folder in target.parents:
        if (folder / "config.toml").is_file() and ((folder / "status.json").is_file()
                                                    or (folder / "checkpoints").is_dir()):
            return Container("run folder", folder)
        if (folder / "preprocess-report.json").is_file() or (folder / ".parts").is_dir():
            return Container("store", folder)
        if (folder / "labels.csv").is_file():
            return Container("dataset folder", folder)
    return None


# -- failed writes -------------------------------------------------------------------------------------
WRITE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "disk quota exceeded",
                errno.EFBIG: "file too large", errno.EROFS: "read-only file system",
                errno.EACCES: "permission denied", errno.EPERM: "operation not permitted"}
SPACE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}


class WriteFailed(SampleCNNError):
    """A file could not be written (disk full, read-only, no permission): exit 1."""

    def __init__(self, message: str, hint: str | None = None, *, code: int | None = None):
        super().__init__(message, hint)
        self.errno = code


def write_failure(exc: BaseException, path: str | Path | None = None) -> WriteFailed | None:
    """`exc` as a WriteFailed naming the file (`path`, else the one the error names) when it is a
    failed write of the kinds in WRITE_ERRNOS; None for any other error."""
    if isinstance(exc, WriteFailed):
        return exc
    code = error_number(exc)
    if code not in WRITE_ERRNOS:
        return None
    name = str(path) if path is not None else _named_file(exc)
    what = f"cannot write {name}" if name else "cannot write"
    if code in SPACE_ERRNOS:
        free = free_space(name or ".")
        room = f" ({format_size(free)} free there)" if free is not None else ""
        return WriteFailed(f"{what}: {WRITE_ERRNOS[code]}{room}", code=code,
                           hint="free some space and run the same command again: it continues")
    return WriteFailed(f"{what}: {WRITE_ERRNOS[code]}", code=code,
                       hint="choose a folder you can write to, or fix its permissions")


def error_number(exc: BaseException) -> int | None:
    """The errno of `exc` or of the error it was raised from (torch.save into a Python file raises a
    RuntimeError whose context is the OSError); h5py puts it in its text."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno:
            return exc.errno
        found = re.search(r"errno = (\d+)|\[Errno (\d+)\]", str(exc))
        if found:
            return int(found.group(1) or found.group(2))
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _named_file(exc: BaseException) -> str | None:
    if isinstance(exc, OSError) and exc.filename:
        return str(exc.filename)
    found = re.search(r"(?:file)?name = '([^']+)'", str(exc))
    return found.group(1) if found else None


def remove_quietly(path: str | Path) -> None:
    """Remove a temporary file on the way out of a failure: nothing there, or a read-only folder, is no
    second error on top of the first."""
    try:
        Path(path).unlink(missing_ok=True)
    except OSError:
        pass


def remove_stale_temporaries(path: str | Path) -> None:
    """Remove the `.<name>.tmp<pid>...` files of `path` (a file), or of every file in `path` (a folder),
    whose process is gone (killed outright while it wrote them); a live writer's are left alone."""
    from samplecnn_cli.core.locks import pid_alive

    path = Path(path)
    folder, pattern = (path, ".*.tmp*") if path.is_dir() else (path.parent, f".{glob_escape(path.name)}.tmp*")
    try:
        found = list(folder.glob(pattern))
    except OSError:
        return
    for leftover in found:
        digits = re.search(r"\.tmp(\d+)", leftover.name)
        if digits and not pid_alive(int(digits.group(1))):
            remove_quietly(leftover)


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def free_space(path: str | Path) -> int | None:
    """Free bytes on the disk holding `path` (its nearest existing folder)."""
    folder = Path(path).absolute()
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder if folder.is_dir() else folder.parent).free
    except OSError:
        return None


def format_size(size: float) -> str:
    """Bytes for a person: 0 B, 148.0 KB, 1.2 GB."""
    if size < 1000:
        return f"{size:.0f} B"
    for unit in ("KB", "MB", "GB"):
        size /= 1000
        if size < 1000 or unit == "GB":
            break
    return f"{size:.1f} {unit}"
