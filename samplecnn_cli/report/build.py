"""`build_report`: one self-contained HTML page, report.md with PNGs beside it, and report.json.

The HTML embeds every figure as a base64 PNG and its CSS inline, and names no external URL, so it
opens offline and can be mailed as one file. report.md points at figures/*.png next to it.
"""

from __future__ import annotations

import base64
import html
import json
import shutil
import time
from pathlib import Path

import numpy as np

from samplecnn_cli import __version__
from samplecnn_cli.core.errors import RunError
from samplecnn_cli.report.collect import Collected, RunData, collect
from samplecnn_cli.report.tables import build_tables
from samplecnn_cli.runs.folder import atomic_write_text, write_json
from samplecnn_cli.runs.workspace import safe_name

ROC_MAX_LABELS = 8  # ROC curves drawn per run: the most frequent labels (plus the micro average)
ENV_KEYS = ("samplecnn", "python", "torch", "torchaudio", "numpy", "scikit-learn", "platform", "device",
            "precision", "git_commit", "seed")

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;
color:#222;padding:0 1rem;line-height:1.45}
h1{border-bottom:2px solid #444;padding-bottom:.3rem}h2{margin-top:2.2rem;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:.8rem 0;font-size:.88rem}
th,td{border:1px solid #bbb;padding:.25rem .55rem;text-align:left;vertical-align:top}
th{background:#eef1f5}tr:nth-child(even) td{background:#fafafa}
td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1rem 0;display:inline-block;max-width:100%}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-size:.85rem;color:#555}.note{font-size:.85rem;color:#555}
pre{background:#f5f5f5;padding:.6rem;overflow:auto;font-size:.8rem}
"""


# -- figures -------------------------------------------------------------------------------------------
def _figure_entries(collected: Collected, fig_dir: Path) -> list[dict]:
    """Draw the report's figures into fig_dir and copy the existing ones there; return captions + files."""
    from samplecnn_cli.viz import figures

    entries = []

    def add(section: str, title: str, path: Path) -> None:
        entries.append({"section": section, "title": title, "file": f"figures/{path.name}", "path": path})

    curves = {}
    for run in collected.runs:
        rows = [e for e in run.epochs if "epoch" in e]
        if rows:
            curves[run.name] = {"epoch": [int(e["epoch"]) for e in rows],
                                "train_loss": [float(e["train_loss"]) for e in rows if e.get("train_loss") is not None],
                                "valid_loss": [float(e["valid_loss"]) for e in rows if e.get("valid_loss") is not None]}
    if curves:
        paths = figures.save_figure(figures.training_curves_figure(curves), fig_dir / "training-curves", svg=False)
        add("Training curves", "Loss per epoch (solid: training, dashed: validation)", paths[0])

    for i, run in enumerate(collected.runs):
        tag = f"{i + 1:02d}-{safe_name(run.name)}"
        if run.predictions is not None and run.task == "multilabel":
            fig = _roc(run)
            if fig is not None:
                add("Evaluation", f"{run.name}: ROC curves (test)", figures.save_figure(
                    fig, fig_dir / f"{tag}-roc", svg=False)[0])
        if run.metrics.get("confusion_matrix"):
            labels = run.metrics.get("labels") or run.config.get("label_names") or []
            fig = figures.confusion_figure(np.asarray(run.metrics["confusion_matrix"]), list(labels),
                                           f"{run.name}: confusion matrix (test)")
            add("Evaluation", f"{run.name}: confusion matrix (test, song level)",
                figures.save_figure(fig, fig_dir / f"{tag}-confusion", svg=False)[0])
        per_label = {k: v["roc_auc"] for k, v in (run.metrics.get("per_label") or {}).items()
                     if isinstance(v, dict) and v.get("roc_auc") is not None}
        if per_label:
            fig = figures.per_label_figure(per_label, f"{run.name}: ROC-AUC per label (test)")
            add("Evaluation", f"{run.name}: ROC-AUC per label",
                figures.save_figure(fig, fig_dir / f"{tag}-per-label-auc", svg=False)[0])
        for png in run.filter_figures:
            target = fig_dir / f"{tag}-{png.name}"
            shutil.copyfile(png, target)
            add("Filter spectra", f"{run.name}: {png.stem.replace('-', ' ')} (sorted by peak frequency)",
                target)
        for k, item in enumerate(run.tsne):
            target = fig_dir / f"{tag}-tsne{k + 1}.png"
            shutil.copyfile(item["png"], target)
            add("t-SNE", f"{run.name}: {item['meta'].get('title') or 't-SNE of song-level features'}", target)
    for k, item in enumerate(collected.tsne):
        target = fig_dir / f"tsne-{k + 1:02d}-{safe_name(item['png'].stem)}.png"
        shutil.copyfile(item["png"], target)
        add("t-SNE", f"{item['meta'].get('title') or 't-SNE'} ({item['path'].name})", target)
    return entries


def _roc(run: RunData):
    from sklearn.metrics import roc_auc_score, roc_curve

    from samplecnn_cli.viz import figures

    try:
        with np.load(run.predictions, allow_pickle=False) as data:
            scores, targets = np.asarray(data["scores"], float), np.asarray(data["targets"], bool)
            names = [str(n) for n in data["label_names"]] if "label_names" in data else \
                [f"label {k}" for k in range(scores.shape[1])]
    except (OSError, KeyError, ValueError):
        return None
    usable = [k for k in range(targets.shape[1]) if 0 < targets[:, k].sum() < len(targets)]
    if not usable:
        return None
    curves = []
    flat_t, flat_s = targets[:, usable].ravel(), scores[:, usable].ravel()
    fpr, tpr, _ = roc_curve(flat_t, flat_s)
    curves.append(("micro average", fpr, tpr, float(roc_auc_score(flat_t, flat_s))))
    for k in sorted(usable, key=lambda k: -targets[:, k].sum())[:ROC_MAX_LABELS]:
        fpr, tpr, _ = roc_curve(targets[:, k], scores[:, k])
        curves.append((names[k], fpr, tpr, float(roc_auc_score(targets[:, k], scores[:, k]))))
    return figures.roc_figure(curves, f"{run.name}: ROC curves (test, song level)")


# -- rendering -------------------------------------------------------------------------------------------
def _fmt(value) -> str:
    if value is None or value == "":
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    if isinstance(value, float):
        if abs(value) >= 10:
            return f"{value:,.1f}"
        # Metrics and ratios keep four decimals so a column reads alike (0.9000, 0.9031); seconds two.
        return f"{value:.4f}" if abs(value) < 1 else f"{value:.2f}"
    return str(value)


def _html_table(t: dict) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in t["columns"])
    body = []
    for row in t["rows"]:
        cells = "".join(f'<td class="num">{html.escape(_fmt(v))}</td>' if isinstance(v, (int, float))
                        and not isinstance(v, bool) else f"<td>{html.escape(_fmt(v))}</td>" for v in row)
        body.append(f"<tr>{cells}</tr>")
    note = f'<p class="note">{html.escape(t["note"])}</p>' if t.get("note") else ""
    return (f'<h3>{html.escape(t["title"])}</h3>\n<table id="{html.escape(t["id"])}"><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table>{note}")


def _md_table(t: dict) -> str:
    def cell(v) -> str:
        return _fmt(v).replace("|", "\\|").replace("\n", " ")

    lines = [f"### {t['title']}", "", "| " + " | ".join(t["columns"]) + " |",
             "|" + "---|" * len(t["columns"])]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in t["rows"]]
    if t.get("note"):
        lines += ["", f"_{t['note']}_"]
    return "\n".join(lines)


def _repro(run: RunData) -> dict:
    env = {k: run.env.get(k) for k in ENV_KEYS if run.env.get(k) is not None}
    return {"run": run.name, "path": str(run.path), "env": env, "config": run.config_text}


def _sections(figs: list[dict]) -> list[str]:
    return list(dict.fromkeys(f["section"] for f in figs))


def render_html(title: str, generated: str, tables: list[dict], figs: list[dict], repro: list[dict],
                skipped: list[str]) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{html.escape(title)}</title>"
             f"<style>{CSS}</style></head><body>", f"<h1>{html.escape(title)}</h1>",
             f'<p class="note">Generated {html.escape(generated)} by samplecnn {html.escape(__version__)}. '
             "Paper: Lee, Park, Kim, Nam, “SampleCNN”, Applied Sciences 8(1):150, 2018.</p>",
             "<h2>Tables</h2>", *(_html_table(t) for t in tables)]
    for section in _sections(figs):
        parts.append(f"<h2>{html.escape(section)}</h2>")
        for f in (f for f in figs if f["section"] == section):
            data = base64.b64encode(f["path"].read_bytes()).decode("ascii")
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(f["title"])}">'
                         f"<figcaption>{html.escape(f['title'])}</figcaption></figure>")
    parts.append("<h2>Reproducibility</h2>")
    for item in repro:
        env = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in item["env"].items())
        parts.append(f"<h3>{html.escape(item['run'])}</h3><p class=\"note\">{html.escape(item['path'])}</p>"
                     + (f"<table>{env}</table>" if env else "<p class=\"note\">no env.json</p>")
                     + f"<details><summary>config.toml</summary><pre>{html.escape(item['config'])}</pre></details>")
    if skipped:
        parts.append("<h2>Skipped inputs</h2><ul>" + "".join(f"<li>{html.escape(s)}</li>" for s in skipped) + "</ul>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def render_markdown(title: str, generated: str, tables: list[dict], figs: list[dict], repro: list[dict],
                    skipped: list[str]) -> str:
    lines = [f"# {title}", "", f"Generated {generated} by samplecnn {__version__}.", "", "## Tables", ""]
    for t in tables:
        lines += [_md_table(t), ""]
    for section in _sections(figs):
        lines += [f"## {section}", ""]
        lines += [f"![{f['title']}]({f['file']})\n\n_{f['title']}_\n" for f in figs if f["section"] == section]
    lines += ["## Reproducibility", ""]
    for item in repro:
        lines += [f"### {item['run']}", "", f"`{item['path']}`", ""]
        lines += [f"- {k}: `{v}`" for k, v in item["env"].items()] or ["- no env.json"]
        lines += ["", "```toml", item["config"].rstrip(), "```", ""]
    if skipped:
        lines += ["## Skipped inputs", ""] + [f"- {s}" for s in skipped] + [""]
    return "\n".join(lines)


