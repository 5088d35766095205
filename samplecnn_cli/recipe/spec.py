"""Load and validate a recipe file; find bundled recipes by name.

Validation happens here, before anything runs, so that a typo in a recipe is one clear line
("recipe table5.toml: step 3 ('train'): 'command' must be a list of strings") and not a failure
halfway through a day of training.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from samplecnn_cli.core.errors import UsageError

TOP_KEYS = {"title", "description", "reproduces", "cost", "vars", "smoke", "datasets", "steps"}
STEP_KEYS = {"name", "help", "command", "deps", "outputs", "foreach", "when", "estimate", "clean"}
DATASET_KEYS = {"path", "about", "get"}
ESTIMATE_KEYS = {"minutes", "disk_gb", "basis"}
WHEN = ("always", "smoke", "full")


@dataclass
class Recipe:
    name: str
    path: Path
    title: str
    description: str = ""
    reproduces: str = ""
    cost: str = ""
    vars: dict = field(default_factory=dict)
    smoke: dict = field(default_factory=dict)
    datasets: dict = field(default_factory=dict)
    steps: list[dict] = field(default_factory=list)

    def summary(self) -> dict:
        return {"name": self.name, "title": self.title, "reproduces": self.reproduces, "cost": self.cost,
                "steps": len(self.steps), "datasets": sorted(self.datasets), "path": str(self.path)}


def recipes_dir() -> Path:
    from samplecnn_cli.core.paths import bundled_dir

    return bundled_dir("recipes")


def bundled_recipes() -> list[Recipe]:
    """Every recipe shipped with the package, sorted by name."""
    folder = recipes_dir()
    return [load_recipe(path) for path in sorted(folder.glob("*.toml"))] if folder.is_dir() else []


def find_recipe(name_or_path: str | Path) -> Path:
    """A recipe file: an existing path, or the name of a bundled recipe (with or without .toml)."""
    path = Path(name_or_path).expanduser()
    if path.is_file() or path.is_dir() and len(path.parts) > 1:
        if path.is_dir():
            raise UsageError(f"{path} is a folder, not a recipe file")
        return path
    bundled = recipes_dir() / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    if bundled.is_file() and len(path.parts) == 1:
        return bundled
    names = sorted(p.stem for p in recipes_dir().glob("*.toml")) if recipes_dir().is_dir() else []
    raise UsageError(f"no recipe '{name_or_path}' (neither a file nor a bundled recipe)",
                     hint="bundled recipes: " + (", ".join(names) or "none") + "  (`samplecnn recipe list`)")


def load_recipe(name_or_path: str | Path) -> Recipe:
    path = find_recipe(name_or_path)
    where = f"recipe {path.name}"
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"{where} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read {where}: {exc.strerror or exc}") from None
    unknown = set(raw) - TOP_KEYS
    if unknown:
        raise UsageError(f"{where}: unknown top-level key(s) {', '.join(sorted(unknown))}",
                         hint="allowed: " + ", ".join(sorted(TOP_KEYS)))
    if not isinstance(raw.get("title"), str) or not raw["title"].strip():
        raise UsageError(f"{where}: 'title' (a string) is required")
    for key in ("description", "reproduces", "cost"):
        if not isinstance(raw.get(key, ""), str):
            raise UsageError(f"{where}: '{key}' must be a string")
    for key in ("vars", "smoke", "datasets"):
        if not isinstance(raw.get(key, {}), dict):
            raise UsageError(f"{where}: [{key}] must be a table")
    recipe = Recipe(name=path.stem, path=path, title=raw["title"], description=raw.get("description", ""),
                    reproduces=raw.get("reproduces", ""), cost=raw.get("cost", ""), vars=raw.get("vars", {}),
                    smoke=raw.get("smoke", {}), datasets=raw.get("datasets", {}), steps=raw.get("steps", []))
    _check_datasets(recipe, where)
    _check_steps(recipe, where)
    unknown_smoke = set(recipe.smoke) - set(recipe.vars) - {"datasets"}
    if unknown_smoke:
        raise UsageError(f"{where}: [smoke] sets unknown variable(s) {', '.join(sorted(unknown_smoke))}",
                         hint="[smoke] may only override variables declared in [vars]")
    return recipe


def _check_datasets(recipe: Recipe, where: str) -> None:
    for name, entry in recipe.datasets.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("path"), str):
            raise UsageError(f"{where}: dataset '{name}' needs a 'path' (string)")
        unknown = set(entry) - DATASET_KEYS
        if unknown:
            raise UsageError(f"{where}: dataset '{name}': unknown key(s) {', '.join(sorted(unknown))}")


def _check_steps(recipe: Recipe, where: str) -> None:
    if not isinstance(recipe.steps, list) or not recipe.steps:
        raise UsageError(f"{where}: no [[steps]]", hint="a recipe needs at least one [[steps]] table")
    seen = set()
    for i, step in enumerate(recipe.steps, 1):
        if not isinstance(step, dict):
            raise UsageError(f"{where}: step {i} is not a table")
        label = f"{where}: step {i} ('{step.get('name', '?')}')"
        unknown = set(step) - STEP_KEYS
        if unknown:
            raise UsageError(f"{label}: unknown key(s) {', '.join(sorted(unknown))}",
                             hint="allowed: " + ", ".join(sorted(STEP_KEYS)))
        name = step.get("name")
        if not isinstance(name, str) or not name:
            raise UsageError(f"{label}: 'name' (a string) is required")
        if name in seen:
            raise UsageError(f"{label}: duplicate step name '{name}'")
        seen.add(name)
        command = step.get("command")
        if not isinstance(command, list) or not command or not all(_is_arg(a) for a in command):
            raise UsageError(f"{label}: 'command' must be a non-empty list of strings "
                             "(or { each = VAR, arg = TEMPLATE } tables)",
                             hint='e.g. command = ["train", "${model}", "--data", "${store}"]')
        if not isinstance(command[0], str) or command[0] in ("samplecnn", "python"):
            raise UsageError(f"{label}: 'command' starts with the samplecnn subcommand, e.g. \"train\"")
        for key in ("deps", "outputs", "clean"):
            value = step.get(key, [])
            if not isinstance(value, list) or not all(_is_arg(a) for a in value):
                raise UsageError(f"{label}: '{key}' must be a list of paths")
        if "foreach" in step and not isinstance(step["foreach"], str):
            raise UsageError(f"{label}: 'foreach' names a list variable, e.g. foreach = \"rates\"")
        if step.get("when", "always") not in WHEN:
            raise UsageError(f"{label}: 'when' must be one of {', '.join(WHEN)}")
        estimate = step.get("estimate", {})
        if not isinstance(estimate, dict) or set(estimate) - ESTIMATE_KEYS or not all(
                isinstance(estimate.get(k, 0), int | float | str) for k in ("minutes", "disk_gb")):
            raise UsageError(f"{label}: 'estimate' is {{ minutes = N, disk_gb = X, basis = \"...\" }}")


def _is_arg(value) -> bool:
    if isinstance(value, str):
        return True
    return isinstance(value, dict) and set(value) == {"each", "arg"} and all(
        isinstance(v, str) for v in value.values())
