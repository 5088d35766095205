"""Executable documentation: every command shown in README.md and docs/*.md runs here (tests/_docs.py says
what counts as a command), and so do their Python and TOML blocks.

Each command has one row in ROWS (a new command in the docs without a row fails
`test_every_doc_command_has_a_row`). A row either runs the command in a workspace folder (`ws`, the
current folder of every command, so the docs' relative paths work) or says why it does not:
- `run`: the command as run, when it differs from the docs (`why` says how and why: a placeholder filled
  in, the toy data instead of an absent dataset, one epoch instead of thirty); `code` its exit code,
  `expect` regexes its output must match line by line in order ("shown": the output the docs show,
  box drawing and spacing aside), `files` what it must leave behind, `again` regexes for a second run.
- `skip`: needs data or hardware that is not here (MTAT, CUDA); `covered`: another test runs it.
Every `samplecnn` command also parses against the CLI (`test_every_doc_command_parses`), whether or not it
runs here. The commands share one workspace and one trained toy run (the README's `train`, one epoch on a
small toy store), built once per session in the order the docs show them.
"""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import shutil
import sys
import tomllib
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import typer
from typer.testing import CliRunner

from samplecnn_cli.cli.app import app
from tests._docs import REPO, blocks, doc_commands, patterns_in_order, shell_args, shown_lines_appear
from tests.conftest import SHARED_DATA

NUMBER = r"[\d,]+(\.\d+)?"
NO_FSDD = f"the FSDD recordings are not at {SHARED_DATA / 'fsdd'} (only in the project's own checkout)"


@dataclass(frozen=True)
class Row:
    run: str | None = None  # the command as run (None: as the docs show it)
    why: str = ""  # why `run` differs from the docs, or why it is skipped / covered
    code: int = 0
    expect: tuple[str, ...] | str = ()  # regexes in order, or "shown"
    files: tuple[str, ...] = ()
    again: tuple[str, ...] = ()  # a rerun's output (resume, up to date)
    needs: tuple[str, ...] = ()  # SETUP steps or other rows' keys, run first
    shared: bool = False  # needs ../shared/data (skipped with the reason when absent)
    skip: str = ""
    covered: str = ""  # "tests/x.py::test_y": the test that runs it


TOY_RUN = "samplecnn train 'sample-3^7' --data stores/fsdd --out runs/fsdd --recipe paper"
EMBED = "samplecnn embed RUN ~/Music --out emb.h5"
EXTRACT = "samplecnn extract runs/a runs/b --data stores/gtzan --out features/gtzan.h5"
TOY_STORE = "samplecnn preprocess --sr 8000"
FSDD_STORE = "samplecnn preprocess folder --root ../shared/data/fsdd --sr 8000 --out stores/fsdd"
FILLED = "placeholders filled in: RUN is the toy run (runs/fsdd), ~/Music a folder of four toy files"

