"""Issue 11 items 1 and 6 (recipes): clean never leaves the work folder; the lock knows the version."""

from __future__ import annotations

import json
import textwrap

import pytest
from filelock import FileLock
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core.paths import is_inside, remove_inside
from samplecnn_cli.recipe import runner as recipe_runner
from samplecnn_cli.recipe.runner import LOCK_NAME

cli = CliRunner()

TOY_STEP = """
title = "clean test"
[[steps]]
name = "toy"
command = ["datasets", "make-toy", "${{workdir}}/toy", "--clips", "6", "--seconds", "0.5", "--sr", "8000"]
outputs = ["${{workdir}}/toy"]
{clean}
"""


def recipe(tmp_path, clean: str = ""):
    path = tmp_path / "r.toml"
    path.write_text(textwrap.dedent(TOY_STEP.format(clean=clean)))
    return path


def run(path, work):
    return cli.invoke(app, ["recipe", "run", str(path), "--workdir", str(work)])


@pytest.fixture
def victim(tmp_path):
    folder = tmp_path / "victim"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    return folder


@pytest.mark.parametrize("clean", ['clean = ["${workdir}/../victim"]',
                                   'clean = ["${workdir}/sub/../../victim"]',
                                   'clean = ["${workdir}/link/precious.txt"]',
                                   'clean = ["${workdir}/link"]',  # a link's target is not inside
                                   'clean = ["${workdir}"]'])
def test_clean_outside_the_work_folder_is_refused_before_anything_runs(tmp_path, victim, clean):
    work = tmp_path / "w"
    work.mkdir()
    (work / "link").symlink_to(victim)
    if clean.endswith('/link"]'):  # removing the link itself is allowed (the target stays)
        assert remove_inside(work / "link", work) and victim.is_dir() and not (work / "link").exists()
        return
    result = run(recipe(tmp_path, clean), work)
    assert result.exit_code == 1, result.output
    assert "outside the work folder" in result.output
    assert (victim / "precious.txt").read_text() == "keep me"
    assert not (work / "toy").exists()  # refused before the first step


def test_clean_only_removes_what_an_earlier_run_of_the_step_wrote(tmp_path):
    work = tmp_path / "w"
    mine = work / "toy"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("the user's own file")
    first = run(recipe(tmp_path), work)  # first run: nothing is cleaned, make-toy refuses the folder
    assert first.exit_code == 1
    assert (mine / "notes.txt").read_text() == "the user's own file"
    (mine / "notes.txt").unlink()
    assert run(recipe(tmp_path), work).exit_code == 0
    assert (mine / "labels.csv").is_file()


def test_is_inside_resolves_before_comparing(tmp_path, victim):
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(victim)
    assert is_inside(root / "a" / "b.wav", root)
    assert not is_inside(root / ".." / "victim", root)
    assert not is_inside(root / "link" / "precious.txt", root)
    assert not is_inside("/etc/hostname", root)
    assert not remove_inside(root / "link" / "precious.txt", root)
    assert (victim / "precious.txt").is_file()


def test_samplecnn_upgrade_reruns_every_step(tmp_path, monkeypatch):
    path, work = recipe(tmp_path), tmp_path / "w"
    assert run(path, work).exit_code == 0
    lock = json.loads((work / LOCK_NAME).read_text())
    assert lock["samplecnn_version"] and lock["steps"]["toy"]["state"] == "done"
    again = run(path, work)
    assert "toy: skipped" in again.output
    monkeypatch.setattr(recipe_runner, "__version__", "999.0")
    upgraded = run(path, work)
    assert upgraded.exit_code == 0, upgraded.output
    assert "toy: running (samplecnn version changed)" in upgraded.output


def test_second_recipe_run_on_one_work_folder_is_refused(tmp_path):
    work = tmp_path / "w"
    work.mkdir()
    with FileLock(str(work / ".recipe.run.lock")):
        result = run(recipe(tmp_path), work)
    assert result.exit_code == 1
    assert "another `samplecnn recipe run`" in result.output
    assert not (work / "toy").exists()


def test_each_hint_prints_literal_braces_once(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text('title = "x"\n[[steps]]\nname = "a"\ncommand = [1]\n')
    result = cli.invoke(app, ["recipe", "run", str(path), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 2
    assert "{ each = VAR, arg = TEMPLATE }" in result.output and "{{" not in result.output
