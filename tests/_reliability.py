"""Shared by the fuzz and fault-injection suites (issue 11): profiles, a tiny real pipeline, checks.

Profiles are hypothesis settings profiles chosen by SAMPLECNN_FUZZ_PROFILE:
    ci    (default) few examples per property: the fuzz and fault suites together stay within ~4 min
    long  many more examples and kills, for a local run before a release
The suites count what they try (bad inputs, kills) and print the totals at the end of the session.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from hypothesis import HealthCheck, Phase, settings
from typer.testing import CliRunner

PROFILE = os.environ.get("SAMPLECNN_FUZZ_PROFILE", "ci")
if PROFILE not in ("ci", "long"):
    raise ValueError(f"SAMPLECNN_FUZZ_PROFILE must be ci or long, not {PROFILE!r}")
# no shrinking: a failing case is reported as found (shrinking reruns commands dozens of times)
_COMMON = {"deadline": None, "database": None, "print_blob": True,
           "phases": [Phase.explicit, Phase.generate],
           "suppress_health_check": [HealthCheck.too_slow, HealthCheck.function_scoped_fixture,
                                     HealthCheck.data_too_large, HealthCheck.filter_too_much]}
settings.register_profile("ci", max_examples=4, derandomize=True, **_COMMON)  # the same cases every CI run
settings.register_profile("long", max_examples=25, **_COMMON)
settings.load_profile(PROFILE)

# kills (SIGKILL) and terminations (SIGTERM) per command in the fault suite
KILLS = {"ci": 2, "long": 7}[PROFILE]
TERMS = {"ci": 4, "long": 8}[PROFILE]

TINY_MODEL = "sample-3^3"
COUNTS: Counter = Counter()  # "bad inputs", "kills", "tracebacks", "writes outside", "lost outputs"
ROOT = Path(__file__).resolve().parents[1]

cli = CliRunner()


def python_env() -> dict:
    """The environment for `python -m samplecnn_cli` subprocesses: this checkout, one thread each."""
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
            "SAMPLECNN_WORKSPACE": os.environ.get("SAMPLECNN_WORKSPACE", "")}


def tree_state(*folders: Path) -> dict[str, tuple]:
    """Every file, folder and link below `folders`: (kind, size, mtime, content hash for small files)."""
    state: dict[str, tuple] = {}
    for folder in folders:
        folder = Path(folder)
        if not folder.exists():
            state[str(folder)] = ("absent",)
            continue
        for dirpath, dirnames, filenames in os.walk(folder):
            state[dirpath] = ("dir",)
            for name in dirnames + filenames:
                path = os.path.join(dirpath, name)
                st = os.lstat(path)
                if os.path.islink(path):
                    state[path] = ("link", os.readlink(path))
                elif os.path.isfile(path):
                    digest = hashlib.sha1(Path(path).read_bytes()).hexdigest() if st.st_size < 1 << 20 else ""
                    state[path] = ("file", st.st_size, st.st_mtime_ns, digest)
    return state


def invoke(argv: list[str], cwd: Path):
    """Run the CLI in this process with `cwd` as the current folder (so default outputs land there)."""
    from samplecnn_cli.cli.app import app

    before = os.getcwd()
    os.chdir(cwd)
    try:
        return cli.invoke(app, [str(a) for a in argv], env={"SAMPLECNN_WORKSPACE": str(cwd), "COLUMNS": "200"})
    finally:
        os.chdir(before)


def assert_clean_failure(result, argv, outside_before: dict, outside_after: dict) -> None:
    """Exit 1 or 2, an `Error:` line (and at most a `Hint:` line) on stderr, no traceback, and nothing
    outside the work folder changed. Counts the case (and each kind of failure)."""
    COUNTS["bad inputs"] += 1
    shown = f"argv={argv}\nexit={result.exit_code}\nstdout={result.stdout[-2000:]}\nstderr={result.stderr[-2000:]}"
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    if crashed:
        COUNTS["tracebacks"] += 1
        import traceback

        shown += "\n" + "".join(traceback.format_exception(*result.exc_info))
    if outside_before != outside_after:
        COUNTS["writes outside"] += 1
        changed = sorted(set(outside_before.items()) ^ set(outside_after.items()))[:5]
        raise AssertionError(f"wrote outside the work folder: {changed}\n{shown}")
    assert not crashed, f"traceback:\n{shown}"
    assert result.exit_code in (1, 2), f"expected exit 1 or 2\n{shown}"
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    # "Skipped FILE: reason" is how `tag` reports one bad file among its inputs (exit 1)
    assert lines and lines[0].startswith(("Error: ", "Skipped ")), f"no Error: line\n{shown}"
    assert len(lines) == 1 or (len(lines) == 2 and lines[1].startswith("Hint: ")), f"not one line\n{shown}"
    assert "Traceback" not in result.stdout + result.stderr, shown


def build_pipeline(root: Path) -> dict:
    """A tiny but real pipeline in `root`: a toy raw dataset, a store, a trained run, features, a transfer
    run and a recipe. Built once per session (about 10 s on 2 cores) and only ever read by the cases."""
    import torch

    from tests._store_fixtures import make_store

    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {"root": root}
    toy = root / "toy"
    r = invoke(["datasets", "make-toy", toy, "--clips", "6", "--seconds", "0.5", "--sr", "8000"], root)
    assert r.exit_code == 0, r.output
    out["toy"] = toy
    out["store"] = make_store(root / "store", task="multiclass", clips=(6, 3, 3), seconds=0.1)
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        r = invoke(["train", TINY_MODEL, "--data", out["store"], "--out", root / "run", "--epochs", "1",
                    "--precision", "fp32", "--device", "cpu", "--workers", "0"], root)
        assert r.exit_code == 0, r.output
        out["run"] = root / "run"
        r = invoke(["extract", out["run"], "--data", out["store"], "--out", root / "features.h5", "-b", "16"], root)
        assert r.exit_code == 0, r.output
        out["features"] = root / "features.h5"
        r = invoke(["transfer", out["features"], "--out", root / "transfer", "--hidden", "8", "--epochs", "2",
                    "-b", "4", "--device", "cpu"], root)
        assert r.exit_code == 0, r.output
        out["transfer"] = root / "transfer"
    finally:
        torch.set_num_threads(threads)
    out["recipe"] = root / "recipe.toml"
    out["recipe"].write_text('title = "fuzz"\n[vars]\nn = 6\n[[steps]]\nname = "list"\n'
                             'command = ["models", "list"]\n')
    out["wav"] = next(p for p in sorted((toy / "audio").iterdir()) if p.suffix == ".wav")
    out["mp3"] = next(p for p in sorted((toy / "audio").iterdir()) if p.suffix == ".mp3")
    out["checkpoint"] = out["run"] / "checkpoints" / "best.pt"
    return out


def copy_into(source: Path, work: Path) -> Path:
    target = work / source.name
    if source.is_dir():
        shutil.copytree(source, target, symlinks=True)
    else:
        shutil.copy2(source, target)
    return target


def session_left(leader: int, wait: float = 5.0) -> list[int]:
    """Processes still in the session `leader` started (its workers, a resource tracker), after at most
    `wait` seconds (Linux /proc; elsewhere nothing is found)."""
    import time

    deadline = time.time() + wait
    while True:
        left = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if entry.isdigit():
                try:
                    fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
                except OSError:
                    continue
                if int(fields[3]) == leader:
                    left.append(int(entry))
        if not left or time.time() > deadline:
            return left
        time.sleep(0.1)


def temporary_files(*folders: Path) -> list[str]:
    """Temporary files (`.<name>.tmp...`, `.<name>.<pid>-<random>.tmp`) below `folders`."""
    found = []
    for folder in map(Path, folders):
        if folder.is_dir():
            found += [str(p) for p in folder.rglob(".*") if ".tmp" in p.name]
    return found


def report_counts(write_line) -> None:
    if COUNTS:
        write_line(f"reliability suites ({PROFILE} profile, python {sys.version.split()[0]}): "
                   + ", ".join(f"{k} {v}" for k, v in sorted(COUNTS.items())))