ROWS: dict[str, Row] = {
    # -- README.md --------------------------------------------------------------------------------
    "make demo": Row(covered="tests/test_demo.py::test_demo_smoke_prints_report_and_rerun_skips",
                     why="`make demo` installs, then runs `samplecnn demo` (minutes); the test runs the demo "
                         "at --smoke scale"),
    "make test": Row(covered="tests/", why="it is this test suite"),
    FSDD_STORE: Row(shared=True, why="the seconds and the speed are this machine's", expect=(rf"^folder: wrote 3000 clips \(train 2430, valid 270, test 300\) to "
                                         rf"stores/fsdd in {NUMBER} s \({NUMBER}x realtime\)$",),
                    again=(r"^folder: stores/fsdd is up to date \(3000 clips; --force redoes it\)$",)),
    TOY_STORE: Row(expect=(r"^toy: wrote 240 clips \(train 168, valid 36, test 36\) to \S+/data/toy/8000 in",),
                   files=("data/toy/8000/train.h5", "data/raw/toy/labels.csv")),
    "samplecnn datasets info stores/fsdd": Row(shared=True, needs=(FSDD_STORE,), expect="shown"),
    "samplecnn datasets make-toy toy/": Row(expect=(r"^wrote 240 clips \(train 168, valid 36, test 36\) to toy$",
                                                    r"^tags: flute \d+, organ \d+"), files=("toy/labels.csv",)),
    "samplecnn models list [PATTERN]": Row(run="samplecnn models list 'frame-*'", why="PATTERN filled in",
                                           expect=(r"^samplecnn models \(\d+\)$", r"^frame-mel-729\s")),
    "samplecnn models info NAME": Row(run="samplecnn models info sample-8k", why="NAME filled in",
                                      expect=(r"^sample-3-3-3-3-2-2-4-4-2-2: sample, 20,736 samples = 2,592 ms",)),
    "samplecnn models list 'sample-*k'": Row(expect="shown"),
    "samplecnn models info 'sample-3^9'": Row(expect="shown"),
    TOY_RUN: Row(
        run="samplecnn train 'sample-3^7' --data data/toysmall/8000 --out runs/fsdd --recipe paper --epochs 1",
        why="the docs show FSDD's 33 epochs (25 minutes): here one epoch on a 30-clip toy store, the run every "
            "later command shares (machine-specific figures: losses, speed, seconds)",
        needs=("toysmall",),
        expect=(r"^Training sample-3\^7 \([\d,]+ params\) on \S+ \([\d,]+ training segments of 6,561 samples\), "
                r"cpu, (fp32|bf16), batch 23 -> runs/fsdd$", r"^epoch 1: train loss [\d.]+, valid loss",
                rf"^Done: 1 epochs in {NUMBER} s, best epoch 1 \(valid loss [\d.]+\); stopped: .*\.$",
                r"^Run: runs/fsdd$")),
    "samplecnn evaluate runs/fsdd": Row(needs=(TOY_RUN,), why="the toy run's metrics, not FSDD's",
                                       expect=(r"^sample-3\^7 on test \(\d+ clips, (fp32|bf16) as trained, (eager|batch norm folded \(\S+\))\): "
                                               r"ROC-AUC [\d.]+, PR-AUC [\d.]+$",
                                               r"^Wrote runs/fsdd/metrics.json$")),
    "samplecnn tag runs/fsdd recordings/7_theo_3.wav --top-k 3": Row(
        needs=(TOY_RUN, "recordings"), shared=True, why="the toy run's tags of an FSDD recording",
        expect=(r"^\s*file\s+seconds\s+#1\s+#2\s+#3\s*$",
                r"^\s*recordings/7_theo_3\.wav\s+[\d.]+( \(short\))?(\s+\w+ [01]\.\d{3}){3}\s*$")),
    "samplecnn bench train 'sample-3^9' --json": Row(
        covered="tests/test_bench.py::test_bench_json",
        why="the same command on sample-3^3 (a 3^9 step takes seconds on a CPU)"),
    "samplecnn tag RUN ~/Music --out tags.csv": Row(
        run="samplecnn tag runs/fsdd Music --out tags.csv", why=FILLED, needs=(TOY_RUN, "music"),
        expect=(r"^Wrote tags.csv: 4 tagged, 0 failed, 0 already there \(",), files=("tags.csv",),
        again=(r"^Wrote tags.csv: 0 tagged, 0 failed, 4 already there \(",)),
    EMBED: Row(run="samplecnn embed runs/fsdd Music --out emb.h5", why=FILLED, needs=(TOY_RUN, "music"),
               expect=(r"^Wrote emb.h5: 4 files \(\d+ feature columns\), 0 failed, \d+x realtime$",),
               files=("emb.h5",)),
    "samplecnn similar emb.h5 ~/Music/song.mp3 --top 10": Row(
        run="samplecnn similar emb.h5 Music/song.mp3 --top 10", why=FILLED, needs=(EMBED,),
        expect=(r"^Music/song.mp3 \(a file of the library\), closest of 4 files:$", r"^\s*#\s+similarity\s+path",
                r"^\s*1\s+-?[01]\.\d{4}\s+/\S+/Music/", r"^\s*3\s+-?[01]\.\d{4}\s+/\S+/Music/")),
    "samplecnn export RUN --format onnx": Row(
        run="samplecnn export runs/fsdd --format onnx", why=FILLED, needs=(TOY_RUN,),
        expect=(r"^Wrote /\S+/runs/fsdd/export/fsdd.onnx \(onnx\): sample-3\^7, input 6561 samples at 8000 Hz",
                r"^Model card: /\S+/runs/fsdd/export/fsdd.json and /\S+/runs/fsdd/export/fsdd.md$"),
        files=("runs/fsdd/export/fsdd.onnx", "runs/fsdd/export/fsdd.json", "runs/fsdd/export/fsdd.md")),
    "samplecnn train sample-3^9 --dataset msd": Row(
        code=1, why="no MSD store here: the command stops with the hint that names the `samplecnn preprocess` "
                    "command making it, as the README says",
        expect=(r"^Error: .*msd", r"^Hint: .*samplecnn preprocess")),
    "torchrun --nproc-per-node 4 -m samplecnn_cli train 'sample-3^9' --dataset msd --batch-size 50 --device cuda":
        Row(skip="needs four CUDA GPUs and an MSD store; tests/test_distributed.py runs `train` under torchrun "
                 "with gloo on two CPU processes"),
    EXTRACT: Row(
        run="samplecnn extract runs/a runs/b --data data/toysmall/8000 --out features/gtzan.h5",
        why="GTZAN is not here: the toy store; runs/a is the toy run, runs/b an untrained sample-3^5 (another "
            "input size: multi-scale features)", needs=("runs/a", "runs/b"),
        expect=(r"^Wrote features/gtzan.h5: \d+ columns per clip \(train \d+, valid \d+, test \d+ clips\) from "
                r"2 run\(s\) in",), files=("features/gtzan.h5",)),
    "samplecnn transfer features/gtzan.h5 --out runs/gtzan-transfer --layers -1,-2,-3": Row(
        run="samplecnn transfer features/gtzan.h5 --out runs/gtzan-transfer --layers -1,-2,-3 --epochs 3 "
            "--hidden 256", why="three epochs of a 256-unit MLP instead of up to 100 of 4096", needs=(EXTRACT,),
        expect=(r"^Wrote runs/gtzan-transfer \(\d+ features, best epoch \d of 3\); test: roc_auc [\d.]+, "
                r"pr_auc [\d.]+$",)),
    "samplecnn compare-features features/gtzan.h5 --out tables/gtzan": Row(
        run="samplecnn compare-features features/gtzan.h5 --out tables/gtzan --epochs 2 --hidden 64",
        why="two epochs of a 64-unit MLP per choice instead of up to 100 of 4096", needs=(EXTRACT,),
        expect=(r"\|", r"layer -1"), files=("tables/gtzan/table.md", "tables/gtzan/table.json")),
    "samplecnn tsne features/mtat.h5 --layer -3 --labels piano,techno --out figures/tsne.png": Row(
        run="samplecnn tsne features/gtzan.h5 --layer -3 --labels high,low --out figures/tsne.png",
        why="MTAT is not here: the toy features and two toy tags", needs=(EXTRACT,),
        expect=(r"^Wrote figures/tsne.png and figures/tsne.json \(\d+ clips",), files=("figures/tsne.png",)),
    "samplecnn visualize-filters": Row(
        needs=(TOY_RUN,), why="the peaks depend on the trained weights",
        expect=(r"^layer 1: 128 filters, weights \(frequency response\), peaks [\d,]+-[\d,]+ Hz \(median [\d,]+\)$",
                r"^Figures and filters.json in ")),
    "samplecnn visualize-filters --layer 4": Row(
        run="samplecnn visualize-filters --layer 4 --filters 0,1", needs=(TOY_RUN,),
        why="two of the 256 filters (each is a gradient ascent of its own)",
        expect=(r"^layer 4: 2 filters, gradient ascent on 729 samples, peaks",)),
    "samplecnn visualize-filters --compare runs/2k runs/8k runs/22k --layer 1-4": Row(
        run="samplecnn visualize-filters --compare runs/2k runs/8k runs/22k --layer 1-4 --filters 0,1 --steps 2",
        why="runs/2k, 8k, 22k are untrained sample-3^4 runs at those rates; two filters per layer, two ascent "
            "steps",
        needs=("rate runs",), expect=(r"^Figure 4 \(3 runs\): \S+\.png$",)),
    "samplecnn report runs/* --out report/": Row(
        needs=(TOY_RUN, "samplecnn evaluate runs/fsdd"),
        expect=(r"^\d+ runs, \d+ tables, \d+ figures; Markdown: report/report.md$", r"report/report.html$"),
        files=("report/report.html",)),
    "samplecnn recipe list": Row(expect=tuple(rf"^ ?{name}\s+\d+\s" for name in (
        "demo", "figures", "table2-configurations", "table4-multiscale", "table5-downsampling", "table6-transfer"))),
    "samplecnn recipe run table5-downsampling --data-root /data --dry-run": Row(
        expect=(r"^table5-downsampling: .*\(full scale\); workdir \S+/recipes-work/table5-downsampling$",
                r"^\s+1\. ", r"^\s+\$ samplecnn ", r"^\d+ of \d+ step\(s\) to run\.$", r"^Estimated on real data: ")),
    "samplecnn recipe run table5-downsampling --data-root /data": Row(
        skip="needs MTAT under /data (and about five GPU hours); tests/test_recipe_smoke.py runs its steps at "
             "toy scale"),
    "samplecnn recipe run table5-downsampling --smoke": Row(
        covered="tests/test_recipe_smoke.py::test_recipe_smoke", why="the same command, --workdir in a tmp folder"),
    "samplecnn models list": Row(expect=(r"^samplecnn models \(\d+\)$", r"^sample-3\^9\s+sample-22k\s")),
    "samplecnn doctor": Row(covered="tests/test_doctor.py::test_doctor_json_on_this_machine",
                            why="the same checks (package loads take seconds), with the names shown here"),
    "samplecnn bench train MODEL": Row(run="samplecnn bench train 'sample-3^3' --steps 1 --batch-size 2",
                                       why="MODEL filled in, one step of batch 2",
                                       expect=(rf"^train sample-3\^3: {NUMBER} segments/s \(batch 2, ",)),
    # -- docs/data.md -----------------------------------------------------------------------------
    "samplecnn preprocess mtat --root /data/mtat --split-dir /data/music_dataset_split": Row(
        skip="needs MTAT and its split lists under /data (an hour of decoding)"),
    "samplecnn preprocess folder --root /data/fsdd --sr 8000 --out stores/fsdd": Row(
        run=FSDD_STORE, why="/data/fsdd is ../shared/data/fsdd here", shared=True,
        expect=(r"^folder: (wrote 3000 clips|stores/fsdd is up to date)",)),
    "samplecnn datasets info data/mtat/22050": Row(
        run="samplecnn datasets info data/toy/8000", why="no MTAT store here: the toy store of `preprocess --sr 8000`",
        needs=(TOY_STORE,), expect=(r"^toy store at data/toy/8000: 8000 Hz, multilabel, 8 labels$",
                                    r"^\s*label\s+train \(168 clips, [\d.]+ h\)", r"^\s*flute\s+\d+")),
    "samplecnn datasets list": Row(expect=tuple(rf"^\s*{name}\s+(multilabel|multiclass)\s" for name in (
        "folder", "gtzan", "msd", "mtat", "tagtraum", "toy"))),
    "samplecnn datasets make-toy demo/toy --clips 240": Row(expect=(r"^wrote 240 clips .* to demo/toy$",)),
    "samplecnn train MODEL --dataset NAME": Row(
        run="samplecnn train 'sample-3^7' --dataset toytiny --epochs 1",
        why="MODEL and NAME filled in: one epoch on a six-clip toy store", needs=("toytiny",),
        expect=(r"^Training sample-3\^7 .* on \S+/data/toytiny/8000 ", r"^Run: \S+/runs/\S+$")),
    "samplecnn datasets make-toy DIR [--clips 240] [--seconds 3.5] [--seed 0] [--sr 22050]": Row(
        run="samplecnn datasets make-toy toy-options --clips 12 --seconds 1 --seed 0 --sr 22050",
        why="DIR filled in, every option given (12 one-second clips)",
        expect=(r"^wrote 12 clips \(train \d+, valid \d+, test \d+\) to toy-options$",)),
    # -- docs/inference.md ------------------------------------------------------------------------
    "samplecnn tag RUN song.mp3 --hop 1.0 --timeline --taggram pngs/": Row(
        run="samplecnn tag runs/fsdd song.mp3 --hop 1.0 --timeline --taggram pngs/", why=FILLED,
        needs=(TOY_RUN, "music"), expect=(r"^\s*song.mp3\s+[\d.]+\s+\w+ [01]\.\d{3}",), files=("pngs/song.png",)),
    "samplecnn embed RUN ~/Music --out emb.h5 [--hop 1.5] [--layers -3,-2,-1]": Row(
        run="samplecnn embed runs/fsdd Music --out emb-windows.h5 --hop 1.5 --layers -3,-2,-1",
        why=FILLED + "; the optional options given, into a file of its own", needs=(TOY_RUN, "music"),
        expect=(r"^Wrote emb-windows.h5: 4 files \(\d+ feature columns\), 0 failed",), files=("emb-windows.h5",)),
    "samplecnn similar emb.h5 recording.wav --top 10 --json": Row(
        needs=(EMBED, "music"), expect=(r'"query": "recording.wav"', r'"in_library": false', r'"rank": 4,')),
    "samplecnn export RUN --format onnx --out model.onnx": Row(
        run="samplecnn export runs/fsdd --format onnx --out model.onnx", why=FILLED, needs=(TOY_RUN,),
        expect=(r"^Wrote model.onnx \(onnx\)",), files=("model.onnx", "model.json", "model.md")),
    "samplecnn export RUN --format torchscript --out tagger.pt": Row(
        run="samplecnn export runs/fsdd --format torchscript --out tagger.pt", why=FILLED, needs=(TOY_RUN,),
        expect=(r"^Wrote tagger.pt \(torchscript\)",), files=("tagger.pt", "tagger.json", "tagger.md")),
    "samplecnn tag RUN song.wav --precision fp32": Row(
        covered="tests/test_docs.py::test_deployment_example_reproduces_tag",
        why="compared there with the deployment example's scores"),
    "samplecnn bench infer sample-3^9 --compare": Row(
        covered="tests/test_bench.py::test_bench_compare_times_plain_in_both_allocators_and_ours",
        why="the same comparison on sample-3^3 (a fresh process and 3^9 steps take half a minute)"),
    ".venv/bin/python benchmarks/bench_tag_library.py --files 100 --plain-files 20": Row(
        skip="a benchmark (`make bench`): decodes and tags 100 MP3s, minutes; its figures are in "
             "docs/performance.md"),
    # -- docs/performance.md ----------------------------------------------------------------------
    "samplecnn bench train sample-3^9 --compare": Row(
        covered="tests/test_bench.py::test_bench_compare_times_plain_in_both_allocators_and_ours",
        why="the same comparison on sample-3^3"),
    # -- docs/recipes.md --------------------------------------------------------------------------
    "samplecnn recipe run table5-downsampling --dry-run": Row(
        expect=(r"^table5-downsampling: .*\(full scale\)", r"^\d+ of \d+ step\(s\) to run\.$")),
    "samplecnn recipe run my-recipe.toml --set epochs=3 --workdir runs/exp1": Row(
        needs=("my-recipe.toml",), why="my-recipe.toml: one step, `datasets make-toy` with --seconds ${epochs}",
        expect=(r"^\[1/1\] toy: running \(",
                r"^  \$ samplecnn datasets make-toy \S+/runs/exp1/toy --clips 6 --seconds 3$",
                r"^Recipe my-recipe finished in [\d.]+ s: 1 step\(s\) ran, 0 skipped\. Outputs in \S+/runs/exp1$"),
        files=("runs/exp1/toy/labels.csv",),
        again=(r"^\[1/1\] toy: skipped \(unchanged\)$", r": 0 step\(s\) ran, 1 skipped\.")),
    "samplecnn demo": Row(covered="tests/test_demo.py::test_demo_smoke_prints_report_and_rerun_skips",
                          why="the full demo takes minutes; the test runs it at --smoke scale"),
    "samplecnn recipe run RECIPE": Row(
        run="samplecnn recipe run demo --dry-run --workdir demo-plan", why="RECIPE filled in, planned only",
        expect=(r"^demo: .*\(full scale\); workdir \S+/demo-plan$", r"^10 of 10 step\(s\) to run\.$")),
    "samplecnn demo [--out DIR] [--set KEY=VALUE] [--smoke]": Row(
        covered="tests/test_demo.py::test_demo_smoke_prints_report_and_rerun_skips", why="`demo --smoke --out DIR`"),
    "samplecnn demo --out /tmp/rt/fulldemo": Row(
        covered="tests/test_demo.py::test_demo_smoke_prints_report_and_rerun_skips",
        why="the measured full demo (12 minutes); the test runs it at --smoke scale"),
    # -- docs/training.md -------------------------------------------------------------------------
    "samplecnn train MODEL --recipe NAME": Row(
        run="samplecnn train 'sample-3^7' --recipe paper --data data/toytiny/8000 --out runs/paper --epochs 1",
        why="MODEL and NAME filled in, a store (six toy clips) and a folder given, one epoch", needs=("toytiny",),
        expect=(r"^Training sample-3\^7 ", r"^Run: runs/paper$")),
    ".venv/bin/python benchmarks/learning_quality.py --seeds 0,1,2 --loops toolkit,plain "
    "[--labels labels-multilabel.csv]": Row(
        skip="a benchmark: trains three seeds of two loops on the Philharmonia and FSDD recordings (hours)"),
    "samplecnn bench data STORE --workers 0,2,8 [--samples 59049] [--batch-size 23] [--json]": Row(
        run="samplecnn bench data data/toysmall/8000 --workers 0,2,8 --samples 6561 --batch-size 23 --json "
            "--batches 3", why="STORE is the small toy store (2 s clips, hence 6,561-sample segments); 3 batches",
        needs=("toysmall",), expect=(r'"workers": 0,', r'"workers": 2,', r'"workers": 8,')),
    "samplecnn bench train MODEL --json": Row(
        run="samplecnn bench train 'sample-3^3' --json --steps 1 --batch-size 2", why="MODEL filled in, one step",
        expect=(r'"achieved_gflops": ', r'"matmul_peak_gflops": ')),
}


