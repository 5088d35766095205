"""Fault-injection suite (issues 11 and 20): SIGKILL and SIGTERM `preprocess`, `train`, `extract`,
`transfer`, `recipe run`, `tag` and `embed` (real subprocesses) at seeded random moments, several
times per command; the rerun (or `train --resume`) must complete and its outputs equal an
uninterrupted run's: stores and feature files equal in content, metrics to 1e-4, tags and embeddings
of every file once. Two writers of one output: the second is turned away in one line.

Each command is run once uninterrupted (the reference, which also gives its duration T); then the
same command is started, killed at a moment drawn from a seeded generator in [0.1 T, 0.8 T], started
again and killed again (KILLS times: 2 in the ci profile, 7 in long), then terminated the same way
(about TERMS times, 4 in ci and 8 in long: fewer for the slow train and recipe, more for the quick
commands; 30 SIGTERMs in all in ci), and finally run to the end. A SIGTERM must end the command like
Ctrl-C: exit 143, its last line "Interrupted (SIGTERM)...", no traceback, no process of its session
left (decoding workers, multiprocessing's resource tracker), no temporary file, a run marked
"interrupted". A signal that lands after the process finished its work is not counted (that attempt
is redone).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest

from samplecnn_cli.runs.folder import run_status
from tests._reliability import (
    COUNTS,
    KILLS,
    TERMS,
    TINY_MODEL,
    build_pipeline,
    python_env,
    report_counts,
    session_left,
    temporary_files,
)

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, request):
    from tests._store_fixtures import make_store

    data = build_pipeline(tmp_path_factory.mktemp("faults") / "pipeline")
    # bigger inputs for the commands whose own work would otherwise be over before a kill lands
    root = data["root"]
    made = subprocess.run(cli("datasets", "make-toy", root / "big_toy", "--clips", "30", "--seconds", "1.5",
                              "--sr", "8000"), env=python_env(), capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    data["big_toy"] = root / "big_toy"
    data["big_store"] = make_store(root / "big_store", task="multiclass", clips=(40, 10, 10), seconds=2.0)
    yield data
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown even when every test passed
        report_counts(lambda line: reporter.write_line(f"\n[test_faults] {line}"))


def cli(*argv) -> list[str]:
    return [sys.executable, "-m", "samplecnn_cli", *map(str, argv)]


def run_to_end(argv: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, cwd=cwd, env=python_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{argv}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return time.perf_counter() - started


def kill_after(argv: list[str], cwd: Path, delay: float) -> bool:
    """Start `argv`, SIGKILL it after `delay` seconds; True when it was still running (a real kill)."""
    proc = subprocess.Popen(argv, cwd=cwd, env=python_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.perf_counter() + delay
    while proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.01)
    if proc.poll() is not None:
        return False
    os.killpg(proc.pid, signal.SIGKILL)  # the command and any worker processes it started
    proc.wait()
    COUNTS["kills"] += 1
    return True


def terminate_after(argv: list[str], cwd: Path, delay: float, output: Path) -> str:
    """Start `argv`, SIGTERM the command alone (as a scheduler, `timeout` or Docker do) after `delay`
    seconds, check how it ended. "terminated", or "finished" when the signal came too late to count."""
    proc = subprocess.Popen(argv, cwd=cwd, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    deadline = time.perf_counter() + delay
    while proc.poll() is None and time.perf_counter() < deadline:
        time.sleep(0.01)
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=300)
    left = session_left(proc.pid)
    assert left == [], f"{argv}: processes left after SIGTERM: {left}"
    if proc.returncode != 143:  # done before the signal (0), or between the last line and exit (-15)
        assert proc.returncode in (0, -signal.SIGTERM), f"{argv}\nexit {proc.returncode}\n{err[-3000:]}"
        return "finished"
    COUNTS["sigterms"] += 1
    lines = [line for line in err.splitlines() if line.strip()]
    assert "Traceback" not in err and lines[-1].startswith("Interrupted (SIGTERM)"), f"{argv}\n{err[-3000:]}"
    folder = output if output.is_dir() else output.parent
    mine = [name for name in temporary_files(folder) if str(proc.pid) in Path(name).name]
    assert mine == [], mine  # (those of attempts killed outright go when a later one starts)
    status = output / "status.json"
    if status.is_file():  # a run folder
        record = json.loads(status.read_text())
        if record["pid"] == proc.pid:
            assert record["state"] == "interrupted", record
        else:  # stopped before it reached the folder (still starting up): the folder is as it was, and
            assert run_status(output) != "running", record  # a killed attempt's "running" reads as failed
    return "terminated"


def kill_then_finish(name: str, make_argv, cwd: Path, duration: float, output: Path, kill_count: int = KILLS,
                     term_count: int = TERMS) -> tuple[int, int]:
    """`kill_count` seeded kills of successive attempts, `term_count` seeded SIGTERMs, then one attempt
    run to the end. Returns (kills, terminations).

    A kill drawn after the attempt already finished (a busy machine makes durations vary) is not
    counted: the output is removed and the attempt repeated with half the delay; a SIGTERM too late
    likewise halves the delays of the attempts after it."""
    import shutil

    def remove() -> None:
        shutil.rmtree(output) if output.is_dir() else output.unlink(missing_ok=True)

    rng = random.Random(f"samplecnn-faults-{name}")
    kills = terms = 0
    for _ in range(kill_count):
        delay = rng.uniform(0.1, 0.8) * duration
        while not kill_after(make_argv(), cwd, delay):
            if delay < 0.05:
                break
            remove()
            delay /= 2
        else:
            kills += 1
    scale = 1.0  # halved after each attempt that finished first: a busy machine runs it faster or slower
    for _ in range(3 * term_count):
        if terms == term_count:
            break
        if terminate_after(make_argv(), cwd, rng.uniform(0.1, 0.8) * duration * scale, output) == "terminated":
            terms += 1
        else:
            remove()  # finished: the next attempt needs work left to interrupt
            scale /= 2
    run_to_end(make_argv(), cwd)
    return kills, terms


def h5_content(path: Path) -> dict:
    """Every dataset and attribute of an HDF5 file, as plain values (equal files compare equal)."""
    content = {}
    with h5py.File(path, "r") as f:
        def visit(name, node):
            if isinstance(node, h5py.Dataset):
                content[name] = node[()].tolist() if node.shape != () else node[()]
            content[name + "@attrs"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v)
                                        for k, v in node.attrs.items()}
        f.visititems(visit)
        content["@attrs"] = {k: (v.tolist() if isinstance(v, np.ndarray) else v) for k, v in f.attrs.items()}
    return content


def store_content(folder: Path, root: Path | None = None) -> dict:
    """The content of a store's split files; `root` (the work folder) is blanked out of the recorded
    settings, so stores made in two work folders from two copies of one dataset compare equal."""
    content = {p.name: h5_content(p) for p in sorted(Path(folder).glob("*.h5"))}
    if root is not None:
        for split in content.values():
            split["@attrs"]["preprocess"] = split["@attrs"]["preprocess"].replace(str(root), "WORKDIR")
    return content


def lost(condition: bool) -> bool:
    if not condition:
        COUNTS["lost or corrupt outputs"] += 1
    return condition


def test_preprocess_killed_then_rerun_gives_the_same_store(pipe, tmp_path):
    argv = lambda out: cli("preprocess", "toy", "--root", pipe["big_toy"], "--out", out, "--sr", "8000",  # noqa: E731
                           "--workers", "2", "--chunk-size", "2", "--json")
    duration = run_to_end(argv(tmp_path / "ref"), tmp_path)
    kills = kill_then_finish("preprocess", lambda: argv(tmp_path / "killed"), tmp_path, duration,
                             tmp_path / "killed")
    assert lost(store_content(tmp_path / "killed") == store_content(tmp_path / "ref"))
    assert not list((tmp_path / "killed").glob(".*.tmp")) and not (tmp_path / "killed" / ".parts").exists()
    assert kills == (KILLS, TERMS)


def _metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines() if line.strip()]


def _same_metrics(a: Path, b: Path) -> bool:
    rows_a, rows_b = _metrics(a), _metrics(b)
    if [r["epoch"] for r in rows_a] != [r["epoch"] for r in rows_b]:
        return False
    return all(abs(x[k] - y[k]) <= 1e-4 * max(1.0, abs(y[k]))
               for x, y in zip(rows_a, rows_b, strict=True) for k in ("train_loss", "valid_loss"))


def test_train_killed_then_resumed_matches_an_uninterrupted_run(pipe, tmp_path):
    def argv(out: Path) -> list[str]:
        resume = ["--resume"] if (out / "config.toml").is_file() else []
        return cli("train", TINY_MODEL, "--data", pipe["store"], "--out", out, "--epochs", "4", "--precision",
                   "fp32", "--device", "cpu", "--seed", "1", "--workers", "0", *resume)

    duration = run_to_end(argv(tmp_path / "ref"), tmp_path)
    kills = kill_then_finish("train", lambda: argv(tmp_path / "killed"), tmp_path, duration, tmp_path / "killed",
                             term_count=TERMS // 2)
    assert lost(_same_metrics(tmp_path / "killed", tmp_path / "ref"))
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["epochs"] == 4 and kills[0] >= 1 and kills[1] == TERMS // 2
    assert temporary_files(tmp_path / "killed") == []


def test_extract_killed_then_rerun_gives_the_same_features(pipe, tmp_path):
    argv = lambda out: cli("extract", pipe["run"], "--data", pipe["big_store"], "--out", out, "-b", "8")  # noqa: E731
    duration = run_to_end(argv(tmp_path / "ref.h5"), tmp_path)
    kills = kill_then_finish("extract", lambda: argv(tmp_path / "killed.h5"), tmp_path, duration,
                             tmp_path / "killed.h5", term_count=TERMS + 1)
    ref, killed = h5_content(tmp_path / "ref.h5"), h5_content(tmp_path / "killed.h5")
    for content in (ref, killed):  # where the file was written is not its content
        content["@attrs"].pop("path", None)
    assert lost(killed == ref)
    assert kills == (KILLS, TERMS + 1) and temporary_files(tmp_path) == []


def test_transfer_killed_then_rerun_matches_an_uninterrupted_run(pipe, tmp_path):
    argv = lambda out: cli("transfer", pipe["features"], "--out", out, "--hidden", "32", "--epochs", "40",  # noqa: E731
                           "--patience", "40", "-b", "2", "--device", "cpu", "--seed", "3")
    duration = run_to_end(argv(tmp_path / "ref"), tmp_path)
    kills = kill_then_finish("transfer", lambda: argv(tmp_path / "killed"), tmp_path, duration, tmp_path / "killed",
                             term_count=TERMS + 1)
    assert lost(_same_metrics(tmp_path / "killed", tmp_path / "ref"))
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    killed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert lost(all(abs(killed[k] - ref[k]) <= 1e-4 for k in ref if isinstance(ref[k], float)))
    assert kills == (KILLS, TERMS + 1)


RECIPE = """
title = "fault injection"
[[steps]]
name = "toy"
command = ["datasets", "make-toy", "${workdir}/toy", "--clips", "9", "--seconds", "1", "--sr", "8000"]
outputs = ["${workdir}/toy"]
[[steps]]
name = "store"
command = ["preprocess", "toy", "--root", "${workdir}/toy", "--out", "${workdir}/store", "--sr", "8000",
           "--workers", "1", "--chunk-size", "2"]
