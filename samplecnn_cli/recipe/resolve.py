"""Turn a Recipe into concrete steps: variables, overrides, smoke scale, foreach.

Variables are `${name}` (or `${table.key}`, e.g. `${item.sr}`, `${datasets.mtat}`) inside strings.
Where they come from, later ones winning:
    built-ins   workdir, data_root, recipe, smoke ("true"/"false")
    [vars]      the recipe's parameters (values may reference other variables)
    [smoke]     with --smoke: overrides of [vars] that shrink the run to the toy dataset
    --set k=v   the user's overrides (v is read as a TOML value when it parses as one: 3, 0.5, [1, 2])
    datasets.N  the path of dataset N: --set datasets.N=DIR, else DATA_ROOT/<its path> with --data-root,
                else the workspace's samplecnn.toml [datasets.N] root, else the recipe's path template
A string that is exactly one `${list}` expands to one argument per element; an argument written
`{ each = "LIST", arg = "TEMPLATE" }` expands TEMPLATE once per element (as `${item}`).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from samplecnn_cli.core.errors import DataError, UsageError
from samplecnn_cli.recipe.spec import Recipe

_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_-]*(?:\.[A-Za-z0-9_-]+)*)\}")
MAX_DEPTH = 20


@dataclass
class Step:
    name: str
    argv: list[str]
    deps: list[Path] = field(default_factory=list)
    outputs: list[Path] = field(default_factory=list)
    help: str = ""
    minutes: float = 0.0
    disk_gb: float = 0.0
    basis: str = ""
    clean: list[Path] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"name": self.name, "command": ["samplecnn", *self.argv], "deps": [str(p) for p in self.deps],
                "outputs": [str(p) for p in self.outputs],
                "estimate": {"minutes": self.minutes, "disk_gb": self.disk_gb, "basis": self.basis}}


@dataclass
class Dataset:
    name: str
    path: Path
    about: str = ""
    get: str = ""


@dataclass
class ResolvedRecipe:
    recipe: Recipe
    workdir: Path
    smoke: bool
    values: dict
    datasets: list[Dataset]
    steps: list[Step]

    def as_dict(self) -> dict:
        return {"recipe": self.recipe.name, "title": self.recipe.title, "reproduces": self.recipe.reproduces,
                "source": str(self.recipe.path), "smoke": self.smoke, "workdir": str(self.workdir),
                "vars": {k: v for k, v in self.values.items() if k != "datasets"},
                "datasets": {d.name: str(d.path) for d in self.datasets},
                "steps": [s.as_dict() for s in self.steps]}

    def missing_datasets(self) -> list[Dataset]:
        return [d for d in self.datasets if not d.path.exists()]

    def check_datasets(self) -> None:
        """Real-data runs need every raw dataset in place before the first step, not after hours."""
        if self.smoke:
            return
        for dataset in self.missing_datasets():
            where = f"; get it from {dataset.get}" if dataset.get else ""
            raise DataError(
                f"dataset '{dataset.name}' ({dataset.about or 'raw audio'}) not found at {dataset.path}",
                hint=f"put it there{where}, or pass --data-root DIR or --set datasets.{dataset.name}=DIR "
                     "(or try the recipe at toy scale with --smoke)")


def parse_set(items: list[str]) -> dict[str, object]:
    """`--set key=value` pairs; values are TOML when they parse (numbers, booleans, lists), else strings."""
    out: dict[str, object] = {}
    for item in items:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"--set '{item}': expected key=value", hint="e.g. --set epochs=3")
        try:
            value = tomllib.loads(f"v = {text}")["v"]
        except tomllib.TOMLDecodeError:
            value = text
        out[key] = value
    return out


def resolve_recipe(recipe: Recipe, *, workdir: Path, overrides: dict | None = None, smoke: bool = False,
                   data_root: Path | None = None, workspace_datasets: dict | None = None) -> ResolvedRecipe:
    from samplecnn_cli.core.paths import real

    workdir = real(workdir)
    overrides = dict(overrides or {})
    root = real(data_root) if data_root else None
    values: dict = {"workdir": str(workdir), "data_root": str(root or Path.cwd()), "recipe": recipe.name,
                    "smoke": smoke}
    values.update(recipe.vars)
    if smoke:
        values.update({k: v for k, v in recipe.smoke.items() if k != "datasets"})
    dataset_overrides = {k.split(".", 1)[1]: v for k, v in overrides.items() if k.startswith("datasets.")}
    for key, value in overrides.items():
        if key.startswith("datasets."):
            if key.split(".", 1)[1] not in recipe.datasets:
                raise UsageError(f"--set {key}: recipe '{recipe.name}' has no dataset "
                                 f"'{key.split('.', 1)[1]}'", hint=_known(recipe.datasets, "datasets"))
            continue
        if key not in recipe.vars and key != "data_root":
            raise UsageError(f"--set {key}: recipe '{recipe.name}' has no variable '{key}'",
                             hint=_known(recipe.vars, "variables"))
        values[key] = value
    if root is not None:
        values["data_root"] = str(root)

    smoke_paths = recipe.smoke.get("datasets", {}) if smoke else {}
    raw_paths = {}
    for name, entry in recipe.datasets.items():
        configured = (workspace_datasets or {}).get(name, {}).get("root")
        if name in dataset_overrides:
            raw_paths[name] = str(dataset_overrides[name])
        elif name in smoke_paths:
            raw_paths[name] = smoke_paths[name]
        elif configured and root is None:
            raw_paths[name] = str(configured)
        else:
            raw_paths[name] = entry["path"]
    values["datasets"] = raw_paths

    where = f"recipe {recipe.path.name}"
    resolved_values = {k: _expand(v, values, f"{where}: [vars] {k}") for k, v in values.items()}
    datasets = [Dataset(name, _as_path(resolved_values["datasets"][name]), entry.get("about", ""),
                        entry.get("get", "")) for name, entry in recipe.datasets.items()]
    steps: list[Step] = []
    for raw in recipe.steps:
        when = raw.get("when", "always")
        if (when == "smoke" and not smoke) or (when == "full" and smoke):
            continue
        steps.extend(_expand_step(raw, resolved_values, where))
    names = [s.name for s in steps]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"{where}: foreach gives duplicate step names {', '.join(duplicates)}",
                         hint="give each foreach item a distinct 'name' key or value")
    return ResolvedRecipe(recipe, workdir, smoke, resolved_values, datasets, steps)


def _known(table: dict, what: str) -> str:
    return f"its {what}: " + (", ".join(sorted(table)) or "none")


def _expand_step(raw: dict, values: dict, where: str) -> list[Step]:
    label = f"{where}: step '{raw['name']}'"
    if "foreach" not in raw:
        return [_make_step(raw, raw["name"], values, label)]
    items = _lookup(raw["foreach"], values, label, ())
    if not isinstance(items, list) or not items:
        raise UsageError(f"{label}: foreach = '{raw['foreach']}' must name a non-empty list variable")
    steps = []
    for index, item in enumerate(items):
        tag = item.get("name", index) if isinstance(item, dict) else item
        scope = {**values, "item": item, "index": index}
        steps.append(_make_step(raw, f"{raw['name']}[{_text(tag, label)}]", scope, label))
    return steps


def _make_step(raw: dict, name: str, scope: dict, label: str) -> Step:
    estimate = raw.get("estimate", {})
    outputs = [_as_path(p) for p in _expand_args(raw.get("outputs", []), scope, label)]
    if "clean" in raw:  # an explicit clean list is checked (and refused if it leaves the work folder)
        clean = [_as_path(p) for p in _expand_args(raw["clean"], scope, label)]
    else:  # by default the outputs, but only those inside the work folder
        from samplecnn_cli.core.paths import removal_target

        clean = [p for p in outputs if removal_target(p, scope["workdir"]) is not None]
    return Step(
        name=name,
        argv=_expand_args(raw["command"], scope, label),
        deps=[_as_path(p) for p in _expand_args(raw.get("deps", []), scope, label)],
        outputs=outputs,
        help=raw.get("help", ""),
        minutes=_number(estimate.get("minutes", 0), scope, label),
        disk_gb=_number(estimate.get("disk_gb", 0), scope, label),
        basis=estimate.get("basis", ""),
        clean=clean,
    )


def _number(value, scope: dict, label: str) -> float:
    """An estimate: a number, or a variable holding one (e.g. "${item.disk_gb}")."""
    value = _expand(value, scope, label)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{label}: estimate {value!r} is not a number") from None


def _expand_args(args: list, scope: dict, label: str) -> list[str]:
    out: list[str] = []
    for arg in args:
        if isinstance(arg, dict):  # { each = "LIST", arg = "TEMPLATE" }
            items = _lookup(arg["each"], scope, label, ())
            if not isinstance(items, list):
                raise UsageError(f"{label}: each = '{arg['each']}' is not a list variable")
            for item in items:
                out.append(_text(_expand(arg["arg"], {**scope, "item": item}, label), label))
            continue
        value = _expand(arg, scope, label)
        if isinstance(value, list):
            out.extend(_text(v, label) for v in value)
        else:
            out.append(_text(value, label))
    return out


def _expand(value, scope: dict, label: str, stack: tuple = ()):
    """Substitute ${...} in strings (recursively inside lists and tables); other values pass through."""
    if isinstance(value, list):
        return [_expand(v, scope, label, stack) for v in value]
    if isinstance(value, dict):
        return {k: _expand(v, scope, label, stack) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    whole = _REF.fullmatch(value)
    if whole:  # keep the referenced value's type (a list stays a list)
        return _lookup(whole.group(1), scope, label, stack)
    return _REF.sub(lambda m: _text(_lookup(m.group(1), scope, label, stack), label), value)


def _lookup(dotted: str, scope: dict, label: str, stack: tuple):
    if dotted in stack or len(stack) > MAX_DEPTH:
        raise UsageError(f"{label}: variable cycle {' -> '.join((*stack, dotted))}")
    node = scope
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            known = ", ".join(sorted(k for k in scope if k != "datasets"))
            raise UsageError(f"{label}: unknown variable ${{{dotted}}}", hint=f"known variables: {known}")
        node = node[part]
    return _expand(node, scope, label, (*stack, dotted))


def _text(value, label: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise UsageError(f"{label}: a {type(value).__name__} variable cannot be put inside a string",
                     hint="a list expands to several arguments only when it is the whole argument: \"${list}\"")


def _as_path(text) -> Path:
    return Path(str(text)).expanduser().absolute()
