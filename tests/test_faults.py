"""Fault-injection suite (issue 11): SIGKILL `preprocess`, `train`, `extract`, `transfer` and
`recipe run` (real subprocesses) at seeded random moments, several times per command; the rerun (or
`train --resume`) must complete and its outputs equal an uninterrupted run's: stores and feature
files equal in content, metrics to 1e-4.

Each command is run once uninterrupted (the reference, which also gives its duration T); then the
same command is started, killed at a moment drawn from a seeded generator in [0.1 T, 0.8 T], started
again and killed again (KILLS times: 2 in the ci profile, 7 in long), and finally run to the end.
A kill that lands after the process already ended is not counted (that attempt is redone sooner).
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

from tests._reliability import COUNTS, KILLS, TINY_MODEL, build_pipeline, python_env, report_counts

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


def kill_then_finish(name: str, make_argv, cwd: Path, duration: float, output: Path) -> int:
    """KILLS seeded kills of successive attempts, then one attempt run to the end. Returns the kills.

    A kill drawn after the attempt already finished (a busy machine makes durations vary) is not
    counted: the output is removed and the attempt repeated with half the delay."""
    import shutil

    rng = random.Random(f"samplecnn-faults-{name}")
    kills = 0
    for _ in range(KILLS):
        delay = rng.uniform(0.1, 0.8) * duration
        while not kill_after(make_argv(), cwd, delay):
            if delay < 0.05:
                break
            shutil.rmtree(output) if output.is_dir() else output.unlink(missing_ok=True)
            delay /= 2
        else:
            kills += 1
    run_to_end(make_argv(), cwd)
    return kills


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
    assert kills == KILLS


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
    kills = kill_then_finish("train", lambda: argv(tmp_path / "killed"), tmp_path, duration, tmp_path / "killed")
    assert lost(_same_metrics(tmp_path / "killed", tmp_path / "ref"))
    summary = json.loads((tmp_path / "killed" / "summary.json").read_text())
    assert summary["epochs"] == 4 and kills >= 1


def test_extract_killed_then_rerun_gives_the_same_features(pipe, tmp_path):
    argv = lambda out: cli("extract", pipe["run"], "--data", pipe["big_store"], "--out", out, "-b", "8")  # noqa: E731
    duration = run_to_end(argv(tmp_path / "ref.h5"), tmp_path)
    kills = kill_then_finish("extract", lambda: argv(tmp_path / "killed.h5"), tmp_path, duration,
                             tmp_path / "killed.h5")
    ref, killed = h5_content(tmp_path / "ref.h5"), h5_content(tmp_path / "killed.h5")
    for content in (ref, killed):  # where the file was written is not its content
        content["@attrs"].pop("path", None)
    assert lost(killed == ref)
    assert kills == KILLS


def test_transfer_killed_then_rerun_matches_an_uninterrupted_run(pipe, tmp_path):
    argv = lambda out: cli("transfer", pipe["features"], "--out", out, "--hidden", "32", "--epochs", "40",  # noqa: E731
                           "--patience", "40", "-b", "2", "--device", "cpu", "--seed", "3")
    duration = run_to_end(argv(tmp_path / "ref"), tmp_path)
    kills = kill_then_finish("transfer", lambda: argv(tmp_path / "killed"), tmp_path, duration, tmp_path / "killed")
    assert lost(_same_metrics(tmp_path / "killed", tmp_path / "ref"))
    ref = json.loads((tmp_path / "ref" / "metrics.json").read_text())
    killed = json.loads((tmp_path / "killed" / "metrics.json").read_text())
    assert lost(all(abs(killed[k] - ref[k]) <= 1e-4 for k in ref if isinstance(ref[k], float)))
    assert kills == KILLS


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
    kills = kill_then_finish("recipe", lambda: argv(tmp_path / "killed"), tmp_path, duration, tmp_path / "killed")
    assert lost(store_content(tmp_path / "killed" / "store", tmp_path / "killed")
                == store_content(tmp_path / "ref" / "store", tmp_path / "ref"))
    assert lost(_same_metrics(tmp_path / "killed" / "run", tmp_path / "ref" / "run"))
    ref = json.loads((tmp_path / "ref" / "run" / "metrics.json").read_text())
    killed = json.loads((tmp_path / "killed" / "run" / "metrics.json").read_text())
    assert lost(all(abs(killed[k] - ref[k]) <= 1e-4 for k in ref if isinstance(ref[k], float)))
    again = subprocess.run(argv(tmp_path / "killed"), cwd=tmp_path, env=python_env(), capture_output=True,
                           text=True, timeout=120)
    assert again.returncode == 0 and again.stdout.count("skipped (unchanged)") == 4, again.stdout
    assert kills == KILLS
