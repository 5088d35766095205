"""Peak memory of `tag`, `embed`, `preprocess` and `extract` on a 5-minute and a 2-hour file; prints JSON.

The files: 44.1 kHz stereo 16-bit WAV (tones and noise), written block by block into a temporary folder
(the 2-hour one is 1.3 GB). `tag` and `embed` run with one batch size (16) for both files: the batch
size measured on the machine varies from run to run and its activations weigh more than any audio. The model: sample-3^9 at 22,050 Hz, 50 labels, random weights (memory does
not depend on training; bench_tag_library.make_run). Each command runs as its own process on each file;
its peak memory is measured two ways:
    main_mb    the command's own peak RSS (VmHWM of the process: unlike ru_maxrss, not inherited from the
               process that started it)
    tree_mb    the peak of the summed RSS of the command and every process it started (decode workers),
               sampled from /proc every 20 ms
Each measurement is repeated (--repeat, default 3) and the median kept, with every value listed: the
tuned allocator keeps its peak heap (core/memory.py), so one process's peak varies by a few hundred MB
from run to run with the timing of its first batches, whatever the file.
The goal (issue 20): a 2-hour file within 1.1x the memory of a 5-minute one (`ratio` below), for every
command; results equal to the whole-file path are checked by tests/test_guard_long_files.py.

    .venv/bin/python benchmarks/bench_long_files.py [--commands tag,embed,preprocess,extract] [--hours 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

RATE = 44100


def make_file(path: Path, seconds: float) -> Path:
    """A stereo 44.1 kHz WAV of `seconds`, written a minute at a time (never held whole)."""
    import soundfile as sf

    if path.is_file():
        return path
    rng = np.random.default_rng(0)
    tmp = path.with_name(path.name + ".part")
    with sf.SoundFile(tmp, "w", RATE, 2, subtype="PCM_16", format="WAV") as f:
        left = int(seconds * RATE)
        start = 0
        while left > 0:
            n = min(60 * RATE, left)
            t = (start + np.arange(n)) / RATE
            tone = 0.2 * np.sin(2 * np.pi * (220 + 20 * np.sin(t / 7)) * t)
            f.write(np.stack([tone, -tone], 1) + 0.05 * rng.standard_normal((n, 2)))
            start, left = start + n, left - n
    os.replace(tmp, path)
    return path


def tree_rss(root: int) -> int:
    """Summed RSS in bytes of `root` and its descendants (Linux /proc)."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(stat[1]), []).append(int(entry))
            rss[int(entry)] = int(stat[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, ValueError, IndexError):
            continue
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        total += rss.get(pid, 0)
        todo += children.get(pid, [])
    return total


def measure(argv: list[str]) -> dict:
    """Run `samplecnn ARGV` as a process; its wall time and peak memory (see the module docstring)."""
    cmd = [sys.executable, "-c", "import runpy, sys; sys.argv = ['samplecnn'] + sys.argv[1:];"
           "code = 0\n"
           "exec('try:\\n runpy.run_module(\"samplecnn_cli\", run_name=\"__main__\")\\nexcept SystemExit as e:\\n "
           "code = e.code');"
           "print('PEAK_RSS_KB', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0],"
           " file=sys.stderr); sys.exit(code)", *argv]
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]

    def sample() -> None:
        while proc.poll() is None:
            peak[0] = max(peak[0], tree_rss(proc.pid))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    sampler.join()
    if proc.returncode != 0:
        raise SystemExit(f"{argv}\n{err[-3000:]}")
    main_kb = next(int(line.split()[1]) for line in err.splitlines() if line.startswith("PEAK_RSS_KB"))
    summary = json.loads(out) if out.strip().startswith(("{", "[")) else {}
    summary = summary[0] if isinstance(summary, list) else summary
    return {"seconds": round(time.perf_counter() - began, 1), "main_mb": main_kb // 1024,
            "tree_mb": peak[0] // (1 << 20),
            **{k: summary[k] for k in ("backend", "precision", "batch_size", "segments", "backends") if k in summary}}


