"""One writer per output: `hold(path, what)` keeps a second process from writing what this one writes
(`tag --out`, `embed --out`, a run folder, `--resume` included).

The lock is a filelock lock on `.<name>.lock` beside the output (`<folder>/.lock` for a folder): the
operating system drops it when its process ends, however it ends, so a killed command never leaves a
stale lock. Who holds it (pid, host, command, since when) is written to `<lock>.json` while it is held,
so that the process turned away can say who holds it in one line.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from samplecnn_cli.core.errors import SampleCNNError
from samplecnn_cli.core.outputs import remove_quietly, write_failure


class Busy(SampleCNNError):
    """Another process is writing the same output: exit 1."""


def lock_path(path: Path, folder: bool = False) -> Path:
    path = Path(path)
    return path / ".lock" if folder else path.with_name(f".{path.name}.lock")


@contextmanager
def hold(path: str | Path, what: str, *, folder: bool = False):
    """Hold the lock of `path` (an output file, or a folder with `folder`) while the block runs; Busy
    (naming the holder) when another process holds it."""
    from filelock import FileLock, Timeout

    lock_file = lock_path(Path(path), folder)
    info = lock_file.with_name(lock_file.name + ".json")
    lock = FileLock(str(lock_file), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise Busy(f"{what} is being written by another process ({holder(info)})",
                   hint="wait for it to finish, or write somewhere else") from None
    except OSError as exc:
        if lock_file.exists() and isinstance(exc, PermissionError):  # another user's lock, held or not
            raise Busy(f"{what} is locked by another user's process ({lock_file})") from None
        raise write_failure(exc, lock_file) or exc from None
    try:
        _write_info(info)
        yield
    finally:
        remove_quietly(info)
        lock.release()


def _write_info(info: Path) -> None:
    record = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
              "command": " ".join(["samplecnn", *sys.argv[1:]])[:200]}
    try:
        info.write_text(json.dumps(record))
    except OSError:  # who holds it is a courtesy: a full disk must not stop the command here
        pass


def holder(info: Path) -> str:
    """"pid 123 on host, since 12:01:02: samplecnn tag ..." from the holder's record, when there."""
    try:
        record = json.loads(info.read_text())
        since = time.strftime("%H:%M:%S", time.localtime(float(record["since"])))
        return f"pid {record['pid']} on {record['host']}, since {since}: {record['command']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "its record is not readable yet"


def pid_alive(pid) -> bool:
    """True when a process `pid` runs on this machine (of any user)."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True
