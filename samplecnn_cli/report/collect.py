"""Reading what run directories (and feature-comparison / t-SNE folders) hold, skipping what is absent.

A report input is one of:
  - a run directory (config.toml): training or transfer run whose status is done (running and
    failed runs are skipped); everything else in it is optional
  - a compare-features folder (table.json, optional table.md)
  - a t-SNE figure (`samplecnn tsne` output: X.png + X.json with "points"), or a folder holding one
Anything else is skipped with a reason.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from samplecnn_cli.core.errors import DataError

TSNE_DEPTH = 3  # how deep below a run directory t-SNE outputs are looked for


@dataclass
class RunData:
    path: Path
    name: str
    config: dict
    config_text: str
    summary: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    epochs: list[dict] = field(default_factory=list)
    env: dict = field(default_factory=dict)
    predictions: Path | None = None
    filters: dict = field(default_factory=dict)  # filters/filters.json
    filter_figures: list[Path] = field(default_factory=list)
    tsne: list[dict] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return str(self.config.get("kind", "train"))

    @property
    def task(self) -> str:
        return str(self.metrics.get("task") or self.config.get("task") or "")

    @property
    def sample_rate(self) -> int | None:
        rate = self.config.get("sample_rate") or (self.config.get("model_kwargs") or {}).get("sample_rate")
        return int(rate) if rate else None

    @property
    def model(self) -> str:
        return str(self.config.get("model", "?"))

    @property
    def label(self) -> str:
        return f"{self.model} @ {self.sample_rate:,} Hz" if self.sample_rate else self.model


@dataclass
class Collected:
    runs: list[RunData] = field(default_factory=list)
    feature_tables: list[dict] = field(default_factory=list)  # {"path", "data", "markdown"}
    tsne: list[dict] = field(default_factory=list)  # {"path", "png", "meta"}
    skipped: list[str] = field(default_factory=list)


def _read_json(path: Path, skipped: list[str]) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        skipped.append(f"{path}: unreadable JSON ({exc})")
        return None


def _read_jsonl(path: Path, skipped: list[str]) -> list[dict]:
    rows = []
    if not path.is_file():
        return rows
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except ValueError:
            skipped.append(f"{path}:{n}: unreadable line")
    return rows


def _tsne_meta(png: Path) -> dict | None:
    """The JSON beside a t-SNE PNG (`samplecnn tsne` writes <stem>.json with "points"), else None."""
    meta_path = png.with_suffix(".json")
    if not meta_path.is_file():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and "points" in meta else None


def _tsne_in(folder: Path) -> list[dict]:
    """t-SNE figures in `folder` and up to TSNE_DEPTH levels below it."""
    found = []
    pngs = [p for depth in range(TSNE_DEPTH + 1) for p in sorted(folder.glob("/".join(["*"] * depth + ["*.png"])))]
    for png in pngs:
        meta = _tsne_meta(png)
        if meta is not None:
            found.append({"path": png.parent, "png": png, "meta": meta})
    return found


def read_run(path: Path, skipped: list[str]) -> RunData:
    config_path = path / "config.toml"
    text = config_path.read_text()
    run = RunData(path=path, name=path.name, config=tomllib.loads(text), config_text=text)
    run.summary = _read_json(path / "summary.json", skipped) or {}
    run.metrics = _read_json(path / "metrics.json", skipped) or {}
    run.env = _read_json(path / "env.json", skipped) or {}
    run.epochs = _read_jsonl(path / "metrics.jsonl", skipped)
    for name in ("predictions-test.npz", "predictions.npz"):
        if (path / name).is_file():
            run.predictions = path / name
            break
    run.filters = _read_json(path / "filters" / "filters.json", skipped) or {}
    run.filter_figures = sorted((path / "filters").glob("layer*-spectra.png"),
                                key=lambda p: int(p.name[5:].split("-")[0]) if p.name[5:].split("-")[0].isdigit()
                                else 0)
    run.tsne = _tsne_in(path)
    return run


def collect(paths: list[Path]) -> Collected:
    out = Collected()
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        try:
            real = path.resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise DataError(f"cannot resolve {path}: {exc}") from None
        if real in seen:
            continue
        seen.add(real)
        if path.is_file() and path.suffix == ".png" and (meta := _tsne_meta(path)) is not None:
            out.tsne.append({"path": path.parent, "png": path, "meta": meta})
            continue
        if not path.is_dir():
            out.skipped.append(f"{path}: not a folder (nor a t-SNE PNG with its JSON)")
            continue
        if (path / "config.toml").is_file():
            from samplecnn_cli.runs.folder import DONE, run_status

            status = run_status(path)
            if status != DONE:  # a running or failed run would be an empty or misleading row
                out.skipped.append(f"{path}: run {status}, not finished (left out of the report)")
                continue
            try:
                out.runs.append(read_run(path, out.skipped))
            except (OSError, tomllib.TOMLDecodeError) as exc:
                out.skipped.append(f"{path}: unreadable config.toml ({exc})")
            continue
        if (path / "table.json").is_file():
            data = _read_json(path / "table.json", out.skipped)
            if data is not None:
                md = (path / "table.md").read_text() if (path / "table.md").is_file() else ""
                out.feature_tables.append({"path": path, "data": data, "markdown": md})
            continue
        tsne = _tsne_in(path)
        if tsne:
            out.tsne.extend(tsne)
            continue
        out.skipped.append(f"{path}: no config.toml, table.json or t-SNE PNG + JSON")
    return out
