"""The report: tables beside the paper's numbers, embedded figures, Markdown + JSON, CLI, a real browser."""

from __future__ import annotations

import base64
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.report.build import build_report
from samplecnn_cli.runs import folder as runs
from samplecnn_cli.viz import figures

runner = CliRunner()
TAGS = ["rock", "piano", "techno"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png(path: Path, title: str) -> None:
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.plot([0, 1], [1, 0])
    ax.set_title(title)
    ax.set_xlabel("x (a.u.)")
    ax.set_ylabel("y (a.u.)")
    figures.save_figure(fig, path.with_suffix(""), svg=False)


def write_run(run_dir: Path, model: str, sample_rate: int, *, task: str = "multilabel", epoch_seconds: float,
              auc: float = 0.8, with_extras: bool = True, dataset: str = "mtat") -> Path:
    """A run directory in the documented shapes (config, summary, metrics.jsonl, metrics.json, env)."""
    labels = TAGS if task == "multilabel" else ["a", "b"]
    runs.write_config(run_dir, {"kind": "train", "model": model, "dataset": dataset, "sample_rate": sample_rate,
                                "model_kwargs": {"num_outputs": len(labels), "sample_rate": sample_rate},
                                "label_names": labels, "task": task, "seed": 0})
    rows = [{"epoch": e, "train_loss": 0.7 / e, "valid_loss": 0.8 / e, "train_seconds": epoch_seconds,
             "seconds": epoch_seconds + 1} for e in (1, 2, 3)]
    runs.atomic_write_text(run_dir / "metrics.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    runs.write_json(run_dir / "summary.json", {"epochs": 3, "best_epoch": 2, "total_seconds": 3 * epoch_seconds + 3,
                                                "params": 12345})
    runs.write_json(run_dir / "env.json", {"samplecnn": "0.1.0", "torch": "2.11.0", "git_commit": "abc123",
                                            "python": "3.11.9", "seed": 0})
    if task == "multilabel":
        rng = np.random.default_rng(0)
        targets = rng.random((20, 3)) < 0.4
        targets[0], targets[1] = True, False
        scores = np.clip(targets + rng.normal(0, 0.6, targets.shape), 0, 1)
        np.savez(run_dir / "predictions-test.npz", scores=scores.astype(np.float32), targets=targets,
                 label_names=np.asarray(TAGS))
        runs.write_json(run_dir / "metrics.json", {
            "task": "multilabel", "roc_auc": auc, "pr_auc": 0.5,
            "per_label": {t: {"roc_auc": auc - 0.01 * i, "pr_auc": 0.5} for i, t in enumerate(TAGS)}})
    else:
        runs.write_json(run_dir / "metrics.json", {"task": "multiclass", "accuracy": 0.75, "macro_f1": 0.7,
                                                   "confusion_matrix": [[3, 1], [1, 3]], "labels": labels})
    if with_extras:
        _png(run_dir / "filters" / "layer1-spectra.png", "spectra")
        runs.write_json(run_dir / "filters" / "filters.json", {"layers": []})
        _png(run_dir / "tsne" / "piano-techno.png", "tsne")  # as `samplecnn tsne --out tsne/piano-techno.png`
        runs.write_json(run_dir / "tsne" / "piano-techno.json",
                        {"points": [{"clip_id": "a", "label": "piano", "x": 0.0, "y": 1.0}]})
    return run_dir


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tables, self.images, self.links, self.stack, self.cells = [], [], [], [], {}
        self._current = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._current = attrs.get("id", f"t{len(self.tables)}")
            self.tables.append(self._current)
            self.cells[self._current] = []
        if tag == "img":
            self.images.append(attrs.get("src", ""))
        for key in ("src", "href"):
            if key in attrs and tag != "img":
                self.links.append(attrs[key])
        self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag == "table":
            self._current = None

    def handle_data(self, data):
        if self._current and data.strip():
            self.cells[self._current].append(data.strip())


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    r22 = write_run(root / "r22k", "sample-3^9", 22050, epoch_seconds=10.0, auc=0.9)
    r8 = write_run(root / "r8k", "sample-8k", 8000, epoch_seconds=5.0, auc=0.88, with_extras=False)
    rc = write_run(root / "rgenre", "frame-raw-243", 22050, task="multiclass", epoch_seconds=4.0, with_extras=False,
                   dataset="synthetic")
    # issue 14: a small model on FSDD at 8 kHz must not sit in Table 5's 8 kHz row
    fsdd = write_run(root / "rfsdd", "sample-3^6", 8000, task="multiclass", epoch_seconds=2.0, with_extras=False,
                     dataset="fsdd")
    # a Table 2 configuration on MTAT but evaluated as single-label: another metric, not comparable
    single = write_run(root / "rsingle", "frame-mel-729", 22050, task="multiclass", epoch_seconds=3.0,
                       with_extras=False)
    running = write_run(root / "rrunning", "sample-3^9", 22050, epoch_seconds=1.0, with_extras=False)
    runs.mark_status(running, runs.RUNNING)  # this (live) process
    failed = write_run(root / "rfailed", "sample-2k", 2000, epoch_seconds=1.0, with_extras=False)
    runs.mark_status(failed, runs.FAILED, "killed")
    features = root / "compare"
    # the shape `samplecnn compare-features` writes
    runs.write_json(features / "table.json", {"dataset": "synthetic", "task": "multilabel",
                                              "metrics": ["roc_auc", "pr_auc"], "rows": [
        {"features": "-1 layer", "run_dir": "x", "columns": 1024, "roc_auc": 0.81, "pr_auc": 0.4, "paper": 0.8976,
         "paper_source": "Table 6", "epochs": 3, "seconds": 1.5},
        {"features": "last 3 layers", "run_dir": "y", "columns": 3072, "roc_auc": 0.83, "pr_auc": 0.5,
         "paper": 0.9018, "paper_source": "Table 6", "epochs": 3, "seconds": 2.0}]})
    out = root / "out"
    data = build_report([r22, r8, rc, fsdd, single, running, failed, features, root / "missing"], out,
                        title="Test report")
    return out, data