def build_report(paths: list[Path], out_dir: Path, title: str = "SampleCNN report") -> dict:
    """Write out_dir/report.html, report.md (+ figures/*.png) and report.json; return report.json's data."""
    collected = collect([Path(p) for p in paths])
    if not (collected.runs or collected.feature_tables or collected.tsne):
        reasons = "; ".join(collected.skipped) or "nothing given"
        raise RunError(f"nothing to report: {reasons}",
                       hint="pass run directories (with config.toml), compare-features or t-SNE folders")
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    tables = build_tables(collected)
    figs = _figure_entries(collected, fig_dir)
    repro = [_repro(run) for run in collected.runs]
    atomic_write_text(out_dir / "report.html", render_html(title, generated, tables, figs, repro, collected.skipped))
    atomic_write_text(out_dir / "report.md", render_markdown(title, generated, tables, figs, repro, collected.skipped))
    data = {
        "title": title, "generated": generated, "samplecnn": __version__,
        "html": str(out_dir / "report.html"), "markdown": str(out_dir / "report.md"),
        "runs": [{"name": r.name, "path": str(r.path), "kind": r.kind, "model": r.model,
                  "dataset": r.config.get("dataset"), "sample_rate": r.sample_rate,
                  "metrics": {k: v for k, v in r.metrics.items() if k not in ("per_label", "confusion_matrix")},
                  "summary": r.summary, "env": _repro(r)["env"]} for r in collected.runs],
        "tables": tables,
        "figures": [{"section": f["section"], "title": f["title"], "file": f["file"]} for f in figs],
        "skipped": collected.skipped,
    }
    write_json(out_dir / "report.json", json.loads(json.dumps(data, default=str)))
    return data
