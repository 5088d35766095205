"""Preprocessing: a dataset manifest -> an HDF5 store, on all cores, resumable, shardable.

How a run works, and why it survives being killed at any moment:
  1. The adapter lists the clips (Manifest). They are ordered by split and cut into chunks of
     consecutive clips of one split; chunk i belongs to shard i % N (`--shard K/N`, K from 1).
  2. Each worker process decodes one chunk at a time and writes it as a part file
     OUT/.parts/<fingerprint>/chunk-NNNNNN.h5 (temp name, renamed when complete). A part file holds
     the clips that decoded and, in an attribute, the files that failed and why.
  3. When every chunk has its part (all shards done), the parts are concatenated in chunk order into
     OUT/{train,valid,test}.h5 (atomic), OUT/preprocess-report.json is written, the parts removed.
A rerun of the same command finds the finished parts and decodes only the missing chunks; the
fingerprint (dataset, settings, clip list) keeps parts of a different run from being mixed in. A
shard that finishes last does the merge; shards run on separate disks are merged by copying their
.parts folders together and running the command once more without --shard.
"""

from __future__ import annotations

import hashlib
import json
import math
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from samplecnn_cli import __version__
from samplecnn_cli.core.errors import DataError, SampleCNNError, UsageError
from samplecnn_cli.core.outputs import WriteFailed
from samplecnn_cli.data.datasets.base import SPLITS, Item, Manifest, confine

REPORT_NAME = "preprocess-report.json"
PARTS_DIR = ".parts"
MAX_CHUNK = 32  # clips per part file: big enough to amortise HDF5 overhead, small enough to lose little on a kill
MIN_CHUNK = 8  # per-file HDF5 overhead dominates for short clips in tiny chunks


@dataclass
class Settings:
    sample_rate: int = 22050
    clip_seconds: float | None = None  # None: the dataset's default; 0: whole clips
    workers: int = 0  # 0: all cores
    shard: tuple[int, int] = (1, 1)
    strict: bool = False
    force: bool = False
    chunk_size: int = 0  # 0: automatic


@dataclass
class ChunkResult:
    chunk: int
    files: int
    written: int
    failed: list[dict]
    seconds: float  # audio seconds written


@dataclass
class Result:
    out: Path
    dataset: str
    complete: bool  # False: this shard is done, others are not yet
    written: int = 0
    failed: list[dict] = field(default_factory=list)
    splits: dict[str, int] = field(default_factory=dict)
    decoded_files: int = 0  # files decoded by this run (0 when everything was already done)
    reused_chunks: int = 0
    audio_hours: float = 0.0  # decoded by this run
    wall_seconds: float = 0.0
    up_to_date: bool = False
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # shown after the run (e.g. a damaged store rebuilt)
    report_path: Path | None = None


def check_settings(settings: Settings) -> None:
    """Every option checked before anything is read or written (UsageError, exit 2)."""
    if settings.workers < 0:
        raise UsageError(f"--workers must be 0 (all cores) or more, not {settings.workers}")
    if settings.chunk_size < 0:
        raise UsageError(f"--chunk-size must be 0 (automatic) or more, not {settings.chunk_size}")
    seconds = settings.clip_seconds
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"--clip-seconds must be a positive number of seconds (0 keeps whole clips), not {seconds}")


def parse_shard(text: str | None) -> tuple[int, int]:
    if not text:
        return (1, 1)
    try:
        k, n = (int(x) for x in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/4), not {text!r}") from None
    if n < 1 or not 1 <= k <= n:
        raise UsageError(f"--shard {text}: need 1 <= K <= N (K counts from 1)")
    return (k, n)


def _chunks(items: list[Item], size: int) -> list[tuple[str, list[Item]]]:
    by_split = {s: [it for it in items if it.split == s] for s in SPLITS}
    out = []
    for split, members in by_split.items():
        for start in range(0, len(members), size):
            out.append((split, members[start:start + size]))
    return out


