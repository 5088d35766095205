"""Fingerprints of the files and folders a step reads and writes.

A file of at most 1 MiB is hashed by content (configs, label files, metrics: cheap, and a rewrite
with the same bytes changes nothing). A bigger file is fingerprinted by size and modification time:
re-reading a 3 GB store or a checkpoint on every plan would cost more than the steps it skips.
A folder is the hash of its files' relative paths and size+mtime (a raw dataset folder may hold
100,000 MP3s; reading them all to decide whether to skip a step is not an option).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

CONTENT_LIMIT = 1 << 20


def fingerprint(path: Path) -> str | None:
    """A short string that changes when `path` changes; None when it does not exist."""
    path = Path(path)
    try:
        stat = path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    if path.is_dir():
        return "dir:" + _folder_hash(path)
    if stat.st_size <= CONTENT_LIMIT:
        return "sha256:" + hashlib.sha256(path.read_bytes()).hexdigest()[:32]
    return f"stat:{stat.st_size}:{stat.st_mtime_ns}"


def _folder_hash(folder: Path) -> str:
    digest = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                stat = os.stat(full)
            except FileNotFoundError:  # removed while walking
                continue
            rel = os.path.relpath(full, folder)
            digest.update(f"{rel}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:32]


def fingerprints(paths: list[Path]) -> dict[str, str | None]:
    return {str(p): fingerprint(p) for p in paths}
