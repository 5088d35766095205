"""The report's tables as data: the run table and the paper's Tables 2, 4, 5, 6 beside the given runs.

A paper table holds only runs comparable with the paper: the paper's configuration, on the paper's
dataset (MTAT) and metric (ROC-AUC). Every other training run goes to a table of its own, with why.

A table is {"id", "title", "columns", "rows" (lists of plain values), "note"}; HTML and Markdown are
rendered from it, and report.json holds it as is.
"""

from __future__ import annotations

import math
from typing import Any

from samplecnn_cli.report.collect import Collected, RunData

# Table 4 and Table 6 of the paper (PAPER-FACTS.md); Tables 2 and 5 come from the registry catalogue.
PAPER_TABLE4 = [("3^9", 0.9046), ("3^8 + 3^9", 0.9061), ("2^13, 2^14, 3^8, 3^9", 0.9061),
                ("2^13, 2^14, 3^8, 3^9, 4^6, 4^7, 5^5, 5^6", 0.9064)]
PAPER_TABLE6_COLUMNS = ["features", "GTZAN acc", "MTAT AUC", "TAGTRAUM acc", "MSD AUC"]
PAPER_TABLE6 = [
    ["SampleCNN 3^9 trained directly", None, 0.9055, None, 0.8812],
    ["-3 layer", 0.778, 0.8988, 0.760, 0.8831],
    ["-2 layer", 0.811, 0.8998, 0.768, 0.8838],
    ["-1 layer", 0.821, 0.8976, 0.768, 0.8842],
    ["last 3 layers", 0.805, 0.9018, 0.768, 0.8842],
    ["prior multi-level multi-scale (mel, MSD)", 0.720, 0.9021, 0.766, 0.8878],
]
REFERENCE_RATE = 22050


def table(table_id: str, title: str, columns: list[str], rows: list[list[Any]], note: str = "") -> dict:
    return {"id": table_id, "title": title, "columns": columns, "rows": rows, "note": note}


# -- per-run facts ---------------------------------------------------------------------------------
def main_metric(run: RunData) -> tuple[str, float | None]:
    """The paper's metric for the run's task: ROC-AUC (multi-label) or accuracy (single-label)."""
    m = run.metrics
    if "roc_auc" in m or run.task == "multilabel":
        return "ROC-AUC", _num(m.get("roc_auc"))
    if "accuracy" in m or run.task == "multiclass":
        return "accuracy", _num(m.get("accuracy"))
    return "metric", None


def params(run: RunData) -> int | None:
    if run.summary.get("params"):
        return int(run.summary["params"])
    try:  # older runs: rebuild the (untrained) model to count
        from samplecnn_cli.models.registry import create_model

        kwargs = {k: v for k, v in (run.config.get("model_kwargs") or {}).items()}
        return int(create_model(run.model, **kwargs).num_params())
    except Exception:  # a plugin or transfer model we cannot rebuild: leave blank
        return None


def training_seconds(run: RunData) -> float | None:
    total = run.summary.get("total_seconds", run.summary.get("train_seconds"))
    if total is None and run.epochs:
        total = sum(float(e.get("seconds", 0)) for e in run.epochs) or None
    return _num(total)


def epochs(run: RunData) -> int | None:
    if run.summary.get("epochs") is not None:
        return int(run.summary["epochs"])
    return len(run.epochs) or None


def seconds_per_epoch(run: RunData) -> float | None:
    """Mean pure-training seconds per epoch (what the training-time ratio compares: runs stop at
    different epochs, so totals would mix speed with the stopping point)."""
    values = [float(e["train_seconds"]) for e in run.epochs if e.get("train_seconds") is not None]
    if values:
        return sum(values) / len(values)
    total, n = training_seconds(run), epochs(run)
    return total / n if total and n else None


def canonical(run: RunData) -> str:
    from samplecnn_cli.models.registry import canonical_name

    try:
        return canonical_name(run.model)
    except Exception:
        return run.model


