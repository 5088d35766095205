"""Find a dataset adapter by name: the built-ins, then the `samplecnn.datasets` entry points.

Plugins follow the same rules as model plugins (samplecnn_cli/core/plugins.py)."""

from __future__ import annotations

import functools
import importlib

from samplecnn_cli.core import plugins
from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.data.datasets.base import DatasetAdapter

ENTRY_POINT_GROUP = "samplecnn.datasets"

BUILTIN = {
    "mtat": "samplecnn_cli.data.datasets.mtat:MTAT",
    "msd": "samplecnn_cli.data.datasets.msd:MSD",
    "gtzan": "samplecnn_cli.data.datasets.gtzan:GTZAN",
    "tagtraum": "samplecnn_cli.data.datasets.tagtraum:Tagtraum",
    "folder": "samplecnn_cli.data.datasets.folder:Folder",
    "toy": "samplecnn_cli.data.datasets.toy:Toy",
}


def _is_builtin(name: str) -> bool:
    return name in BUILTIN


@functools.cache
def _plugins() -> dict[str, plugins.Plugin]:
    """Entry points of group samplecnn.datasets, read once; same rules as model plugins."""
    return plugins.discover(ENTRY_POINT_GROUP, _is_builtin, "dataset")


def clear_caches() -> None:
    """Forget discovered plugins (tests that change sys.path use this)."""
    _plugins.cache_clear()


def _builtin(target: str) -> type[DatasetAdapter]:
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _names() -> list[str]:
    return sorted({*BUILTIN, *_plugins()})


def get_adapter(name: str) -> DatasetAdapter:
    found = _plugins()  # discovery first, so a conflict between plugins is reported whatever is asked
    if name in BUILTIN:
        cls = _builtin(BUILTIN[name])
    elif name in found:
        cls = plugins.require(found[name], "dataset")
    else:
        raise UsageError(f"unknown dataset '{name}'", hint=f"choose one of: {', '.join(_names())}")
    adapter = cls()
    adapter.name = adapter.name or name
    return adapter


def list_adapters() -> list[dict]:
    """Name, description, task and default clip length of every dataset (broken plugins say so)."""
    rows = []
    for name in _names():
        plugin = _plugins().get(name)
        cls = _builtin(BUILTIN[name]) if plugin is None else plugins.load(plugin, "dataset")
        source = "builtin" if plugin is None else plugin.provider
        if cls is None:
            rows.append({"name": name, "description": f"(failed to load: {plugin.error})", "task": "",
                         "clip_seconds": None, "options": [], "source": source})
            continue
        rows.append({"name": name, "description": cls.description, "task": cls.task,
                     "clip_seconds": cls.default_clip_seconds, "options": list(cls.options), "source": source})
    return rows
