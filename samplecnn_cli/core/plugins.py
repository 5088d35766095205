"""One set of plugin rules for every entry-point group (models and datasets).

- Discovery is lazy: entry points are listed, their modules are imported only when first used.
- A name offered by two plugins, or a plugin reusing a built-in name, is an error naming both providers.
- A plugin whose import fails is a warning, not a crash: the rest of the toolkit keeps working, and asking
  for that one name is a clear error.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any

from samplecnn_cli.core.errors import SampleCNNError, UsageError

BUILTIN_PROVIDER = "samplecnn (built-in)"


class PluginConflict(SampleCNNError):
    """The installed plugins are inconsistent (two providers for one name): exit 1, naming both."""


@dataclass
class Plugin:
    name: str
    target: Any  # an importlib EntryPoint until loaded, then the loaded object; None when it failed
    provider: str
    family: str = "plugin"
    error: str | None = None


def provider_of(ep: metadata.EntryPoint) -> str:
    """'dist-name 1.0 (module:attr)', or the target alone when the distribution is unknown."""
    dist = getattr(ep, "dist", None)
    head = f"{dist.name} {dist.version}" if dist is not None else ep.value
    return f"{head} ({ep.value})"


def check_free(name: str, provider: str, taken: dict[str, Plugin], is_builtin: Callable[[str], bool],
               kind: str) -> None:
    """Raise PluginConflict when `name` is already a built-in or offered by another provider."""
    if name in taken:
        raise PluginConflict(f"{kind} name '{name}' is provided by both '{taken[name].provider}' and '{provider}'",
                             hint="uninstall one of the two packages, or ask its authors to rename it")
    if is_builtin(name):
        raise PluginConflict(f"{kind} name '{name}' is provided by both '{BUILTIN_PROVIDER}' and '{provider}'",
                             hint=f"plugins may not reuse built-in names; rename the plugin's {kind}")


def discover(group: str, is_builtin: Callable[[str], bool], kind: str) -> dict[str, Plugin]:
    """Every entry point of `group` by name, not yet imported; conflicts raise PluginConflict."""
    found: dict[str, Plugin] = {}
    for ep in metadata.entry_points(group=group):
        provider = provider_of(ep)
        check_free(ep.name, provider, found, is_builtin, kind)
        found[ep.name] = Plugin(ep.name, ep, provider)
    return found


def load(plugin: Plugin, kind: str) -> Any | None:
    """The plugin's object, importing it on first use; None (with a warning, once) when that fails."""
    if isinstance(plugin.target, metadata.EntryPoint):
        try:
            plugin.target = plugin.target.load()
        except Exception as exc:  # a broken plugin must not take the toolkit down
            plugin.target, plugin.error = None, f"{type(exc).__name__}: {exc}"
            warnings.warn(f"{kind} plugin '{plugin.name}' from {plugin.provider} failed to load: {plugin.error}",
                          stacklevel=3)
    return plugin.target


def require(plugin: Plugin, kind: str) -> Any:
    """The plugin's object, or a one-line UsageError saying which plugin failed and why."""
    target = load(plugin, kind)
    if target is None:
        raise UsageError(f"{kind} '{plugin.name}' comes from a plugin that failed to load ({plugin.provider}): "
                         f"{plugin.error}", hint="reinstall or remove that package")
    return target