# -- the workspace every command runs in ------------------------------------------------------------
class Workspace:
    """ws/ (the current folder of every command) beside shared/ (a link to ../shared when it is there),
    the setup steps and the rows, each run once, in the order they are needed."""

    def __init__(self, root: Path):
        self.ws = root / "ws"
        self.ws.mkdir(parents=True)
        if SHARED_DATA.is_dir():
            (root / "shared").symlink_to(SHARED_DATA.parent, target_is_directory=True)
        self.env = {"COLUMNS": None, "SAMPLECNN_INFERENCE_CACHE": str(root / "inference.json")}
        self.done: dict[str, object] = {}

    def need(self, name: str):
        if name not in self.done:
            self.done[name] = SETUP[name](self) if name in SETUP else self.run_row(name)
        return self.done[name]

    def cli(self, command: str):
        with contextlib.chdir(self.ws):
            return CliRunner().invoke(app, shell_args(command, self.ws), env=self.env)

    def run_row(self, key: str):
        row = ROWS[key]
        if row.shared and not SHARED_DATA.is_dir():
            return NO_FSDD
        for name in row.needs:
            if isinstance(self.need(name), str):
                return self.done[name]  # a skip reason
        result = self.cli(row.run or key)
        again = self.cli(row.run or key) if row.again and result.exit_code == row.code else None
        return result, again


