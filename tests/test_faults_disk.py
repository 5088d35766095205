"""Fault suite, disks (issue 20): every command that writes, on a full disk and in a read-only folder.

A real small disk: a tmpfs mounted in a private mount namespace (`unshare -rm`, tests/_small_disk.py),
filled with a file so that only a little space stays free. Each command must stop with one `Error:`
line naming the file and the free space (exit 1), no traceback, no segmentation fault, no temporary
file left, no worker left running, a run marked failed, what was there before unchanged; and once the
filler is removed, the same command (train: with --resume) completes. In a read-only folder: one
`Error:` line. Where user namespaces are off (no tmpfs can be mounted), these tests skip, saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

from tests._reliability import COUNTS, TINY_MODEL, build_pipeline, python_env, report_counts

pytestmark = pytest.mark.filterwarnings("ignore")
DRIVER = Path(__file__).with_name("_small_disk.py")


@cache
def can_mount() -> str | None:
    """None when a tmpfs can be mounted in a private namespace here, else why not."""
    if shutil.which("unshare") is None:
        return "no `unshare` (util-linux) on this machine"
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /tmp && true"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs in a user namespace: {probe.stderr.strip()}"


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, request):
    reason = can_mount()
    if reason:
        pytest.skip(f"disk faults need a small tmpfs: {reason}")
    data = build_pipeline(tmp_path_factory.mktemp("disk") / "pipeline")
    data["cache"] = data["root"] / "inference-cache.json"  # backends measured once, not by every command
    yield data
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():
        report_counts(lambda line: reporter.write_line(f"\n[test_faults_disk] {line}"))


def on_small_disk(tmp_path: Path, steps: list[dict], size: str = "64m", cache: Path | None = None) -> list[dict]:
    """Run `steps` (tests/_small_disk.py) with a tmpfs of `size` at tmp_path/disk; the results."""
    disk = tmp_path / "disk"
    plan, result = tmp_path / "plan.json", tmp_path / "result.json"
    plan.write_text(json.dumps([{"op": "mount", "dir": str(disk), "size": size}, *steps]))
    env = {**python_env(), "SAMPLECNN_INFERENCE_CACHE": str(cache or tmp_path / "cache.json")}
    done = subprocess.run(["unshare", "-rm", sys.executable, str(DRIVER), str(plan), str(result)], env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(result.read_text())


def cmd(*argv) -> dict:
    return {"op": "run", "argv": [str(a) for a in argv]}


def here(*argv) -> dict:
    """A quick refusal, run inside the driver's process (one torch import for several)."""
    return {"op": "inproc", "argv": [str(a) for a in argv]}


def failed_cleanly(run: dict, reason: str) -> None:
    """Exit 1, the command's output ending in one Error line (and a Hint) saying `reason`, no
    traceback, no worker left."""
    COUNTS["disk faults" if "space" in reason else "read-only faults"] += 1
    shown = f"{run['argv']}\nexit {run['code']}\n{run['stderr'][-2000:]}"
    assert run["code"] == 1, shown
    assert "Traceback" not in run["stderr"] + run["stdout"], shown
    assert_error_line(run["stderr"], reason)
    assert run["left"] == [], f"workers left running: {run['left']}\n{shown}"


def assert_error_line(stderr: str, reason: str) -> None:
    """What follows the command's own progress lines is one `Error:` line saying `reason` (and a Hint)."""
    lines = [line for line in stderr.splitlines() if line.strip()]
    first = next((i for i, line in enumerate(lines) if line.startswith("Error: ")), None)
    assert first is not None and reason in lines[first], stderr[-2000:]
    tail = lines[first + 1:]
    assert tail == [] or (len(tail) == 1 and tail[0].startswith("Hint: ")), stderr[-2000:]


def succeeded(run: dict) -> None:
    assert run["code"] == 0, f"{run['argv']}\nexit {run['code']}\n{run['stderr'][-3000:]}"
    assert run["left"] == []


def stopped_then_finished(full: dict, listing: dict, again: dict) -> None:
    """The run on a full disk failed cleanly and left no temporary file; the rerun, space freed, succeeded."""
    failed_cleanly(full, "no space left")
    no_temporary_files(listing)
    succeeded(again)


def no_temporary_files(listing: dict) -> None:
    temporary = [name for name in listing["files"] if ".tmp" in Path(name).name]
    assert temporary == [], temporary


