"""`samplecnn tag --out`: streamed CSV/JSONL, resume after a kill, hop/timeline/taggram, short files, options."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.context import CACHE_ENV
from samplecnn_cli.core.runtime import Runtime
from samplecnn_cli.inference.library import collect_files, load_library_model, tag_to_file
from samplecnn_cli.runs import folder as runs
from tests._store_fixtures import segments_of
from tests.test_features_extract import fake_run

LABELS = [f"l{i}" for i in range(10)]


pytestmark = pytest.mark.usefixtures("inference_sandbox")


def tag(run, paths, out, *, batch_size=None, precision="auto", taggram_dir=None, **options):
    """tag_to_file as `samplecnn tag --out` calls it: the run loaded once, the files collected once."""
    model = load_library_model(run, Runtime.resolve("cpu", precision), batch_size=batch_size)
    draw = None
    if taggram_dir is not None:
        from samplecnn_cli.viz.figures import TaggramFolder

        taggrams = TaggramFolder(taggram_dir, model.labels, model.hop_samples(options.get("hop")) / 8000)
        options["timeline"] = True
        draw = lambda r: taggrams.draw(r.path, r.window_scores)  # noqa: E731
    return tag_to_file(model, collect_files(paths), out, on_file=draw, **options)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return fake_run(tmp_path_factory.mktemp("runs") / "r", "sample-3^3", task="multilabel", label_names=LABELS)


def library(folder, n=5, rate=16000):
    """n files of different lengths at 16 kHz (the model is 8 kHz: resampled); file 0 is shorter than a window."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        length = 100 if i == 0 else 2000 + 700 * i
        sf.write(folder / f"f{i}.wav", (rng.standard_normal(length) * 0.2).astype(np.float32), rate)
    return folder


def expected_scores(run_dir, path):
    from samplecnn_cli.data.audio import decode

    model = runs.load_run(run_dir).model
    with torch.no_grad():
        return torch.sigmoid(model(torch.from_numpy(segments_of(decode(path, 8000), 81)))).mean(0).numpy()


def test_csv_stream_has_every_label_and_equals_the_eager_model(run, tmp_path):
    lib = library(tmp_path / "lib")
    (lib / "bad.wav").write_bytes(b"RIFF not audio")
    out = tmp_path / "tags.csv"
    summary = tag(run, [lib], out, batch_size=4, workers=1, precision="fp32", threshold=0.5)
    assert summary["tagged"] == 5 and summary["failed"] == 1 and summary["short"] == 1
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 6 and all(r["window"] == "all" for r in rows)
    by_name = {r["path"].rsplit("/", 1)[-1]: r for r in rows}
    assert by_name["bad.wav"]["error"]
    assert by_name["f0.wav"]["short"] == "1" and by_name["f0.wav"]["windows"] == "1"
    for name in ("f0.wav", "f3.wav"):
        got = np.array([float(by_name[name][label]) for label in LABELS])
        np.testing.assert_allclose(got, expected_scores(run, lib / name), atol=1e-3)
        tags = by_name[name]["tags"].split(";") if by_name[name]["tags"] else []
        assert tags == [label for label, s in zip(LABELS, got, strict=True) if s >= 0.5]


def test_rerun_after_a_kill_skips_finished_files(run, tmp_path):
    lib = library(tmp_path / "lib")
    out = tmp_path / "tags.jsonl"
    tag(run, [lib / "f1.wav", lib / "f2.wav"], out, batch_size=4, workers=0)
    first = out.read_text().splitlines()
    with out.open("a") as f:
        f.write('{"path": "/cut/off mid-wri')  # a run killed while writing its next record
    summary = tag(run, [lib], out, batch_size=4, workers=0)
    assert summary["skipped_done"] == 2 and summary["tagged"] == 3
    lines = out.read_text().splitlines()
    assert lines[:2] == first and len(lines) == 5
    records = [json.loads(line) for line in lines]
    assert sorted(r["path"].rsplit("/", 1)[-1] for r in records) == [f"f{i}.wav" for i in range(5)]
    again = tag(run, [lib], out, batch_size=4, workers=0)
    assert again["tagged"] == 0 and again["skipped_done"] == 5 and len(out.read_text().splitlines()) == 5