def _toysmall(w: Workspace):
    """data/toysmall/8000: 30 two-second toy clips at 8 kHz (the README's `train` runs on it, and
    `--dataset toysmall`)."""
    from samplecnn_cli.data.datasets.toy import make_toy

    make_toy(w.ws / "toysmall-audio", clips=30, seconds=2.0, seed=1, sample_rate=22050)
    done = w.cli("samplecnn preprocess toy --root toysmall-audio --sr 8000 --out data/toysmall/8000")
    assert done.exit_code == 0, done.output


def _toytiny(w: Workspace):
    """data/toytiny/8000: six one-second toy clips, for the synopses of `train` (a second an epoch)."""
    from samplecnn_cli.data.datasets.toy import make_toy

    make_toy(w.ws / "toytiny-audio", clips=6, seconds=1.0, seed=2, sample_rate=8000)
    done = w.cli("samplecnn preprocess toy --root toytiny-audio --sr 8000 --out data/toytiny/8000")
    assert done.exit_code == 0, done.output


def _music(w: Workspace):
    """Music/ (four toy files, song.mp3 one of them), song.mp3, and recording.wav (stereo, 44.1 kHz)."""
    w.need("toysmall")
    audio = sorted((w.ws / "toysmall-audio" / "audio").iterdir())
    (w.ws / "Music").mkdir()
    for source in audio[:3]:
        shutil.copy(source, w.ws / "Music" / source.name)
    mp3 = next(p for p in audio[3:] if p.suffix == ".mp3")
    shutil.copy(mp3, w.ws / "Music" / "song.mp3")
    shutil.copy(mp3, w.ws / "song.mp3")
    t = np.arange(int(2.5 * 44100)) / 44100
    left, right = np.sin(2 * np.pi * 330 * t), np.sign(np.sin(2 * np.pi * 3 * t)) * np.sin(2 * np.pi * 880 * t)
    sf.write(w.ws / "recording.wav", 0.3 * np.stack([left, right], axis=1).astype(np.float32), 44100)


