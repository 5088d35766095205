"""The process context: the environment read once by `main`; library code changes no process state."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from samplecnn_cli.core.context import Context, inference_cache_path
from tests._store_fixtures import train_tiny_run


def test_the_environment_is_read_into_one_context(tmp_path):
    env = {"SAMPLECNN_WORKSPACE": str(tmp_path), "SAMPLECNN_INFERENCE_CACHE": "off", "SAMPLECNN_DEBUG": "1",
           "SAMPLECNN_ALLOCATOR": "system", "WORLD_SIZE": "4", "RANK": "2", "LOCAL_RANK": "0",
           "LOCAL_WORLD_SIZE": "2"}
    ctx = Context.from_environment(env)
    assert ctx.workspace == tmp_path and ctx.inference_cache is None and ctx.debug and ctx.allocator == "system"
    assert (ctx.dist.world_size, ctx.dist.rank, ctx.dist.local_world_size, ctx.dist.is_main) == (4, 2, 2, False)
    plain = Context.from_environment({"HOME": str(tmp_path)})
    assert plain.workspace is None and not plain.debug and plain.dist.is_main and not plain.dist.enabled
    assert plain.inference_cache == tmp_path / ".cache" / "samplecnn" / "inference.json"
    assert inference_cache_path({"SAMPLECNN_INFERENCE_CACHE": "/x/c.json"}) == Path("/x/c.json")
    assert ctx.with_workspace(tmp_path / "w").workspace == tmp_path / "w" and ctx.workspace == tmp_path


def ours(environ) -> dict:
    """The variables samplecnn could set (torch itself adds KMP_* and TORCHINDUCTOR_* on first use)."""
    return {k: v for k, v in environ.items() if not k.startswith(("KMP_", "TORCHINDUCTOR_"))}


def test_library_training_and_inference_leave_the_process_alone(tmp_path):
    environ, threads = ours(os.environ), torch.get_num_threads()
    run = train_tiny_run(tmp_path, task="multiclass", epochs=1)
    from samplecnn_cli.inference.evaluate import evaluate_run

    evaluate_run(run)
    assert ours(os.environ) == environ and torch.get_num_threads() == threads


def test_importing_the_figures_sets_no_matplotlib_backend():
    code = ("import matplotlib; before = matplotlib.get_backend(); import samplecnn_cli.viz.figures, "
            "samplecnn_cli.viz.visualize; assert 'matplotlib.pyplot' not in __import__('sys').modules; print('ok')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_recipe_steps_get_the_work_folder_as_workspace_without_touching_the_environment(tmp_path, monkeypatch):
    import typer

    from samplecnn_cli.cli.app import app
    from samplecnn_cli.cli.console import current_context
    from samplecnn_cli.recipe.runner import in_process

    seen = []
    probe = typer.Typer()

    @probe.callback(invoke_without_command=True)
    def record():
        seen.append((current_context().workspace, os.environ.get("SAMPLECNN_WORKSPACE")))

    monkeypatch.delenv("SAMPLECNN_WORKSPACE", raising=False)
    runner = in_process(typer.main.get_command(probe), Context(debug=False))
    assert runner([], tmp_path / "work") == 0
    assert seen == [(tmp_path / "work", None)]
    assert typer.main.get_command(app) is not None
