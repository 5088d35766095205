"""The recipe engine: validation, variables, skipping, resuming, dry runs, listing."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.errors import UsageError
from samplecnn_cli.recipe import load_recipe, resolve_recipe, run_recipe
from samplecnn_cli.recipe.resolve import parse_set
from samplecnn_cli.recipe.runner import LOCK_NAME, RESOLVED_NAME, in_process

run_in_process = in_process(typer.main.get_command(app))

runner = CliRunner()

# Two cheap real commands: a 6-clip toy dataset, then a store made from it (which also "reads" a
# notes file that no step writes, so that a test can change an input from outside).
TWO_STEPS = """
title = "engine test"
reproduces = "nothing"
[vars]
clips = 6
toy = "${workdir}/toy"
notes = "${workdir}/../notes.txt"
[[steps]]
name = "toy"
command = ["datasets", "make-toy", "${toy}", "--clips", "${clips}", "--seconds", "0.5", "--sr", "8000"]
outputs = ["${toy}"]
estimate = { minutes = 2, disk_gb = 0.5, basis = "a guess for the test" }
[[steps]]
name = "store"
command = ["preprocess", "toy", "--root", "${toy}", "--out", "${workdir}/store", "--sr", "4000", "--workers", "1"]
deps = ["${toy}/labels.csv", "${notes}"]
outputs = ["${workdir}/store/train.h5"]
"""


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    (tmp_path / "notes.txt").write_text("first version\n")
    return path


def run_cli(*args: str):
    return runner.invoke(app, ["recipe", *args])


def step_lines(output: str) -> dict[str, str]:
    """'[2/3] name: skipped (unchanged)' -> {name: 'skipped'|'running'}."""
    status = {}
    for line in output.splitlines():
        if line.startswith("[") and "] " in line and ": " in line:
            name, _, rest = line.split("] ", 1)[1].partition(": ")
            if rest.startswith(("skipped", "running")):
                status[name] = rest.split()[0]
    return status


# -- validation -------------------------------------------------------------------------------------
BAD = {
    "no title": '[[steps]]\nname = "a"\ncommand = ["models", "list"]\n',
    "no steps": 'title = "x"\n',
    "command not a list": 'title = "x"\n[[steps]]\nname = "a"\ncommand = "models list"\n',
    "starts with samplecnn": 'title = "x"\n[[steps]]\nname = "a"\ncommand = ["samplecnn", "models"]\n',
    "unknown step key": 'title = "x"\n[[steps]]\nname = "a"\ncommand = ["models"]\nrun = "rm -rf /"\n',
    "duplicate name": 'title = "x"\n[[steps]]\nname = "a"\ncommand = ["m"]\n[[steps]]\nname = "a"\ncommand = ["m"]\n',
    "bad toml": 'title = "x\n',
    "unknown top key": 'title = "x"\nscript = "import os"\n[[steps]]\nname = "a"\ncommand = ["m"]\n',
    "smoke sets unknown var": 'title = "x"\n[smoke]\nepochs = 1\n[[steps]]\nname = "a"\ncommand = ["m"]\n',
    "unknown variable": 'title = "x"\n[[steps]]\nname = "a"\ncommand = ["models", "info", "${nope}"]\n',
    "cycle": 'title = "x"\n[vars]\na = "${b}"\nb = "${a}"\n[[steps]]\nname = "s"\ncommand = ["${a}"]\n',
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_recipe_is_one_line_usage_error(tmp_path, case):
    path = write(tmp_path, BAD[case])
    result = run_cli("run", str(path), "--workdir", str(tmp_path / "w"), "--dry-run")
    assert result.exit_code == 2, result.output
    assert result.output.count("Error:") == 1 and "Traceback" not in result.output
    assert not (tmp_path / "w").exists()


def test_unknown_recipe_name_lists_bundled_ones():
    result = run_cli("run", "table99-nothing", "--dry-run")
    assert result.exit_code == 2
    assert "table5-downsampling" in result.output


def test_unknown_set_key_is_rejected(tmp_path):
    path = write(tmp_path, TWO_STEPS)
    result = run_cli("run", str(path), "--workdir", str(tmp_path / "w"), "--dry-run", "--set", "epochs=3")
    assert result.exit_code == 2
    assert "no variable 'epochs'" in result.output and "clips" in result.output


# -- variables ----------------------------------------------------------------------------------------
def test_substitution_foreach_splat_smoke_and_overrides(tmp_path):
    path = write(tmp_path, """
        title = "vars"
        [vars]
        runs = "${workdir}/runs"
        epochs = 10
        models = ["sample-2^5", "sample-3^4"]
        rates = [{ name = "2k", sr = 2000 }, { name = "4k", sr = 4000 }]
        flag = true
        [smoke]
        epochs = 1
        [smoke.datasets]
        mtat = "${workdir}/toy"
        [datasets.mtat]
        path = "${data_root}/magnatagatune"
        [[steps]]
        name = "train"
        foreach = "rates"
        command = ["train", "sample-${item.name}", "--epochs", "${epochs}", "--out", "${runs}/${item.sr}", "--x", "${flag}"]
        outputs = ["${runs}/${item.sr}"]
        [[steps]]
        name = "report"
        command = ["report", { each = "rates", arg = "${runs}/${item.sr}" }, "${models}", "--root", "${datasets.mtat}"]
        [[steps]]
        name = "only-full"
        when = "full"
        command = ["models", "list"]
        """)
    recipe = load_recipe(path)
    work = tmp_path / "w"
    full = resolve_recipe(recipe, workdir=work, data_root=tmp_path / "raw", overrides=parse_set(["epochs=3"]))
    assert [s.name for s in full.steps] == ["train[2k]", "train[4k]", "report", "only-full"]
    train = full.steps[0]
    assert train.argv == ["train", "sample-2k", "--epochs", "3", "--out", f"{work.resolve()}/runs/2000", "--x", "true"]
    report = full.steps[2]
    assert report.argv == ["report", f"{work.resolve()}/runs/2000", f"{work.resolve()}/runs/4000",
                           "sample-2^5", "sample-3^4", "--root", str((tmp_path / "raw" / "magnatagatune").resolve())]
    smoke = resolve_recipe(recipe, workdir=work, smoke=True, overrides=parse_set(["datasets.mtat=/x/y"]))
    assert "--epochs" in smoke.steps[0].argv and smoke.steps[0].argv[3] == "1"
    assert smoke.steps[-1].argv[-1] == "/x/y"
    assert "only-full" not in [s.name for s in smoke.steps]
    smoke_default = resolve_recipe(recipe, workdir=work, smoke=True)
    assert smoke_default.steps[-1].argv[-1] == f"{work.resolve()}/toy"


def test_parse_set_reads_toml_values():
    assert parse_set(["a=3", "b=0.5", "c=[1, 2]", "d=hello world", "e=true"]) == {
        "a": 3, "b": 0.5, "c": [1, 2], "d": "hello world", "e": True}
    with pytest.raises(UsageError):
        parse_set(["novalue"])


def test_workspace_dataset_root_is_the_default(tmp_path):
    recipe = load_recipe(write(tmp_path, """
        title = "ds"
        [datasets.gtzan]
        path = "${data_root}/gtzan"
        about = "GTZAN genres"
        get = "http://example.org/gtzan"
        [[steps]]
        name = "a"
        command = ["preprocess", "gtzan", "--root", "${datasets.gtzan}"]
        """))
    resolved = resolve_recipe(recipe, workdir=tmp_path / "w", workspace_datasets={"gtzan": {"root": "/my/gtzan"}})
    assert resolved.steps[0].argv[-1] == "/my/gtzan"
    explicit = resolve_recipe(recipe, workdir=tmp_path / "w", data_root=tmp_path,
                              workspace_datasets={"gtzan": {"root": "/my/gtzan"}})
    assert explicit.steps[0].argv[-1] == str(tmp_path.resolve() / "gtzan")
    result = run_cli("run", str(tmp_path / "r.toml"), "--workdir", str(tmp_path / "w"), "--data-root",
                     str(tmp_path / "nowhere"))
    assert result.exit_code == 1
    assert "dataset 'gtzan'" in result.output and "http://example.org/gtzan" in result.output


# -- running, skipping, resuming ----------------------------------------------------------------------------
def test_rerun_skips_and_dep_change_reruns(tmp_path):
    path = write(tmp_path, TWO_STEPS)
    work = tmp_path / "w"
    first = run_cli("run", str(path), "--workdir", str(work))
    assert first.exit_code == 0, first.output
    assert step_lines(first.output) == {"toy": "running", "store": "running"}
    assert (work / "store" / "train.h5").is_file()
    lock = json.loads((work / LOCK_NAME).read_text())
    assert set(lock["steps"]) == {"toy", "store"}
    assert "clips = 6" in (work / RESOLVED_NAME).read_text()

    second = run_cli("run", str(path), "--workdir", str(work))
    assert second.exit_code == 0, second.output
    assert step_lines(second.output) == {"toy": "skipped", "store": "skipped"}

    (tmp_path / "notes.txt").write_text("second version\n")  # an input of `store` changes: only it runs
    third = run_cli("run", str(path), "--workdir", str(work))
    assert third.exit_code == 0, third.output
    assert step_lines(third.output) == {"toy": "skipped", "store": "running"}
    assert "input changed" in third.output

    labels = work / "toy" / "labels.csv"  # an output is edited by hand: its step remakes it; the remade
    labels.write_text(labels.read_text() + "extra line\n")  # file has the old content, so `store` is skipped
    remade = run_cli("run", str(path), "--workdir", str(work))
    assert step_lines(remade.output) == {"toy": "running", "store": "skipped"}
    assert "output changed" in remade.output

    (work / "store" / "train.h5").unlink()  # a missing output makes its step run again
    fourth = run_cli("run", str(path), "--workdir", str(work))
    assert step_lines(fourth.output) == {"toy": "skipped", "store": "running"}

    changed = run_cli("run", str(path), "--workdir", str(work), "--set", "clips=7")  # a parameter changes
    assert changed.exit_code == 0, changed.output  # the old toy folder was cleared, make-toy did not refuse
    assert step_lines(changed.output) == {"toy": "running", "store": "running"}


def test_interrupted_recipe_resumes(tmp_path):
    recipe = load_recipe(write(tmp_path, TWO_STEPS))
    work = tmp_path / "w"
    calls = []

    def interrupted(argv, workdir):
        calls.append(argv[0])
        if argv[0] == "preprocess":
            raise KeyboardInterrupt
        return run_in_process(argv, workdir)

    with pytest.raises(KeyboardInterrupt):
        run_recipe(resolve_recipe(recipe, workdir=work), runner=interrupted, echo=lambda line: None)
    assert calls == ["datasets", "preprocess"]
    lock = json.loads((work / LOCK_NAME).read_text())
    assert {name: entry["state"] for name, entry in lock["steps"].items()} == {"toy": "done", "store": "interrupted"}
    assert json.loads((work / "recipe-summary.json").read_text())["interrupted"] == 1

    calls.clear()
    summary = run_recipe(resolve_recipe(recipe, workdir=work), runner=lambda a, w: calls.append(a[0]) or
                         run_in_process(a, w), echo=lambda line: None)
    assert calls == ["preprocess"]
    assert (summary["ran"], summary["skipped"]) == (1, 1)


def test_failed_step_stops_with_its_name_and_exit_code(tmp_path):
    path = write(tmp_path, """
        title = "fails"
        [[steps]]
        name = "bad-model"
        command = ["models", "info", "sample-99^99"]
        [[steps]]
        name = "never"
        command = ["models", "list"]
        """)
    result = run_cli("run", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == 1
    assert "step 'bad-model' failed with exit code 2" in result.output
    assert "never" not in step_lines(result.output)
    summary = json.loads((tmp_path / "w" / "recipe-summary.json").read_text())
    assert summary["failed"] == 1 and summary["steps"][0]["exit_code"] == 2


def test_missing_declared_output_is_an_error(tmp_path):
    path = write(tmp_path, """
        title = "liar"
        [[steps]]
        name = "lies"
        command = ["models", "list", "--json"]
        outputs = ["${workdir}/never-written.txt"]
        """)
    result = run_cli("run", str(path), "--workdir", str(tmp_path / "w"))
    assert result.exit_code == 1
    assert "did not write its output" in result.output


def test_dry_run_prints_plan_and_writes_nothing(tmp_path):
    path = write(tmp_path, TWO_STEPS)
    work = tmp_path / "w"
    result = run_cli("run", str(path), "--workdir", str(work), "--dry-run")
    assert result.exit_code == 0, result.output
    assert "$ samplecnn datasets make-toy" in result.output and "$ samplecnn preprocess toy" in result.output
    assert "2 of 2 step(s) to run" in result.output
    assert "~2 min, 500 MB" in result.output  # the step's estimate
    assert not work.exists()

    assert run_cli("run", str(path), "--workdir", str(work)).exit_code == 0
    plan = run_cli("run", str(path), "--workdir", str(work), "--dry-run", "--json", "--set", "clips=8")
    steps = json.loads(plan.output)["steps"]
    assert [(s["name"], s["action"]) for s in steps] == [("toy", "run"), ("store", "run")]
    assert steps[1]["reason"] == "after toy"
    assert steps[0]["command"][:3] == ["samplecnn", "datasets", "make-toy"]


def test_recipe_list_shows_every_bundled_recipe():
    result = run_cli("list", "--json")
    assert result.exit_code == 0, result.output
    recipes = {r["name"]: r for r in json.loads(result.output)}
    expected = {"demo", "figures", "table2-configurations", "table4-multiscale", "table5-downsampling",
                "table6-transfer"}
    assert expected <= set(recipes)
    assert recipes["table5-downsampling"]["reproduces"].startswith("Table 5")
    assert all(r["cost"] for r in recipes.values())
    table = run_cli("list")
    assert table.exit_code == 0 and "table5-downsampling" in table.output
