"""The model registry: names -> model builders, the way timm does it.

Built-in names follow a grammar (any configuration of the paper's families is reachable). Each family
is one module of this package that registers itself with `@register_family` (sample_level.py,
frame_level.py); the registry imports the package's modules once, on first use, and asks each family
whether a name is one of its own. A new family is a new module; nothing here changes.
    sample-M^N      SampleCNN m^n: first conv M (stride M), then N modules of filter/pool M
    sample-MpowN    the same without `^` (some shells mangle it)
    sample-SxM^N    first conv S (stride S), then N modules of M (Table 2: sample-27x3^7, sample-9x3^8)
    sample-D-D-..-D filter (= pool) size per stage, bottom to top; first = strided first conv (Table 3)
    frame-mel-W / frame-mel-WxH, frame-raw-W / frame-raw-WxH   window W, hop H (59,049-sample input)
    NAME.TAG        reserved for pretrained weights tags (as in timm)
registry/models.toml names the paper's configurations, their aliases (sample-8k, ...), native sample
rates and published numbers. Third-party packages add exact names through the entry-point group
`samplecnn.models` (name = model name, object = builder(**overrides) -> nn.Module); they are read
lazily, a duplicate name is an error naming both providers, a plugin that fails to import is a warning.
"""

from __future__ import annotations

import difflib
import fnmatch
import functools
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field

from samplecnn_cli.core import plugins
from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.core.paths import bundled_dir

ENTRY_POINT_GROUP = "samplecnn.models"
DEFAULT_SAMPLE_RATE = 22050
BUILTIN = plugins.BUILTIN_PROVIDER
RegistryError = plugins.PluginConflict  # two providers for one name: exit 1


@dataclass(frozen=True)
class ModelSpec:
    """A parsed built-in name."""

    family: str  # the registered family's name: "sample" | "frame-mel" | "frame-raw" | ...
    canonical: str
    filters: tuple[int, ...] = ()  # sample-level
    window: int = 0  # frame-level
    hop: int = 0


@dataclass
class CatalogueEntry:
    name: str
    aliases: list[str] = field(default_factory=list)
    sample_rate: int = DEFAULT_SAMPLE_RATE
    table: str = ""
    paper_auc: float | None = None
    train_time_ratio: float | None = None
    note: str = ""


# -- families ----------------------------------------------------------------------------------------
class BadName(ValueError):
    """A name of a family with arguments it cannot build (the message says why)."""


class ModelFamily:
    """A family of built-in names: `parse` returns the ModelSpec of one of its names (None for a name
    that is not its own; BadName for its own name with bad arguments), `build` makes the model."""

    name = ""

    def parse(self, base: str) -> ModelSpec | None:
        raise NotImplementedError

    def build(self, spec: ModelSpec, **kwargs):
        raise NotImplementedError


_FAMILIES: dict[str, ModelFamily] = {}


def register_family(cls: type[ModelFamily]) -> type[ModelFamily]:
    """Class decorator: make a family's names buildable (used by the family's own module)."""
    _FAMILIES[cls.name] = cls()
    return cls


@functools.cache
def families() -> dict[str, ModelFamily]:
    """The built-in families: every module of samplecnn_cli.models imported once, so each registers."""
    import importlib
    import pkgutil

    import samplecnn_cli.models as package

    for module in pkgutil.iter_modules(package.__path__):
        importlib.import_module(f"{package.__name__}.{module.name}")
    return _FAMILIES


def split_tag(name: str) -> tuple[str, str | None]:
    base, _, tag = name.strip().partition(".")
    return base, (tag or None)


def parse_name(name: str) -> ModelSpec:
    """Parse a built-in name into a ModelSpec; UsageError (with close names) when it is not one."""
    try:
        return _parse(name)
    except BadName as exc:
        raise UsageError(str(exc), hint=_hint(name)) from None


def _parse(name: str) -> ModelSpec:
    base, _ = split_tag(name)
    base = resolve_alias(base)
    for family in families().values():
        try:
            spec = family.parse(base)
        except BadName as exc:
            raise BadName(f"'{name}': {exc}") from None
        if spec is not None:
            return spec
    raise BadName(f"unknown model '{name}'")


# -- catalogue ---------------------------------------------------------------------------------------
@functools.cache
def catalogue() -> dict:
    raw = tomllib.loads((bundled_dir("registry") / "models.toml").read_text())
    entries = {}
    for item in raw.get("models", []):
        entry = CatalogueEntry(**item)
        entries[entry.name] = entry
    return {"families": raw.get("families", {}), "models": entries}


@functools.cache
def _alias_map() -> dict[str, str]:
    out = {}
    for entry in catalogue()["models"].values():
        for alias in entry.aliases:
            out[alias] = entry.name
    return out


def resolve_alias(name: str) -> str:
    return _alias_map().get(name, name)


def catalogue_entry(canonical: str) -> CatalogueEntry | None:
    return catalogue()["models"].get(canonical)


def _known_names() -> list[str]:
    names = list(catalogue()["models"]) + list(_alias_map())
    return names + list(_plugins())


