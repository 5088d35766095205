"""Fuzz suite (issue 11): bad numeric and path options of every command, and malformed files of every
kind the tool reads (HDF5 stores and feature files, TOML recipes and run configs, CSV label files,
checkpoints, audio). Every case must end with exit 1 or 2, an `Error:` line on stderr (and at most a
`Hint:` line), no traceback, and nothing changed outside the case's own work folder: the shared
pipeline the cases read and a `victim` folder beside it are compared before and after each case.

Cases run in-process through Typer's CliRunner (no torch import per case). Examples per property:
hypothesis profile from SAMPLECNN_FUZZ_PROFILE (ci: 4, long: 25; see tests/_reliability.py); the
total tried is printed at the end of the module.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests._reliability import (
    TINY_MODEL,
    assert_clean_failure,
    build_pipeline,
    copy_into,
    invoke,
    report_counts,
    tree_state,
)

pytestmark = pytest.mark.filterwarnings("ignore")


@pytest.fixture(scope="module")
def pipe(tmp_path_factory, request):
    base = tmp_path_factory.mktemp("fuzz")
    data = build_pipeline(base / "pipeline")
    victim = base / "victim"
    victim.mkdir()
    (victim / "precious.txt").write_text("must survive")
    data["victim"] = victim
    data["cases"] = base / "cases"
    data["cases"].mkdir()
    data["emb"] = _embeddings(data, base / "emb.h5")
    yield data
    reporter = request.config.pluginmanager.getplugin("terminalreporter")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled():  # shown even when every test passed
        report_counts(lambda line: reporter.write_line(f"\n[test_fuzz] {line}"))


def _embeddings(data: dict, out: Path) -> Path:
    """An embedding file of the toy audio through the pipeline's run (what `similar` reads)."""
    result = invoke(["embed", data["run"], data["toy"] / "audio", "--out", out, "-j", "0", "--json"], out.parent)
    assert result.exit_code == 0, result.output
    return out


# Known failures, by case id, with their reason: shown as xfail (not strict: a fix turns them into
# XPASS) until fixed. Empty: every failure this suite found has been fixed.
KNOWN: dict[str, str] = {}


def cases(table: list[tuple]) -> list:
    """pytest params of a case table, the KNOWN ones marked xfail with their reason."""
    return [pytest.param(*row, id=row[0], marks=[pytest.mark.xfail(reason=KNOWN[row[0]], strict=False)]
                         if row[0] in KNOWN else []) for row in table]


def run_case(pipe, make_argv) -> None:
    """Make a fresh work folder, build the argv inside it, run, check, remove the folder."""
    work = Path(tempfile.mkdtemp(dir=pipe["cases"]))
    try:
        argv = make_argv(work)
        before = tree_state(pipe["root"], pipe["victim"])
        result = invoke(argv, work)
        after = tree_state(pipe["root"], pipe["victim"])
        assert_clean_failure(result, argv, before, after)
    finally:
        shutil.rmtree(work, ignore_errors=True)


# -- values --------------------------------------------------------------------------------------
def _text_number() -> st.SearchStrategy[str]:
    """Strings that are no number at all (Click rejects them with exit 2)."""
    return st.one_of(st.sampled_from(["", "abc", "1,5", "--", "0x", "1e", "١٢", "NaNa", " "]),
                     st.text(alphabet="abc!?_ /.", min_size=1, max_size=8))


def bad_int(low: int | None = None, high: int | None = None) -> st.SearchStrategy[str]:
    """An int option's invalid values: below `low`, above `high`, a float, or no number."""
    options = [_text_number(), st.sampled_from(["1.5", "nan", "inf", "1e3"])]
    if low is not None:
        options.append(st.integers(max_value=low - 1).map(str))
    if high is not None:
        options.append(st.integers(min_value=high + 1).map(str))
    return st.one_of(options)


