"""A small, real disk for the fault suite: a tmpfs mounted in a private mount namespace.

    unshare -rm python tests/_small_disk.py PLAN.json RESULT.json

`unshare -rm` (util-linux) gives this process its own user and mount namespaces, where it may mount a
tmpfs without being root on the machine; the mount is gone when the process ends. PLAN is a list of
steps run in order, RESULT the list of what the "run" and "list" steps saw:

    {"op": "mount", "dir": D, "size": "48m"}       a tmpfs at D (created)
    {"op": "copy", "src": S, "dst": T}             a file or folder copied in
    {"op": "fill", "dir": D, "leave": BYTES}       a filler file so that about BYTES stay free
    {"op": "unfill", "dir": D}                     the filler removed (space freed)
    {"op": "readonly", "dir": D, "on": true}       the tmpfs remounted read-only (or back)
    {"op": "run", "argv": [...], "cwd": C}         `python -m samplecnn_cli ARGV`: exit code, output
                                                   ("python": ["-c", CODE] runs CODE with ARGV instead)
    {"op": "inproc", "argv": [...]}                the same, run in this process (Typer's CliRunner):
                                                   one torch import for many quick refusals
    {"op": "list", "dir": D}                       every file below D (hidden ones too) and its size
    {"op": "save", "src": S, "dst": T}             a file or folder copied out, for the test to read
Imports samplecnn only for "inproc" steps (the others run commands as their own processes).
Run with tests/_reliability.py's python_env() (PYTHONPATH = this checkout).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests._reliability import session_left  # PYTHONPATH: this checkout (python_env)

FILLER = ".filler"


def fill(folder: Path, leave: int) -> None:
    filler = folder / FILLER
    filler.unlink(missing_ok=True)
    free = shutil.disk_usage(folder).free
    if free > leave:
        with open(filler, "wb") as f:
            os.posix_fallocate(f.fileno(), 0, free - leave)


def listing(folder: Path) -> dict[str, int]:
    found = {}
    for path in sorted(folder.rglob("*")):
        if path.name != FILLER and path.is_file():
            found[str(path.relative_to(folder))] = path.stat().st_size
    return found


def run(step: dict) -> dict:
    env = {**os.environ, **step.get("env", {})}
    started = time.time()
    head = step.get("python", ["-m", "samplecnn_cli"])  # or ["-c", CODE]: a script that runs the CLI itself
    proc = subprocess.Popen([sys.executable, *head, *step["argv"]], cwd=step.get("cwd"), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    out, err = proc.communicate(timeout=600)
    return {"op": "run", "argv": step["argv"], "code": proc.returncode, "stdout": out, "stderr": err,
            "left": session_left(proc.pid), "seconds": round(time.time() - started, 2)}


def run_here(step: dict) -> dict:
    from typer.testing import CliRunner

    from samplecnn_cli.cli.app import app

    result = CliRunner().invoke(app, step["argv"])
    crashed = result.exception is not None and not isinstance(result.exception, SystemExit)
    return {"op": "inproc", "argv": step["argv"], "code": result.exit_code, "stdout": result.stdout,
            "stderr": result.stderr + ("\nTraceback: " + repr(result.exception) if crashed else ""), "left": []}


def main(plan_path: str, result_path: str) -> None:
    results = []
    for step in json.loads(Path(plan_path).read_text()):
        op = step["op"]
        if op == "mount":
            Path(step["dir"]).mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={step['size']}", "tmpfs", step["dir"]], check=True)
        elif op == "copy":
            copy = shutil.copytree if Path(step["src"]).is_dir() else shutil.copy2
            copy(step["src"], step["dst"])
        elif op == "fill":
            fill(Path(step["dir"]), int(step["leave"]))
        elif op == "unfill":
            (Path(step["dir"]) / FILLER).unlink(missing_ok=True)
        elif op == "readonly":
            mode = "ro" if step["on"] else "rw"
            subprocess.run(["mount", "-o", f"remount,{mode}", step["dir"]], check=True)
        elif op == "run":
            results.append(run(step))
        elif op == "inproc":
            results.append(run_here(step))
        elif op == "list":
            results.append({"op": "list", "dir": step["dir"], "files": listing(Path(step["dir"]))})
        elif op == "save":
            copy = shutil.copytree if Path(step["src"]).is_dir() else shutil.copy2
            copy(step["src"], step["dst"])
        Path(result_path).write_text(json.dumps(results))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