def _hint(name: str) -> str:
    close = difflib.get_close_matches(name.replace("pow", "^"), _known_names(), n=3, cutoff=0.6)
    if close:
        return "did you mean " + ", ".join(close) + "?  (`samplecnn models list` shows the named ones)"
    return "see `samplecnn models list` and the name grammar in the README"


# -- plugins -----------------------------------------------------------------------------------------
_registered: dict[str, plugins.Plugin] = {}


def register_model(name: str, builder: Callable, *, provider: str = "in-process", family: str = "plugin") -> None:
    """Register an exact model name in this process (what an entry point does for a distribution)."""
    plugins.check_free(name, provider, {**_registered, **_plugins()}, _is_builtin, "model")
    _registered[name] = plugins.Plugin(name, builder, provider, family)


def _is_builtin(name: str) -> bool:
    try:
        _parse(name)
    except BadName:
        return False
    return True


@functools.cache
def _plugins() -> dict[str, plugins.Plugin]:
    """Entry points of group samplecnn.models, read once and only when a name or the list is needed."""
    return plugins.discover(ENTRY_POINT_GROUP, _is_builtin, "model")


def clear_caches() -> None:
    """Forget discovered plugins (tests that change sys.path use this)."""
    _plugins.cache_clear()
    _registered.clear()


# -- building ----------------------------------------------------------------------------------------
def create_model(name: str, **overrides):
    """Build a model by name. Overrides (num_outputs, sample_rate, dropout, ...) that are None are dropped."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    base, tag = split_tag(name)
    plugin = _registered.get(base) or _plugins().get(base)
    if plugin is not None:
        model = plugins.require(plugin, "model")(**overrides)
    else:
        spec = parse_name(base)
        model = _build_builtin(spec, overrides, name)
    if tag is not None:
        raise UsageError(f"'{name}': pretrained weights tags ('.{tag}') are reserved and none are published yet",
                         hint=f"use '{base}' and train it, or load a run directory")
    return model


def _build_builtin(spec: ModelSpec, overrides: dict, name: str):
    entry = catalogue_entry(spec.canonical)
    kwargs = {"sample_rate": entry.sample_rate if entry else DEFAULT_SAMPLE_RATE, **overrides}
    try:
        return families()[spec.family].build(spec, **kwargs)
    except TypeError as exc:
        raise UsageError(f"'{name}': bad override: {exc}") from None
    except ValueError as exc:
        raise UsageError(f"'{name}': {exc}") from None


def canonical_name(name: str) -> str:
    base, _ = split_tag(name)
    if base in _registered or base in _plugins():
        return base
    return parse_name(base).canonical


def native_sample_rate(name: str) -> int:
    entry = catalogue_entry(canonical_name(name))
    return entry.sample_rate if entry else DEFAULT_SAMPLE_RATE


def config_for_rate(sample_rate: int) -> CatalogueEntry | None:
    """The Table 3 configuration trained at `sample_rate` (e.g. 8000 -> sample-8k), if the paper has one."""
    for entry in catalogue()["models"].values():
        if entry.table.startswith("Table 3") and entry.sample_rate == sample_rate:
            return entry
    if sample_rate == DEFAULT_SAMPLE_RATE:
        return catalogue_entry("sample-3^9")
    return None


# -- listing and describing ----------------------------------------------------------------------------
def list_models(pattern: str = "*") -> list[str]:
    """Catalogue and plugin names matching a shell wildcard (aliases match too, the name is listed)."""
    pattern = pattern.replace("pow", "^")
    names = []
    for entry in catalogue()["models"].values():
        if any(fnmatch.fnmatchcase(n, pattern) for n in (entry.name, *entry.aliases)):
            names.append(entry.name)
    names += [n for n in {**_plugins(), **_registered} if fnmatch.fnmatchcase(n, pattern)]
    return names


def model_info(name: str, model=None) -> dict:
    """A model's description: what `samplecnn models info --json` prints."""
    model = model if model is not None else create_model(name)
    base, _ = split_tag(name)
    plugin = _registered.get(base) or _plugins().get(base)
    canonical = base if plugin else parse_name(base).canonical
    entry = catalogue_entry(canonical)
    input_samples = getattr(model, "input_samples", None)
    sample_rate = getattr(model, "sample_rate", None)
    info = {
        "name": canonical,
        "aliases": entry.aliases if entry else [],
        "family": plugin.family if plugin else getattr(model, "family", ""),
        "provider": plugin.provider if plugin else BUILTIN,
        "input_samples": input_samples,
        "sample_rate": sample_rate,
        "input_ms": round(1000 * input_samples / sample_rate, 1) if input_samples and sample_rate else None,
        "params": sum(p.numel() for p in model.parameters() if p.requires_grad),
        "num_outputs": getattr(model, "num_outputs", None),
        "paper": {"table": entry.table, "mtat_auc": entry.paper_auc, "train_time_ratio": entry.train_time_ratio}
        if entry and entry.table else None,
    }
    if hasattr(model, "layer_table"):
        rows = model.layer_table()
        info["layers"] = rows
        info["params_conv_dense"] = sum(r["params"] for r in rows)
    return info