def bad_float(valid_low: float | None = None, valid_high: float | None = None, *,
              low_ok: bool = False, high_ok: bool = False) -> st.SearchStrategy[str]:
    """A float option's invalid values when the valid range is valid_low..valid_high (each end included
    when low_ok / high_ok): nan, values beyond the ends, or no number at all."""
    options = [_text_number(), st.sampled_from(["nan", "-nan", "NaN"])]
    if valid_low is not None:
        options.append(st.floats(max_value=valid_low, exclude_max=low_ok, allow_nan=False).map(repr))
    if valid_high is not None:
        options.append(st.floats(min_value=valid_high, exclude_min=high_ok, allow_nan=False).map(repr))
    return st.one_of(options)


def bad_word(*good: str) -> st.SearchStrategy[str]:
    """A word no option accepts (letters only: a digit string may be a valid index or layer)."""
    return st.text(alphabet="abcdefxyz_", min_size=1, max_size=10).filter(lambda w: w not in good)


# -- every command's numeric and word options ----------------------------------------------------
CHEAP_TRAIN = ["--epochs", "1", "--device", "cpu", "--precision", "fp32"]  # a value wrongly accepted costs
CHEAP_MLP = ["--epochs", "1", "--hidden", "8", "--device", "cpu"]  # seconds, not minutes

