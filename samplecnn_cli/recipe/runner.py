"""Plan and run a resolved recipe: each step runs or is skipped, the lock file remembers what ran.

A step is skipped when its last successful run (in WORKDIR/recipe.lock.json) had the same command,
the same fingerprints of its deps, and its outputs still exist with the fingerprints they had then.
A step that declares no outputs always runs. The lock file is rewritten (atomically) after every
step, so a recipe stopped at any point resumes with the first unfinished step.

Steps run in this process by default (`samplecnn` is called like a library: no second torch import,
which costs ~2 s per step, and smoke runs of 30-step recipes stay fast). Every command already turns
its errors into an exit code, so a failing step stops the recipe with that code either way;
`isolate=True` runs each step as `python -m samplecnn_cli ...` instead, for long real-data runs where
a crash (or memory held by one training run) must not touch the next step.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from samplecnn_cli import __version__
from samplecnn_cli.core.context import WORKSPACE_ENV, Context
from samplecnn_cli.core.errors import RunError
from samplecnn_cli.recipe.hashing import fingerprint, fingerprints
from samplecnn_cli.recipe.resolve import ResolvedRecipe, Step

LOCK_NAME = "recipe.lock.json"
RESOLVED_NAME = "recipe.resolved.toml"
SUMMARY_NAME = "recipe-summary.json"

Runner = Callable[[list[str], Path], int]  # (a step's argv, the work folder) -> exit code


@dataclass
class Decision:
    step: Step
    run: bool
    reason: str

    def as_dict(self) -> dict:
        return {**self.step.as_dict(), "action": "run" if self.run else "skip", "reason": self.reason}


# -- the lock file --------------------------------------------------------------------------------
def load_lock(workdir: Path) -> dict:
    """The lock's step entries. Entries written by another samplecnn version are marked "outdated": an
    upgrade may change what a command writes, so every step runs again (as spaCy projects do), and
    cleans what it wrote before."""
    path = Path(workdir) / LOCK_NAME
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):  # absent or damaged: steps just run again
        return {}
    steps = data.get("steps", {}) if isinstance(data, dict) else {}
    if not isinstance(steps, dict):
        return {}
    if data.get("samplecnn_version") != __version__:
        return {name: {"state": "outdated"} for name in steps}
    return {k: v for k, v in steps.items() if isinstance(v, dict)}


def save_lock(workdir: Path, recipe_name: str, steps: dict) -> None:
    from samplecnn_cli.runs.folder import write_json

    write_json(Path(workdir) / LOCK_NAME, {"recipe": recipe_name, "samplecnn_version": __version__,
                                           "steps": steps})


# -- deciding -------------------------------------------------------------------------------------
def decide(step: Step, entry: dict | None) -> tuple[bool, str]:
    """(run?, why) for one step against its lock entry."""
    if not entry:
        return True, "not run yet"
    if entry.get("state") in ("started", "interrupted"):  # started: the recipe was killed outright
        return True, "interrupted last time"
    if entry.get("state") == "failed":
        return True, f"failed last time (exit code {entry.get('exit_code', '?')})"
    if entry.get("state") == "outdated":
        return True, "samplecnn version changed"
    if entry.get("command") != step.argv:
        return True, "command changed"
    old_deps = entry.get("deps", {})
    for dep in step.deps:
        now = fingerprint(dep)
        if now is None:
            return True, f"input missing: {dep}"
        if old_deps.get(str(dep)) != now:
            return True, f"input changed: {dep}"
    if not step.outputs:
        return True, "declares no outputs (always runs)"
    old_outputs = entry.get("outputs", {})
    for out in step.outputs:
        now = fingerprint(out)
        if now is None:
            return True, f"output missing: {out}"
        if old_outputs.get(str(out)) != now:
            return True, f"output changed: {out}"
    return False, "unchanged"


def plan_steps(resolved: ResolvedRecipe) -> list[Decision]:
    """What `run` would do now. A step reading what an earlier running step writes runs too."""
    lock = load_lock(resolved.workdir)
    dirty: list[tuple[Path, str]] = []
    decisions = []
    for step in resolved.steps:
        run, reason = decide(step, lock.get(step.name))
        upstream = next((name for out, name in dirty for dep in step.deps if _overlaps(dep, out)), None)
        if upstream and (not run or reason.startswith("input missing")):
            run, reason = True, f"after {upstream}"
        if run:
            dirty.extend((out, step.name) for out in step.outputs)
        decisions.append(Decision(step, run, reason))
    return decisions


def _overlaps(a: Path, b: Path) -> bool:
    return a == b or b in a.parents or a in b.parents


# -- running ---------------------------------------------------------------------------------------
def in_process(command, context: Context | None = None) -> Runner:
    """A runner that calls `command` (the CLI's root click command) like a library: no new Python
    process per step. The CLI hands its own root command and context in, so the recipe library never
    imports it; each step gets the context with the work folder as its workspace (commands that fall
    back on "the workspace" stay inside it)."""
    from rich.console import Console

    context = context or Context()
    debug = context.debug

    def run(argv: list[str], workdir: Path) -> int:
        try:
            result = command.main(args=list(argv), prog_name="samplecnn", standalone_mode=False,
                                  obj=context.with_workspace(workdir))
        except SystemExit as exc:
            return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except KeyboardInterrupt:
            raise
        except Exception as exc:  # click usage errors carry an exit code; anything else is a crash
            if isinstance(exc.__cause__, KeyboardInterrupt):  # click's Abort around Ctrl-C or SIGTERM
                raise exc.__cause__ from None
            code = getattr(exc, "exit_code", None)
            if isinstance(code, int) and hasattr(exc, "show"):
                exc.show()
                return code
            if debug:
                raise
            Console(stderr=True).print(f"[bold red]Error:[/] {type(exc).__name__}: {exc}", highlight=False,
                                       markup=True)
            return 1
        return result if isinstance(result, int) else 0

    return run


def run_subprocess(argv: list[str], workdir: Path) -> int:
    """A step in its own `python -m samplecnn_cli` process, with the work folder as its workspace. An
    interrupt here (Ctrl-C, SIGTERM) is passed on to the step, which stops cleanly; then it is raised."""
    import signal

    env = {**os.environ, WORKSPACE_ENV: str(workdir)}
    with subprocess.Popen([sys.executable, "-m", "samplecnn_cli", *argv], env=env) as step:
        try:
            return step.wait()
        except KeyboardInterrupt as interrupt:
            from samplecnn_cli.core.signals import Terminated

            step.send_signal(signal.SIGTERM if isinstance(interrupt, Terminated) else signal.SIGINT)
            try:
                step.wait(timeout=60)
            except subprocess.TimeoutExpired:
                step.kill()
            raise


def run_recipe(resolved: ResolvedRecipe, *, runner: Runner | None = None,
               echo: Callable[[str], None] = print) -> dict:
    """Run the steps in order; returns the summary (also written to WORKDIR/recipe-summary.json).
    One `recipe run` at a time per work folder (a file lock that dies with its process).
    `runner` runs one step's argv (default: a `samplecnn` subprocess; the CLI passes `in_process`)."""
    from filelock import FileLock, Timeout

    resolved.check_datasets()
    check_clean_paths(resolved)
    workdir = resolved.workdir
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"cannot use {workdir} as the work folder: {exc.strerror or exc}",
                       hint="pass --workdir with a folder (new or existing)") from None
    guard = FileLock(str(workdir / ".recipe.run.lock"))
    try:
        guard.acquire(timeout=0)
    except Timeout:
        raise RunError(f"another `samplecnn recipe run` is using the work folder {workdir}",
                       hint="wait for it to finish, or pass another --workdir") from None
    try:
        return _run_steps(resolved, runner, echo)
    finally:
        guard.release()


