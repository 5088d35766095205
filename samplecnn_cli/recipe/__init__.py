"""Recipes: TOML files that reproduce an experiment as a list of `samplecnn` commands.

A recipe is data, never code: it names its parameters (`[vars]`), the raw datasets it expects
(`[datasets]`), a tiny-scale variant for CI (`[smoke]`) and its `[[steps]]`, each a samplecnn argv
with `${var}` substitution plus the paths it reads (`deps`) and writes (`outputs`). Running a recipe
skips every step whose command, inputs and outputs are unchanged since it last succeeded (state in
`recipe.lock.json` in the work folder), so an interrupted recipe resumes where it stopped.

    spec.py     load + validate a recipe file, bundled recipe names
    resolve.py  variables, --set overrides, smoke overrides, foreach -> a list of concrete steps
    hashing.py  fingerprints of files and folders
    runner.py   plan (run or skip), run steps in order, lock file, summary
The file format is documented in docs/recipes.md. May import every task package below the CLI (it runs
`samplecnn` commands through the runner the CLI hands it).
"""

from samplecnn_cli.recipe.resolve import Step, resolve_recipe
from samplecnn_cli.recipe.runner import plan_steps, run_recipe
from samplecnn_cli.recipe.spec import Recipe, bundled_recipes, find_recipe, load_recipe

__all__ = ["Recipe", "Step", "bundled_recipes", "find_recipe", "load_recipe", "plan_steps", "resolve_recipe",
           "run_recipe"]