deps = ["${workdir}/toy/labels.csv"]
outputs = ["${workdir}/store/train.h5", "${workdir}/store/valid.h5", "${workdir}/store/test.h5"]
clean = []
[[steps]]
name = "train"
command = ["train", "sample-3^3", "--data", "${workdir}/store", "--out", "${workdir}/run", "--epochs", "2",
           "--precision", "fp32", "--device", "cpu", "--seed", "2", "--workers", "0"]
deps = ["${workdir}/store/train.h5"]
outputs = ["${workdir}/run/checkpoints/best.pt"]
clean = ["${workdir}/run"]
[[steps]]
name = "evaluate"
command = ["evaluate", "${workdir}/run", "--device", "cpu"]
deps = ["${workdir}/run/checkpoints/best.pt"]
outputs = ["${workdir}/run/metrics.json"]
clean = []
"""


def test_recipe_run_killed_then_rerun_matches_an_uninterrupted_run(pipe, tmp_path):
    recipe = tmp_path / "faults.toml"
    recipe.write_text(RECIPE)
    argv = lambda work: cli("recipe", "run", recipe, "--workdir", work)  # noqa: E731
    duration = run_to_end(argv(tmp_path / "ref"), tmp_path)
    kills = kill_then_finish("recipe", lambda: argv(tmp_path / "killed"), tmp_path, duration, tmp_path / "killed",
                             term_count=1)
    assert lost(store_content(tmp_path / "killed" / "store", tmp_path / "killed")
                == store_content(tmp_path / "ref" / "store", tmp_path / "ref"))
    assert lost(_same_metrics(tmp_path / "killed" / "run", tmp_path / "ref" / "run"))
    ref = json.loads((tmp_path / "ref" / "run" / "metrics.json").read_text())
    killed = json.loads((tmp_path / "killed" / "run" / "metrics.json").read_text())
    assert lost(all(abs(killed[k] - ref[k]) <= 1e-4 for k in ref if isinstance(ref[k], float)))
    again = subprocess.run(argv(tmp_path / "killed"), cwd=tmp_path, env=python_env(), capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("skipped (unchanged)") == 4, again.stdout
    assert kills == (KILLS, 1)


# -- issue 20: tag and embed, SIGTERM and resume; two writers of one output --------------------------
def _tag_rows(path: Path) -> dict[str, list[str]]:
    rows = [line.split(",") for line in path.read_text().splitlines()[1:]]
    summaries = [row for row in rows if row[1] == "all"]
    assert len({row[0] for row in summaries}) == len(summaries), "a file tagged twice"
    return {Path(row[0]).name: row[3:] for row in summaries}


def test_tag_terminated_then_rerun_tags_every_file_once(pipe, tmp_path):
    argv = lambda out: cli("tag", pipe["run"], pipe["big_toy"] / "audio", "--out", out, "-j", "2")  # noqa: E731
    duration = run_to_end(argv(tmp_path / "ref.csv"), tmp_path)
    counts = kill_then_finish("tag", lambda: argv(tmp_path / "out.csv"), tmp_path, duration, tmp_path / "out.csv",
                              kill_count=0, term_count=2 * TERMS)
    assert lost(_tag_rows(tmp_path / "out.csv") == _tag_rows(tmp_path / "ref.csv"))
    assert counts == (0, 2 * TERMS)


def _embeddings(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        assert bool(f.attrs["complete"]) and len(set(f["paths"][:])) == f["paths"].shape[0]
        return {Path(p.decode()).name: row for p, row in zip(f["paths"][:], f["features"][:], strict=True)}


def test_embed_terminated_then_resumed_embeds_every_file_once(pipe, tmp_path):
    argv = lambda out: cli("embed", pipe["run"], pipe["big_toy"] / "audio", "--out", out, "-j", "2")  # noqa: E731
    duration = run_to_end(argv(tmp_path / "ref.h5"), tmp_path)
    counts = kill_then_finish("embed", lambda: argv(tmp_path / "out.h5"), tmp_path, duration, tmp_path / "out.h5",
                              kill_count=0, term_count=TERMS + 1)
    ref, out = _embeddings(tmp_path / "ref.h5"), _embeddings(tmp_path / "out.h5")
    assert lost(ref.keys() == out.keys() and all(np.allclose(ref[k], out[k], atol=1e-5) for k in ref))
    assert not (tmp_path / ".out.h5.partial").exists()
    assert counts == (0, TERMS + 1)


def _held_by_a_paused_writer(argv: list[str], cwd: Path, lock: Path) -> subprocess.Popen:
    """`argv` started and paused (SIGSTOP) once `lock` (a file it writes while it holds the output's
    lock) is there: a second writer then meets a live holder however slow the machine is."""
    proc = subprocess.Popen(argv, cwd=cwd, env=python_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    deadline = time.time() + 120
    while not lock.is_file() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGSTOP)
    assert lock.is_file(), "the first writer never took the lock"
    return proc


def _second_writer_turned_away(first: subprocess.Popen, argv: list[str], cwd: Path, what: str) -> None:
    try:
        second = subprocess.run(argv, cwd=cwd, env=python_env(), capture_output=True, text=True, timeout=300)
    finally:
        first.send_signal(signal.SIGCONT)
    COUNTS["second writers"] += 1
    errors = [line for line in second.stderr.splitlines() if line.startswith("Error: ")]
    assert second.returncode == 1 and "Traceback" not in second.stderr, second.stderr
    assert len(errors) == 1 and what in errors[0] and "(pid " in errors[0], second.stderr
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err[-2000:]


def test_two_tag_writers_of_one_csv(pipe, tmp_path):
    out = tmp_path / "tags.csv"
    argv = cli("tag", pipe["run"], pipe["big_toy"] / "audio", "--out", out, "-j", "1")
    first = _held_by_a_paused_writer(argv, tmp_path, tmp_path / ".tags.csv.lock.json")
    _second_writer_turned_away(first, argv, tmp_path, f"{out} is being written by another process")
    assert len(_tag_rows(out)) == 30  # every file once: not 60 rows


def test_train_resume_while_it_trains_is_turned_away(pipe, tmp_path):
    run = tmp_path / "run"
    argv = cli("train", TINY_MODEL, "--data", pipe["store"], "--out", run, "--epochs", "3", "--precision", "fp32",
               "--device", "cpu", "--seed", "1", "--workers", "0")
    first = _held_by_a_paused_writer(argv, tmp_path, run / "config.toml")  # training: the folder is locked
    _second_writer_turned_away(first, [*argv, "--resume"], tmp_path, f"the run folder {run} is being written")
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert json.loads((run / "status.json").read_text())["state"] == "done"
