"""Writing HDF5 files that a full disk cannot crash: the store's split and part files, the feature file
of `extract` and the embedding file of `embed` are all written through `H5Writer`.

Why `embed` ended in a segmentation fault on a full disk: when HDF5 fails to write a chunk or its
metadata (ENOSPC), the failed write leaves its caches half-updated; the next flush or close walks them
and crashes. h5py closes every file again when its objects are collected and at interpreter exit, so
after the first failure the process died on its way out (exit 139), whatever Python did with the error.

The fix: HDF5 never meets a full disk. Before each write a writer reserves the space that write and
its metadata will need past the file's allocated end (`reserve`: posix_fallocate), so a full disk
fails there, in Python, while HDF5's state is whole: the file is then closed normally and removed,
and the error is one line. `close` trims what was reserved but not used. Where the file system cannot
reserve space, the free space is checked instead; if HDF5 still fails a write (something else filled the
disk in between), the file is left alone from then on: its open objects are kept referenced so that
nothing closes them, and `unsafe_files()` tells the CLI to end the process with os._exit after printing
the error, skipping HDF5's clean-up, where the crash would be. Writers hold every dataset open while
they write (a handle opened per write would flush its chunks when the garbage collector closes it,
where an error cannot be caught), and `close` flushes before it closes (h5py's close forces every
object shut first, which cannot be undone if it fails).
"""

from __future__ import annotations

import errno
import os
import struct
from contextlib import contextmanager
from pathlib import Path

import h5py

from samplecnn_cli.core.outputs import WriteFailed, remove_quietly, write_failure

MARGIN = 256 << 10  # bytes reserved beyond a write's own: new chunks' headers, B-tree nodes, heaps
_UNSAFE: list = []  # files HDF5 failed to write: kept referenced so that nothing closes them again


def unsafe_files() -> list[str]:
    """Names of files HDF5 failed to write in this process (see the module docstring)."""
    return [entry[0] for entry in _UNSAFE]


class H5Writer:
    """An h5py file open for writing at `path`; `target` is the file named in errors (the temporary
    file's final name). Wrap h5py calls that write in `with writer.writing():` after `reserve`."""

    def __init__(self, path: Path, target: Path | None = None, mode: str = "w"):
        self.path = Path(path)
        self.target = Path(target) if target is not None else self.path
        try:
            self.file = h5py.File(self.path, mode)
        except OSError as exc:
            if mode == "w":  # a new (temporary) file that could not be started: nothing of it stays
                remove_quietly(self.path)
            raise write_failure(exc, self.target) or exc from None
        self._fd = self.file.id.get_vfd_handle()
        self.broken = False

    def chunk_bytes(self) -> int:
        """Bytes of one chunk of every chunked dataset: what a write may allocate beyond its data."""
        total = []

        def visit(name, node):
            if isinstance(node, h5py.Dataset) and node.chunks:
                size = node.dtype.itemsize
                for n in node.chunks:
                    size *= n
                total.append(size)

        self.file.visititems(visit)
        return sum(total)

    def reserve(self, nbytes: int) -> None:
        """Make sure `nbytes` (plus the chunks a write may start, plus MARGIN) can be written: disk
        blocks are allocated for them now, or WriteFailed is raised with HDF5 untouched."""
        need = int(nbytes) + self.chunk_bytes() + MARGIN
        try:
            os.posix_fallocate(self._fd, self.file.id.get_filesize(), need)
        except OSError as exc:
            if exc.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
                raise write_failure(exc, self.target) or exc from None
            self._check_free(need)

    def _check_free(self, need: int) -> None:
        import shutil

        if shutil.disk_usage(self.path.parent).free < need:
            raise write_failure(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), self.target)

    @contextmanager
    def writing(self):
        """h5py calls that write: an error HDF5 raises leaves the file unsafe to touch (module docstring)."""
        try:
            yield self.file
        except (OSError, RuntimeError) as exc:
            if isinstance(exc, WriteFailed):
                raise
            self._leave_unsafe()
            raise write_failure(exc, self.target) or WriteFailed(f"cannot write {self.target}: {exc}") from None

    def flush(self) -> None:
        self.reserve(0)
        with self.writing():
            self.file.flush()

    def close(self, strict: bool = True) -> None:
        """Close (the data is on disk) and give back what was reserved but not used. Without `strict`,
        a failed last reservation does not stop the close: what earlier reservations left past the
        data almost always holds the little metadata a close writes (and an HDF5 error is still caught)."""
        try:
            self.reserve(0)
        except WriteFailed:
            if strict:
                raise
        with self.writing():
            self.file.flush()  # a failure here leaves every object as it was (h5py's close would force
            self.file.close()  # them all shut first, and a failed close cannot be left alone safely)
        _trim(self.path)

    def discard(self) -> None:
        """Close and delete the file (a failed or interrupted write)."""
        try:
            if not self.broken and self.file.id.valid:
                self.file.close()
        except (OSError, RuntimeError):
            self._leave_unsafe()
        finally:
            remove_quietly(self.path)

    def _leave_unsafe(self) -> None:
        """Never close this file: keep a reference to it and to every object open in it (a dataset a
        writer holds would otherwise close when collected, flushing the failed cache: the crash)."""
        if not self.broken:
            self.broken = True
            try:
                objects = h5py.h5f.get_obj_ids(self.file.id)
            except (OSError, RuntimeError, ValueError, TypeError):
                objects = []
            _UNSAFE.append((str(self.target), self.file, objects))
            remove_quietly(self.path)


def _trim(path: Path) -> None:
    """Cut a closed HDF5 file back to the end its superblock records (space `reserve` allocated and
    HDF5 did not use). Superblock versions 0-3, no user block: the files samplecnn writes."""
    with open(path, "r+b") as f:
        head = f.read(64)
        if not head.startswith(b"\x89HDF\r\n\x1a\n"):
            return
        version = head[8]
        if version in (0, 1):
            size, at = head[13], 24 + (4 if version == 1 else 0)
        elif version in (2, 3):
            size, at = head[9], 12
        else:
            return
        if size != 8:
            return
        base, end = struct.unpack_from("<QQQ", head, at)[0], struct.unpack_from("<Q", head, at + 2 * size)[0]
        length = os.fstat(f.fileno()).st_size
        if base == 0 and 0 < end < length:
            f.truncate(end)