def _fingerprint(manifest: Manifest, sample_rate: int, clip_seconds: float | None, chunk_size: int) -> str:
    h = hashlib.sha1()
    head = [manifest.dataset, manifest.label_names, manifest.task, sample_rate, clip_seconds, chunk_size, 1]
    h.update(json.dumps(head).encode())
    for it in manifest.items:
        # relative source, not the absolute path: shards on machines with other mount points agree
        h.update(f"\n{it.clip_id}\t{it.source}\t{it.split}\t{it.labels}".encode())
    return h.hexdigest()[:16]


# -- worker side ----------------------------------------------------------------------------------
@dataclass
class _Job:
    chunk: int
    split: str
    items: list[Item]
    part: Path
    writer_kwargs: dict
    sample_rate: int
    clip_seconds: float | None
    owner: str = ""  # names the driver's temporary files (removed if a worker is stopped half way)


FLUSH_SAMPLES = 1 << 22  # decoded samples gathered before one write to the part file (8 MB of int16)


class _PartBuffer:
    """Clips on their way into a part file. Short clips are gathered and written together (per-clip
    HDF5 appends cost more than decoding short clips); a clip longer than FLUSH_SAMPLES goes straight
    to the file as it is decoded, so memory stays flat for clips of any length."""

    def __init__(self, writer):
        self.writer = writer
        self.waves, self.rows, self.samples = [], [], 0

    def add(self, wave: np.ndarray, row: tuple) -> None:
        self.waves.append(wave)
        self.rows.append(row)
        self.samples += wave.shape[0]
        if self.samples >= FLUSH_SAMPLES:
            self.flush()

    def flush(self) -> None:
        if not self.waves:
            return
        offsets = np.concatenate([[0], np.cumsum([w.shape[0] for w in self.waves])])
        labels, clip_ids, sources = zip(*self.rows, strict=True)
        self.writer.extend(np.concatenate(self.waves), offsets, np.stack(labels), list(clip_ids), list(sources))
        self.waves, self.rows, self.samples = [], [], 0


def _decode_item(item: Item, job: _Job, buffer: _PartBuffer, row: tuple) -> float:
    """Decode one clip into `buffer` (or, when long, straight into its part file); its audio seconds."""
    from samplecnn_cli.data import audio

    clip_samples = int(round(job.clip_seconds * job.sample_rate)) if job.clip_seconds else 0
    if not audio.is_long(item.path, job.clip_seconds or None):
        samples = audio.decode(item.path, job.sample_rate, max_seconds=job.clip_seconds or None)
        if clip_samples:
            samples = audio.fit_length(samples, clip_samples)
        buffer.add(audio.to_int16(samples), row)
        return samples.shape[0] / job.sample_rate
    buffer.flush()
    writer, count = buffer.writer, 0
    try:
        for piece in audio.stream(item.path, job.sample_rate, max_seconds=job.clip_seconds or None):
            writer.append_audio(audio.to_int16(piece))
            count += piece.shape[0]
        if clip_samples > count:
            writer.append_audio(np.zeros(clip_samples - count, np.int16))
            count = clip_samples
    except audio.AudioError:
        writer.drop_clip()
        raise
    writer.end_clip(row[1], row[2], row[0])
    return count / job.sample_rate


def _run_job(job: _Job) -> ChunkResult:
    """Decode one chunk into its part file. Bad files are recorded, never raised."""
    from samplecnn_cli.data import audio
    from samplecnn_cli.data.store import SplitWriter

    failed: list[dict] = []
    seconds = 0.0
    num_labels = len(job.writer_kwargs["label_names"])
    writer = SplitWriter(job.part, **job.writer_kwargs, extra_attrs={"chunk": job.chunk}, owner=job.owner)
    try:
        buffer = _PartBuffer(writer)
        for item in job.items:
            row = np.zeros(num_labels, bool)
            row[list(item.labels)] = True
            try:
                seconds += _decode_item(item, job, buffer, (row, item.clip_id, item.source))
            except audio.AudioError as exc:
                failed.append({"path": item.source, "reason": str(exc)})
            except (KeyboardInterrupt, SampleCNNError):
                raise
            except Exception as exc:  # one strange file must not stop the run
                failed.append({"path": item.source, "reason": f"{type(exc).__name__}: {exc}"[:300]})
        buffer.flush()
        writer.set_attrs(failed=json.dumps(failed))
        written = writer.num_clips
        writer.close()
    except BaseException:
        writer.abort()
        raise
    return ChunkResult(job.chunk, len(job.items), written, failed, seconds)


