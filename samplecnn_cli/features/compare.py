"""Tables 4 and 6 in one command: a transfer run per feature choice, one row per choice.

Rows (each a `train_transfer` run under OUT/<row slug>/):
    every run alone, last 3 layers           only when the files hold several runs (Table 4's single models)
    layer -3 / layer -2 / layer -1           all runs' columns of that layer (Table 6 with one run)
    last 3 layers                            all runs, all three layers (Table 6 / Table 4's combinations)
Columns: the target's metrics (ROC-AUC and PR-AUC for tagging, accuracy and macro F1 otherwise),
plus the paper's number where the row and dataset match one (Table 6 for GTZAN, MTAT, TAGTRAUM, MSD;
Table 4 for MTAT when the set of models matches one of its combinations). A row whose run folder
already holds summary.json is read back, not retrained, so an interrupted comparison continues.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.data.features_file import FeatureFile
from samplecnn_cli.features.transfer import TransferOptions, train_transfer

# PAPER-FACTS Table 6: 3^9 pre-trained on MSD, features transferred (accuracy or ROC-AUC).
TABLE6 = {
    "gtzan": {-3: 0.778, -2: 0.811, -1: 0.821, "last3": 0.805},
    "mtat": {-3: 0.8988, -2: 0.8998, -1: 0.8976, "last3": 0.9018},
    "tagtraum": {-3: 0.760, -2: 0.768, -1: 0.768, "last3": 0.768},
    "msd": {-3: 0.8831, -2: 0.8838, -1: 0.8842, "last3": 0.8842},
}
# PAPER-FACTS Table 4: models pre-trained and evaluated on MTAT (ROC-AUC), last 3 layers.
TABLE4 = {
    frozenset({"sample-3^9"}): 0.9046,
    frozenset({"sample-3^8", "sample-3^9"}): 0.9061,
    frozenset({"sample-2^13", "sample-2^14", "sample-3^8", "sample-3^9"}): 0.9061,
    frozenset({"sample-2^13", "sample-2^14", "sample-3^8", "sample-3^9",
               "sample-4^6", "sample-4^7", "sample-5^5", "sample-5^6"}): 0.9064,
}
PAPER_COLUMNS = tuple(TABLE6)


def _canonical(model: str) -> str:
    from samplecnn_cli.models.registry import canonical_name

    try:
        return canonical_name(model)
    except Exception:  # a plugin or unparsable name: compare as written
        return model


def guess_paper_column(dataset: str) -> str | None:
    name = dataset.lower()
    return next((column for column in PAPER_COLUMNS if column in name), None)


def feature_choices(run_models: dict[str, str]) -> list[dict]:
    """The rows: (name, slug, runs filter, layers filter, models used)."""
    all_models = sorted(set(run_models.values()))
    rows = []
    if len(run_models) > 1:
        for run, model in run_models.items():
            rows.append({"name": f"{model} only ({run}), last 3 layers", "slug": f"run-{run}", "runs": [run],
                         "layers": None, "models": [model], "paper_key": None})
    for layer in (-3, -2, -1):
        rows.append({"name": f"layer {layer}", "slug": f"layer{layer}", "runs": None, "layers": [layer],
                     "models": all_models, "paper_key": layer})
    rows.append({"name": "last 3 layers" + (f" ({len(run_models)} runs)" if len(run_models) > 1 else ""),
                 "slug": "last3", "runs": None, "layers": None, "models": all_models, "paper_key": "last3"})
    return rows


def paper_value(row: dict, column: str | None, single_run: bool) -> tuple[float | None, str | None]:
    if column is None:
        return None, None
    models = frozenset(_canonical(m) for m in row["models"])
    if column == "mtat" and row["layers"] is None and models in TABLE4:
        return TABLE4[models], "Table 4"
    if single_run and row["paper_key"] is not None:
        return TABLE6[column][row["paper_key"]], "Table 6"
    return None, None


def compare_features(feature_paths: list[Path], out_dir: Path, *, paper_column: str | None = "auto",
                     on_row: Callable[[dict], None] | None = None,
                     progress: Callable[[int, int, str], None] | None = None,
                     options: TransferOptions | None = None) -> dict:
    """Train one transfer run per feature choice; write OUT/table.md and OUT/table.json.

    `progress(rows_done, rows_total, row_name)` is called before each row's run starts and once at the end."""
    from samplecnn_cli.runs import folder as runs_mod

    files = [FeatureFile(Path(p)) for p in feature_paths]
    if not files:
        raise UsageError("give at least one feature file (written by `samplecnn extract`)")
    run_models: dict[str, str] = {}
    for ff in files:
        run_models.update(ff.run_models())
    task = files[0].task
    if paper_column == "auto":
        paper_column = guess_paper_column(files[0].dataset)
    elif paper_column in ("", "none", None):
        paper_column = None
    elif paper_column not in PAPER_COLUMNS:
        raise UsageError(f"--paper must be auto, none or one of {', '.join(PAPER_COLUMNS)}")
    metric_names = ["roc_auc", "pr_auc"] if task == "multilabel" else ["accuracy", "macro_f1"]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    choices = feature_choices(run_models)
    for done, choice in enumerate(choices):
        if progress:
            progress(done, len(choices), choice["name"])
        run_dir = out_dir / choice["slug"]
        if (run_dir / "summary.json").is_file():
            summary = json.loads((run_dir / "summary.json").read_text())
        else:
            summary = train_transfer([ff.path for ff in files], run_dir, options,
                                     runs=tuple(choice["runs"]) if choice["runs"] else None,
                                     layers=tuple(choice["layers"]) if choice["layers"] else None)
        paper, source = paper_value(choice, paper_column, len(run_models) == 1)
        row = {"features": choice["name"], "run_dir": str(run_dir), "columns": summary["columns"],
               **{m: (summary.get("test") or {}).get(m) for m in metric_names},
               "paper": paper, "paper_source": source, "epochs": summary["epochs"],
               "seconds": summary.get("total_seconds", summary.get("train_seconds"))}
        rows.append(row)
        if on_row:
            on_row(row)
    if progress:
        progress(len(choices), len(choices), "done")
    table = {"features": [str(ff.path) for ff in files], "dataset": files[0].dataset, "task": task,
             "metrics": metric_names, "paper_column": paper_column, "runs": run_models, "rows": rows}
    runs_mod.write_json(out_dir / "table.json", table)
    runs_mod.atomic_write_text(out_dir / "table.md", render_markdown(table))
    return table


def render_markdown(table: dict) -> str:
    metrics = table["metrics"]
    paper = table["paper_column"]
    header = ["features", "columns", *metrics] + ([f"paper ({paper.upper()})"] if paper else [])
    lines = [f"# Feature comparison on {table['dataset'] or 'the target data'} (test split)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in table["rows"]:
        cells = [row["features"], str(row["columns"])]
        cells += [f"{row[m]:.4f}" if isinstance(row[m], float) else "–" for m in metrics]
        if paper:
            cells.append(f"{row['paper']:.4f} ({row['paper_source']})" if row["paper"] is not None else "–")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Runs: " + ", ".join(f"{k} = {v}" for k, v in table["runs"].items()) + "."]
    if paper:
        lines.append("Paper: Table 6 used features of 3^9 pre-trained on MSD; Table 4 used models pre-trained "
                     "on MTAT (last 3 layers).")
    return "\n".join(lines) + "\n"