def _recordings(w: Workspace):
    (w.ws / "recordings").symlink_to(w.ws.parent / "shared" / "data" / "fsdd" / "recordings")


def _run_a(w: Workspace):
    w.need(TOY_RUN)
    shutil.copytree(w.ws / "runs" / "fsdd", w.ws / "runs" / "a")


def _fake_runs(w: Workspace, runs: dict[str, tuple[str, int]]):
    from samplecnn_cli.data.store import Store
    from tests.test_features_extract import fake_run

    w.need("toysmall")
    labels = Store(w.ws / "data" / "toysmall" / "8000").label_names
    for name, (model, rate) in runs.items():
        fake_run(w.ws / "runs" / name, model, sample_rate=rate, task="multilabel", label_names=labels)


def _my_recipe(w: Workspace):
    (w.ws / "my-recipe.toml").write_text('''title = "One toy dataset"
[vars]
epochs = 1
[[steps]]
name = "toy"
command = ["datasets", "make-toy", "${workdir}/toy", "--clips", "6", "--seconds", "${epochs}"]
outputs = ["${workdir}/toy"]
''')


SETUP = {"toysmall": _toysmall, "toytiny": _toytiny, "music": _music, "recordings": _recordings, "runs/a": _run_a,
         "runs/b": lambda w: _fake_runs(w, {"b": ("sample-3^5", 8000)}),
         "rate runs": lambda w: _fake_runs(w, {"2k": ("sample-3^4", 2000), "8k": ("sample-3^4", 8000),
                                               "22k": ("sample-3^4", 22050)}),
         "my-recipe.toml": _my_recipe}
