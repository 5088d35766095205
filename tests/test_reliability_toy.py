"""Issue 11 item 5: make-toy checks its options before writing; a partial folder never blocks a retry."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app

cli = CliRunner()


def make_toy(directory, *options):
    return cli.invoke(app, ["datasets", "make-toy", str(directory), "--clips", "6", "--seconds", "0.5", *options])


@pytest.mark.parametrize("options", [("--sr", "-5"), ("--sr", "100"), ("--sr", "0"), ("--sr", "8001"),
                                     ("--seed", "-1"), ("--seconds", "nan"), ("--clips", "1000000000")])
def test_bad_option_writes_nothing(tmp_path, options):
    result = make_toy(tmp_path / "toy", "--sr", "8000", *options)
    assert result.exit_code == 2, result.output
    assert result.output.startswith("Error: ") and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []
    retry = make_toy(tmp_path / "toy", "--sr", "8000")
    assert retry.exit_code == 0, retry.output


def test_leftover_of_a_killed_run_does_not_block(tmp_path):
    partial = tmp_path / ".toy.partial" / "audio"
    partial.mkdir(parents=True)
    (partial / "0000.wav").write_bytes(b"half a file")
    (tmp_path / "toy").mkdir()  # an empty target is fine too
    result = make_toy(tmp_path / "toy", "--sr", "8000")
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["toy"]
    assert (tmp_path / "toy" / "labels.csv").is_file() and len(list((tmp_path / "toy" / "audio").iterdir())) == 6


def test_link_loop_or_file_as_target_fails_before_writing(tmp_path):
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    (tmp_path / "file").write_text("x")
    for target in ("loop", "file"):
        result = make_toy(tmp_path / target, "--sr", "8000")
        assert result.exit_code == 1 and "exists and is not a folder" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "loop"]