PAPER_DATASET = "mtat"  # the paper's Tables 2-5 are ROC-AUC on MagnaTagATune


def dataset(run: RunData) -> str:
    return str(run.config.get("dataset") or "")


def table2_config(run: RunData) -> bool:
    """The run's model and rate are one of Table 2's configurations (all at 22,050 Hz)."""
    return canonical(run) in _table2_names() and run.sample_rate == REFERENCE_RATE


def table5_config(run: RunData) -> bool:
    """The run's model is the paper's configuration for the run's sample rate (Tables 3 and 5)."""
    entry = _table5_entries().get(run.sample_rate or 0)
    return entry is not None and canonical(run) == entry.name


def paper_mismatch(run: RunData) -> list[str]:
    """Why `run` cannot sit beside the paper's numbers: another configuration (model at that rate),
    dataset or metric. Empty when it can."""
    reasons = []
    if run.kind != "train":
        reasons.append(f"a {run.kind} run")
    elif not (table2_config(run) or table5_config(run)):
        reasons.append(f"{run.model} at {run.sample_rate or '?'} Hz is not one of the paper's configurations")
    if dataset(run).lower() != PAPER_DATASET:
        reasons.append(f"dataset {dataset(run) or 'unknown'}, not MTAT")
    metric, _ = main_metric(run)
    if metric != "ROC-AUC":
        reasons.append(f"metric {metric}, not ROC-AUC")
    return reasons