COMMANDS = doc_commands()


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    import torch

    threads = torch.get_num_threads()
    yield Workspace(tmp_path_factory.mktemp("docs"))
    torch.set_num_threads(threads)  # `train` sets the process's threads


def test_every_doc_command_has_a_row():
    keys = [c.key for c in COMMANDS]
    assert [k for k in keys if k not in ROWS] == [], "add a row for each new command in the docs"
    assert [k for k in ROWS if k not in keys] == [], "rows of commands no longer in the docs"


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.doc}:{c.line}")
def test_doc_command_runs(workspace, command):
    row = ROWS[command.key]
    if row.skip:
        pytest.skip(row.skip)
    if row.covered:
        _check_covered(row)
        pytest.skip(f"runs in {row.covered}: {row.why}")
    outcome = workspace.need(command.key)
    if isinstance(outcome, str):
        pytest.skip(outcome)
    result, again = outcome
    _check_result(command, row, result, workspace.ws)
    if row.again:
        assert again is not None and again.exit_code == row.code, again.output if again else "no rerun"
        assert patterns_in_order(row.again, again.output) == [], again.output


def _check_result(command, row: Row, result, ws: Path) -> None:
    detail = result.output[-4000:] + ("".join(traceback.format_exception(*result.exc_info))
                                      if result.exc_info and result.exit_code not in (0, 1, 2) else "")
    assert result.exit_code == row.code, detail
    if row.expect == "shown":
        assert command.shown, "expect='shown' but the docs show no output"
        assert shown_lines_appear(command.shown, result.output) == [], result.output
    else:
        assert patterns_in_order(row.expect, result.output) == [], result.output
    assert [f for f in row.files if not (ws / f).exists()] == []


