"""One writer per output (issue 20): while another process holds an output's lock, every command that
would write it is turned away in one line naming the holder, and writes nothing.

The holder is a real process taking the lock through core/locks.py (what a running `tag`, `embed`,
`extract`, `export`, `train` or `transfer` holds); the second writer runs in this process. Two real
commands racing for one output are in tests/test_faults.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from samplecnn_cli.core.locks import Busy, hold, lock_path
from tests._reliability import COUNTS, TINY_MODEL, build_pipeline, invoke, python_env, tree_state

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("inference_sandbox")]

HOLDER = textwrap.dedent("""
    import sys, time
    from pathlib import Path
    from samplecnn_cli.core.locks import hold
    with hold(Path(sys.argv[1]), "it", folder=sys.argv[2] == "folder"):
        print("held", flush=True)
        time.sleep(120)
""")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return build_pipeline(tmp_path_factory.mktemp("locks") / "pipeline")


class Holder:
    def __init__(self, path: Path, folder: bool = False):
        self.proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path), "folder" if folder else "file"],
                                     stdout=subprocess.PIPE, text=True, env=python_env())
        assert self.proc.stdout.readline().strip() == "held"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.kill()
        self.proc.wait()


CASES = [  # (name, argv, the output whose lock is held, is it a folder)
    ("tag --out", lambda p, w: ["tag", p["run"], p["wav"], "--out", w / "t.csv"], lambda p, w: w / "t.csv", False),
    ("embed --out", lambda p, w: ["embed", p["run"], p["wav"], "--out", w / "e.h5"], lambda p, w: w / "e.h5", False),
    ("extract --out", lambda p, w: ["extract", p["run"], "-d", p["store"], "-o", w / "f.h5"], lambda p, w: w / "f.h5",
     False),
    ("export --out", lambda p, w: ["export", p["run"], "-o", w / "m.pt", "-f", "torchscript"], lambda p, w: w / "m.pt",
     False),
    ("train --resume", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "run", "--resume", "--epochs", "2",
                                     "--device", "cpu", "--precision", "fp32", "--workers", "0"],
     lambda p, w: w / "run", True),
    ("transfer --resume", lambda p, w: ["transfer", p["features"], "-o", w / "transfer", "--resume", "--hidden", "8",
                                        "--epochs", "3", "-b", "4", "--device", "cpu"],
     lambda p, w: w / "transfer", True),
]


@pytest.mark.parametrize("name, make_argv, make_output, folder", CASES, ids=[c[0] for c in CASES])
def test_a_second_writer_is_turned_away(pipe, tmp_path, name, make_argv, make_output, folder):
    import shutil

    work = tmp_path / "work"  # (tmp_path also holds the inference sandbox's cache)
    work.mkdir()
    if folder:  # a run to resume, copied
        source = pipe["run"] if name.startswith("train") else pipe["transfer"]
        shutil.copytree(source, make_output(pipe, work))
    output = make_output(pipe, work)
    with Holder(output, folder):
        before = tree_state(work)
        result = invoke(make_argv(pipe, work), work)
        after = tree_state(work)
    COUNTS["second writers"] += 1
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "is being written by another process (pid " in errors[0], result.stderr
    changed = {k for k in set(before) | set(after) if before.get(k) != after.get(k)}
    assert {Path(k).name for k in changed} <= {lock_path(output, folder).name}, changed  # nothing written


def test_the_lock_dies_with_its_holder(tmp_path):
    """A holder killed outright leaves no stale lock: the next writer takes it at once."""
    output = tmp_path / "out.csv"
    with Holder(output) as holder:
        with pytest.raises(Busy, match="pid "):
            with hold(output, "out.csv"):
                pass
        holder.proc.kill()
        holder.proc.wait()
        with hold(output, "out.csv"):
            assert lock_path(output).with_name(".out.csv.lock.json").is_file()