# -- driver ---------------------------------------------------------------------------------------
def _read_report(out: Path) -> dict:
    try:
        report = json.loads((out / REPORT_NAME).read_text())
    except (OSError, ValueError):
        return {}
    return report if isinstance(report, dict) else {}


def _store_intact(out: Path, report: dict, result: Result) -> bool:
    """True when every split file the report lists passes the store's cheap checks; a damaged or
    missing one is noted (the caller rebuilds the store instead of calling it up to date)."""
    from samplecnn_cli.data.store import check_split

    splits = report.get("splits")
    if not isinstance(splits, dict) or not splits:
        return False
    for split, clips in splits.items():
        problem = check_split(out / f"{split}.h5", num_clips=clips if isinstance(clips, int) else -1,
                              sample_rate=report.get("sample_rate"))
        if problem:
            state = "missing" if problem == "missing" else f"damaged ({problem})"
            result.warnings.append(f"{out / f'{split}.h5'} is {state}: rebuilt the store")
            return False
    return True


def _atomic_json(path: Path, data: dict) -> None:
    from samplecnn_cli.core.outputs import remove_quietly, write_failure

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, path)
    except BaseException as exc:
        remove_quietly(tmp)
        failure = write_failure(exc, path) if isinstance(exc, OSError) else None
        if failure is not None:
            raise failure from None
        raise


def _pool_context():
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def run(manifest: Manifest, out: Path, settings: Settings,
        on_start: Callable[[int, int], None] | None = None,
        on_chunk: Callable[[ChunkResult], None] | None = None) -> Result:
    """Preprocess `manifest` into the store folder `out`. See the module docstring for the design."""
    started = time.perf_counter()
    out = Path(out)
    manifest, sample_rate, clip_seconds = _checked(manifest, settings)
    check_out_folder(out)
    shard_k, shard_n = settings.shard
    chunk_size = settings.chunk_size or max(MIN_CHUNK, min(MAX_CHUNK, math.ceil(len(manifest.items) / 64)))
    fingerprint = _fingerprint(manifest, sample_rate, clip_seconds, chunk_size)
    result = Result(out=out, dataset=manifest.dataset, complete=False, notes=list(manifest.notes))
    if not settings.force and _already_done(out, fingerprint, result):
        result.wall_seconds = time.perf_counter() - started
        return result
    parts_dir = _parts_dir(out, fingerprint, shard_n)
    chunks = _chunks(manifest.items, chunk_size)
    settings_json = {"dataset": manifest.dataset, "root": str(manifest.root), "sample_rate": sample_rate,
                     "clip_seconds": clip_seconds, "resampler": "soxr HQ", "mono": "mean of channels",
                     "chunk_size": chunk_size, "fingerprint": fingerprint}
    base_kwargs = {"sample_rate": sample_rate, "label_names": manifest.label_names, "task": manifest.task,
                   "dataset": manifest.dataset,
                   "clip_samples": int(round(clip_seconds * sample_rate)) if clip_seconds else 0,
                   "preprocess": settings_json}

    def part_path(i: int) -> Path:
        return parts_dir / f"chunk-{i:06d}.h5"

    mine = [i for i in range(len(chunks)) if i % shard_n == shard_k - 1]
    todo = [i for i in mine if not part_path(i).is_file()]
    result.reused_chunks = len(mine) - len(todo)
    jobs = [_Job(i, chunks[i][0], chunks[i][1], part_path(i), {**base_kwargs, "split": chunks[i][0]},
                 sample_rate, clip_seconds) for i in todo]
    if on_start:
        on_start(sum(len(j.items) for j in jobs), sum(len(chunks[i][1]) for i in mine))
    try:
        _decode(jobs, settings.workers, result, on_chunk)
    except WriteFailed as failure:
        raise _kept_parts(failure, parts_dir) from None
    if not all(part_path(i).is_file() for i in range(len(chunks))):
        result.wall_seconds = time.perf_counter() - started
        missing = sum(not part_path(i).is_file() for i in range(len(chunks)))
        result.notes.append(f"shard {shard_k}/{shard_n} done; {missing} chunk(s) of other shards still missing: "
                            "the last shard to finish merges them")
        return result
    try:
        return _merge(manifest, out, parts_dir, chunks, part_path, base_kwargs, fingerprint, result, started,
                      settings.strict)
    except WriteFailed as failure:
        raise _kept_parts(failure, parts_dir) from None