def _check_covered(row: Row) -> None:
    path, _, name = row.covered.partition("::")
    assert (REPO / path).exists(), row.covered
    if name:
        assert f"def {name}(" in (REPO / path).read_text(), row.covered


def test_shown_output_is_checked_or_said_to_be_machine_specific():
    """Output the docs show is compared line by line, or a row's `why` says what differs and regexes
    check its shape."""
    for command in COMMANDS:
        row = ROWS[command.key]
        if command.shown and row.expect != "shown" and not row.skip and not row.covered:
            assert row.expect and row.why, command.key


def test_adapted_commands_say_why():
    assert [k for k, row in ROWS.items() if (row.run and row.run != k or row.skip or row.covered) and not
            (row.why or row.skip)] == []


# -- every samplecnn command parses, whether it runs here or not --------------------------------------
PLACEHOLDERS = {"RUN": "runs/fsdd", "MODEL": "sample-3^3", "NAME": "toy", "STORE": "store", "DIR": "dir",
                "RECIPE": "demo", "PATTERN": "sample-*"}


def _parse(args: list[str]) -> None:
    command = typer.main.get_command(app)
    path = []
    while hasattr(command, "commands"):
        path.append(args.pop(0))
        command = command.commands[path[-1]]
    command.make_context(" ".join(["samplecnn", *path]), args)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: f"{c.doc}:{c.line}")
def test_every_doc_command_parses(command):
    words = shlex.split(command.key.replace("[", "").replace("]", ""))
    if words[0] == "make":
        assert re.search(rf"^{words[1]}:", (REPO / "Makefile").read_text(), re.M), command.key
        return
    if words[0].endswith("python"):  # a benchmark script: it exists and takes every option shown
        script = (REPO / words[1]).read_text()
        assert all(f'"{w}"' in script for w in words[2:] if w.startswith("--")), command.key
        return
    if words[0] == "torchrun":
        words = ["samplecnn", *words[words.index("samplecnn_cli") + 1:]]
    _parse([PLACEHOLDERS.get(w, w) for w in words[1:]])


# -- Python and TOML blocks -------------------------------------------------------------------------
def _python_blocks():
    return {b.text.splitlines()[0]: b for b in blocks("python")}