def test_html_holds_tables_and_decodable_images(report):
    out, _ = report
    page = _Page()
    page.feed((out / "report.html").read_text())
    assert {"runs", "table2", "table5", "other-runs", "features-0", "table4-paper", "table6-paper"} <= set(page.tables)
    # training curves, ROC, per-label AUC, confusion matrix, filter spectra, t-SNE
    assert len(page.images) >= 6
    for src in page.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(PNG_MAGIC)
    assert not [link for link in page.links if link.startswith(("http", "//"))]
    assert "abc123" in (out / "report.html").read_text()  # the commit, in the reproducibility section
    runs_cells = page.cells["runs"]
    assert "r22k" in runs_cells and "12,345" in runs_cells


def test_paper_numbers_beside_the_runs(report):
    _, data = report
    tables = {t["id"]: t for t in data["tables"]}
    t2 = {row[1]: row for row in tables["table2"]["rows"]}
    assert len(t2) == 13
    assert t2["sample-3^9"][5] == pytest.approx(0.9055) and t2["sample-3^9"][6] == "0.9000"
    assert t2["frame-raw-243"][5] == pytest.approx(0.8823) and t2["frame-raw-243"][6] is None  # synthetic data
    assert t2["frame-mel-729"][6] is None  # on MTAT, but accuracy is not the paper's metric
    t5 = {(row[0], row[1]): row for row in tables["table5"]["rows"]}
    assert t5[(22050, "sample-3^9")][3] == pytest.approx(1.0)
    assert t5[(8000, "sample-8k")][3] == pytest.approx(0.5)  # 5 s / 10 s per epoch
    assert t5[(8000, "sample-8k")][5] == pytest.approx(0.55) and t5[(8000, "sample-8k")][6] == pytest.approx(0.9031)
    assert t5[(8000, "sample-8k")][4] == pytest.approx(0.88)
    assert [key for key in t5 if key[0] == 8000] == [(8000, "sample-8k")]  # not the FSDD sample-3^6


def test_paper_tables_hold_only_paper_comparable_rows(report):
    _, data = report
    tables = {t["id"]: t for t in data["tables"]}
    paper_cells = " ".join(str(v) for t in ("table2", "table5") for row in tables[t]["rows"] for v in row)
    for name in ("rgenre", "rfsdd", "rsingle", "rrunning", "rfailed", "sample-3^6", "accuracy", "fsdd", "synthetic"):
        assert name not in paper_cells
    other = {row[0]: row for row in tables["other-runs"]["rows"]}
    assert set(other) == {"rgenre", "rfsdd", "rsingle"}
    assert "dataset fsdd, not MTAT" in other["rfsdd"][-1] and "metric accuracy" in other["rfsdd"][-1]
    assert "sample-3^6 at 8000 Hz is not one of the paper's configurations" in other["rfsdd"][-1]
    assert other["rsingle"][-1] == "metric accuracy, not ROC-AUC"
    assert other["rfsdd"][6] == "0.7500 (accuracy)"


def test_unfinished_runs_are_never_rows(report):
    _, data = report
    every_cell = " ".join(str(v) for t in data["tables"] for row in t["rows"] for v in row)
    assert "rrunning" not in every_cell and "rfailed" not in every_cell
    assert {r["name"] for r in data["runs"]} == {"r22k", "r8k", "rgenre", "rfsdd", "rsingle"}
    skipped = " ".join(data["skipped"])
    assert "rrunning: run running, not finished" in skipped and "rfailed: run failed, not finished" in skipped


def test_feature_tables_and_report_json(report):
    _, data = report
    tables = {t["id"]: t for t in data["tables"]}
    features = tables["features-0"]
    assert features["columns"][:4] == ["features", "columns", "roc_auc", "pr_auc"]
    assert features["rows"][1][:4] == ["last 3 layers", 3072, 0.83, 0.5] and 0.9018 in features["rows"][1]
    assert any("missing" in s for s in data["skipped"])
    saved = json.loads(Path(data["html"]).with_name("report.json").read_text())
    assert saved["tables"] == json.loads(json.dumps(data["tables"]))