def _kept_parts(failure: WriteFailed, parts_dir: Path) -> WriteFailed:
    """A failed write (a full disk) says what the rerun continues from: the finished parts are kept."""
    from samplecnn_cli.core.outputs import format_size

    parts = list(parts_dir.glob("chunk-*.h5"))
    if parts and failure.hint and "free some space" in failure.hint:
        size = format_size(sum(p.stat().st_size for p in parts))
        failure.hint = (f"free some space and run the same command again: it continues from the {len(parts)} "
                        f"finished part file(s) in {parts_dir} ({size}); delete that folder to start over")
    return failure


def _checked(manifest: Manifest, settings: Settings) -> tuple[Manifest, int, float | None]:
    """The manifest confined to its root, the sample rate and the clip length; UsageError/DataError
    for settings no run can use or a dataset with no readable clip."""
    from samplecnn_cli.data.audio import check_rate

    check_settings(settings)
    try:
        sample_rate = check_rate(settings.sample_rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    clip_seconds = manifest.clip_seconds if settings.clip_seconds is None else (settings.clip_seconds or None)
    if clip_seconds is not None and clip_seconds <= 0:
        raise UsageError("--clip-seconds must be positive (0 keeps whole clips)")
    manifest = confine(manifest)  # audio outside the dataset root is reported as failed, never opened
    if not manifest.items:
        reason = f" ({len(manifest.unresolved)} listed clip(s) failed: {manifest.unresolved[0][1]})" \
            if manifest.unresolved else ""
        raise DataError(f"the {manifest.dataset} dataset at {manifest.root} lists no readable clips{reason}")
    return manifest, sample_rate, clip_seconds


def check_out_folder(out: Path) -> None:
    """The store goes into a folder (new, or a store's): never over split files that are not a store's
    (the output guard, core/outputs.py)."""
    from samplecnn_cli.core.outputs import OutputRefused, guard_files

    if out.exists() and not out.is_dir():
        raise OutputRefused(f"--out {out} is a file, not a store folder", hint="name a folder for the store")
    if (out / REPORT_NAME).is_file() or (out / PARTS_DIR).is_dir():
        return  # a store (its damaged files are rebuilt)
    guard_files([out / f"{s}.h5" for s in SPLITS if (out / f"{s}.h5").exists()], own={"hdf5:samplecnn-store"})


def _already_done(out: Path, fingerprint: str, result: Result) -> bool:
    """True (and `result` filled from the report) when `out` holds this very store, intact."""
    previous = _read_report(out)
    if previous.get("fingerprint") != fingerprint or not _store_intact(out, previous, result):
        return False
    result.complete, result.up_to_date = True, True
    result.written, result.failed = previous.get("written", 0), previous.get("failed", [])
    result.splits, result.report_path = previous["splits"], out / REPORT_NAME
    return True


def _parts_dir(out: Path, fingerprint: str, shard_n: int) -> Path:
    """The folder of this run's chunk files; parts of an older, different run of `out` go."""
    parts_dir = out / PARTS_DIR / fingerprint
    try:
        parts_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot write the store into {out}: {exc.strerror or exc}",
                        hint="pass --out with a folder (new, or one written by `samplecnn preprocess`)") from None
    for stale in (out / PARTS_DIR).iterdir():
        if stale.is_dir() and stale.name != fingerprint and shard_n == 1:
            shutil.rmtree(stale, ignore_errors=True)
    return parts_dir