def test_python_blocks_each_have_a_test():
    known = {"from samplecnn_cli.models.registry import create_model, list_models", "# my_package/models.py",
             "import h5py, json", "import json, sys"}
    assert set(_python_blocks()) == known


def test_model_snippet_runs():
    import torch

    space = {"waveforms": torch.zeros(2, 59049)}
    exec(_python_blocks()["from samplecnn_cli.models.registry import create_model, list_models"].text, space)
    out = space["out"]
    assert out.logits.shape == (2, 50) and out.embedding.shape == (2, 512) and len(out.hidden) == 3


def test_plugin_snippets_are_valid():
    import torch

    pyproject = next(b for b in blocks("toml") if b.text.startswith("# your pyproject.toml"))
    entry = tomllib.loads(pyproject.text)["project"]["entry-points"]["samplecnn.models"]
    assert entry == {"my-cnn": "my_package.models:build_my_cnn"}
    space: dict = {}
    exec(_python_blocks()["# my_package/models.py"].text, space)
    model = space["build_my_cnn"](num_outputs=4).eval()
    assert model.forward_all(torch.zeros(1, model.input_samples)).logits.shape == (1, 4)


def test_embedding_snippet_reads_the_embed_output(workspace):
    outcome = workspace.need(EMBED)
    assert not isinstance(outcome, str), outcome
    space: dict = {}
    with contextlib.chdir(workspace.ws):
        exec(_python_blocks()["import h5py, json"].text, space)
    assert len(space["paths"]) == 4 and space["emb"].shape == (4, 512) and space["feats"].shape == (4, 512)


def test_toml_blocks_parse_and_the_recipe_example_plans(tmp_path):
    from samplecnn_cli.recipe import load_recipe, plan_steps, resolve_recipe

    for block in blocks("toml"):
        tomllib.loads(block.text)
    workspace_files = [b for b in blocks("toml") if "[datasets." in b.text and "title" not in b.text]
    assert len(workspace_files) == 2 and all(tomllib.loads(b.text)["datasets"] for b in workspace_files)
    example = next(b for b in blocks("toml") if b.text.startswith("title ="))
    (tmp_path / "example.toml").write_text(example.text)
    resolved = resolve_recipe(load_recipe(tmp_path / "example.toml"), workdir=tmp_path / "w", smoke=True)
    assert [d.step.name for d in plan_steps(resolved)] == ["make-toy", "train[2k]", "report"]


# -- the deployment example of docs/inference.md ---------------------------------------------------
def test_deployment_example_reproduces_tag(workspace):
    """The docs' onnxruntime + soundfile + soxr example gives `samplecnn tag --precision fp32`'s scores
    within 1e-4, for a mono 22,050 Hz toy MP3 and a stereo 44.1 kHz WAV (both resampled to 8 kHz)."""
    pytest.importorskip("onnxruntime", reason="install samplecnn[onnx]")
    outcome = workspace.need("samplecnn export RUN --format onnx --out model.onnx")
    assert not isinstance(outcome, str), outcome
    workspace.need("music")
    code = _python_blocks()["import json, sys"].text
    for song in ("song.mp3", "recording.wav"):
        tagged = workspace.cli(f"samplecnn tag runs/fsdd {song} --precision fp32 --top-k 8 --json -j 0")
        assert tagged.exit_code == 0, tagged.output
        expected = json.loads(tagged.stdout)[0]["scores"]
        space, printed = {}, []
        with contextlib.chdir(workspace.ws), _argv(["run.py", song]), _print_into(printed):
            exec(code, space)
        np.testing.assert_allclose(space["scores"], list(expected.values()), atol=1e-4)
        best = sorted(expected, key=expected.get, reverse=True)[:5]
        assert [line.split()[0] for line in printed] == best


@contextlib.contextmanager
def _argv(argv: list[str]):
    saved, sys.argv = sys.argv, argv
    try:
        yield
    finally:
        sys.argv = saved


@contextlib.contextmanager
def _print_into(lines: list[str]):
    import builtins

    saved = builtins.print
    builtins.print = lambda *a, **k: lines.append(" ".join(map(str, a)))
    try:
        yield
    finally:
        builtins.print = saved


def test_model_card_example_is_the_docs_example(workspace):
    from samplecnn_cli.inference.model_card import DEPLOY_EXAMPLE

    assert DEPLOY_EXAMPLE.format(model_file="model.onnx") == _python_blocks()["import json, sys"].text
    outcome = workspace.need("samplecnn export RUN --format onnx --out model.onnx")
    assert not isinstance(outcome, str), outcome
    assert _python_blocks()["import json, sys"].text in (workspace.ws / "model.md").read_text()
