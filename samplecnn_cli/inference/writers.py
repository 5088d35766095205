"""Tag outputs streamed to disk as files finish, and read back for resuming.

CSV:   header `path,seconds,windows,short,error,tags,<label 1>,...,<label L>`; one row per file (the
       mean over windows). With a timeline, the file's window rows come first (column `window` = 0,
       1, ..., with `start` in seconds) and its summary row last (`window` = "all").
JSONL: one object per file: path, seconds, windows, short, top (best first), tags (scores >= the
       threshold), scores (every label), and with a timeline {"hop_seconds", "starts", "scores"}.
       A failed file is {"path", "error"}.
Paths are written absolute. A file counts as done when its summary row/object is complete; resuming
drops anything after the last complete one (a run killed mid-write), then skips done files. A write
that fails (a full disk) is cut back to the last whole record before the error is raised. With
`replace` (--force over a file `tag` did not write) the records go to a temporary file renamed over
`path` when the run completes.
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np

from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.core.outputs import remove_quietly, remove_stale_temporaries, write_failure

FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}


def output_format(path: Path) -> str:
    fmt = FORMATS.get(Path(path).suffix.lower())
    if fmt is None:
        raise UsageError(f"--out {path}: unknown format", hint="use a .csv or .jsonl file name")
    return fmt


def top_labels(scores: np.ndarray, labels: list[str], k: int) -> list[dict]:
    order = np.argsort(-scores, kind="stable")[:k]
    return [{"label": labels[i], "score": round(float(scores[i]), 6)} for i in order]


class TagWriter:
    """Append results to `path`; `done` holds the absolute paths already there (resume)."""

    def __init__(self, path: Path, labels: list[str], *, top_k: int, threshold: float | None,
                 timeline: bool, hop_seconds: float, replace: bool = False):
        self.path = Path(path)
        self.format = output_format(self.path)
        self.labels, self.top_k, self.threshold = labels, top_k, threshold
        self.timeline, self.hop_seconds = timeline, hop_seconds
        self.header = ["path", "window", "start", "seconds", "windows", "short", "error", "tags", *labels]
        self.target = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}") if replace else self.path
        remove_stale_temporaries(self.path)  # of a run killed outright
        self.done = set() if replace else self._recover()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            new = not self.target.exists() or self.target.stat().st_size == 0
            self.fd = os.open(self.target, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        except OSError as exc:
            raise write_failure(exc, self.path) or exc from None
        self.size = os.fstat(self.fd).st_size  # bytes of whole records
        if new and self.format == "csv":
            self._write(self._csv_rows([self.header]))

    # -- resume ------------------------------------------------------------------------------------
    def _recover(self) -> set[str]:
        """Done paths; rewrites the file without trailing partial records (atomically)."""
        if not self.path.exists():
            return set()
        text = self.path.read_text(encoding="utf-8", errors="replace")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines.pop()  # cut off mid-line
        done, keep = set(), 0
        if self.format == "jsonl":
            for i, line in enumerate(lines):
                try:
                    done.add(json.loads(line)["path"])
                except (ValueError, KeyError, TypeError):
                    break
                keep = i + 1
        else:
            if not lines:
                return set()
            header = next(csv.reader([lines[0]]))
            if header != self.header:
                raise UsageError(f"{self.path} holds other columns than this run writes (other model or labels?)",
                                 hint="write to a new --out file")
            keep = 1
            for i, row in enumerate(csv.reader(lines[1:]), start=1):
                if len(row) == len(self.header) and row[1] == "all":
                    done.add(row[0])
                    keep = i + 1
        kept = "".join(lines[:keep])
        if kept != text:
            tmp = self.path.with_name(f".{self.path.name}.tmp{os.getpid()}")
            try:
                tmp.write_text(kept, encoding="utf-8")
                os.replace(tmp, self.path)
            except OSError as exc:
                remove_quietly(tmp)
                raise write_failure(exc, self.path) or exc from None
        return done

    # -- writing ----------------------------------------------------------------------------------
    def _csv_rows(self, rows) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()

    def _write(self, text: str) -> None:
        """One write per file, so its records land together; a failed one is cut back to the last
        whole record (a full disk leaves no half line behind)."""
        data = text.encode("utf-8")
        try:
            written = 0
            while written < len(data):
                written += os.write(self.fd, data[written:])
        except OSError as exc:
            try:
                os.ftruncate(self.fd, self.size)
            except OSError:
                pass
            raise write_failure(exc, self.path) or exc from None
        self.size += len(data)

    def tags(self, scores: np.ndarray) -> list[str]:
        if self.threshold is None:
            return []
        return [self.labels[i] for i in np.flatnonzero(scores >= self.threshold)]

    def add(self, r) -> None:
        path = str(Path(r.path).resolve())
        if self.format == "jsonl":
            if r.error is not None:
                record = {"path": path, "error": r.error}
            else:
                record = {"path": path, "seconds": round(r.seconds, 3), "windows": r.windows, "short": r.short,
                          "top": top_labels(r.scores, self.labels, self.top_k), "tags": self.tags(r.scores),
                          "scores": {n: round(float(s), 6) for n, s in zip(self.labels, r.scores, strict=True)}}
                if self.timeline and r.window_scores is not None:
                    record["timeline"] = {"hop_seconds": self.hop_seconds,
                                          "starts": [round(i * self.hop_seconds, 3) for i in range(r.windows)],
                                          "scores": np.round(r.window_scores, 6).tolist()}
            self._write(json.dumps(record) + "\n")
        else:
            rows = []
            if r.error is not None:
                rows.append([path, "all", "", "", "", "", r.error, "", *[""] * len(self.labels)])
            else:
                if self.timeline and r.window_scores is not None:
                    for i, ws in enumerate(r.window_scores):
                        rows.append([path, i, f"{i * self.hop_seconds:.3f}", "", "", "", "", ";".join(self.tags(ws)),
                                     *(f"{s:.6f}" for s in ws)])
                rows.append([path, "all", "", f"{r.seconds:.3f}", r.windows, int(r.short), "",
                             ";".join(self.tags(r.scores)), *(f"{s:.6f}" for s in r.scores)])
            self._write(self._csv_rows(rows))
        self.done.add(path)

    def close(self, complete: bool = True) -> None:
        os.close(self.fd)
        if self.target == self.path:
            return
        if not complete:  # a forced replacement that did not finish: the old file stays
            remove_quietly(self.target)
            return
        try:
            os.replace(self.target, self.path)
        except OSError as exc:
            remove_quietly(self.target)
            raise write_failure(exc, self.path) or exc from None

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(complete=exc_type is None)