def _decode(jobs: list, workers: int | None, result: Result, on_chunk) -> None:
    """Run the chunk jobs (in a process pool unless one worker does), counting into `result`. However
    this ends (an error, a full disk, Ctrl-C, SIGTERM), the workers are stopped and the temporary part
    files they were writing removed; finished parts stay for the rerun."""
    from samplecnn_cli.core import signals
    from samplecnn_cli.core.outputs import remove_quietly

    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs) or 1))
    decoded_seconds = 0.0
    owner = f"p{os.getpid()}"
    for job in jobs:
        job.owner = owner
    for job in jobs[:1]:
        _remove_stale_temps(job.part.parent)
    pool = None
    try:
        if workers == 1:
            results = map(_run_job, jobs)
        else:  # the pool forks before the progress display starts its thread
            with signals.blocked():
                pool = _pool_context().Pool(workers, initializer=signals.quiet_worker, maxtasksperchild=200)
            results = pool.imap_unordered(_run_job, jobs)
        for chunk_result in results:
            result.decoded_files += chunk_result.files
            decoded_seconds += chunk_result.seconds
            if on_chunk:
                on_chunk(chunk_result)
    finally:
        if pool is not None:
            pool.terminate()
            pool.join()
        for job in jobs[:1]:
            for leftover in job.part.parent.glob(f".*.{owner}-*.tmp"):
                remove_quietly(leftover)
    result.audio_hours = decoded_seconds / 3600


def _remove_stale_temps(parts_dir: Path) -> None:
    """Temporary part files of runs that were killed outright (their process is gone): a live one (a
    shard running beside this run) is left alone."""
    import re

    from samplecnn_cli.core.locks import pid_alive
    from samplecnn_cli.core.outputs import remove_quietly

    for leftover in parts_dir.glob(".*.tmp"):
        found = re.search(r"\.h5\.p?(\d+)-", leftover.name)
        if found and not pid_alive(int(found.group(1))):
            remove_quietly(leftover)


def _take_lock(path: Path):
    """The exclusive merge lock (a `filelock` lock: the OS drops it when its process dies, however it
    dies, and a live holder of any user keeps it), or None when another process holds it."""
    from filelock import FileLock, Timeout

    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except (Timeout, PermissionError):  # PermissionError: a lock file of another user, in use or not
        return None
    return lock