# (name, argv before the bad option (paths from the pipeline), option, strategy of bad values)
OPTION_CASES = [
    ("train --epochs", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r"], "--epochs", bad_int(1)),
    ("train -b", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r", *CHEAP_TRAIN], "-b", bad_int(1)),
    ("train --lr", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r", *CHEAP_TRAIN], "--lr", bad_float(0.0)),
    ("train --workers", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r", *CHEAP_TRAIN], "--workers",
     bad_int(0)),
    ("train --dropout", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r", *CHEAP_TRAIN], "--dropout",
     bad_float(0.0, 1.0, low_ok=True)),
    ("train --precision", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r", *CHEAP_TRAIN], "--precision",
     bad_word("fp32", "bf16", "fp16", "auto")),
    ("train --device", lambda p, w: ["train", TINY_MODEL, "-d", p["store"], "-o", w / "r", *CHEAP_TRAIN], "--device",
     bad_word("auto", "cpu", "cuda")),
    ("train MODEL", lambda p, w: ["train", "-d", p["store"], "-o", w / "r"], "", bad_word()),
    ("evaluate -b", lambda p, w: ["evaluate", p["run"]], "-b", bad_int(1)),
    ("evaluate --split", lambda p, w: ["evaluate", p["run"]], "--split", bad_word("train", "valid", "test")),
    ("evaluate -c", lambda p, w: ["evaluate", p["run"]], "-c", bad_word("best", "last")),
    ("evaluate -p", lambda p, w: ["evaluate", p["run"]], "-p", bad_word("fp32", "bf16", "fp16", "auto")),
    ("tag -b", lambda p, w: ["tag", p["run"], p["wav"]], "-b", bad_int(1)),
    ("tag -k", lambda p, w: ["tag", p["run"], p["wav"]], "-k", bad_int(1)),
    ("extract -b", lambda p, w: ["extract", p["run"], "-d", p["store"], "-o", w / "f.h5"], "-b", bad_int(1)),
    ("extract --layers", lambda p, w: ["extract", p["run"], "-d", p["store"], "-o", w / "f.h5"], "--layers",
     st.one_of(st.integers().filter(lambda n: n not in (-1, -2, -3)).map(str), bad_word("-1", "-2", "-3"))),
    ("extract --pooling", lambda p, w: ["extract", p["run"], "-d", p["store"], "-o", w / "f.h5"], "--pooling",
     bad_word("max", "avg", "max,avg", "avg,max", "both")),
    ("extract --splits", lambda p, w: ["extract", p["run"], "-d", p["store"], "-o", w / "f.h5"], "--splits",
     bad_word("train", "valid", "test")),
    ("transfer --hidden", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "--hidden", bad_int(1)),
    ("transfer --dropout", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "--dropout",
     bad_float(0.0, 1.0, low_ok=True)),
    ("transfer --epochs", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "--epochs", bad_int(1)),
    ("transfer --patience", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "--patience", bad_int(0)),
    ("transfer --lr", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "--lr", bad_float(0.0)),
    ("transfer -b", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "-b", bad_int(1)),
    ("transfer --layers", lambda p, w: ["transfer", p["features"], "-o", w / "t", *CHEAP_MLP], "--layers",
     st.integers().filter(lambda n: n not in (-1, -2, -3)).map(str)),
    ("tsne --layer", lambda p, w: ["tsne", p["features"], "--labels", "tone0", "-o", w / "t.png"], "--layer",
     st.one_of(st.integers().filter(lambda n: n not in (-1, -2, -3)).map(str), _text_number())),
    ("tsne --perplexity", lambda p, w: ["tsne", p["features"], "--labels", "tone0", "-o", w / "t.png"],
     "--perplexity", bad_float(0.0)),
    ("tsne --labels", lambda p, w: ["tsne", p["features"], "-o", w / "t.png"], "--labels",
     bad_word("tone0", "tone1", "tone2")),
    ("compare-features --hidden", lambda p, w: ["compare-features", p["features"], "-o", w / "c", *CHEAP_MLP], "--hidden",
     bad_int(1)),
    ("compare-features --epochs", lambda p, w: ["compare-features", p["features"], "-o", w / "c", *CHEAP_MLP], "--epochs",
     bad_int(1)),
    ("compare-features --lr", lambda p, w: ["compare-features", p["features"], "-o", w / "c", *CHEAP_MLP], "--lr",
     bad_float(0.0)),
    ("visualize-filters --layer", lambda p, w: ["visualize-filters", p["run"], "-o", w / "v"], "--layer",
     st.one_of(st.integers().filter(lambda n: not 1 <= n <= 3).map(str), bad_word("all"))),
    ("visualize-filters --filters", lambda p, w: ["visualize-filters", p["run"], "-o", w / "v"], "--filters",
     st.one_of(st.integers(min_value=10_000).map(str), st.integers(max_value=-1).map(str), bad_word("all"))),
    ("visualize-filters --steps", lambda p, w: ["visualize-filters", p["run"], "-o", w / "v", "-l", "2"],
     "--steps", bad_int(1)),
    ("visualize-filters --input-samples", lambda p, w: ["visualize-filters", p["run"], "-o", w / "v"],
     "--input-samples", bad_int(1)),
    ("preprocess --sr", lambda p, w: ["preprocess", "toy", "--root", p["toy"], "-o", w / "s", "--json"], "--sr",
     st.one_of(st.integers(max_value=999).map(str), st.integers(min_value=192_001).map(str), _text_number())),
    ("preprocess --workers", lambda p, w: ["preprocess", "toy", "--root", p["toy"], "-o", w / "s", "--json",
                                           "--sr", "8000"], "--workers", bad_int(0)),
    ("preprocess --shard", lambda p, w: ["preprocess", "toy", "--root", p["toy"], "-o", w / "s", "--json",
                                         "--sr", "8000"], "--shard",
     st.one_of(st.tuples(st.integers(), st.integers()).filter(lambda t: t[1] < 1 or not 1 <= t[0] <= t[1])
               .map(lambda t: f"{t[0]}/{t[1]}"), bad_word())),
    ("preprocess --clip-seconds", lambda p, w: ["preprocess", "toy", "--root", p["toy"], "-o", w / "s", "--json",
                                                "--sr", "8000"], "--clip-seconds",
     st.one_of(st.floats(max_value=0, exclude_max=True).map(repr), st.sampled_from(["nan", "inf"]))),
    ("preprocess DATASET", lambda p, w: ["preprocess", "--root", p["toy"], "-o", w / "s"], "",
     bad_word("toy", "folder", "mtat", "msd", "gtzan", "tagtraum")),
    ("make-toy --sr", lambda p, w: ["datasets", "make-toy", w / "toy", "--clips", "6", "--seconds", "0.5"], "--sr",
     st.integers().filter(lambda n: n not in (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000))
     .map(str)),
    ("make-toy --clips", lambda p, w: ["datasets", "make-toy", w / "toy", "--seconds", "0.5", "--sr", "8000"],
     "--clips", bad_int(6, 100_000)),
    ("make-toy --seconds", lambda p, w: ["datasets", "make-toy", w / "toy", "--sr", "8000"], "--seconds",
     bad_float(0.5, 60.0, low_ok=True, high_ok=True)),
    ("models info --num-outputs", lambda p, w: ["models", "info", TINY_MODEL], "--num-outputs", bad_int(1)),
    ("models info MODEL", lambda p, w: ["models", "info"], "", bad_word()),
    ("similar --top", lambda p, w: ["similar", p["emb"], p["wav"]], "--top", bad_int(1)),
    ("recipe run --set", lambda p, w: ["recipe", "run", p["recipe"], "--workdir", w / "rw"], "--set",
     st.one_of(st.text(alphabet="abc", max_size=5), st.text(alphabet="xyz", min_size=1, max_size=5)
               .map(lambda k: f"{k}=1"), st.just("=3"))),
    ("demo --set", lambda p, w: ["demo", "-o", w / "demo", "--smoke"], "--set",
     st.text(alphabet="xyz", min_size=1, max_size=5).map(lambda k: f"{k}=1")),
]


@pytest.mark.parametrize("name,head,option,values", cases(OPTION_CASES))
def test_bad_option_values(pipe, name, head, option, values):
    @given(value=values)
    def case(value):
        run_case(pipe, lambda work: [*head(pipe, work), *([option] if option else []), value])

    case()


# -- path options --------------------------------------------------------------------------------
PATH_KINDS = ["missing", "empty-file", "garbage-file", "folder", "empty-folder", "dev-null", "loop", "under-file",
              "outside-victim-file"]


def bad_path(kind: str, work: Path, pipe, name: str) -> Path:
    """A path of the given kind, made inside `work` (the victim file is only ever read)."""
    path = work / name
    if kind == "missing":
        return path
    if kind == "empty-file":
        path.write_bytes(b"")
    elif kind == "garbage-file":
        path.write_bytes(b"\x00garbage\xff" * 40)
    elif kind == "folder":
        path.mkdir()
        (path / "x.txt").write_text("x")
    elif kind == "empty-folder":
        path.mkdir()
    elif kind == "dev-null":
        return Path("/dev/null")
    elif kind == "loop":
        path.symlink_to(path)
    elif kind == "under-file":
        (work / "plain.txt").write_text("x")
        return work / "plain.txt" / name
    elif kind == "outside-victim-file":
        return pipe["victim"] / "precious.txt"
    return path


# (name, argv builder taking the bad path, kinds that must fail)
PATH_CASES = [
    ("train --data", lambda p, w, bad: ["train", TINY_MODEL, "-d", bad, "-o", w / "r"], PATH_KINDS),
    ("evaluate RUN", lambda p, w, bad: ["evaluate", bad], PATH_KINDS),
    ("evaluate --data", lambda p, w, bad: ["evaluate", p["run"], "-d", bad], PATH_KINDS),
    ("tag RUN", lambda p, w, bad: ["tag", bad, p["wav"]], PATH_KINDS),
    ("tag FILE", lambda p, w, bad: ["tag", p["run"], bad], [k for k in PATH_KINDS if k != "outside-victim-file"]),
    ("extract RUN", lambda p, w, bad: ["extract", bad, "-d", p["store"], "-o", w / "f.h5"], PATH_KINDS),
    ("extract --data", lambda p, w, bad: ["extract", p["run"], "-d", bad, "-o", w / "f.h5"], PATH_KINDS),
    ("extract --out", lambda p, w, bad: ["extract", p["run"], "-d", p["store"], "-o", bad],
     ["folder", "empty-folder", "loop", "under-file"]),
    ("transfer FEATURES", lambda p, w, bad: ["transfer", bad, "-o", w / "t"], PATH_KINDS),
    ("transfer --out", lambda p, w, bad: ["transfer", p["features"], "-o", bad, "--epochs", "1"],
     ["empty-file", "garbage-file", "folder", "loop", "under-file"]),
    ("tsne FEATURES", lambda p, w, bad: ["tsne", bad, "--labels", "tone0", "-o", w / "t.png"], PATH_KINDS),
    ("compare-features FEATURES", lambda p, w, bad: ["compare-features", bad, "-o", w / "c"], PATH_KINDS),
    ("visualize-filters RUN", lambda p, w, bad: ["visualize-filters", bad, "-o", w / "v"], PATH_KINDS),
    ("report RUNS", lambda p, w, bad: ["report", bad, "-o", w / "rep"],
     [k for k in PATH_KINDS if k not in ("folder", "empty-folder")]),
    ("preprocess --root", lambda p, w, bad: ["preprocess", "folder", "--root", bad, "-o", w / "s", "--json"],
     PATH_KINDS),
    ("preprocess --labels", lambda p, w, bad: ["preprocess", "folder", "--root", p["toy"], "--labels", bad,
                                               "-o", w / "s", "--json"], PATH_KINDS),
    ("preprocess --out", lambda p, w, bad: ["preprocess", "toy", "--root", p["toy"], "-o", bad, "--sr", "8000",
                                            "--json"], ["empty-file", "garbage-file", "loop", "under-file"]),
    ("datasets info", lambda p, w, bad: ["datasets", "info", bad], PATH_KINDS),
    ("make-toy DIR", lambda p, w, bad: ["datasets", "make-toy", bad, "--clips", "6", "--seconds", "0.5",
                                        "--sr", "8000"], ["empty-file", "garbage-file", "folder", "loop",
                                                          "under-file", "dev-null"]),
    ("recipe run RECIPE", lambda p, w, bad: ["recipe", "run", bad, "--workdir", w / "rw"], PATH_KINDS),
    ("similar EMB", lambda p, w, bad: ["similar", bad, p["wav"]], PATH_KINDS),
    ("recipe run --workdir", lambda p, w, bad: ["recipe", "run", p["recipe"], "--workdir", bad],
     ["empty-file", "garbage-file", "loop", "under-file", "dev-null"]),
]


@pytest.mark.parametrize("name,build,kinds", cases(PATH_CASES))
def test_bad_paths(pipe, name, build, kinds):
    @given(kind=st.sampled_from(kinds), stem=st.text(alphabet="abcé _-.xyz", min_size=1, max_size=12)
           .filter(lambda s: s not in (".", "..") and not s.startswith("-")))
    def case(kind, stem):
        run_case(pipe, lambda work: build(pipe, work, bad_path(kind, work, pipe, stem)))

    case()


# -- outputs that name what is already there (issue 20): the pipeline is compared before and after -----
PIPELINE_FILES = {"checkpoint": lambda p: p["checkpoint"], "last checkpoint": lambda p: p["run"] / "checkpoints" / "last.pt",
                  "run config": lambda p: p["run"] / "config.toml", "metrics": lambda p: p["run"] / "metrics.jsonl",
                  "store split": lambda p: p["store"] / "train.h5", "wav input": lambda p: p["wav"],
                  "mp3 input": lambda p: p["mp3"], "labels.csv": lambda p: p["toy"] / "labels.csv",
                  "features": lambda p: p["features"], "recipe": lambda p: p["recipe"],
                  "transfer checkpoint": lambda p: p["transfer"] / "checkpoints" / "best.pt",
                  "victim": lambda p: p["victim"] / "precious.txt"}
# (name, argv with --out = the target, kinds of target that are the command's own and so replaceable)
OUT_CASES = [
    ("tag --out", lambda p, out: ["tag", p["run"], p["toy"] / "audio", "--out", out], ()),
    ("embed --out", lambda p, out: ["embed", p["run"], p["toy"] / "audio", "--out", out], ()),
    ("extract --out", lambda p, out: ["extract", p["run"], "-d", p["store"], "--out", out], ("features",)),
    ("export --out", lambda p, out: ["export", p["run"], "--out", out, "-f", "torchscript"], ()),
    ("tsne --out", lambda p, out: ["tsne", p["features"], "--labels", "tone0,tone1", "--split", "train", "--out", out],
     ()),
]


@pytest.mark.parametrize("name,build,own", cases(OUT_CASES))
def test_outputs_never_replace_what_is_there(pipe, name, build, own):
    targets = sorted(k for k in PIPELINE_FILES if k not in own)

    @given(target=st.sampled_from(targets))
    def case(target):
        run_case(pipe, lambda work: build(pipe, PIPELINE_FILES[target](pipe)))

    case()


# -- malformed files -----------------------------------------------------------------------------
def damage(data: bytes, how: str, where: float, noise: bytes) -> bytes:
    """A damaged copy of `data`: cut short, emptied, replaced by noise, or its head overwritten."""
    if how == "truncate":
        return data[:min(len(data) - 1, int(len(data) * where))]
    if how == "empty":
        return b""
    if how == "noise":
        return noise
    cut = max(8, int(min(len(data), 4096) * where))  # "head": the header/superblock is gone
    return (noise * (cut // max(len(noise), 1) + 1))[:cut] + data[cut:]


# A truncated WAV or MP3 is still audio (shorter), and an MP3 decoder resyncs past a damaged head:
# audio is damaged by emptying it or replacing it with noise.
audio_damages = st.tuples(st.sampled_from(["empty", "noise"]), st.just(0.5),
                          st.binary(min_size=1, max_size=3000).filter(lambda b: not b.startswith((b"RIFF", b"ID3"))))
damages = st.tuples(st.sampled_from(["truncate", "empty", "noise", "head"]), st.floats(0.0, 0.999),
                    st.binary(min_size=1, max_size=3000).filter(lambda b: not b.startswith((b"PK", b"\x89HDF"))))


def _with_damaged(pipe, work, source: Path, member: str | None, spec) -> Path:
    """Copy `source` (a file, or a folder whose `member` file is damaged) into `work`, damage, return it."""
    copy = copy_into(source, work)
    target = copy / member if member else copy
    target.write_bytes(damage(target.read_bytes(), *spec))
    return copy


FILE_CASES = [
    # store files: every reader of a store
    ("store: train --data", "store", "train.h5",
     lambda p, w, c: ["train", TINY_MODEL, "-d", c, "-o", w / "r", "--epochs", "1", "--device", "cpu"]),
    ("store: evaluate --data", "store", "test.h5", lambda p, w, c: ["evaluate", p["run"], "-d", c]),
    ("store: extract --data", "store", "valid.h5",
     lambda p, w, c: ["extract", p["run"], "-d", c, "-o", w / "f.h5"]),
    ("store: datasets info", "store", "train.h5", lambda p, w, c: ["datasets", "info", c]),
    # feature files
    ("features: transfer", "features", None, lambda p, w, c: ["transfer", c, "-o", w / "t", "--epochs", "1"]),
    ("features: tsne", "features", None, lambda p, w, c: ["tsne", c, "--labels", "tone0", "-o", w / "t.png"]),
    ("features: compare-features", "features", None,
     lambda p, w, c: ["compare-features", c, "-o", w / "c", "--epochs", "1"]),
    # checkpoints and run configs (a copied run folder with one file damaged)
    ("checkpoint: evaluate", "run", "checkpoints/best.pt", lambda p, w, c: ["evaluate", c]),
    ("checkpoint: tag", "run", "checkpoints/best.pt", lambda p, w, c: ["tag", c, p["wav"]]),
    ("checkpoint: extract", "run", "checkpoints/best.pt",
     lambda p, w, c: ["extract", c, "-d", p["store"], "-o", w / "f.h5"]),
    ("checkpoint: visualize-filters", "run", "checkpoints/best.pt",
     lambda p, w, c: ["visualize-filters", c, "-o", w / "v"]),
    ("checkpoint: train --resume", "run", "checkpoints/last.pt",
     lambda p, w, c: ["train", TINY_MODEL, "-d", p["store"], "-o", c, "--resume", "--epochs", "2",
                      "--device", "cpu", "--precision", "fp32"]),
    ("config.toml: evaluate", "run", "config.toml", lambda p, w, c: ["evaluate", c]),
    ("config.toml: tag", "run", "config.toml", lambda p, w, c: ["tag", c, p["wav"]]),
    ("config.toml: extract", "run", "config.toml",
     lambda p, w, c: ["extract", c, "-d", p["store"], "-o", w / "f.h5"]),
    ("config.toml: visualize-filters", "run", "config.toml",
     lambda p, w, c: ["visualize-filters", c, "-o", w / "v"]),
    ("transfer checkpoint: evaluate", "transfer", "checkpoints/best.pt", lambda p, w, c: ["evaluate", c]),
    # embedding files
    ("embeddings: similar", "emb", None, lambda p, w, c: ["similar", c, p["wav"], "-j", "0"]),
    # audio
    ("audio wav: tag", "wav", None, lambda p, w, c: ["tag", p["run"], c]),
    ("audio wav: similar", "wav", None, lambda p, w, c: ["similar", p["emb"], c, "-j", "0"]),
    ("audio mp3: tag", "mp3", None, lambda p, w, c: ["tag", p["run"], c]),
]


@pytest.mark.parametrize("name,source,member,build", cases(FILE_CASES))
def test_malformed_files(pipe, name, source, member, build):
    @given(spec=audio_damages if source in ("wav", "mp3") else damages)
    def case(spec):
        run_case(pipe, lambda work: build(pipe, work, _with_damaged(pipe, work, pipe[source], member, spec)))

    case()


# TOML: recipes that are not TOML, or TOML of the wrong shape
toml_values = st.recursive(
    st.one_of(st.integers(), st.booleans(), st.text(max_size=6),
              st.floats(allow_nan=False, allow_infinity=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.text("abc", min_size=1, max_size=3),
                                                                          inner, max_size=3)),
    max_leaves=6)
recipe_shapes = st.fixed_dictionaries(
    {}, optional={"title": toml_values, "vars": toml_values, "datasets": toml_values, "smoke": toml_values,
                  "steps": st.one_of(toml_values, st.lists(st.dictionaries(
                      st.sampled_from(["name", "command", "deps", "outputs", "clean", "foreach", "when",
                                       "estimate", "bogus"]), toml_values, max_size=5), max_size=3))})


def _bad_recipe(doc: dict) -> bool:
    """Keep only documents that cannot be a valid recipe (valid ones may legitimately run)."""
    steps = doc.get("steps")
    return not (isinstance(doc.get("title"), str) and doc["title"].strip() and isinstance(steps, list) and steps
                and all(isinstance(s, dict) and set(s) <= {"name", "command"} and isinstance(s.get("name"), str)
                        and isinstance(s.get("command"), list) for s in steps))


@given(doc=recipe_shapes.filter(_bad_recipe), garbage=st.one_of(st.none(), st.text(max_size=80)))
def test_malformed_recipes(pipe, doc, garbage):
    import tomli_w

    def argv(work):
        path = work / "bad.toml"
        if garbage is not None and garbage.strip():
            path.write_text("[[steps]\n" + garbage)  # never valid TOML
        else:
            path.write_text(tomli_w.dumps(doc))
        return ["recipe", "run", path, "--workdir", work / "rw"]

    run_case(pipe, argv)


# CSV label files of the folder adapter
csv_rows = st.lists(st.fixed_dictionaries({
    "path": st.one_of(st.sampled_from(["", "missing.wav", "../../../../etc/passwd", "/etc/hostname", "audio",
                                       "audio/../../x.wav"]), st.text(max_size=10)),
    "label": st.one_of(st.just(""), st.text(max_size=5)),
    "split": st.one_of(st.sampled_from(["train", "valid", "test", "", "TRAIN", "dev"]), st.text(max_size=4)),
}), max_size=8)


@given(rows=csv_rows, header=st.sampled_from(["path,label,split", "path,split", "file,label", "",
                                              "path\tlabel\tsplit", "path,tags", "path,label,label",
                                              "path,path,label", "path,label,Label"]),
       raw=st.one_of(st.none(), st.binary(max_size=200)))
def test_malformed_label_files(pipe, rows, header, raw):
    import csv
    import io

    def argv(work):
        root = work / "data"
        root.mkdir()
        labels = root / "labels.csv"
        if raw is not None:
            labels.write_bytes(b"\xff\xfe" + raw)  # not UTF-8 text
        else:
            buffer = io.StringIO()
            buffer.write(header + "\n")
            writer = csv.writer(buffer, delimiter="\t" if "\t" in header else ",")
            for row in rows:
                writer.writerow([row["path"], row["label"], row["split"]])
            labels.write_text(buffer.getvalue())
        return ["preprocess", "folder", "--root", root, "-o", work / "s", "--sr", "8000", "--workers", "1",
                "--json"]

    run_case(pipe, argv)

