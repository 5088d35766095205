"""SIGTERM handled like Ctrl-C, and recipes naming an interruption as one and a failure as one
(issue 20, case 4). These run in this process; the fault suite (tests/test_faults.py) sends real
SIGTERMs to real commands at seeded moments.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap

import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from samplecnn_cli.core import signals
from samplecnn_cli.core.signals import Terminated
from samplecnn_cli.recipe import load_recipe, plan_steps, resolve_recipe, run_recipe
from samplecnn_cli.recipe.runner import LOCK_NAME
from tests._reliability import python_env

TWO_STEPS = """
title = "two"
[[steps]]
name = "first"
command = ["models", "list", "--json"]
[[steps]]
name = "second"
command = ["models", "list", "--json"]
"""


def recipe_in(tmp_path, text: str = TWO_STEPS):
    path = tmp_path / "r.toml"
    path.write_text(textwrap.dedent(text))
    return resolve_recipe(load_recipe(str(path)), workdir=tmp_path / "w")


def lock_states(tmp_path) -> dict:
    return {k: v["state"] for k, v in json.loads((tmp_path / "w" / LOCK_NAME).read_text())["steps"].items()}


@pytest.mark.parametrize("code, raised", [(130, KeyboardInterrupt), (143, Terminated)])
def test_a_step_ended_by_an_interrupt_is_an_interruption_not_a_failure(tmp_path, code, raised):
    """A step in its own process (recipe run --isolate) exits 130 or 143 when interrupted: the recipe
    stops as interrupted, never "failed with exit code 130"."""
    with pytest.raises(raised) as info:
        run_recipe(recipe_in(tmp_path), runner=lambda argv, workdir: code, echo=lambda line: None)
    assert type(info.value) is raised
    assert lock_states(tmp_path) == {"first": "interrupted"}
    summary = json.loads((tmp_path / "w" / "recipe-summary.json").read_text())
    assert summary["interrupted"] == 1 and summary["failed"] == 0
    assert plan_steps(recipe_in(tmp_path))[0].reason == "interrupted last time"


def test_a_failed_step_is_called_failed_on_the_next_run(tmp_path):
    with pytest.raises(Exception, match="failed with exit code 2"):
        run_recipe(recipe_in(tmp_path), runner=lambda argv, workdir: 2, echo=lambda line: None)
    assert lock_states(tmp_path) == {"first": "failed"}
    assert plan_steps(recipe_in(tmp_path))[0].reason == "failed last time (exit code 2)"


def test_sigterm_inside_an_in_process_step_ends_the_recipe_with_143(tmp_path, monkeypatch):
    """The step's own command is interrupted (as a SIGTERM raises it): the recipe records the step as
    interrupted and the CLI says so in one line, exit 143 (Typer alone would exit 130, silently)."""
    import samplecnn_cli.models.registry as registry

    def terminated(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(registry, "list_models", terminated)
    (tmp_path / "r.toml").write_text(textwrap.dedent(TWO_STEPS))
    result = CliRunner().invoke(app, ["recipe", "run", str(tmp_path / "r.toml"), "--workdir", str(tmp_path / "w")])
    assert result.exit_code == 143, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["Interrupted (SIGTERM): stopped cleanly; run the same command again to continue."]
    assert lock_states(tmp_path) == {"first": "interrupted"}


def test_the_exit_codes_and_lines_of_an_interrupt():
    assert signals.exit_code(Terminated()) == 143 and signals.exit_code(KeyboardInterrupt()) == 130
    assert signals.describe(Terminated()) == "SIGTERM" and isinstance(Terminated(), KeyboardInterrupt)


def test_sigterm_during_startup_of_the_executable_is_handled(tmp_path):
    """A SIGTERM while the command is still importing (before any command runs) is one line, 143."""
    code = textwrap.dedent("""
        import os, signal, sys
        from samplecnn_cli.core import signals
        import samplecnn_cli.cli.app as cli
        real_app = cli.app
        def app():  # the signal lands while Typer builds the command
            os.kill(os.getpid(), signal.SIGTERM)
            real_app()
        cli.app = app
        sys.argv = ["samplecnn", "models", "list"]
        cli.run()
    """)
    done = subprocess.run([sys.executable, "-c", code], env=python_env(), capture_output=True, text=True, timeout=60)
    assert done.returncode == 128 + signal.SIGTERM, done.stderr
    assert done.stderr.strip().startswith("Interrupted (SIGTERM)") and "Traceback" not in done.stderr


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_during_a_checkpoint_write_is_taken_once_the_file_is_whole(tmp_path, monkeypatch, signum):
    """The fault suite caught a SIGTERM landing inside torch.save: torch's zip writer then failed with
    "unexpected pos" (a RuntimeError traceback, exit 1). The signal now waits for the file."""
    import torch

    from samplecnn_cli.runs.folder import save_checkpoint

    real_save = torch.save

    def save_interrupted_half_way(obj, f, *args, **kwargs):
        f.write(b"")  # the writer has started
        signal.raise_signal(signum)
        return real_save(obj, f, *args, **kwargs)

    previous = {sig: signal.getsignal(sig) for sig in signals.INTERRUPTS}
    signal.signal(signal.SIGINT, signal.default_int_handler)  # as the CLI has them (whatever ran before)
    signals.install()
    monkeypatch.setattr(torch, "save", save_interrupted_half_way)
    path = tmp_path / "checkpoints" / "last.pt"
    try:
        with pytest.raises(KeyboardInterrupt) as raised:
            save_checkpoint(path, model_name="m", model_kwargs={}, state_dict={"w": torch.ones(3)},
                            label_names=["a"], task="multiclass", sample_rate=8000)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert isinstance(raised.value, Terminated) == (signum == signal.SIGTERM)
    loaded = torch.load(path, weights_only=True)
    assert torch.equal(loaded["state_dict"]["w"], torch.ones(3))
    assert list(path.parent.iterdir()) == [path]  # no temporary file


def test_a_signal_during_a_fragile_import_is_taken_once_the_library_is_whole(tmp_path):
    """A SIGTERM inside numpy's import broke numpy (exit 1, traceback; found by the fault suite), inside
    torch's it aborted the process. Commands import them with interrupts deferred (signals.import_deferred)."""
    (tmp_path / "fragile.py").write_text("import os, signal\nos.kill(os.getpid(), signal.SIGTERM)\nwhole = True\n")
    code = textwrap.dedent("""
        import sys
        from samplecnn_cli.core import signals
        signals.install()
        try:
            signals.import_deferred(("fragile",))
        except signals.Terminated:
            print("terminated after import; whole:", sys.modules["fragile"].whole)
    """)
    env = python_env()
    done = subprocess.run([sys.executable, "-c", code], env={**env, "PYTHONPATH": f"{tmp_path}:{env['PYTHONPATH']}"},
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "terminated after import; whole: True"