def _merge(manifest, out, parts_dir, chunks, part_path, base_kwargs, fingerprint, result, started, strict):
    import h5py

    from samplecnn_cli.data.store import merge_parts

    lock = _take_lock(parts_dir / "merge.lock")
    if lock is None:
        result.notes.append("another process is merging this store; it will write the report")
        result.wall_seconds = time.perf_counter() - started
        return result
    try:
        for leftover in out.glob(".*.h5.*.tmp"):  # temporary files of a merge that was killed
            leftover.unlink(missing_ok=True)
        failed = [{"path": p, "reason": r} for p, r in manifest.unresolved]
        for i in range(len(chunks)):
            with h5py.File(part_path(i), "r") as f:
                failed.extend(json.loads(f.attrs.get("failed", "[]")))
        written = 0
        splits = {}
        for split in SPLITS:
            parts = [part_path(i) for i in range(len(chunks)) if chunks[i][0] == split]
            target = out / f"{split}.h5"
            if not parts:
                target.unlink(missing_ok=True)  # a split of an older, different run
                continue
            n = merge_parts(parts, target, **{**base_kwargs, "split": split})
            if n == 0:
                target.unlink(missing_ok=True)
                continue
            splits[split] = n
            written += n
        result.wall_seconds = time.perf_counter() - started
        report = {
            "written": written, "failed": failed, "dataset": manifest.dataset, "root": str(manifest.root),
            "sample_rate": base_kwargs["sample_rate"], "clip_samples": base_kwargs["clip_samples"],
            "label_names": manifest.label_names, "task": manifest.task, "splits": splits,
            "fingerprint": fingerprint, "samplecnn_version": __version__,
            "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        _atomic_json(out / REPORT_NAME, report)
        shutil.rmtree(parts_dir, ignore_errors=True)
        try:
            (out / PARTS_DIR).rmdir()
        except OSError:
            pass
    finally:
        lock.release()
    result.complete = True
    result.written, result.failed, result.splits = written, failed, splits
    result.report_path = out / REPORT_NAME
    if written == 0:
        raise DataError(f"no clip of {manifest.dataset} could be decoded ({len(failed)} failed)",
                        hint=f"see {out / REPORT_NAME} for the reasons")
    if strict and failed:
        raise DataError(f"{len(failed)} file(s) failed and --strict is set",
                        hint=f"see {out / REPORT_NAME}; the store of the {written} good clips was written")
    return result


class RichProgress:
    """A rich progress bar with files/s and audio-hours/s, fed by run()'s callbacks."""

    def __init__(self, console, label: str):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        self._progress = Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]}"), TimeRemainingColumn(),
                                  console=console, transient=False)
        self._label = label
        self._task = None
        self._t0 = 0.0
        self._files = 0
        self._seconds = 0.0

    def start(self, files: int, shard_files: int) -> None:
        self._t0 = time.perf_counter()
        self._progress.start()
        self._task = self._progress.add_task(self._label, total=files, rate="")

    def chunk(self, res: ChunkResult) -> None:
        self._files += res.files
        self._seconds += res.seconds
        dt = max(time.perf_counter() - self._t0, 1e-6)
        rate = (f"{self._files / dt:,.0f} files/s  {self._seconds / 3600 / dt:,.3f} audio-h/s "
                f"({self._seconds / dt:,.0f}x realtime)")
        self._progress.update(self._task, advance=res.files, rate=rate)

    def stop(self) -> None:
        self._progress.stop()


# -- from names and options to a run ---------------------------------------------------------------
def resolve(dataset: str, root: str | Path | None, out: str | Path | None, sample_rate: int,
            options: dict, workspace) -> tuple[Manifest, Path]:
    """The manifest and output folder for `dataset`: CLI values first, then samplecnn.toml, then defaults.

    Raises (before anything is written) on a bad rate, an unknown dataset, a wrong root or missing labels.
    """
    from samplecnn_cli.data.audio import check_rate
    from samplecnn_cli.data.datasets import get_adapter

    try:
        sample_rate = check_rate(sample_rate)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    configured = dict(workspace.datasets.get(dataset, {}))
    # [datasets.fsdd] adapter = "folder": a configured name can use any adapter
    adapter = get_adapter(str(configured.get("adapter", dataset)))
    merged = {k: v for k, v in configured.items() if k not in ("root", "adapter")}
    merged.update({k: v for k, v in options.items() if v is not None})
    if root is None:
        root = configured.get("root")
    if root is None and dataset == "toy":
        root = workspace.data_dir / "raw" / "toy"
    if root is None:
        raise UsageError(f"no root folder for dataset '{dataset}'",
                         hint=f"pass --root DIR, or set [datasets.{dataset}] root = \"...\" in samplecnn.toml")
    manifest = adapter.load(Path(root).expanduser(), merged)
    manifest.dataset = dataset
    out_dir = Path(out).expanduser() if out is not None else workspace.store_dir(dataset, sample_rate)
    return manifest, out_dir