def _num(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _r(value, digits: int = 4):
    return None if value is None else round(float(value), digits)


# -- tables ------------------------------------------------------------------------------------------
def run_table(runs: list[RunData]) -> dict:
    rows = []
    for run in runs:
        name, value = main_metric(run)
        second = ("PR-AUC", run.metrics.get("pr_auc")) if name == "ROC-AUC" else ("macro F1", run.metrics.get("macro_f1"))
        seconds = training_seconds(run)
        rows.append([run.name, run.kind, run.model, run.config.get("dataset") or "", run.sample_rate,
                     params(run), _r(seconds, 1), epochs(run), run.summary.get("best_epoch"),
                     f"{name} {value:.4f}" if value is not None else "not evaluated",
                     f"{second[0]} {float(second[1]):.4f}" if second[1] is not None else ""])
    return table("runs", "Runs", ["run", "kind", "model", "dataset", "sample rate (Hz)", "parameters",
                                  "training time (s)", "epochs", "best epoch", "metric", "second metric"], rows,
                 "Metrics are song-level on the test split (metrics.json from `samplecnn evaluate`).")


def _table2_names() -> set[str]:
    from samplecnn_cli.models.registry import catalogue

    return {e.name for e in catalogue()["models"].values() if "Table 2" in e.table}


def table2(runs: list[RunData]) -> dict | None:
    """Table 2: every configuration of the paper, with the MTAT ROC-AUC of the given runs of that exact
    configuration on MTAT. Other runs go to `other_runs_table`, never here."""
    from samplecnn_cli.models.registry import catalogue, parse_name

    names = _table2_names()
    ours: dict[str, list[float]] = {}
    for run in runs:
        _, value = main_metric(run)
        if value is not None and table2_config(run) and not paper_mismatch(run):
            ours.setdefault(canonical(run), []).append(value)
    if not ours:
        return None
    rows = []
    for entry in catalogue()["models"].values():
        if entry.name not in names:
            continue
        spec = parse_name(entry.name)
        if spec.family == "sample":
            n, window, hop = len(spec.filters) - 1, spec.filters[0], spec.filters[0]
        else:
            window, hop = spec.window, spec.hop
            n = round(math.log(59049 // hop, 3))
        family = {"sample": "sample-level", "frame-mel": "frame-level mel", "frame-raw": "frame-level raw"}[spec.family]
        mine = ours.get(entry.name, [])
        rows.append([family, entry.name, n, window, hop, entry.paper_auc,
                     "; ".join(f"{v:.4f}" for v in mine) or None])
    return table("table2", "Table 2: configurations (59,049-sample input), MTAT ROC-AUC",
                 ["model", "name", "n", "window / filter", "hop / stride", "paper MTAT AUC", "this report"], rows,
                 "Only runs of the paper's configuration on MTAT, evaluated by ROC-AUC, are in this table; "
                 "the others are in \"Runs outside the paper's setting\".")


def _time_ratios(runs: list[RunData]) -> tuple[dict[int, float | None], dict[int, float | None], dict[str, RunData]]:
    """Seconds per epoch and the ratio to a reference run of the same dataset (times compare only on one
    dataset and machine): the 22,050 Hz run when there is one, else the slowest."""
    speed = {id(r): seconds_per_epoch(r) for r in runs}
    references: dict[str, RunData] = {}
    for name in {dataset(r) for r in runs}:
        timed = [r for r in runs if speed[id(r)] and dataset(r) == name]
        if timed:
            references[name] = next((r for r in timed if r.sample_rate == REFERENCE_RATE),
                                    max(timed, key=lambda r: speed[id(r)]))
    ratio = {}
    for run in runs:
        reference = references.get(dataset(run))
        ratio[id(run)] = speed[id(run)] / speed[id(reference)] if speed[id(run)] and reference else None
    return speed, ratio, references


def _references_text(references: dict[str, RunData]) -> str:
    return "; ".join(f"{d or '?'}: {r.name} ({r.sample_rate:,} Hz)" for d, r in sorted(references.items())) \
        or "none (no timings)"


def _table5_entries() -> dict[int, object]:
    from samplecnn_cli.models.registry import catalogue, config_for_rate

    rates = {e.sample_rate for e in catalogue()["models"].values() if e.table.startswith("Table 3")}
    return {rate: config_for_rate(rate) for rate in sorted(rates | {REFERENCE_RATE})}


def table5_comparable(run: RunData) -> bool:
    return table5_config(run) and not paper_mismatch(run)


def table5(runs: list[RunData]) -> dict | None:
    """Table 5: the paper's configuration per sample rate vs training-time ratio and MTAT ROC-AUC, with
    the given runs of exactly that configuration on MTAT. Other runs go to `other_runs_table`."""
    comparable = [r for r in runs if table5_comparable(r)]
    if not comparable:
        return None
    speed, ratio, references = _time_ratios(comparable)
    rows = []
    for rate, entry in _table5_entries().items():
        paper_ratio = entry.train_time_ratio or (1.0 if rate == REFERENCE_RATE else None)
        for run in [r for r in comparable if r.sample_rate == rate] or [None]:
            if run is None:
                rows.append([rate, entry.name, None, None, None, paper_ratio, entry.paper_auc])
                continue
            _, value = main_metric(run)
            rows.append([rate, run.model, _r(speed[id(run)], 2), _r(ratio[id(run)], 2), _r(value),
                         paper_ratio, entry.paper_auc])
    return table("table5", "Table 5: sample rate vs training time and MTAT ROC-AUC",
                 ["sample rate (Hz)", "model", "s / epoch", "time ratio", "this report (MTAT AUC)",
                  "paper time ratio", "paper MTAT AUC"], rows,
                 "Only runs of the paper's configuration for a rate, on MTAT, evaluated by ROC-AUC. Time ratio = "
                 "mean training seconds per epoch relative to the 22,050 Hz run (else the slowest): "
                 f"{_references_text(references)}.")


def other_runs_table(runs: list[RunData]) -> dict | None:
    """Training runs that fit none of the paper's tables (another configuration, dataset or metric), with
    the reason and their own time ratios (per dataset), so nothing is read as comparable to the paper."""
    others = [r for r in runs if r.kind == "train" and paper_mismatch(r)]
    if not others:
        return None
    speed, ratio, references = _time_ratios(others)
    rows = []
    for run in others:
        name, value = main_metric(run)
        why = paper_mismatch(run)
        rows.append([run.name, run.model, dataset(run), run.sample_rate, _r(speed[id(run)], 2),
                     _r(ratio[id(run)], 2), f"{value:.4f} ({name})" if value is not None else "not evaluated",
                     "; ".join(why)])
    return table("other-runs", "Runs outside the paper's setting (not comparable with its tables)",
                 ["run", "model", "dataset", "sample rate (Hz)", "s / epoch", "time ratio", "metric",
                  "why not in the paper's tables"], rows,
                 "Time ratio = mean training seconds per epoch relative to the 22,050 Hz run of the same dataset "
                 f"(else the slowest): {_references_text(references)}.")


def paper_table4() -> dict:
    return table("table4-paper", "Table 4 (paper): multi-scale feature combinations, MTAT AUC",
                 ["features (models)", "paper MTAT AUC"], [list(r) for r in PAPER_TABLE4])


def paper_table6() -> dict:
    return table("table6-paper", "Table 6 (paper): transfer from 3^9 pre-trained on MSD",
                 PAPER_TABLE6_COLUMNS, [list(r) for r in PAPER_TABLE6])


def feature_table(entry: dict, index: int) -> dict | None:
    """A compare-features table.json, whatever its exact shape: rows of dicts, or columns + rows."""
    data = entry["data"]
    title = f"Feature combinations: {entry['path'].name}"
    if isinstance(data, dict):
        rows = data.get("rows") if "rows" in data else data.get("results")
        columns = data.get("columns")
        if isinstance(data.get("metrics"), list):  # `samplecnn compare-features` table.json
            columns = ["features", "columns", *data["metrics"], "paper", "paper_source", "epochs", "seconds"]
            title = f"Feature combinations on {data.get('dataset') or 'the target data'} (Tables 4/6 style)"
        title = str(data.get("title") or title)
    else:
        rows, columns = data, None
    if not isinstance(rows, list) or not rows:
        return None
    if all(isinstance(r, dict) for r in rows):
        columns = columns if isinstance(columns, list) and all(isinstance(c, str) for c in columns) else None
        columns = columns or list(dict.fromkeys(k for r in rows for k in r if not isinstance(r[k], (dict, list))))
        body = [[_cell(r.get(c)) for c in columns] for r in rows]
    elif isinstance(columns, list):
        body = [[_cell(v) for v in r] for r in rows if isinstance(r, list)]
    else:
        return None
    return table(f"features-{index}", title, [str(c) for c in columns], body, f"From {entry['path']}/table.json")


def transfer_table(runs: list[RunData]) -> dict | None:
    """Transfer runs (Table 6 style): features used and the metric."""
    rows = []
    for run in runs:
        if run.kind != "transfer":
            continue
        name, value = main_metric(run)
        features = run.config.get("features") or {}
        if isinstance(features, dict):
            files = features.get("files") or []
            described = f"{len(files)} feature file(s); runs: {_cell(features.get('runs')) or 'all'}; " \
                        f"pooling: {_cell(features.get('poolings')) or 'all'}; {features.get('columns', '?')} columns"
            layers = _cell(features.get("layers")) or "all"
        else:
            described, layers = _cell(features), ""
        rows.append([run.name, run.config.get("dataset") or "", described, layers,
                     f"{value:.4f} ({name})" if value is not None else None])
    if not rows:
        return None
    return table("transfer", "Transfer runs (Table 6 style)", ["run", "dataset", "features", "layers", "metric"], rows)


def _cell(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return value


def build_tables(collected: Collected) -> list[dict]:
    runs = collected.runs
    tables = [run_table(runs)] if runs else []
    for maker in (table2, table5, other_runs_table, transfer_table):
        made = maker(runs)
        if made:
            tables.append(made)
    features = [t for i, e in enumerate(collected.feature_tables) if (t := feature_table(e, i))]
    tables += features
    if features or any(r.kind == "transfer" for r in runs):
        tables += [paper_table4(), paper_table6()]
    return tables