def test_markdown_with_pngs_beside_it(report):
    out, data = report
    md = (out / "report.md").read_text()
    assert "| sample-level | sample-3^9 |" in md
    linked = [line.split("](", 1)[1].rstrip(")") for line in md.splitlines() if line.startswith("![")]
    assert len(linked) == len(data["figures"]) >= 6
    for rel in linked:
        assert (out / rel).read_bytes().startswith(PNG_MAGIC)
    sections = {f["section"] for f in data["figures"]}
    assert {"Training curves", "Evaluation", "Filter spectra", "t-SNE"} <= sections
    # ROC curves come from predictions-test.npz, the name `samplecnn evaluate` writes
    assert any(f["title"] == "r22k: ROC curves (test)" for f in data["figures"])


def test_cli_prints_the_path_last(report, tmp_path):
    run = report[0].parent / "r8k"
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "rep"), "--title", "One run"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().splitlines()[-1] == str(tmp_path / "rep" / "report.html")
    assert "<title>One run</title>" in (tmp_path / "rep" / "report.html").read_text()


def test_cli_nothing_to_report(tmp_path):
    result = runner.invoke(app, ["report", str(tmp_path), "--out", str(tmp_path / "rep")])
    assert result.exit_code == 1 and "nothing to report" in result.output


@pytest.mark.skipif(not Path("/usr/bin/chromium").exists(), reason="needs /usr/bin/chromium (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "report_browser_check.py"
    spec = importlib.util.spec_from_file_location("report_browser_check", path)
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    html = tmp_path / "report.html"
    shutil.copyfile(report[0] / "report.html", html)  # self-contained: works away from its figures
    result = check.check_report(html, tmp_path / "shot.png", browser="/usr/bin/chromium")
    assert result["ok"], result
    assert result["tables"] >= 6 and result["decoded"] == result["images"] >= 6


def test_end_to_end_from_a_trained_run(tmp_path):
    """`samplecnn train` (library call) -> evaluate -> visualize-filters -> report, on a tiny synthetic store."""
    from samplecnn_cli.inference.evaluate import evaluate_run
    from samplecnn_cli.training.trainer import train
    from tests._store_fixtures import make_store

    store = make_store(tmp_path / "store", task="multiclass", clips=(6, 3, 3), seconds=0.5)
    run = train(model="sample-3^5", data=store, out=tmp_path / "run", epochs=1, batch_size=16)
    evaluate_run(run)
    result = runner.invoke(app, ["visualize-filters", str(run), "--layer", "2", "--filters", "0,1,2,3",
                                 "--steps", "4", "--no-svg"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(app, ["report", str(run), "--out", str(tmp_path / "rep"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    row = data["tables"][0]["rows"][0]
    assert row[2] == "sample-3^5" and row[4] == 8000 and row[5] > 0 and row[7] == 1
    assert {"Training curves", "Evaluation", "Filter spectra"} <= {f["section"] for f in data["figures"]}
    assert data["runs"][0]["env"]["git_commit"] or data["runs"][0]["env"].get("torch")


def test_paper_tables_never_hold_a_non_comparable_run():
    """Every combination of model, rate, dataset and metric: a run's value appears in Table 2 or 5 only
    for the paper's configuration (at its rate) on MTAT by ROC-AUC, and otherwise in the other-runs table."""
    import itertools

    from samplecnn_cli.report.collect import Collected, RunData
    from samplecnn_cli.report.tables import build_tables

    combos = list(itertools.product(["sample-3^9", "sample-8k", "sample-3^6", "frame-mel-729"], [8000, 22050],
                                    ["mtat", "fsdd"], ["multilabel", "multiclass"]))
    collected = Collected()
    for k, (model, rate, dataset, task) in enumerate(combos):
        metrics = {"task": task, "roc_auc": 0.5 + k / 1000} if task == "multilabel" else \
            {"task": task, "accuracy": 0.5 + k / 1000}
        collected.runs.append(RunData(path=Path(f"r{k}"), name=f"r{k}", config_text="", metrics=metrics,
                                      config={"kind": "train", "model": model, "dataset": dataset,
                                              "sample_rate": rate, "task": task},
                                      summary={"params": 1, "epochs": 1}))
    tables = {t["id"]: t for t in build_tables(collected)}
    comparable = {f"{0.5 + k / 1000:.4f}" for k, (model, rate, dataset, task) in enumerate(combos)
                  if dataset == "mtat" and task == "multilabel"
                  and (model, rate) in {("sample-3^9", 22050), ("sample-8k", 8000), ("frame-mel-729", 22050)}}
    in_paper = {f"{v:.4f}" if isinstance(v, float) else v for row in tables["table5"]["rows"] for v in [row[4]] if v}
    in_paper |= {v for row in tables["table2"]["rows"] if row[6] for v in row[6].split("; ")}
    assert in_paper == comparable
    others = {row[0] for row in tables["other-runs"]["rows"]}
    assert len(others) + len(comparable) == len(combos)