def digest(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def full_then_freed(tmp_path: Path, argv: list, *, leave: int, rerun: list | None = None, before=(),
                    size: str = "64m", cache: Path | None = None) -> tuple[list[dict], Path]:
    """`before` steps, then `argv` on a disk with `leave` bytes free (listing), then the disk freed and
    `rerun` (default: the same argv), and the disk saved to tmp_path/after."""
    disk, after = tmp_path / "disk", tmp_path / "after"
    steps = [*before, {"op": "fill", "dir": str(disk), "leave": leave}, cmd(*argv), {"op": "list", "dir": str(disk)},
             {"op": "unfill", "dir": str(disk)}, cmd(*(rerun or argv)), {"op": "save", "src": str(disk), "dst": str(after)}]
    return on_small_disk(tmp_path, steps, size, cache), after


# -- the writing commands on a full disk ---------------------------------------------------------------
def test_preprocess_full_disk(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["preprocess", "toy", "--root", pipe["toy"], "--out", disk / "store", "--sr", "8000", "--workers", "2",
            "--chunk-size", "2", "--json"]
    (full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=200_000)
    stopped_then_finished(full, listing, again)
    assert json.loads(again["stdout"])["complete"] and json.loads(again["stdout"])["written"] == 6
    assert not (after / "store" / ".parts").exists()


def test_train_full_disk_is_a_failed_run_that_resumes(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["train", TINY_MODEL, "--data", pipe["store"], "--out", disk / "run", "--epochs", "1", "--precision",
            "fp32", "--device", "cpu", "--workers", "0", "--seed", "1"]
    steps = [{"op": "fill", "dir": str(disk), "leave": 0}, cmd(*argv),  # stopped before config.toml
             {"op": "fill", "dir": str(disk), "leave": 8_000_000}, cmd(*argv),  # best.pt fits, last.pt does not
             {"op": "list", "dir": str(disk)}, {"op": "save", "src": str(disk / "run" / "status.json"),
                                                "dst": str(tmp_path / "status.json")},
             {"op": "unfill", "dir": str(disk)}, cmd(*argv, "--resume"),
             {"op": "save", "src": str(disk), "dst": str(tmp_path / "after")}]
    early, full, listing, again = on_small_disk(tmp_path, steps, cache=pipe["cache"])
    failed_cleanly(early, "no space left")  # and the folder it left is no "run already there" (below)
    failed_cleanly(full, "no space left")
    assert "checkpoints/last.pt" in full["stderr"]  # the file that could not be written is named
    no_temporary_files(listing)
    status = json.loads((tmp_path / "status.json").read_text())
    assert status["state"] == "failed" and "no space left" in status["reason"]
    succeeded(again)
    after = tmp_path / "after"
    assert json.loads((after / "run" / "status.json").read_text())["state"] == "done"
    assert [json.loads(line)["epoch"] for line in (after / "run" / "metrics.jsonl").read_text().splitlines()] == [1]


def test_tag_full_disk_keeps_whole_rows_and_finishes(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["tag", pipe["run"], pipe["toy"] / "audio", "--out", disk / "tags.csv", "-j", "2", "--timeline",
            "--hop", "0.01"]
    (full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=12_000)
    failed_cleanly(full, "no space left")
    succeeded(again)
    rows = [line.split(",") for line in (after / "tags.csv").read_text().splitlines()[1:]]
    summaries = [row[0] for row in rows if row[1] == "all"]
    assert len(summaries) == len(set(summaries)) == 6  # every file once, none lost, none twice


def test_embed_full_disk_then_resumes(pipe, tmp_path):
    import h5py

    disk = tmp_path / "disk"
    argv = ["embed", pipe["run"], pipe["toy"] / "audio", "--out", disk / "emb.h5", "-j", "2", "--hop", "0.05"]
    (full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=600_000)
    stopped_then_finished(full, listing, again)
    with h5py.File(after / "emb.h5", "r") as f:
        assert f["paths"].shape == (6,) and len(set(f["paths"][:])) == 6 and bool(f.attrs["complete"])


def test_extract_full_disk_keeps_the_previous_file(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["extract", pipe["run"], "--data", pipe["store"], "--out", disk / "f.h5", "-b", "16"]
    before = [cmd(*argv), {"op": "save", "src": str(disk / "f.h5"), "dst": str(tmp_path / "first.h5")}]
    (first, full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=16_000, before=before)
    succeeded(first)
    failed_cleanly(full, "no space left")
    no_temporary_files(listing)
    assert listing["files"]["f.h5"] == (tmp_path / "first.h5").stat().st_size
    succeeded(again)


def test_export_full_disk_keeps_the_previous_file(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["export", pipe["run"], "--out", disk / "model.pt", "--format", "torchscript"]
    before = [cmd(*argv), {"op": "save", "src": str(disk / "model.pt"), "dst": str(tmp_path / "first.pt")}]
    (first, full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=16_000, before=before)
    succeeded(first)
    failed_cleanly(full, "no space left")  # torch's own writer used to abort the process here
    no_temporary_files(listing)
    assert listing["files"]["model.pt"] == (tmp_path / "first.pt").stat().st_size
    succeeded(again)


def test_evaluate_full_disk(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["evaluate", disk / "run", "--device", "cpu"]
    (full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=0, before=[
        {"op": "copy", "src": str(pipe["run"]), "dst": str(disk / "run")}])
    stopped_then_finished(full, listing, again)
    assert json.loads((after / "run" / "metrics.json").read_text())["split"] == "test"


def test_transfer_full_disk_is_redone(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["transfer", pipe["features"], "--out", disk / "t", "--hidden", "8", "--epochs", "2", "-b", "4",
            "--device", "cpu"]
    (full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=40_000)
    stopped_then_finished(full, listing, again)
    assert json.loads((after / "t" / "status.json").read_text())["state"] == "done"


def test_report_full_disk(pipe, tmp_path):
    disk = tmp_path / "disk"
    argv = ["report", pipe["run"], "--out", disk / "rep"]
    (full, listing, again), after = full_then_freed(tmp_path, argv, cache=pipe["cache"], leave=16_000)
    stopped_then_finished(full, listing, again)
    assert (after / "rep" / "report.html").is_file()


UNGUARDED = """
import sys
from samplecnn_cli.data import h5write
h5write.H5Writer.reserve = lambda self, nbytes: None  # as on a file system where nothing can be reserved
from samplecnn_cli.cli.app import run
sys.argv = ["samplecnn", *sys.argv[1:]]
run()
"""


def test_hdf5_meeting_a_full_disk_is_one_error_not_a_segfault(pipe, tmp_path):
    """The last guard (data/h5write.py): were HDF5 to meet a full disk, the file is left alone and the
    process leaves without HDF5's own clean-up, where it used to crash (exit 139)."""
    disk = tmp_path / "disk"
    argv = ["embed", pipe["run"], pipe["toy"] / "audio", "--out", disk / "emb.h5", "-j", "0", "--hop", "0.01"]
    steps = [{"op": "fill", "dir": str(disk), "leave": 300_000},
             {"op": "run", "argv": [str(a) for a in argv], "python": ["-c", UNGUARDED]},
             {"op": "list", "dir": str(disk)}]
    run, listing = on_small_disk(tmp_path, steps, cache=pipe["cache"])
    failed_cleanly(run, "no space left")
    assert [name for name in listing["files"] if "emb.h5" in name and "lock" not in name] == []


# -- read-only -----------------------------------------------------------------------------------------
def test_read_only_outputs_and_a_read_only_run(pipe, tmp_path):
    disk = tmp_path / "disk"
    steps = [{"op": "copy", "src": str(pipe["run"]), "dst": str(disk / "run")}, {"op": "readonly", "dir": str(disk),
                                                                                 "on": True},
             here("tag", pipe["run"], pipe["wav"], "--out", disk / "t.csv"),
             here("embed", pipe["run"], pipe["wav"], "--out", disk / "e.h5"),
             here("export", pipe["run"], "--out", disk / "m.pt", "--format", "torchscript"),
             here("report", pipe["run"], "--out", disk / "rep"),
             here("extract", pipe["run"], "--data", pipe["store"], "--out", disk / "f.h5"),
             here("visualize-filters", disk / "run"),
             cmd("evaluate", disk / "run", "--device", "cpu")]  # and one in a process of its own
    runs = on_small_disk(tmp_path, steps, cache=pipe["cache"])
    assert len(runs) == 7
    for run in runs:
        failed_cleanly(run, "read-only file system")


def test_the_small_disk_is_real(tmp_path):
    """The driver itself: the tmpfs is mounted, fills and frees (else every test above proves nothing)."""
    reason = can_mount()
    if reason:
        pytest.skip(reason)
    disk = tmp_path / "disk"
    steps = [{"op": "fill", "dir": str(disk), "leave": 0}, {"op": "list", "dir": str(disk)}]
    plan = [{"op": "mount", "dir": str(disk), "size": "1m"}, *steps]
    (tmp_path / "plan.json").write_text(json.dumps(plan))
    script = (f"{sys.executable} {DRIVER} {tmp_path / 'plan.json'} {tmp_path / 'r.json'} && "
              f"df --output=avail -B1 {disk} | tail -1 && cat /proc/self/mounts | grep -c {disk}")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          env={**os.environ, "PATH": os.environ.get("PATH", "")})
    assert done.returncode == 0, done.stderr
    free, mounted = done.stdout.split()
    assert int(free) == 0 and int(mounted) == 1