def test_killed_process_resumes(run, tmp_path):
    """A real SIGKILL in the middle of a library run, then the same command again."""
    import os
    import signal
    import subprocess
    import sys
    import time

    lib = library(tmp_path / "lib", n=40)
    out = tmp_path / "tags.jsonl"
    cmd = [sys.executable, "-m", "samplecnn_cli", "tag", str(run), str(lib), "--out", str(out), "-b", "2", "-j", "0"]
    env = {**os.environ, CACHE_ENV: "off", "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len([line for line in out.read_text().splitlines() if line.endswith("}")])
    assert 3 <= done_before < 40, "the kill should land mid-run"
    result = subprocess.run(cmd + ["--json"], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["skipped_done"] >= done_before - 1 and summary["skipped_done"] + summary["tagged"] == 40
    paths = [json.loads(line)["path"] for line in out.read_text().splitlines()]
    assert len(paths) == len(set(paths)) == 40


def test_hop_timeline_and_taggram(run, tmp_path):
    lib = library(tmp_path / "lib", n=3)
    out = tmp_path / "t.csv"
    hop = 40 / 8000
    summary = tag(run, [lib / "f2.wav"], out, hop=hop, taggram_dir=tmp_path / "png", workers=0,
                          batch_size=8, precision="fp32")
    rows = list(csv.DictReader(out.open()))
    windows = [r for r in rows if r["window"] != "all"]
    total = rows[-1]
    assert total["window"] == "all" and int(total["windows"]) == len(windows) == (1700 - 81) // 40 + 1  # 3400 samples at 16 kHz = 1700 at 8 kHz
    assert windows[1]["start"] == f"{hop:.3f}"
    per_window = np.array([[float(r[label]) for label in LABELS] for r in windows])
    np.testing.assert_allclose(per_window.mean(0), [float(total[label]) for label in LABELS], atol=2e-6)
    assert summary["hop_seconds"] == pytest.approx(hop)
    assert (tmp_path / "png" / "f2.png").stat().st_size > 1000


def test_cli_options_and_usage_errors(run, tmp_path):
    lib = library(tmp_path / "lib", n=2)
    runner = CliRunner()
    for bad in (["-b", "0"], ["--top-k", "0"], ["--hop", "-1"], ["--threshold", "2"]):
        result = runner.invoke(app, ["tag", str(run), str(lib), *bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) <= 3
    result = runner.invoke(app, ["tag", str(run), str(lib), "--out", str(tmp_path / "x.txt")])
    assert result.exit_code == 2 and ".csv or .jsonl" in result.output
    # --top-k larger than the label count: never more columns than labels
    result = runner.invoke(app, ["tag", str(run), str(lib), "--top-k", "50", "-j", "0", "-b", "4"])
    assert result.exit_code == 0, result.output
    assert "#10" in result.output and "#11" not in result.output
    result = runner.invoke(app, ["tag", str(run), str(lib), "--out", str(tmp_path / "o.jsonl"), "--json", "-j", "0"])
    assert result.exit_code == 0 and json.loads(result.stdout)["tagged"] == 2
    # piped (not a terminal): no progress bar drawn
    assert "━" not in result.output


def test_progress_bar_on_a_terminal(run, tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from samplecnn_cli.cli import console as cli

    lib = library(tmp_path / "lib", n=3)
    terminal = io.StringIO()
    monkeypatch.setattr(cli, "err_console", Console(file=terminal, force_terminal=True, width=100))
    result = CliRunner().invoke(app, ["tag", str(run), str(lib), "--out", str(tmp_path / "o.csv"), "-j", "0"])
    assert result.exit_code == 0, result.output
    drawn = terminal.getvalue()
    assert "tag" in drawn and "3/3" in drawn and "x realtime" in drawn and "h audio" in drawn