def check_clean_paths(resolved: ResolvedRecipe) -> None:
    """Before any step runs: every path a step may remove must resolve inside the work folder."""
    from samplecnn_cli.core.paths import removal_target

    for step in resolved.steps:
        for path in step.clean:
            if removal_target(path, resolved.workdir) is None:
                raise RunError(f"step '{step.name}' would clean {path}, which is outside the work folder "
                               f"{resolved.workdir}",
                               hint="a recipe may only remove paths under ${workdir} (no '..', no symlinks "
                                    "leading out); set clean = [] for outputs kept elsewhere")


def _run_steps(resolved: ResolvedRecipe, runner: Runner, echo: Callable[[str], None]) -> dict:
    import tomli_w

    from samplecnn_cli.runs.folder import atomic_write_text, write_json

    workdir = resolved.workdir
    atomic_write_text(workdir / RESOLVED_NAME, "# written by `samplecnn recipe run`: the recipe with every "
                      "variable substituted\n" + tomli_w.dumps(resolved.as_dict()))
    lock = load_lock(workdir)
    records = []
    started = time.perf_counter()
    total = len(resolved.steps)
    for number, step in enumerate(resolved.steps, 1):
        run, reason = decide(step, lock.get(step.name))
        head = f"[{number}/{total}] {step.name}"
        if not run:
            echo(f"{head}: skipped (unchanged)")
            records.append({"name": step.name, "status": "skipped", "seconds": 0.0})
            continue
        missing = [dep for dep in step.deps if not dep.exists()]
        if missing:
            raise RunError(f"step '{step.name}': input {missing[0]} does not exist",
                           hint="an earlier step should write it: check the recipe's deps and outputs")
        echo(f"{head}: running ({reason})\n  $ samplecnn {shlex.join(step.argv)}")
        if step.name in lock:  # ran (or started) before under this recipe: its old outputs go
            _clean(step, workdir)
        lock[step.name] = {"state": "started", "command": step.argv}
        save_lock(workdir, resolved.recipe.name, lock)
        dep_prints = fingerprints(step.deps)
        t0 = time.perf_counter()
        try:
            code = _run_step(step, runner or run_subprocess, workdir)
        except KeyboardInterrupt:  # the lock says "interrupted": the next run redoes this step
            _record(lock, records, step, "interrupted", round(time.perf_counter() - t0, 2), resolved, started)
            raise
        seconds = round(time.perf_counter() - t0, 2)
        if code != 0:
            _record(lock, records, step, "failed", seconds, resolved, started, exit_code=code)
            raise RunError(f"step '{step.name}' failed with exit code {code}",
                           hint="fix the cause and run the same command again: finished steps are skipped")
        absent = [out for out in step.outputs if not out.exists()]
        if absent:
            raise RunError(f"step '{step.name}' succeeded but did not write its output {absent[0]}",
                           hint="the recipe's 'outputs' must list what the command writes")
        lock[step.name] = {"state": "done", "command": step.argv, "deps": dep_prints, "outputs": fingerprints(step.outputs),
                           "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        save_lock(workdir, resolved.recipe.name, lock)
        records.append({"name": step.name, "status": "ran", "seconds": seconds})
        echo(f"{head}: done in {seconds:.1f} s")
    return _write_summary(resolved, records, started, write_json)


INTERRUPT_CODES = (130, 143)  # a step's own exit code after Ctrl-C or SIGTERM (core/signals.py)


def _run_step(step: Step, runner: Runner, workdir: Path) -> int:
    """Run one step; an interrupt (of the recipe, or of a step in its own process) is raised, so the
    recipe stops saying "interrupted", never "failed with exit code 130"."""
    from samplecnn_cli.core.signals import Terminated

    code = runner(step.argv, workdir)
    if code in INTERRUPT_CODES:
        raise Terminated() if code == 143 else KeyboardInterrupt()
    return code


def _record(lock: dict, records: list, step: Step, state: str, seconds: float, resolved, started: float,
            **more) -> None:
    """A step that did not finish: its state in the lock file (what the next run says about it) and
    in the summary."""
    from samplecnn_cli.runs.folder import write_json

    lock[step.name] = {"state": state, "command": step.argv, **more}
    save_lock(resolved.workdir, resolved.recipe.name, lock)
    records.append({"name": step.name, "status": state, "seconds": seconds, **more})
    _write_summary(resolved, records, started, write_json)


def _clean(step: Step, workdir: Path) -> None:
    """Commands refuse to overwrite a run or a toy dataset, so a step that runs again first removes its
    `clean` paths (by default its outputs; `clean = []` for commands that resume by themselves, such as
    preprocess). Only paths inside the work folder are ever removed: they are resolved (symlinks and
    `..` followed) before the check, and a path that leaves the work folder stops the recipe."""
    from samplecnn_cli.core.paths import remove_inside

    for out in step.clean:
        if not remove_inside(out, workdir):
            raise RunError(f"step '{step.name}': refusing to clean {out}: it is outside the work folder {workdir}",
                           hint="a recipe may only remove paths under ${workdir} (no '..', no symlinks leading out)")


def _write_summary(resolved: ResolvedRecipe, records: list[dict], started: float, write_json) -> dict:
    summary = {"recipe": resolved.recipe.name, "smoke": resolved.smoke, "workdir": str(resolved.workdir),
               "seconds": round(time.perf_counter() - started, 2),
               "ran": sum(r["status"] == "ran" for r in records),
               "skipped": sum(r["status"] == "skipped" for r in records),
               "failed": sum(r["status"] == "failed" for r in records),
               "interrupted": sum(r["status"] == "interrupted" for r in records), "steps": records}
    write_json(resolved.workdir / SUMMARY_NAME, summary)
    return summary