def repeated(measure_once, times: int) -> dict:
    """The median of `times` measurements (memory and seconds), and every value."""
    runs = [measure_once() for _ in range(max(1, times))]
    out = dict(runs[0])
    for key in ("seconds", "main_mb", "tree_mb"):
        values = sorted(r[key] for r in runs)
        out[key], out[f"{key}_all"] = values[len(values) // 2], [r[key] for r in runs]
    return out


def commands(name: str, run: Path, audio: Path, work: Path) -> list[str]:
    """The argv of `name` on one audio file (preprocess makes the store extract reads)."""
    if name == "tag":  # one batch size for both files: the measured one varies from run to run, and its
        return ["tag", str(run), str(audio), "--json", "-b", "16"]  # activations outweigh the audio
    if name == "embed":
        return ["embed", str(run), str(audio), "--out", str(work / "emb.h5"), "--json", "--force", "-b", "16"]
    dataset = work / "dataset"
    if name == "preprocess":
        shutil.rmtree(dataset, ignore_errors=True)
        (dataset / "music").mkdir(parents=True)
        try:  # (a symlink would lead out of the dataset's root: refused)
            os.link(audio, dataset / "music" / audio.name)
        except OSError:
            shutil.copy(audio, dataset / "music" / audio.name)
        shutil.rmtree(work / "store", ignore_errors=True)
        return ["preprocess", "folder", "--root", str(dataset), "--out", str(work / "store"), "--sr", "22050",
                "--workers", "1", "--json"]
    return ["extract", str(run), "--data", str(work / "store"), "--out", str(work / "features.h5"), "--json",
            "--force"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--commands", default="tag,embed,preprocess,extract")
    parser.add_argument("--hours", type=float, default=2.0, help="length of the long file")
    parser.add_argument("--short-minutes", type=float, default=5.0)
    parser.add_argument("--folder", type=Path, default=Path(tempfile.gettempdir()) / "samplecnn-bench-long")
    parser.add_argument("--repeat", type=int, default=3, help="runs per command and file (the median is kept)")
    args = parser.parse_args()
    args.folder.mkdir(parents=True, exist_ok=True)
    files = {"short": make_file(args.folder / f"{args.short_minutes:g}min.wav", args.short_minutes * 60),
             "long": make_file(args.folder / f"{args.hours:g}h.wav", args.hours * 3600)}
    run = args.folder / "run"  # made in a process of its own: this one stays small (see `measure`)
    subprocess.run([sys.executable, "-c", "import sys; sys.path.insert(0, sys.argv[1]); from bench_tag_library "
                    "import make_run; from pathlib import Path; make_run(Path(sys.argv[2]))",
                    str(Path(__file__).resolve().parent), str(args.folder)], check=True)
    result = {"files": {k: {"path": str(v), "seconds": args.short_minutes * 60 if k == "short" else args.hours * 3600,
                            "mb": v.stat().st_size // (1 << 20)} for k, v in files.items()},
              "load_before": [round(v, 2) for v in os.getloadavg()], "commands": {}}
    for name in args.commands.split(","):
        entry = {}
        for length, path in files.items():
            work = args.folder / f"work-{length}"
            work.mkdir(exist_ok=True)
            if name == "extract" and not (work / "store" / "train.h5").exists():
                measure(commands("preprocess", run, path, work))
            entry[length] = repeated(lambda n=name, p=path, w=work: measure(commands(n, run, p, w)), args.repeat)
        entry["ratio_main"] = round(entry["long"]["main_mb"] / entry["short"]["main_mb"], 3)
        entry["ratio_tree"] = round(entry["long"]["tree_mb"] / entry["short"]["tree_mb"], 3)
        result["commands"][name] = entry
    result["load_after"] = [round(v, 2) for v in os.getloadavg()]
    result["this_process_peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
