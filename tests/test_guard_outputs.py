"""The output guard (issue 20, case 1): `--out` never replaces a file its command did not write (a
checkpoint, a store, an input, a file of another kind, anything a run, store or dataset folder keeps)
unless --force, and then atomically; a refusal is one `Error:` line naming what is there. Files of the
command's own kind are replaced (export, extract) or continued (tag, embed) as before.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from samplecnn_cli.core.outputs import OutputRefused, guard_file, sniff
from tests._reliability import assert_clean_failure, build_pipeline, invoke, tree_state

pytestmark = [pytest.mark.filterwarnings("ignore"), pytest.mark.usefixtures("inference_sandbox")]


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return build_pipeline(tmp_path_factory.mktemp("guard") / "pipeline")


@pytest.fixture
def work(pipe, tmp_path):
    """A copy of the run, the store and the toy dataset that a case may damage."""
    work = tmp_path / "work"
    work.mkdir()
    for name in ("run", "store", "toy"):
        shutil.copytree(pipe[name], work / name)
    return work


def digest(path: Path) -> str:
    return hashlib.sha1(Path(path).read_bytes()).hexdigest()


def refused(result, argv, what: str) -> None:
    """One Error line saying what is there, exit 1, no traceback (the fuzz suite's check)."""
    assert_clean_failure(result, argv, {}, {})
    assert what in result.stderr.splitlines()[0], result.stderr


# -- the three cases of the issue --------------------------------------------------------------------
def test_export_over_the_runs_best_checkpoint_is_refused_and_evaluate_still_works(work):
    best = work / "run" / "checkpoints" / "best.pt"
    kept = digest(best)
    argv = ["export", work / "run", "--out", best, "--format", "torchscript"]
    refused(invoke(argv, work), argv, "one of this command's inputs")
    forced = invoke([*argv, "--force"], work)  # an input being read is never replaced, --force or not
    assert forced.exit_code == 1 and digest(best) == kept
    assert invoke(["evaluate", work / "run", "--device", "cpu"], work).exit_code == 0


def test_embed_over_a_training_store_is_refused(work):
    store_file = work / "store" / "train.h5"
    kept = digest(store_file)
    argv = ["embed", work / "run", work / "toy" / "audio", "--out", store_file]
    refused(invoke(argv, work), argv, "a training store file")
    assert digest(store_file) == kept


def test_embed_over_one_of_its_inputs_is_refused(work):
    wav = next((work / "toy" / "audio").glob("*.wav"))
    kept = digest(wav)
    argv = ["embed", work / "run", work / "toy" / "audio", "--out", wav]
    refused(invoke(argv, work), argv, "one of this command's inputs")
    assert digest(wav) == kept


# -- more of the same, for every file output -----------------------------------------------------------
@pytest.mark.parametrize("command", ["tag", "embed", "extract", "export"])
def test_a_file_of_another_kind_is_refused_then_replaced_with_force(work, command):
    out = work / ("out.csv" if command == "tag" else "out.pt" if command == "export" else "out.h5")
    out.write_text("my notes, not samplecnn's\n")
    argv = {"tag": ["tag", work / "run", work / "toy" / "audio", "--out", out],
            "embed": ["embed", work / "run", work / "toy" / "audio", "--out", out],
            "extract": ["extract", work / "run", "-d", work / "store", "--out", out],
            "export": ["export", work / "run", "--out", out, "--format", "torchscript"]}[command]
    before = tree_state(work)
    refused(invoke(argv, work), argv, "a file samplecnn did not write")
    assert tree_state(work) == before  # nothing written anywhere
    replaced = invoke([*argv, "--force"], work)
    assert replaced.exit_code == 0, replaced.output
    assert sniff(out) in {"tags", "hdf5:samplecnn-embeddings", "hdf5:samplecnn-features", "torchscript:samplecnn"}
    assert not [p for p in work.iterdir() if ".tmp" in p.name or p.name.endswith(".partial")]


def test_files_of_the_commands_own_kind_are_replaced_or_continued(work):
    argv = ["export", work / "run", "--out", work / "m.pt", "--format", "torchscript"]
    assert invoke(argv, work).exit_code == 0 and invoke(argv, work).exit_code == 0
    tags = ["tag", work / "run", work / "toy" / "audio", "--out", work / "t.csv", "--json"]
    assert invoke(tags, work).exit_code == 0
    again = invoke(tags, work)
    assert again.exit_code == 0 and '"skipped_done": 6' in again.stdout


def test_a_checkpoint_or_audio_elsewhere_is_named(work):
    elsewhere = work / "best-copy.pt"
    shutil.copy(work / "run" / "checkpoints" / "best.pt", elsewhere)
    argv = ["extract", work / "run", "-d", work / "store", "--out", elsewhere]
    refused(invoke(argv, work), argv, "a PyTorch checkpoint")
    song = work / "song.flac"
    shutil.copy(next((work / "toy" / "audio").glob("*.flac")), song)
    argv = ["tag", work / "run", work / "toy" / "audio", "--out", song]
    assert invoke(argv, work).exit_code != 0 and song.read_bytes()[:4] == b"fLaC"


def test_names_a_run_store_or_dataset_keeps_are_refused_even_when_absent(work):
    (work / "store" / "preprocess-report.json").write_text("{}")  # mark it a store
    for out, what in ((work / "run" / "summary.json", "the run folder"),
                      (work / "run" / "checkpoints" / "other.pt", "the run folder"),
                      (work / "store" / "valid2.h5", None), (work / "toy" / "labels.csv", "dataset folder")):
        if what is None:  # a new name in a store folder is not one the store keeps
            assert guard_file(out, own=set()).exists is False
            continue
        with pytest.raises(OutputRefused, match=what):
            guard_file(out, own=set(), inputs=())


@pytest.mark.parametrize("command", ["report", "tsne", "visualize-filters"])
def test_folder_outputs_keep_files_they_did_not_write(pipe, work, command):
    if command == "report":
        target, argv = work / "rep" / "report.html", ["report", work / "run", "--out", work / "rep"]
    elif command == "tsne":
        target = work / "fig.png"
        argv = ["tsne", pipe["features"], "--labels", "tone0,tone1", "--out", target, "--split", "train"]
    else:
        target, argv = work / "filt" / "filters.json", ["visualize-filters", work / "run", "--out", work / "filt"]
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("<html>my own page</html>" if target.suffix == ".html" else '{"mine": 1}')
    kept = digest(target)
    refused(invoke(argv, work), argv, "a file samplecnn did not write")
    assert digest(target) == kept


def test_preprocess_never_writes_over_split_files_it_did_not_make(work):
    out = work / "mystuff"
    out.mkdir()
    (out / "train.h5").write_text("not a store")
    argv = ["preprocess", "toy", "--root", work / "toy", "--out", out, "--sr", "8000", "--json"]
    refused(invoke(argv, work), argv, "a file samplecnn did not write")
    assert (out / "train.h5").read_text() == "not a store"


def test_force_over_a_file_of_other_settings_starts_a_new_one(work):
    import h5py

    out = work / "e.h5"
    argv = ["embed", work / "run", work / "toy" / "audio", "--out", out]
    assert invoke([*argv, "-l", "-1"], work).exit_code == 0
    other = invoke([*argv, "-l", "-2,-1"], work)
    assert other.exit_code == 2 and "other settings (layers" in other.stderr, other.output
    assert invoke([*argv, "-l", "-2,-1", "--force"], work).exit_code == 0
    with h5py.File(out, "r") as f:
        assert f.attrs["layers"] == "[-2, -1]" and f["paths"].shape == (6,)
    tags = ["tag", work / "run", work / "toy" / "audio", "--out", work / "t.csv"]
    assert invoke(tags, work).exit_code == 0
    (work / "t.csv").write_text((work / "t.csv").read_text().replace("tags,", "tags2,", 1))  # other columns
    assert invoke(tags, work).exit_code == 2
    assert invoke([*tags, "--force"], work).exit_code == 0 and "tags2" not in (work / "t.csv").read_text()
