"""Find a dataset adapter by name: the built-ins, then the `samplecnn.datasets` entry points."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from samplecnn_cli.datasets.base import DatasetAdapter
from samplecnn_cli.errors import UsageError

ENTRY_POINT_GROUP = "samplecnn.datasets"

BUILTIN = {
    "mtat": "samplecnn_cli.datasets.mtat:MTAT",
    "msd": "samplecnn_cli.datasets.msd:MSD",
    "gtzan": "samplecnn_cli.datasets.gtzan:GTZAN",
    "tagtraum": "samplecnn_cli.datasets.tagtraum:Tagtraum",
    "folder": "samplecnn_cli.datasets.folder:Folder",
    "toy": "samplecnn_cli.datasets.toy:Toy",
}


def _targets() -> dict[str, str]:
    found = dict(BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found.setdefault(ep.name, ep.value)  # a plugin cannot shadow a built-in
    return found


def _load(target: str) -> type[DatasetAdapter]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_adapter(name: str) -> DatasetAdapter:
    targets = _targets()
    if name not in targets:
        raise UsageError(f"unknown dataset '{name}'", hint=f"choose one of: {', '.join(sorted(targets))}")
    try:
        cls = _load(targets[name])
    except Exception as exc:  # a broken plugin must not take the CLI down
        raise UsageError(f"dataset '{name}' could not be loaded ({targets[name]}): {exc}") from None
    adapter = cls()
    adapter.name = adapter.name or name
    return adapter


def list_adapters() -> list[dict]:
    """Name, description, task and default clip length of every dataset (broken plugins say so)."""
    rows = []
    for name, target in sorted(_targets().items()):
        try:
            cls = _load(target)
            rows.append({"name": name, "description": cls.description, "task": cls.task,
                         "clip_seconds": cls.default_clip_seconds, "options": list(cls.options),
                         "source": "builtin" if name in BUILTIN else target})
        except Exception as exc:
            rows.append({"name": name, "description": f"(failed to load: {exc})", "task": "",
                         "clip_seconds": None, "options": [], "source": target})
    return rows
