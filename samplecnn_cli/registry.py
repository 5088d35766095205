"""The model registry: names -> model builders, the way timm does it.

Built-in names follow a grammar (any configuration of the paper's families is reachable):
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
import math
import re
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from samplecnn_cli import plugins
from samplecnn_cli.errors import UsageError

ENTRY_POINT_GROUP = "samplecnn.models"
DEFAULT_SAMPLE_RATE = 22050
FRAME_INPUT_SAMPLES = 59049
BUILTIN = plugins.BUILTIN_PROVIDER
RegistryError = plugins.PluginConflict  # two providers for one name: exit 1


@dataclass(frozen=True)
class ModelSpec:
    """A parsed built-in name."""

    family: str  # "sample" | "frame-mel" | "frame-raw"
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


# -- parsing ---------------------------------------------------------------------------------------
_POWER = re.compile(r"^sample-(?:(\d+)x)?(\d+)(?:\^|pow)(\d+)$")
_DIGITS = re.compile(r"^sample-(\d+(?:-\d+)+)$")
_FRAME = re.compile(r"^frame-(mel|raw)-(\d+)(?:x(\d+))?$")


def split_tag(name: str) -> tuple[str, str | None]:
    base, _, tag = name.strip().partition(".")
    return base, (tag or None)


class _BadName(ValueError):
    pass


def parse_name(name: str) -> ModelSpec:
    """Parse a built-in name into a ModelSpec; UsageError (with close names) when it is not one."""
    try:
        return _parse(name)
    except _BadName as exc:
        raise UsageError(str(exc), hint=_hint(name)) from None


def _parse(name: str) -> ModelSpec:
    base, _ = split_tag(name)
    base = resolve_alias(base)
    if m := _POWER.match(base):
        first, m_size, n = int(m.group(1) or m.group(2)), int(m.group(2)), int(m.group(3))
        if not 2 <= m_size <= 9:
            raise _BadName(f"'{name}': filter size m={m_size} is outside 2..9")
        if not 1 <= n <= 20:
            raise _BadName(f"'{name}': n={n} modules is outside 1..20")
        if not 2 <= first <= 729:
            raise _BadName(f"'{name}': first conv {first} is outside 2..729")
        return _sample_spec((first, *([m_size] * n)), name)
    if m := _DIGITS.match(base):
        filters = tuple(int(d) for d in m.group(1).split("-"))
        return _sample_spec(filters, name)
    if m := _FRAME.match(base):
        kind, window = m.group(1), int(m.group(2))
        hop = int(m.group(3) or window)
        return _frame_spec(kind, window, hop, name)
    raise _BadName(f"unknown model '{name}'")


def _sample_spec(filters: tuple[int, ...], name: str) -> ModelSpec:
    if any(f < 2 for f in filters[1:]) or filters[0] < 2:
        raise _BadName(f"'{name}': every filter size must be at least 2")
    if len(filters) > 21 or math.prod(filters) > 1 << 22:
        raise _BadName(f"'{name}': input of {math.prod(filters):,} samples is too large")
    rest = filters[1:]
    if len(set(rest)) == 1:
        m, n = rest[0], len(rest)
        canonical = f"sample-{m}^{n}" if filters[0] == m else f"sample-{filters[0]}x{m}^{n}"
    else:
        canonical = "sample-" + "-".join(map(str, filters))
    return ModelSpec("sample", canonical, filters=filters)


def _frame_spec(kind: str, window: int, hop: int, name: str) -> ModelSpec:
    from samplecnn_cli.models.frame_level import N_FFT, modules_for

    if window < hop:
        raise _BadName(f"'{name}': window {window} is shorter than hop {hop}")
    if kind == "mel" and window > N_FFT:
        raise _BadName(f"'{name}': the mel window must be at most the FFT size {N_FFT}")
    try:
        modules_for(FRAME_INPUT_SAMPLES, hop)
    except ValueError:
        raise _BadName(f"'{name}': hop {hop} must be a power of 3 dividing {FRAME_INPUT_SAMPLES:,} "
                         "(3, 9, 27, 81, 243, 729, ...)") from None
    canonical = f"frame-{kind}-{window}" if window == hop else f"frame-{kind}-{window}x{hop}"
    return ModelSpec(f"frame-{kind}", canonical, window=window, hop=hop)


# -- catalogue ---------------------------------------------------------------------------------------
def _data_dir(name: str) -> Path:
    """registry/ or recipes/: inside the wheel (samplecnn_cli/_data) or at the source tree's top."""
    packaged = resources.files("samplecnn_cli") / "_data" / name
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parent.parent / name


@functools.cache
def catalogue() -> dict:
    raw = tomllib.loads((_data_dir("registry") / "models.toml").read_text())
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
    except _BadName:
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
    from samplecnn_cli.models.frame_level import FrameLevelMel, FrameLevelRaw
    from samplecnn_cli.models.sample_level import SampleCNN

    entry = catalogue_entry(spec.canonical)
    kwargs = {"sample_rate": entry.sample_rate if entry else DEFAULT_SAMPLE_RATE, **overrides}
    try:
        if spec.family == "sample":
            return SampleCNN(list(spec.filters), name=spec.canonical, **kwargs)
        cls = FrameLevelMel if spec.family == "frame-mel" else FrameLevelRaw
        return cls(spec.window, spec.hop, name=spec.canonical, **kwargs)
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
